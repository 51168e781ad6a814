#!/usr/bin/env bash
# Builds the Debian package (a release build: many minutes on 2 cores, so CI does not run it)
# and checks what it holds. The sample configuration, the shell completions and the man page
# are written by the release binary itself here, at package build time (nothing generated is
# committed); the systemd units are committed and checked by `cargo test --test packaging`.
# With --install, also installs it on this machine, checks where the files landed, runs
# /usr/bin/holdfast, and purges it again (--keep leaves it installed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo test -q -p holdfast --test packaging
cargo build --release -p holdfast
out=target/package
rm -rf "$out" && mkdir -p "$out"
bin=target/release/holdfast
empty=$(mktemp) && trap 'rm -f "$empty"' EXIT
"$bin" --config "$empty" config init > "$out/holdfast.toml.sample"
"$bin" --config "$empty" completions bash > "$out/holdfast.bash"
"$bin" --config "$empty" completions zsh > "$out/_holdfast"
"$bin" --config "$empty" completions fish > "$out/holdfast.fish"
"$bin" --config "$empty" man > "$out/holdfast.1"
cargo deb -p holdfast --no-build
deb=$(ls -t target/debian/holdfast_*.deb | head -1)
dpkg-deb --info "$deb"
want=(./usr/bin/holdfast ./etc/holdfast/holdfast.toml.sample
      ./lib/systemd/system/holdfast-backup.service ./lib/systemd/system/holdfast-backup.timer
      ./lib/systemd/system/holdfast-serve.service
      ./usr/share/bash-completion/completions/holdfast ./usr/share/zsh/vendor-completions/_holdfast
      ./usr/share/fish/vendor_completions.d/holdfast.fish ./usr/share/man/man1/holdfast.1.gz
      ./usr/share/doc/holdfast/docs/operations.md ./usr/share/doc/holdfast/README.md
      ./usr/share/doc/holdfast/docs/README.md)
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for f in "${want[@]}"; do
  grep -qx -- "$f" <<<"$contents" || { echo "missing from $deb: $f" >&2; exit 1; }
done
echo "$deb holds: ${want[*]}"
if [ "${1:-}" = "--install" ]; then
  dpkg -i "$deb" || apt-get install -f -y
  for f in "${want[@]}"; do test -e "${f#.}" || { echo "not installed: ${f#.}" >&2; exit 1; }; done
  /usr/bin/holdfast --version
  man -w holdfast >/dev/null 2>&1 || test -e /usr/share/man/man1/holdfast.1.gz
  grep -q '^# target = ' /etc/holdfast/holdfast.toml.sample
  bash -c 'source /usr/share/bash-completion/completions/holdfast && complete -p holdfast'
  systemd-analyze verify /lib/systemd/system/holdfast-backup.timer 2>&1 | grep -v '^$' || true
  if [ "${2:-}" != "--keep" ]; then
    dpkg --purge holdfast
    test ! -e /usr/bin/holdfast && test ! -e /etc/holdfast/holdfast.toml.sample
    echo "installed, checked and purged $deb"
  fi
fi
echo "built $deb"
