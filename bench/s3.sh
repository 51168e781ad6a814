#!/usr/bin/env bash
# A day's new snapshot copied to an S3 bucket: holdfast against `rclone sync` and
# `restic backup` to the same server (rclone serve s3 on loopback), then a restore from the
# bucket against `rclone copy`. Time (cold page cache; restic keeps its own cache, as
# operators do; rclone with --fast-list, sync --size-only) and bytes on the wire, medians of
# REPS. REPOSITORY defaults to the benchmark data set's whole site (bench/dataset.py).
# Usage: bench/s3.sh [REPOSITORY] [NEW_PERCENT] [REPS] [MAX_FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=${1:-${BENCH_DATA:-/work/bench-data}/sites/whole/repository}
pct=${2:-3}
reps=${3:-3}
max=${4:-}
command -v restic >/dev/null || { echo "restic missing: run scripts/install-deps.sh" >&2; exit 1; }
rclone serve s3 --help >/dev/null 2>&1 || { echo "rclone with serve s3 missing: run scripts/install-deps.sh" >&2; exit 1; }
CARGO_INCREMENTAL=0 cargo build --release -q -p holdfast-bucket --example s3_bench
uptime
"${CARGO_TARGET_DIR:-target}/release/examples/s3_bench" "$repo" "$pct" "$reps" $max
