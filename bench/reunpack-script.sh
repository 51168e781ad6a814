#!/usr/bin/env bash
# The baseline for bench/reunpack-scale.sh: the most efficient rebuild an operator could
# script with standard tools. Extracts every gold file recursively with bsdtar (gzip, bzip2,
# xz, zstd for bare compressed files), uploads in parallel (one per core); hashes every file
# with sha1sum and md5sum side by side; then stores each under <sha1>.<md5>.<size> in STORE
# (three folder levels like FOSSology's repository) in one bulk move: a single perl process
# makes the folders and renames. No database, no SHA-256, no tree rows, no metadata.
# Usage: reunpack-script.sh STORE TMP GOLD...
set -euo pipefail
store=$1; tmp=$2; shift 2
mkdir -p "$store" "$tmp"
jobs=$(nproc)

extract() { # archive dir
  local a=$1 d=$2
  mkdir -p "$d"
  case "${a##*/}" in
    *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.udeb|*.rpm|*.7z|*.iso|*.cpio|*.a)
      bsdtar -xf "$a" -C "$d" 2>/dev/null || true ;;
    *.gz)  gzip  -dc "$a" > "$d/$(basename "${a%.gz}")"  2>/dev/null || true ;;
    *.bz2) bzip2 -dc "$a" > "$d/$(basename "${a%.bz2}")" 2>/dev/null || true ;;
    *.xz)  xz    -dc "$a" > "$d/$(basename "${a%.xz}")"  2>/dev/null || true ;;
    *.zst) zstd  -qdc "$a" > "$d/$(basename "${a%.zst}")" 2>/dev/null || true ;;
    *) return ;;
  esac
  chmod -R u+rwX "$d"
  local f files=()
  mapfile -d '' files < <(find "$d" -type f -print0)
  for f in "${files[@]}"; do
    case "${f##*/}" in
      *.asc|*.sig) ;;
      *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.udeb|*.rpm|*.7z|*.iso|*.cpio|*.a|*.gz|*.bz2|*.xz|*.zst)
        extract "$f" "$f.dir" ;;
    esac
  done
}
one() { # n gold
  local w="$tmp/$1"
  mkdir -p "$w"
  cp "$2" "$w/"
  extract "$w/$(basename "$2")" "$w/$(basename "$2").dir"
}
export -f extract one
export tmp

t0=$(date +%s.%N)
n=0
for g in "$@"; do n=$((n+1)); printf '%s\0%s\0' "$n" "$g"; done |
  xargs -0 -n2 -P"$jobs" bash -c 'one "$0" "$1"'
t1=$(date +%s.%N)
find "$tmp" -type f -print0 > "$tmp.list"
xargs -0 -r sha1sum < "$tmp.list" > "$tmp.sha1" &
xargs -0 -r md5sum  < "$tmp.list" > "$tmp.md5"
wait
xargs -0 -r stat -c %s < "$tmp.list" > "$tmp.size"
t2=$(date +%s.%N)
paste -d'\t' <(cut -c1-40 "$tmp.sha1") <(cut -c1-32 "$tmp.md5") "$tmp.size" <(tr '\0' '\n' < "$tmp.list") |
  perl -MFile::Path=make_path -F'\t' -lane '
    my ($s, $m, $z, $p) = @F;
    my $d = "'"$store"'/" . substr($s,0,2) . "/" . substr($s,2,2) . "/" . substr($s,4,2);
    make_path($d) unless $seen{$d}++;
    my $t = "$d/$s.$m.$z";
    if (-e $t) { unlink $p } else { rename($p, $t) or die "rename $p: $!" }'
t3=$(date +%s.%N)
echo "script stages: extract $(echo "$t1 - $t0" | bc) s, hash $(echo "$t2 - $t1" | bc) s, store $(echo "$t3 - $t2" | bc) s" >&2
rm -rf "$tmp" "$tmp.list" "$tmp.sha1" "$tmp.md5" "$tmp.size"
