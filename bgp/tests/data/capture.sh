#!/usr/bin/env bash
# Re-captures the BGP sessions in this directory from real BIRD 2, GoBGP and FRR.
# Needs root and the Debian packages bird2, gobgpd, frr, tcpdump, iproute2 (see README.md).
# Builds namespaces of its own (testlab: unique names, removed afterwards, even on failure),
# runs four daemon pairs, captures with tcpdump on the veth and rewrites */to-*.bin.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ "$(id -u)" != 0 ]; then
    echo "capture.sh: must run as root (network namespaces)" >&2
    exit 1
fi
cargo test -p tortie-bgp --test wire_capture -- --ignored regenerate_captures --nocapture
# Check what was captured still decodes (and re-encodes) as expected.
cargo test -p tortie-bgp --test wire_capture -- every_captured_message_decodes_and_reencodes
