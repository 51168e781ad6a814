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
failed=0
for mode in full gold; do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  rm -f "$work/$mode.json"
  # 0: the drill passed; 3: it ran to the end and wrote its report, but did not pass (the
  # row says so, and the script fails at the end); anything else: no report to read
  rc=0
  "$bin" drill total-loss --uploads "$n" --mode "$mode" --scratch "$work" --json > "$work/$mode.json" || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    echo "| total-loss | $mode | drill FAILED (exit $rc): no report | | | | | | false | $load |"
    failed=1
    continue
  fi
  python3 - "$work/$mode.json" "$mode" "$load" "$rc" <<'PY' || failed=1
import json, sys
r = json.load(open(sys.argv[1]))
# the exit code and the report agree, or the report is not this run's verdict
if r["passed"] != (sys.argv[4] == "0"):
    sys.exit(f"drill exit {sys.argv[4]} but its report says passed={r['passed']}")
s = r.get("site") or {}
lost = r["data_lost"]
age = lost.get("restored_state_age_secs")
print(f"| {r['scenario']} | {sys.argv[2]} | {s.get('uploads')} | {s.get('gold_bytes', 0)/1e6:.0f} MB "
      f"| {s.get('files_bytes', 0)/1e6:.0f} MB ({s.get('files')}) | {r['recovery_secs']:.0f} s "
      f"| {r.get('rto_secs_per_gb') or 0:.0f} s | {len(lost['missing'])} files missing, "
      f"work of the last {age or 0:.0f} s | {r['passed']} | {sys.argv[3]} |")
sys.exit(0 if r["passed"] else 1)
PY
done
if [ "$failed" != 0 ]; then
  echo "a drill failed: its RTO above is not a recovery's" >&2
  exit 1
fi
