#!/usr/bin/env bash
# The whole test suite: installs what it needs, checks format and lints, runs every test.
# Tests start their own PostgreSQL clusters, slapd, sshd and SMTP servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads=4
