#!/usr/bin/env bash
# Benchmark of `holdfast server check --dry-run` (issue 7): generated accounts in a real
# slapd, each with a home holding the three client XML files; the full check (all five
# tasks, templates rendered, no mail sent) is timed at each size and the per-account cost
# printed. usage: bench/notify.sh [SIZES...]   (default: 1000 10000; add 100000 if you
# have the time and disk: about 300k small files)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(1000 10000); fi
cargo build --release -q -p holdfast
bin=target/release/holdfast
work=$(mktemp -d /tmp/holdfast-bench-notify.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
python=/usr/bin/python3
printf "%-8s %8s %9s %8s %8s %14s %8s\n" accounts gen_s check_s ldap_s judge_s us_per_account mails
for n in "${sizes[@]}"; do
  d=$work/$n; mkdir -p "$d/db"
  t0=$(date +%s.%N)
  $python bench/notify_gen.py "$d" "$n"
  pw=bench-$RANDOM; echo "$pw" > "$d/secret"; chmod 600 "$d/secret"
  cat > "$d/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include $PWD/crates/server/ldap/stoney.schema
pidfile $d/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 4294967296
suffix "dc=stoney-cloud,dc=org"
rootdn "cn=admin,dc=stoney-cloud,dc=org"
rootpw $pw
directory $d/db
index objectClass,uid,host eq
CONF
  slapadd -q -f "$d/slapd.conf" -l "$d/world.ldif"
  port=$($python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  slapd -f "$d/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 2>"$d/slapd.log" & pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  t1=$(date +%s.%N)
  cat > "$d/holdfast.toml" <<TOML
[server]
ldap_url = "ldap://127.0.0.1:$port/"
bind_dn = "cn=admin,dc=stoney-cloud,dc=org"
password_file = "$d/secret"
host = "bench"
ldap_timeout_secs = 120

[notify]
state = "$d/state.sqlite"
outbox = "$d/outbox"
server_name = "bench"
min_versions = { sepiola = "2.4.0" }
TOML
  s0=$(date +%s.%N)
  $bin --config "$d/holdfast.toml" -q server check --dry-run --json --now 2026-11-21T10:00:00Z > "$d/report.json"
  s1=$(date +%s.%N)
  mails=$($python -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["mails"]))' "$d/report.json")
  ldap_s=$($python -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"]["directory"])' "$d/report.json")
  judge_s=$($python -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"]["accounts"])' "$d/report.json")
  accts=$($python -c 'import json,sys; print(json.load(open(sys.argv[1]))["accounts"])' "$d/report.json")
  [ "$accts" = "$n" ] || { echo "checked $accts accounts, expected $n" >&2; exit 1; }
  awk -v n="$n" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v m="$mails" -v l="$ldap_s" -v j="$judge_s" \
    'BEGIN { c = s1 - s0; printf "%-8d %8.1f %9.2f %8.2f %8.2f %14.0f %8d\n", n, t1 - t0, c, l, j, c * 1e6 / n, m }'
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  rm -rf "$d"
done
