#!/usr/bin/env bash
# The demo on embedded defaults: a FOSSology-shaped site (real PostgreSQL, repository made
# from real archives) backed up to a local folder, destroyed, restored and verified.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -q
exec target/release/holdfast demo "$@"
