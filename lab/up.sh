#!/usr/bin/env bash
# tortie multi-node lab: etcd + 3 nodes (each running tortie-node) + 2 pods per node, all
# in network namespaces of their own. Shows `tortiectl node status` and the routes per
# node, pings pod to pod across nodes, prints PASS/FAIL and tears everything down (or
# keeps it with --keep; then `bash lab/down.sh` removes it).
#
# Usage: sudo bash lab/up.sh [--keep] [--no-build]   (NODE_BIN=/CTL_BIN= override binaries)
# Never touches the root namespace: every interface, address and route is created inside
# namespaces named tlab-<id>-*; only PIDs started here are killed.
set -euo pipefail

KEEP=0
BUILD=1
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--keep] [--no-build]" >&2; exit 64 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "lab/up.sh needs root (network namespaces)" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/.ci/packages.sh"   # etcd, iproute2, iptables, ... (idempotent)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p tortie-node -p tortie-ctl)
fi
NODE_BIN=${NODE_BIN:-$TARGET/release/tortie-node}
CTL_BIN=${CTL_BIN:-$TARGET/release/tortiectl}
[ -x "$NODE_BIN" ] || { echo "missing $NODE_BIN" >&2; exit 1; }

ID=$$
P=tlab-$ID
STATE=/tmp/tortie-lab
DIR=$STATE/$ID
mkdir -p "$DIR"
echo "$ID" > "$STATE/current"
FAB=$P-fab
PIDS=()

down() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$ns" || true; done
  rm -rf "$DIR"
  rm -f "$STATE/current"
}
if [ "$KEEP" = 0 ]; then trap down EXIT; else trap '[ "${OK:-0}" = 1 ] || down' EXIT; fi

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Fabric: one bridge; hosts join with a veth created inside the fabric.
ip netns add "$FAB"
inns "$FAB" ip link set lo up
inns "$FAB" ip link add br0 type bridge
inns "$FAB" ip link set br0 up
inns "$FAB" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
add_host() { # name addr
  local ns=$P-$1
  ip netns add "$ns"
  inns "$ns" ip link set lo up
  inns "$FAB" ip link add "v-$1" type veth peer name eth0
  inns "$FAB" ip link set eth0 netns "$ns"
  inns "$FAB" ip link set "v-$1" master br0 up
  inns "$ns" ip addr add "$2" dev eth0
  inns "$ns" ip link set eth0 up
}

add_host etcd 10.0.0.100/24
ETCD=http://10.0.0.100:2379
# Started with `ip netns exec` directly (not through a shell function) so $! is the
# daemon's own PID (ip execs it) and the trap kills the daemon itself.
ip netns exec "$P-etcd" etcd --name lab --data-dir "$DIR/etcd" \
  --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
  --listen-peer-urls http://10.0.0.100:2380 >"$DIR/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  inns "$P-etcd" etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done

nodeenv() { # node
  echo NODENAME="$1" IP="10.0.0.${1#n}/24" ETCD_ENDPOINTS="$ETCD" \
    CALICO_IPV4POOL_CIDR=10.244.0.0/16 TORTIE_STATUS_ADDR="$DIR/$1.sock" TORTIE_IN_SYNC_BOUND_SECS=10 \
    TORTIE_STATE_DIR="$DIR/$1.state"
}
for n in n1 n2 n3; do
  add_host "$n" "10.0.0.${n#n}/24"
  # A real host has a default route; proxy ARP for the pods' gateway needs one.
  inns "$P-$n" ip route add default dev eth0
  # shellcheck disable=SC2046
  ip netns exec "$P-$n" env $(nodeenv "$n") "$NODE_BIN" >"$DIR/$n.log" 2>&1 &
  PIDS+=($!)
done
echo "$(printf '%s ' "${PIDS[@]}")" > "$DIR/pids"

for _ in $(seq 100); do
  c=$(inns "$P-etcd" etcdctl --endpoints "$ETCD" get --prefix --keys-only /tortie | grep -c tortienode || true)
  [ "$c" = 3 ] && break
  sleep 0.1
done

declare -A POD_IP
for n in n1 n2 n3; do
  for p in a b; do
    pns=$P-$n$p
    ip netns add "$pns"
    inns "$pns" ip link set lo up
    # shellcheck disable=SC2046
    POD_IP[$n$p]=$(inns "$P-$n" env $(nodeenv "$n") "$NODE_BIN" add-pod \
      --namespace default --pod "$n$p" --netns "/run/netns/$pns" 2>>"$DIR/$n.log")
    echo "pod $n$p on $n: ${POD_IP[$n$p]}"
  done
done

# Wait until each node has routes to the two other nodes' blocks.
for _ in $(seq 150); do
  ok=1
  for n in n1 n2 n3; do
    c=$(inns "$P-$n" ip route show proto 80 | grep -c ' via 10.0.0.' || true)
    [ "$c" -ge 2 ] || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.1
done

for n in n1 n2 n3; do
  echo "=== $n: tortiectl node status"
  if [ -x "$CTL_BIN" ]; then
    inns "$P-$n" "$CTL_BIN" node status --status-addr "$DIR/$n.sock" 2>&1 || true
  fi
  echo "=== $n: routes (proto 80)"
  inns "$P-$n" ip route show proto 80
done

FAIL=0
for src in n1a n2a n3a n1b; do
  for dst in n1b n2b n3b n2a; do
    [ "$src" = "$dst" ] && continue
    if inns "$P-$src" ping -c1 -W2 "${POD_IP[$dst]}" >/dev/null 2>&1; then
      echo "ping $src -> $dst (${POD_IP[$dst]}): ok"
    else
      echo "ping $src -> $dst (${POD_IP[$dst]}): FAILED"; FAIL=1
    fi
  done
done
if [ "$FAIL" = 0 ]; then echo PASS; OK=1; else echo "FAIL (logs in $DIR)"; fi
if [ "$KEEP" = 1 ] && [ "$FAIL" = 0 ]; then
  echo "lab kept: namespaces $P-*; remove with: sudo bash lab/down.sh"
fi
[ "$FAIL" = 0 ]
