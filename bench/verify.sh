#!/usr/bin/env bash
# Benchmark of `holdfast verify --snapshot` (every file hashed with sha1 and md5 and compared
# with its FOSSology name) against `sha1sum` and `sha1sum + md5sum` of the same files, timed
# interleaved, REPS rounds (default 3), each cold (page cache dropped before every run) and
# warm (run again right after); prints the medians and the load average at every run.
# Every command must succeed: a failed one (holdfast's lock, configuration, a damaged file;
# a peer's read error) stops the benchmark instead of being timed.
#
# Two sources:
#  - STORE=DIR [SNAPSHOT=NAME]: a store holdfast wrote (e.g. bench/verify-all.py's
#    /var/tmp/holdfast-bench/verify-all/stores/rolling or .../pool, made with `--days 0` for a
#    store holding only the site's first backup). Times `holdfast verify --target DIR
#    --snapshot NAME` (default: `current`, or the newest `snap.*`) as it reads that store: a
#    rolling day proved from its list, a pool snapshot's objects. The peers hash the same
#    files where the store keeps them, in `find`'s order, and the dump's sha256: rolling, the
#    day tree every name (`find | xargs -P`) and once per inode (gold and its `files` twin are
#    one inode, which holdfast reads once); pool, the pool's objects the snapshot's list
#    names. The store is left as it was, but for holdfast's verification records.
#  - otherwise a snapshot built here (a hand-written manifest, no list) from FOSSology
#    repository files: FROM=REPOSITORY (default the benchmark data set's whole site,
#    $BENCH_DATA/sites/whole/repository, a few KiB a file as a site's are), or FROM=usr:
#    /usr/lib and /usr/share up to MAX_MB (mostly large files); each stored under its content
#    name as FOSSology's repository does.
# Usage: bench/verify.sh [MAX_MB]   (default 400, FROM=usr only; HOLDFAST=path/to/holdfast
# to skip the build; REPS=n; COLD=0 skips the cold runs; STORE=, SNAPSHOT=, FROM= as above)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
max_mb=${1:-400}
work=${BENCH_WORK:-/var/tmp/holdfast-bench/verify}
if [ -z "${HOLDFAST:-}" ]; then
  cargo build -q --release -p holdfast
  HOLDFAST=${CARGO_TARGET_DIR:-target}/release/holdfast
fi
HOLDFAST=$(realpath "$HOLDFAST")
rm -rf "$work"
mkdir -p "$work"
store=${STORE:-}
if [ -n "$store" ]; then
  store=$(realpath "$store")
  snap=${SNAPSHOT:-}
  if [ -z "$snap" ]; then
    if [ -d "$store/current" ]; then
      snap=current
    else
      snap=$(find "$store" -mindepth 1 -maxdepth 1 -name 'snap.*' -printf '%f\n' | sort | tail -n 1)
    fi
  fi
  if [ -z "$snap" ] || [ ! -f "$store/$snap/manifest.json" ]; then
    echo "no snapshot ${snap:-(none found)} with a manifest in $store" >&2
    exit 1
  fi
  if [ -d "$store/$snap/repository" ]; then
    layout=rolling
    repo="$store/$snap/repository"
  elif [ -f "$store/$snap/files.list.gz" ] && [ -d "$store/pool" ]; then
    layout=pool
    # objects/<ab>/<name>, or the repository's tree in a pool made before objects
    if [ -d "$store/pool/repository" ]; then
      repo="$store/pool/repository" objects=
    else
      repo="$store/pool/objects" objects=1
    fi
  else
    echo "$store/$snap: neither a day tree (repository/) nor a pool snapshot (files.list.gz + pool/)" >&2
    exit 1
  fi
  echo "store $store, snapshot $snap ($layout), files under $repo"
else
  from=${FROM:-${BENCH_DATA:-/work/bench-data}/sites/whole/repository}
  [ "$from" = usr ] && from=
  if [ -n "$from" ] && [ ! -d "$from" ]; then
    echo "no repository at $from: build the data set (bench/dataset.py) or pass FROM=usr" >&2
    exit 1
  fi
python3 - "$work" "$max_mb" "$from" <<'EOF'
import hashlib, json, os, sys, gzip, datetime
work, max_bytes, source = sys.argv[1], int(sys.argv[2]) << 20, sys.argv[3]
snap = os.path.join(work, "target", "current")
repo = os.path.join(snap, "repository", "localhost", "files")
total = files = 0
seen = set()
tops = ["/usr/lib", "/usr/share"]
if source:
    # every host folder's files/, whole: MAX_MB does not cut a site's repository
    tops = [os.path.join(source, h, "files") for h in sorted(os.listdir(source))]
    max_bytes = 1 << 62
for top in tops:
    for d, _, names in os.walk(top):
        for n in sorted(names):
            p = os.path.join(d, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            s, m = hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest()
            name = f"{s}.{m}.{len(data)}"
            if name in seen:
                continue
            seen.add(name)
            dest = os.path.join(repo, s[0:2], s[2:4], s[4:6])
            os.makedirs(dest, exist_ok=True)
            with open(os.path.join(dest, name), "wb") as f:
                f.write(data)
            total += len(data); files += 1
            if total >= max_bytes:
                break
        if total >= max_bytes:
            break
    if total >= max_bytes:
        break
os.makedirs(os.path.join(snap, "db"), exist_ok=True)
dump = gzip.compress(b"-- empty dump\n")
open(os.path.join(snap, "db", "fossology.sql.gz"), "wb").write(dump)
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
manifest = {
    "format": 1, "site": "bench", "mode": "full", "layout": "rolling", "kind": "full",
    "builds_on": [], "holdfast_version": "bench", "started": now, "finished": now,
    "database": {"file": "db/fossology.sql.gz", "compression": "gzip",
                 "sha256": hashlib.sha256(dump).hexdigest(), "bytes": len(dump),
                 "raw_bytes": 14, "dbname": "fossology", "owner": "fossy",
                 "encoding": "UTF8", "collate": "C", "ctype": "C"},
    "repository": {"root": "/srv/fossology/repository", "hosts": ["localhost"],
                   "types": ["files"], "files": files, "bytes": total,
                   "new_files": files, "new_bytes": total},
    "jobs": {"unfinished": [], "stale_running": []},
}
json.dump(manifest, open(os.path.join(snap, "manifest.json"), "w"))
print(f"{files} files, {total / 1e6:.1f} MB")
EOF
  store="$work/target"
  snap=current
  layout=synthetic
  repo="$store/current/repository"
fi
cat > "$work/holdfast.toml" <<EOF
[backup]
target = "$store"
lock_file = "$work/run/backup.lock"
EOF
reps=${REPS:-3}
cold=${COLD:-1}
jobs=$(nproc)
# A run's seconds; a failed command fails the benchmark (its status and command printed).
secs() {
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" >/dev/null || rc=$?
  t1=$(date +%s.%N)
  if [ "$rc" != 0 ]; then
    echo "FAILED (exit $rc): $*" >&2
    return 1
  fi
  echo "$t1 - $t0" | bc -l
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hash_both="xargs -0 -r -P$jobs -n 256 sh -c 'sha1sum \"\$@\" && md5sum \"\$@\"' _"
# the files the peers prove, one a line, in find's order (a store: only the snapshot's)
files() {
  case $layout in
    pool)
      # the objects (or, in a pool made before objects, the paths) the snapshot's list names,
      # kept in the pool's own order
      gzip -dc "$store/$snap/files.list.gz" | cut -f1 | awk -F/ -v base="$repo" -v objects="$objects" '
        objects { n = $NF; if (n ~ /^[0-9a-fA-F]+\.[0-9a-fA-F]+\.[0-9]+$/) print base "/" tolower(substr(n, 1, 2)) "/" n; next }
        { print base "/" $0 }' > "$work/wanted"
      find "$repo" -type f | awk 'NR == FNR { w[$0]; next } ($0 in w)' "$work/wanted" - ;;
    *) find "$repo" -type f ;;
  esac
}
dump_sum() { [ "$layout" = synthetic ] || sha256sum "$store/$snap"/db/* >/dev/null; }
if [ "$layout" = synthetic ]; then
  tools=(hf s1 s1p sm smp)
elif [ "$layout" = rolling ]; then
  tools=(hf smp smo)
else
  tools=(hf smp)
fi
cmd() {
  case $1 in
    hf) "$HOLDFAST" --config "$work/holdfast.toml" -q verify --target "$store" --snapshot "$snap" --restart ;;
    s1) find "$repo" -type f -print0 | xargs -0 -r sha1sum ;;
    s1p) find "$repo" -type f -print0 | xargs -0 -r -P"$jobs" -n 256 sha1sum ;;
    sm) find "$repo" -type f -print0 | xargs -0 -r sha1sum && find "$repo" -type f -print0 | xargs -0 -r md5sum ;;
    # the same proof with the peers' best flags: both sums of a batch in one process each,
    # one batch per core (the second sum reads the batch from the page cache)
    smp) files | tr '\n' '\0' | eval "$hash_both" && dump_sum ;;
    # the same, each inode once (its first name in find's order)
    smo) find "$repo" -type f -printf '%i %p\n' | awk '!seen[$1]++ { sub(/^[0-9]+ /, ""); print }' |
           tr '\n' '\0' | eval "$hash_both" && dump_sum ;;
  esac
}
bytes=$(files | tr '\n' '\0' | du -cb --files0-from=- | tail -n 1 | cut -f1)
nfiles=$(files | wc -l)
declare -A warm_t cold_t warm_l cold_l
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= reps; r++)); do
  for t in "${tools[@]}"; do
    if [ "$cold" = 1 ]; then
      drop
      cold_l[$t]+="$(cut -d' ' -f1 /proc/loadavg) "
      v=$(secs cmd "$t") || exit 1
      cold_t[$t]+="$v "
    else
      cmd "$t" >/dev/null
    fi
    warm_l[$t]+="$(cut -d' ' -f1 /proc/loadavg) "
    v=$(secs cmd "$t") || exit 1
    warm_t[$t]+="$v "
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rate() { echo "scale=1; $bytes / $1 / 1048576" | bc -l; }
name() {
  case $1 in
    hf) echo "holdfast verify (sha1+md5, $(nproc) threads)" ;;
    s1) echo "sha1sum (1 process)" ;;
    s1p) echo "sha1sum (xargs -P$jobs)" ;;
    sm) echo "sha1sum + md5sum (the same proof)" ;;
    smp) echo "sha1sum + md5sum (xargs -P$jobs)" ;;
    smo) echo "sha1sum + md5sum (-P$jobs, once per inode)" ;;
  esac
}
echo "$layout: $nfiles files, $(echo "scale=1; $bytes / 1048576" | bc -l) MiB (each stored file once); medians of $reps interleaved runs"
declare -A med
for kind in warm cold; do
  [ "$kind" = cold ] && [ "$cold" != 1 ] && continue
  for t in "${tools[@]}"; do
    if [ "$kind" = warm ]; then v=${warm_t[$t]}; l=${warm_l[$t]}; else v=${cold_t[$t]}; l=${cold_l[$t]}; fi
    m=$(tr ' ' '\n' <<<"$v" | grep . | median)
    med[$kind$t]=$m
    printf '%-5s %-42s %8.2f s %8s MiB/s   (runs: %s; loads at their starts: %s)\n' "$kind" "$(name "$t")" "$m" "$(rate "$m")" "$v" "$l"
  done
  x() { echo "scale=2; ${med[$kind$1]} / ${med[${kind}hf]}" | bc -l; }
  if [ "$layout" = synthetic ]; then
    echo "$kind ratios: holdfast is $(x s1)x sha1sum, $(x sm)x sha1sum+md5sum, $(x smp)x parallel sha1sum+md5sum, $(x s1p)x parallel sha1sum"
  elif [ "$layout" = rolling ]; then
    best=smp
    [ "$(echo "${med[${kind}smo]} < ${med[${kind}smp]}" | bc -l)" = 1 ] && best=smo
    echo "$kind ratios: holdfast is $(x "$best")x the faster peer ($(name "$best")); $(x smp)x every name, $(x smo)x once per inode"
  else
    echo "$kind ratio: holdfast is $(x smp)x the peer ($(name smp))"
  fi
done
