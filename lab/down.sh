#!/usr/bin/env bash
# Removes a lab kept by `lab/up.sh --keep`: kills the PIDs it recorded and deletes its
# namespaces (tlab-<id>-*). Touches nothing else.
set -euo pipefail
STATE=/tmp/tortie-lab
[ -f "$STATE/current" ] || { echo "no kept lab"; exit 0; }
ID=$(cat "$STATE/current")
DIR=$STATE/$ID
for pid in $(cat "$DIR/pids" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
sleep 0.5
for pid in $(cat "$DIR/pids" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
for ns in $(ip netns list | awk '{print $1}' | grep "^tlab-$ID-" || true); do ip netns del "$ns"; done
rm -rf "$DIR" "$STATE/current"
echo "lab $ID removed"
