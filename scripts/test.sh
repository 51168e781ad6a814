#!/usr/bin/env bash
# The whole test suite: installs what it needs, checks format and lints, runs every test.
# Tests start their own PostgreSQL clusters, slapd, sshd and SMTP servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A one-shot build gains nothing from incremental caches (1.7 GB here).
export CARGO_INCREMENTAL=0
# The build and the tests' clusters need about 6 GB; say so before a full disk says it worse.
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
df -h "$target" /tmp | sed 's/^/test.sh: /'
free_kb=$(df -Pk "$target" | awk 'NR==2 {print $4}')
if [ "$free_kb" -lt $((6 * 1024 * 1024)) ]; then
    echo "test.sh: warning: only $((free_kb / 1024)) MB free for $target; the build may fail with 'No space left on device'" >&2
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads=4
