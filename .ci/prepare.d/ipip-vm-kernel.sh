#!/usr/bin/env bash
# Fetches Debian's stock kernel (the version linux-image-amd64 depends on) for felix's
# IPIP VM test (felix/tests/ipip_vm.rs) into $TORTIE_CACHE/ipip-vm: vmlinuz plus the
# modules the test loads (tunnel4, ip_tunnel, ipip, veth), uncompressed. Idempotent.
set -euo pipefail
cache="${TORTIE_CACHE:-/var/cache/tortie}/ipip-vm"
[ -f "$cache/ready" ] && exit 0
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "cannot resolve the kernel package behind linux-image-amd64" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "$pkg")
dpkg -x "$work"/*.deb "$work/root"
ver=${pkg#linux-image-}
mkdir -p "$cache.tmp/modules"
cp "$work/root/boot/vmlinuz-$ver" "$cache.tmp/vmlinuz"
for m in net/ipv4/tunnel4 net/ipv4/ip_tunnel net/ipv4/ipip drivers/net/veth; do
  f=$(ls "$work/root/lib/modules/$ver/kernel/$m".ko* | head -n1)
  case "$f" in
    *.xz) xz -dc "$f" >"$cache.tmp/modules/$(basename "$m").ko" ;;
    *.zst) zstd -qdc "$f" >"$cache.tmp/modules/$(basename "$m").ko" ;;
    *) cp "$f" "$cache.tmp/modules/$(basename "$m").ko" ;;
  esac
done
echo "$ver" >"$cache.tmp/version"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
touch "$cache/ready"
echo "ipip VM kernel $ver ready in $cache"
