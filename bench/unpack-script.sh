#!/usr/bin/env bash
# The baseline for bench/unpack.sh: what an operator would script with standard tools, done
# as efficiently as they allow.
# - Per gold file, uploads in parallel (one per core, largest first so that a big upload does
#   not start last): copies it in (an upload brings the file from outside, as holdfast copies
#   it into gold/) and extracts it recursively with bsdtar (gzip, bzip2, xz, zstd for bare
#   compressed files).
# - Then hashes every file with sha1sum and md5sum side by side (`-z`: NUL-terminated records,
#   names not escaped, so names with a backslash, tab or newline are stored like any other).
# - Then stores each under <sha1>.<md5>.<size> in STORE (three folder levels like FOSSology's
#   repository) in one bulk move: a single perl process makes the folders and renames; a
#   second copy of content already stored is deleted.
# No expansion limits, no database, no SHA-256, no tree rows, no metadata.
# Usage: unpack-script.sh STORE TMP GOLD...
set -euo pipefail
store=$1; tmp=$2; shift 2
mkdir -p "$store" "$tmp"
jobs=$(nproc)

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
    *) return 0 ;;
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
one() { # n gold
  local w="$tmp/$1" g=$2
  mkdir -p "$w"
  cp "$g" "$w/"
  extract "$w/${g##*/}" "$w/${g##*/}.dir"
}
export -f extract one
export tmp

t0=$(date +%s.%N)
# Largest upload first; each gets its own folder $tmp/N.
printf '%s\0' "$@" | xargs -0 -r stat -L --printf '%s\t%n\0' | sort -z -rn | cut -z -f2- |
  { n=0; while IFS= read -r -d '' g; do n=$((n+1)); printf '%s\0%s\0' "$n" "$g"; done; } |
  xargs -0 -r -n2 -P"$jobs" bash -eu -c 'one "$0" "$1"'
t1=$(date +%s.%N)
find "$tmp" -type f -print0 > "$tmp.list"
xargs -0 -r sha1sum -z < "$tmp.list" > "$tmp.sha1" &
xargs -0 -r md5sum -z < "$tmp.list" > "$tmp.md5"
wait $!
xargs -0 -r stat --printf '%s %n\0' < "$tmp.list" > "$tmp.size"
t2=$(date +%s.%N)
perl -MFile::Path=make_path -e '
  my ($sf, $mf, $zf, $store) = @ARGV;
  $/ = "\0";
  open my $S, "<", $sf or die "$sf: $!"; open my $M, "<", $mf or die "$mf: $!";
  open my $Z, "<", $zf or die "$zf: $!";
  my %seen;
  while (defined(my $a = <$S>)) {
    my $b = <$M>; my $c = <$Z>;
    defined $b && defined $c or die "records out of step: $a";
    chomp($a, $b, $c);
    my ($s, $p) = $a =~ /^([0-9a-f]{40}) [ *](.*)$/s or die "sha1sum record: $a";
    my ($m, $q) = $b =~ /^([0-9a-f]{32}) [ *](.*)$/s or die "md5sum record: $b";
    my ($z, $r) = $c =~ /^(\d+) (.*)$/s or die "stat record: $c";
    $p eq $q && $p eq $r or die "records out of step: $p / $q / $r";
    my $d = "$store/" . substr($s, 0, 2) . "/" . substr($s, 2, 2) . "/" . substr($s, 4, 2);
    make_path($d) unless $seen{$d}++;
    my $t = "$d/$s.$m.$z";
    if (-e $t) { unlink $p } else { rename($p, $t) or die "rename $p: $!" }
  }
  die "more md5sum or stat records than sha1sum ones" if defined(<$M>) || defined(<$Z>);
' "$tmp.sha1" "$tmp.md5" "$tmp.size" "$store"
t3=$(date +%s.%N)
echo "script stages: extract $(echo "$t1 - $t0" | bc) s, hash $(echo "$t2 - $t1" | bc) s, store $(echo "$t3 - $t2" | bc) s" >&2
rm -rf "$tmp" "$tmp.list" "$tmp.sha1" "$tmp.md5" "$tmp.size"
