#!/usr/bin/env bash
# Builds the Debian package (a release build: ~10+ minutes on 2 cores, so CI does not run
# it) and checks what it holds. With --install, also installs it on this machine and runs
# `holdfast demo` from /usr/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
# The shipped files are what this holdfast writes (sample config, units, completions, man).
HOLDFAST_BLESS=1 cargo test -p holdfast --test packaging
cargo deb -p holdfast
deb=$(ls -t target/debian/holdfast_*.deb | head -1)
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb" | grep -E 'usr/bin/holdfast|holdfast-backup.timer|holdfast.toml.sample|man1/holdfast.1|doc/holdfast/operations.md'
if [ "${1:-}" = "--install" ]; then
  apt-get install -y "./$deb"
  /usr/bin/holdfast --version
  /usr/bin/holdfast --config /etc/holdfast/holdfast.toml.sample demo
fi
echo "built $deb"
