#!/usr/bin/env bash
# The baseline for bench/unpack.sh: what an operator would script with standard tools.
# Recursively extracts every gold file with bsdtar (gzip/bzip2/xz/zstd for bare compressed
# files), hashes every file with sha1sum and md5sum, and stores each under
# <sha1>.<md5>.<size> in STORE. Usage: unpack-script.sh STORE TMP GOLD...
set -euo pipefail
store=$1; tmp=$2; shift 2
mkdir -p "$store" "$tmp"

extract() { # archive dir
  local a=$1 d=$2
  mkdir -p "$d"
  case "$a" in
    *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.rpm|*.7z|*.iso|*.cpio|*.a)
      bsdtar -xf "$a" -C "$d" 2>/dev/null || true ;;
    *.gz)  gzip  -dc "$a" > "$d/$(basename "${a%.gz}")"  2>/dev/null || true ;;
    *.bz2) bzip2 -dc "$a" > "$d/$(basename "${a%.bz2}")" 2>/dev/null || true ;;
    *.xz)  xz    -dc "$a" > "$d/$(basename "${a%.xz}")"  2>/dev/null || true ;;
    *.zst) zstd  -qdc "$a" > "$d/$(basename "${a%.zst}")" 2>/dev/null || true ;;
    *) return ;;
  esac
  chmod -R u+rwX "$d"
  # List first: the nested extractions below add files under "$d".
  local f files=()
  mapfile -d '' files < <(find "$d" -type f -print0)
  for f in "${files[@]}"; do
    case "$f" in
      *.asc|*.sig) ;;
      *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.rpm|*.7z|*.iso|*.cpio|*.a|*.gz|*.bz2|*.xz|*.zst)
        extract "$f" "$f.dir" ;;
    esac
  done
}

n=0
for g in "$@"; do
  n=$((n+1))
  w="$tmp/$n"
  mkdir -p "$w"
  cp "$g" "$w/"
  extract "$w/$(basename "$g")" "$w/$(basename "$g").dir"
done

# Hash every file (both tools at once, one per core), then store each by name.
find "$tmp" -type f -print0 | sort -z > "$tmp.list"
xargs -0 -r sha1sum < "$tmp.list" > "$tmp.sha1" &
xargs -0 -r md5sum  < "$tmp.list" > "$tmp.md5"
wait
xargs -0 -r stat -c %s < "$tmp.list" > "$tmp.size"
paste -d' ' <(cut -c1-40 "$tmp.sha1") <(cut -c1-32 "$tmp.md5") "$tmp.size" <(tr '\0' '\n' < "$tmp.list") |
  while read -r s m z p; do
    d="$store/${s:0:2}/${s:2:2}/${s:4:2}"
    mkdir -p "$d"
    [ -e "$d/$s.$m.$z" ] || mv "$p" "$d/$s.$m.$z"
  done
rm -rf "$tmp" "$tmp.list" "$tmp.sha1" "$tmp.md5" "$tmp.size"
