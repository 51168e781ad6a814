#!/usr/bin/env bash
# Backup server benchmark: snapshot creation vs cp -al, size accounting vs du, expiry vs
# rm -rf, on a tree of small files with a week of snapshots. Prints the ratios.
#   bench/server.sh                # a million files (needs ~5 GB and a few minutes)
#   bench/server.sh --files 100000 # smaller
#   bench/server.sh --dir /srv/tmp # where to build the trees (same fs as real homes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p holdfast-server --example server_bench -- "$@"
