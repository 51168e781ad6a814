#!/usr/bin/env bash
# Backup server benchmark (crates/server/examples/server_bench.rs): the daily snapshot job
# (rotate + emptying the trash) vs the rsnapshot way (rm -rf + rsync --link-dest), hard-link
# snapshots vs cp -al, expiry incl. emptying vs rm -rf, sizes vs du -sb; every step cold
# (run as root: caches are dropped), interleaved, medians of --reps rounds, the load at the
# start of every timed run. holdfast walks with a pool of threads, so rm -rf, cp -al and
# rsync are timed as one process and split per top-level entry under xargs -P (as many as
# holdfast's walkers, or --peer-jobs N); the ratios are against the faster. du -sb stays
# one process.
#   bench/server.sh                 # a million files (needs ~6 GB and ~20 minutes)
#   bench/server.sh --files 100000  # smaller
#   bench/server.sh --dir /srv/tmp  # where to build the trees (same fs as real homes)
#   bench/server.sh --only sizes    # time just some steps (job, link, expiry, sizes)
#   bench/server.sh --linked 50     # half the files with a second name (the Perl client's -H)
#   bench/server.sh --peer-jobs 2   # the parallel peers' processes (default: holdfast's walkers)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
cargo build --quiet --release -p holdfast-server --example server_bench
exec "${CARGO_TARGET_DIR:-target}/release/examples/server_bench" "$@"
