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
  case "${a##*/}" in
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
    case "${f##*/}" in
      *.asc|*.sig) ;;
      *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.rpm|*.7z|*.iso|*.cpio|*.a|*.gz|*.bz2|*.xz|*.zst)
        extract "$f" "$f.dir" ;;
    esac
  done
}

t0=$(date +%s.%N)
n=0
for g in "$@"; do
  n=$((n+1))
  w="$tmp/$n"
  mkdir -p "$w"
  cp "$g" "$w/"
  extract "$w/$(basename "$g")" "$w/$(basename "$g").dir"
done

t1=$(date +%s.%N)
# Hash every file (both tools at once, one per core), then store each by name: one
# mkdir for all folders, renames two at a time.
find "$tmp" -type f -print0 | sort -z > "$tmp.list"
xargs -0 -r sha1sum < "$tmp.list" > "$tmp.sha1" &
xargs -0 -r md5sum  < "$tmp.list" > "$tmp.md5"
wait
xargs -0 -r stat -c %s < "$tmp.list" > "$tmp.size"
t2=$(date +%s.%N)
paste -d' ' <(cut -c1-40 "$tmp.sha1") <(cut -c1-32 "$tmp.md5") "$tmp.size" <(tr '\0' '\n' < "$tmp.list") |
  awk -v st="$store" -v dirs="$tmp.dirs" '{ s=$1; d=st "/" substr(s,1,2) "/" substr(s,3,2) "/" substr(s,5,2);
       p=substr($0, length($1)+length($2)+length($3)+4);
       if (!(d in seen)) { seen[d]=1; print d > dirs }
       name=d "/" $1 "." $2 "." $3;
       if (!(name in done)) { done[name]=1; print p; print name } }' \
  > "$tmp.moves"
xargs -r -d '\n' mkdir -p < "$tmp.dirs"
xargs -r -d '\n' -n2 -P2 mv -f < "$tmp.moves"
t3=$(date +%s.%N)
echo "script stages: extract $(echo "$t1 - $t0" | bc) s, hash $(echo "$t2 - $t1" | bc) s, store $(echo "$t3 - $t2" | bc) s" >&2
rm -rf "$tmp" "$tmp.list" "$tmp.sha1" "$tmp.md5" "$tmp.size" "$tmp.moves" "$tmp.dirs"
