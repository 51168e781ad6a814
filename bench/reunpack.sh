#!/usr/bin/env bash
# Reunpack throughput for the gold-only guide (docs/gold-only.md): builds a site from real
# archives, deletes `files`, rebuilds it from gold, prints GB gold/h and GB files/h next to
# the plan's figure (4.2 GB ISO -> 54 GB in 5.5 h).
#   bench/reunpack.sh                   # corpus: the cargo registry cache's .crate packages
#   bench/reunpack.sh --corpus DIR      # a folder of your own archives
#   bench/reunpack.sh --jobs 4          # uploads rebuilt at the same time (default: CPUs)
#   bench/reunpack.sh --work /srv/tmp   # where to build the sites (needs ~15x the corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p holdfast-recover --example reunpack_bench -- "$@"
