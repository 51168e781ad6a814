#!/usr/bin/env bash
# Benchmark of holdfast's unpack agent against a standard-tools script on real Debian
# source packages. Fetches the sources once through apt (a private deb-src list; the
# system's apt configuration is not touched) into $BENCH_DATA, builds the benchmark in
# release mode, runs both in one go and prints MB/s of gold and the ratio.
# Usage: bench/unpack.sh [--reps N] [--warm]: N rounds (default 3), the order alternating
# (script first, then holdfast first, ...), each timed run cold (page cache dropped; needs
# root, else labelled WARM) and ending with sync; prints the medians, the ratio of the
# medians, the load at the start of each run, the date and the build's commit.
# The script (bench/unpack-script.sh) extracts the uploads in parallel, one per core, hashes
# with sha1sum -z / md5sum -z side by side and stores everything in one perl bulk move.
# Until 2026-12-06 it extracted serially and forked one `mv` per stored file (~10,400), and
# the 2.3x-4.3x measured against it on 2026-11-22 is withdrawn.
# Measured 2026-12-06 07:04 UTC on the shared 2-core machine (build of fdc5c34, 11 packages,
# 38 files, 27.9 MB gold, 3 cold rounds, load 1.8-2.0): holdfast 7.56 s median (10,432
# files, 13,362 rows) against the script's 2.27 s (10,413 files): holdfast 0.30x the
# script's speed. Warm (07:12, load 2.5-2.8): 8.90 s against 5.00 s, 0.56x, but both sides
# slowed after round 1 (round 1: 0.30x).
# The binary is taken from $CARGO_TARGET_DIR (default target/), where cargo builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${BENCH_DATA:-/var/tmp/holdfast-bench/unpack-src}
work=${BENCH_WORK:-/var/tmp/holdfast-bench/unpack-work}
pkgs=${BENCH_PACKAGES:-"hello zlib xz-utils bzip2 coreutils bash tar gzip sed grep diffutils"}
if [ -z "$(ls -A "$data" 2>/dev/null)" ]; then
  apt=/var/tmp/holdfast-bench/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$data"
  # The machine's own Debian mirror, as a deb-src line (first URI and suite it configures).
  src=$(awk '/^URIs:/ && !u {u=$2} /^Suites:/ && !s {s=$2} END {if (u && s) print "deb-src " u " " s " main"}' \
          /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [ -n "$src" ] || src=$(awk '$1 == "deb" {print "deb-src " $2 " " $3 " main"; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$src" ] || { echo "no apt source configured to fetch Debian sources from" >&2; exit 1; }
  echo "$src" > "$apt/src.list"
  opts=(-q -o Dir::Etc::SourceList="$apt/src.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache")
  apt-get "${opts[@]}" update >/dev/null
  (cd "$data" && apt-get "${opts[@]}" source --download-only $pkgs >/dev/null 2>&1)
fi
cargo build -q --release -p holdfast-unpack --example unpack_bench
exec "${CARGO_TARGET_DIR:-target}"/release/examples/unpack_bench "$data" "$work" bench/unpack-script.sh "$@"
