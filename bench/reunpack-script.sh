#!/usr/bin/env bash
# The baseline for bench/reunpack-scale.sh: the most efficient rebuild an operator could
# script with standard tools, held to the same expansion limits as holdfast's unpacker
# (`[unpack]` defaults, crates/unpack/src/budget.rs), so it refuses the same bombs.
#
# What it does, per gold file (uploads in parallel, one per core):
# - hard-links it into its work folder (a copy only across file systems), as holdfast's
#   rebuild links gold into `files`;
# - extracts it recursively with bsdtar (gzip, bzip2, xz, zstd for bare compressed files);
# - limits, as holdfast's defaults: every file an extraction writes is capped (RLIMIT_FSIZE,
#   `ulimit -f`) at max(1000 x the container's size, 16 MiB), never more than what the
#   upload has left of max(1000 x its gold size, 16 MiB) (at most 200 GiB); a file that
#   reaches the cap is deleted (holdfast skips such a member) and bsdtar stops that archive
#   there (it cannot go on past a failed write, so the script keeps a little less than
#   holdfast); containers nested deeper than 32 levels stay plain files; once the upload's
#   kept bytes pass its budget, no further container of that upload is extracted;
# then hashes every file with sha1sum and md5sum side by side, and stores each under
# <sha1>.<md5>.<size> in STORE (three folder levels like FOSSology's repository) in one bulk
# move: a single perl process makes the folders and renames. No database, no SHA-256, no
# tree rows, no metadata.
# Usage: reunpack-script.sh STORE TMP GOLD...
set -euo pipefail
store=$1; tmp=$2; shift 2
mkdir -p "$store" "$tmp"
jobs=$(nproc)

# holdfast's [unpack] defaults.
MAX_RATIO=1000
RATIO_FLOOR=$((16 << 20))
MAX_EXPANDED=$((200 << 30))
MAX_DEPTH=32

# Runs an extraction with every file it writes capped at $1 bytes; SIGXFSZ ignored, so a
# write past the cap fails (EFBIG) instead of killing the tool.
capped() {
  local cap=$1; shift
  ( trap '' XFSZ; ulimit -f $(( (cap + 1023) / 1024 )); "$@" )
}

extract() { # archive dir depth
  local a=$1 d=$2 depth=$3
  [ "$depth" -le "$MAX_DEPTH" ] || return 0
  [ "$used" -lt "$budget" ] || return 0
  local size cap
  size=$(stat -c %s "$a")
  cap=$(( MAX_RATIO * size )); [ "$cap" -ge "$RATIO_FLOOR" ] || cap=$RATIO_FLOOR
  [ "$cap" -le $(( budget - used )) ] || cap=$(( budget - used ))
  mkdir -p "$d"
  case "${a##*/}" in
    *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.udeb|*.rpm|*.7z|*.iso|*.cpio|*.a)
      capped "$cap" bsdtar -xf "$a" -C "$d" 2>/dev/null || true ;;
    *.gz)  capped "$cap" gzip  -dc "$a" > "$d/$(basename "${a%.gz}")"  2>/dev/null || true ;;
    *.bz2) capped "$cap" bzip2 -dc "$a" > "$d/$(basename "${a%.bz2}")" 2>/dev/null || true ;;
    *.xz)  capped "$cap" xz --no-sparse -dc "$a" > "$d/$(basename "${a%.xz}")"  2>/dev/null || true ;;
    *.zst) capped "$cap" zstd  -qdc "$a" > "$d/$(basename "${a%.zst}")" 2>/dev/null || true ;;
    *) return 0 ;;
  esac
  chmod -R u+rwX "$d"
  local f s files=() sizes=()
  # Sizes and names of what this extraction wrote (apparent sizes, as holdfast counts).
  mapfile -d '' files < <(find "$d" -type f -printf '%s %p\0')
  for f in "${files[@]}"; do
    s=${f%% *}; f=${f#* }
    if [ "$s" -ge "$cap" ]; then
      rm -f "$f"; refused=$((refused + 1)); continue
    fi
    used=$((used + s))
    sizes+=("$f")
  done
  for f in "${sizes[@]}"; do
    case "${f##*/}" in
      *.asc|*.sig) ;;
      *.tar|*.tar.*|*.tgz|*.tbz2|*.txz|*.zip|*.jar|*.deb|*.udeb|*.rpm|*.7z|*.iso|*.cpio|*.a|*.gz|*.bz2|*.xz|*.zst)
        extract "$f" "$f.dir" $((depth + 1)) ;;
    esac
  done
}
one() { # n gold
  local w="$tmp/$1" g=$2 gs
  mkdir -p "$w"
  # The gold file hard-linked in, as holdfast links gold into `files` (its own inode, no
  # copy); copied only when the link cannot be made (another file system).
  ln -L "$g" "$w/" 2>/dev/null || { echo "${g##*/}: copied, not linked (another file system?)" >&2; cp "$g" "$w/"; }
  gs=$(stat -c %s "$g")
  budget=$(( MAX_RATIO * gs )); [ "$budget" -ge "$RATIO_FLOOR" ] || budget=$RATIO_FLOOR
  [ "$budget" -le "$MAX_EXPANDED" ] || budget=$MAX_EXPANDED
  used=0; refused=0
  extract "$w/$(basename "$g")" "$w/$(basename "$g").dir" 1
  [ "$refused" -eq 0 ] || echo "refused $refused files over the expansion cap in ${g##*/}" >&2
  [ "$used" -lt "$budget" ] || echo "${g##*/}: upload budget of $budget bytes reached" >&2
}
export -f capped extract one
export tmp MAX_RATIO RATIO_FLOOR MAX_EXPANDED MAX_DEPTH

t0=$(date +%s.%N)
n=0
for g in "$@"; do n=$((n+1)); printf '%s\0%s\0' "$n" "$g"; done |
  xargs -0 -n2 -P"$jobs" bash -c 'one "$0" "$1"'
t1=$(date +%s.%N)
find "$tmp" -type f -print0 > "$tmp.list"
# NUL-terminated records (`-z`: names are not escaped), each with its file's name, so a name
# with a tab, newline or backslash (real sources have them) is stored like any other.
xargs -0 -r sha1sum -z < "$tmp.list" > "$tmp.sha1" &
xargs -0 -r md5sum -z < "$tmp.list" > "$tmp.md5"
wait
xargs -0 -r stat --printf '%s %n\0' < "$tmp.list" > "$tmp.size"
t2=$(date +%s.%N)
perl -MFile::Path=make_path -e '
  $/ = "\0";
  open my $S, "<", $ARGV[0] or die; open my $M, "<", $ARGV[1] or die; open my $Z, "<", $ARGV[2] or die;
  while (defined(my $a = <$S>)) {
    my $b = <$M>; my $c = <$Z>;
    chomp($a, $b, $c);
    my ($s, $p) = $a =~ /^([0-9a-f]{40}) [ *](.*)$/s or die "sha1sum record: $a";
    my ($m, $q) = $b =~ /^([0-9a-f]{32}) [ *](.*)$/s or die "md5sum record: $b";
    my ($z, $r) = $c =~ /^(\d+) (.*)$/s or die "stat record: $c";
    $p eq $q && $p eq $r or die "records out of step: $p / $q / $r";
    my $d = "'"$store"'/" . substr($s,0,2) . "/" . substr($s,2,2) . "/" . substr($s,4,2);
    make_path($d) unless $seen{$d}++;
    my $t = "$d/$s.$m.$z";
    if (-e $t) { unlink $p } else { rename($p, $t) or die "rename $p: $!" }
  }' "$tmp.sha1" "$tmp.md5" "$tmp.size"
t3=$(date +%s.%N)
echo "script stages: extract $(echo "$t1 - $t0" | bc) s, hash $(echo "$t2 - $t1" | bc) s, store $(echo "$t3 - $t2" | bc) s" >&2
rm -rf "$tmp" "$tmp.list" "$tmp.sha1" "$tmp.md5" "$tmp.size"
