#!/usr/bin/env bash
# Reunpack cost at the plan's scale (docs/gold-only.md, "What it costs"): >= 1 GB of gold made
# of real archives in the plan's mix, uploaded, `files` deleted and rebuilt from gold, then the
# same uploads extracted by an efficient standard-tools script (bsdtar in parallel, hashing,
# one bulk move). Prints GB gold/h, GB files/h, files/s, per core, the ratio of the medians
# and whether the goal (0.5x) is met, unrounded.
#   bench/reunpack-scale.sh                 # data in $BENCH_DATA (fetched once through apt)
#   BENCH_GOLD_MB=1100 bench/reunpack-scale.sh
#   bench/reunpack-scale.sh --runs 5        # timed pairs per batch, order alternating (default 3)
#   BENCH_LOCK=/work/bench.lock bench/reunpack-scale.sh   # shared machine: each timed pair
#       (one batch, holdfast then the script or the other way) holds the flock alone
# The data set, fetched once through apt with a private list folder (the system's apt
# configuration is not touched):
#   src/  Debian source packages (.dsc, .orig.tar.*, .debian.tar.*): the source tarballs;
#   debs/ real binary .deb files, packed by xorriso into one ISO 9660 image (like the plan's
#         distribution DVD: one upload holding hundreds of nested archives);
#   a nested container: one .tar holding several whole source packages (tar of tar.xz).
# Works in batches of BENCH_BATCH_MB of gold (default 250), each in its own scratch site, so
# it needs ~15x one batch free under $BENCH_WORK (not the whole set); apt-get, xorriso, bsdtar.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${BENCH_DATA:-/var/tmp/holdfast-bench/scale-data}
work=${BENCH_WORK:-/var/tmp/holdfast-bench/scale-work}
gold_mb=${BENCH_GOLD_MB:-1100}
# Big, real source packages first (GCC, LLVM, Boost, Qt, databases, interpreters, ...).
src_pkgs=${BENCH_SRC_PACKAGES:-"gcc-12 llvm-toolchain-15 boost1.81 qtbase-opensource-src mariadb postgresql-15 emacs samba openjdk-17 python3.11 perl binutils gdb glibc vim git nodejs php8.2 ruby3.1 openssl curl sqlite3 bash coreutils tar"}
deb_pkgs=${BENCH_DEB_PACKAGES:-"libllvm15 libclang-cpp15 gcc-12 cpp-12 g++-12 libstdc++-12-dev libgcc-12-dev python3.11-minimal libpython3.11-stdlib perl-modules-5.36 libperl5.36 git vim-runtime emacs-common postgresql-15 mariadb-server-core gdb binutils-x86-64-linux-gnu libicu72 libboost1.81-dev qtbase5-dev-tools libqt5widgets5 libqt5gui5 libqt5core5a openjdk-17-jre-headless libreoffice-core firefox-esr"}

prepare() {
  local apt=/var/tmp/holdfast-bench/apt-scale
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$data/src" "$data/debs"
  local uri suite
  uri=$(awk '/^URIs:/ && !u {u=$2} END {print u}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  suite=$(awk '/^Suites:/ && !s {s=$2} END {print s}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
    suite=$(awk '$1 == "deb" {print $3; exit}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] && [ -n "$suite" ] || { echo "no apt source configured" >&2; exit 1; }
  printf 'deb %s %s main\ndeb-src %s %s main\n' "$uri" "$suite" "$uri" "$suite" > "$apt/src.list"
  local opts=(-q -o Dir::Etc::SourceList="$apt/src.list" -o Dir::Etc::SourceParts=/dev/null
              -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache")
  apt-get "${opts[@]}" update >/dev/null
  # Source packages until the sources reach ~70% of the gold.
  local p
  for p in $src_pkgs; do
    [ "$(du -sm "$data/src" | cut -f1)" -ge $((gold_mb * 7 / 10)) ] && break
    (cd "$data/src" && apt-get "${opts[@]}" source --download-only "$p" >/dev/null 2>&1) || echo "skipped source $p" >&2
  done
  for p in $deb_pkgs; do
    (cd "$data/debs" && apt-get "${opts[@]}" download "$p" >/dev/null 2>&1) || echo "skipped deb $p" >&2
  done
}

if [ ! -e "$data/.complete" ]; then
  prepare
  touch "$data/.complete"
fi
du -sh "$data/src" "$data/debs"
[ "${1:-}" = "--prepare-only" ] && exit 0
cargo build -q --release -p holdfast-drill --example reunpack_scale
lock=()
[ -n "${BENCH_LOCK:-}" ] && lock=(--lock "$BENCH_LOCK")
exec "${CARGO_TARGET_DIR:-target}"/release/examples/reunpack_scale "$data" "$work" "${lock[@]}" "$@"
