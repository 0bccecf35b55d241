#!/usr/bin/env bash
# Installs every Debian package the build and the tests need. Idempotent; quiet when
# everything is already there.
set -euo pipefail
pkgs=(
  iproute2 iptables ipset nftables iputils-ping netcat-openbsd tcpdump
  bird2 gobgpd frr
  etcd-server etcd-client
  protobuf-compiler
  qemu-system-x86 busybox-static
  golang-1.19-go rsync dpkg-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
