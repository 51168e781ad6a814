#!/usr/bin/env bash
# Disaster-recovery drills at scale (not in CI): total-loss with hundreds of uploads, once
# from a full backup and once from a gold-only one, each with its recovery time (RTO), the
# site's size and the RTO per GB of repository, from the drills' own JSON reports.
#   bench/drill-scale.sh [UPLOADS]        # default 200 uploads, each a real nested archive
# Scratch folder: $BENCH_WORK (default /var/tmp/holdfast-bench/drill-scale).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
work=${BENCH_WORK:-/var/tmp/holdfast-bench/drill-scale}
mkdir -p "$work"
cargo build -q --release -p holdfast
bin="${CARGO_TARGET_DIR:-target}/release/holdfast"
echo "| drill | backup | uploads | gold | files | RTO | RTO per GB of repository | data lost | passed | load avg at start |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for mode in full gold; do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  "$bin" drill total-loss --uploads "$n" --mode "$mode" --scratch "$work" --json > "$work/$mode.json" || true
  python3 - "$work/$mode.json" "$mode" "$load" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r.get("site") or {}
lost = r["data_lost"]
age = lost.get("restored_state_age_secs")
print(f"| {r['scenario']} | {sys.argv[2]} | {s.get('uploads')} | {s.get('gold_bytes', 0)/1e6:.0f} MB "
      f"| {s.get('files_bytes', 0)/1e6:.0f} MB ({s.get('files')}) | {r['recovery_secs']:.0f} s "
      f"| {r.get('rto_secs_per_gb') or 0:.0f} s | {len(lost['missing'])} files missing, "
      f"work of the last {age or 0:.0f} s | {r['passed']} | {sys.argv[3]} |")
PY
done
