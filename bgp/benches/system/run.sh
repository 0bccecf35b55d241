#!/usr/bin/env bash
# Whole-system BGP receive benchmark (issue 2): 100,000 /26 prefixes from one injector into
# tortie, BIRD 2, GoBGP and FRR, each in fresh network namespaces; prints a Markdown table.
# Needs root and the Debian packages bird2, gobgpd, frr, iproute2 (see .ci/packages.sh).
# Not part of `cargo test`. Extra flags go to the binary, e.g. --runs 1 --only tortie,bird.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p tortie-bgp --example bench_100k
exec "$CARGO_TARGET_DIR/release/examples/bench_100k" "$@"
