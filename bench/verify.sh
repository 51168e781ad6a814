#!/usr/bin/env bash
# Benchmark of `holdfast verify --snapshot` (every file hashed with sha1 and md5 and compared
# with its FOSSology name) against `sha1sum` and `sha1sum + md5sum` of the same files.
# Builds a snapshot on a local target from real files of this machine (/usr/lib, /usr/share),
# each stored under its content name as FOSSology's repository does, then times the tools
# interleaved, REPS rounds (default 3), each cold (page cache dropped before every run) and
# warm (run again right after), and prints the medians and the load average.
# Usage: bench/verify.sh [MAX_MB]   (default 400; HOLDFAST=path/to/holdfast to skip the build;
# REPS=n; COLD=0 skips the cold runs; FROM=REPOSITORY takes the files from a FOSSology
# repository instead, e.g. a bench/dataset.py site's: its files/ folders, a few KiB a file, as
# a site's are, where /usr's files are mostly large)
set -euo pipefail
cd "$(dirname "$0")/.."
max_mb=${1:-400}
work=${BENCH_WORK:-/var/tmp/holdfast-bench/verify}
if [ -z "${HOLDFAST:-}" ]; then
  cargo build -q --release -p holdfast
  HOLDFAST=target/release/holdfast
fi
rm -rf "$work"
mkdir -p "$work"
python3 - "$work" "$max_mb" "${FROM:-}" <<'EOF'
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
cat > "$work/holdfast.toml" <<EOF
[backup]
target = "$work/target"
lock_file = "$work/run/backup.lock"
EOF
repo="$work/target/current/repository"
bytes=$(find "$repo" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
reps=${REPS:-3}
cold=${COLD:-1}
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
tools=(hf s1 s1p sm smp)
cmd() {
  case $1 in
    hf) "$HOLDFAST" --config "$work/holdfast.toml" -q verify --snapshot current --restart ;;
    s1) find "$repo" -type f -print0 | xargs -0 sha1sum ;;
    s1p) find "$repo" -type f -print0 | xargs -0 -P"$(nproc)" -n 256 sha1sum ;;
    sm) find "$repo" -type f -print0 | xargs -0 sha1sum; find "$repo" -type f -print0 | xargs -0 md5sum ;;
    # the same proof with the peers' best flags: both sums of a batch in one process each,
    # one batch per core (the second sum reads the batch from the page cache)
    smp) find "$repo" -type f -print0 | xargs -0 -P"$(nproc)" -n 256 sh -c 'sha1sum "$@"; md5sum "$@"' _ ;;
  esac
}
declare -A warm_t cold_t
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= reps; r++)); do
  for t in "${tools[@]}"; do
    if [ "$cold" = 1 ]; then
      drop
      cold_t[$t]+="$(secs cmd "$t") "
    else
      cmd "$t" >/dev/null
    fi
    warm_t[$t]+="$(secs cmd "$t") "
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rate() { echo "scale=1; $bytes / $1 / 1048576" | bc -l; }
name() {
  case $1 in
    hf) echo "holdfast verify (sha1+md5, $(nproc) threads)" ;;
    s1) echo "sha1sum (1 process)" ;;
    s1p) echo "sha1sum (xargs -P$(nproc))" ;;
    sm) echo "sha1sum + md5sum (the same proof)" ;;
    smp) echo "sha1sum + md5sum (xargs -P$(nproc))" ;;
  esac
}
echo "$(find "$repo" -type f | wc -l) files, $(echo "scale=1; $bytes / 1048576" | bc -l) MiB; medians of $reps interleaved runs"
declare -A med
for kind in warm cold; do
  [ "$kind" = cold ] && [ "$cold" != 1 ] && continue
  for t in "${tools[@]}"; do
    if [ "$kind" = warm ]; then v=${warm_t[$t]}; else v=${cold_t[$t]}; fi
    m=$(tr ' ' '\n' <<<"$v" | grep . | median)
    med[$kind$t]=$m
    printf '%-5s %-42s %8.2f s %8s MiB/s   (runs: %s)\n' "$kind" "$(name "$t")" "$m" "$(rate "$m")" "$v"
  done
  echo "$kind ratios: holdfast is $(echo "scale=2; ${med[${kind}s1]} / ${med[${kind}hf]}" | bc -l)x sha1sum, $(echo "scale=2; ${med[${kind}sm]} / ${med[${kind}hf]}" | bc -l)x sha1sum+md5sum, $(echo "scale=2; ${med[${kind}smp]} / ${med[${kind}hf]}" | bc -l)x parallel sha1sum+md5sum, $(echo "scale=2; ${med[${kind}s1p]} / ${med[${kind}hf]}" | bc -l)x parallel sha1sum"
done
