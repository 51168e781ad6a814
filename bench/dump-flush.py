#!/usr/bin/env python3
"""Why a night with 1% of rows updated sends nearly the whole rsync-friendly dump, and what
would send less. A model of one big table's dump (COPY lines in heap order), two nights:
night 2 updates 1% of the rows at random, and PostgreSQL writes each new row version into
free room at the table's end, so the updated rows leave their place in the dump and appear
at its end (bench/dump-delta.py measures the same on a real cluster: 99.9% sent).

Compressed four ways, each sent with `rsync --no-whole-file` against night 1's file:
  sync    holdfast's rsyncable encoder today: content-defined cuts with a sync flush (the
          deflate window, 32 KB of history, carries across cuts)
  full    the same cuts with a full flush (history dropped at each cut: a change costs only
          its own stretch)
  sorted  full flush, rows written in key order (`COPY (SELECT ... ORDER BY key)`): an updated
          row changes its own line in place instead of moving to the end
  plain   uncompressed, key order (rsync's own block matching on the text)

    bench/dump-flush.py [--rows 300000] [--changed 0.01]
"""
import argparse, os, random, subprocess, tempfile, zlib

WINDOW = 4096


def rows(n, seed):
    r = random.Random(seed)
    return [f"{i}\t{r.getrandbits(160):040x}\t{r.getrandbits(128):032x}\t{r.randint(1, 10**7)}\t"
            f"pkg-{r.randint(1, 500)}/src/file{r.randint(1, 99999)}.c\tGPL-2.0-or-later\n" for i in range(n)]


def compress(text, flush):
    """Deflate with cuts where a rolling sum over the last WINDOW bytes hits 0 mod WINDOW."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out, start, s = [], 0, 0
    data = text.encode()
    for i, b in enumerate(data):
        s += b - (data[i - WINDOW] if i >= WINDOW else 0)
        if i + 1 - start >= WINDOW and s % WINDOW == 0:
            out.append(c.compress(data[start:i + 1]))
            out.append(c.flush(flush))
            start = i + 1
    out.append(c.compress(data[start:]))
    out.append(c.flush(zlib.Z_FINISH))
    return b"".join(out)


def sent(old, new):
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
        os.makedirs(src); os.makedirs(dst)
        open(os.path.join(dst, "dump"), "wb").write(old)
        open(os.path.join(src, "dump"), "wb").write(new)
        out = subprocess.run(["rsync", "-a", "--no-whole-file", "--stats", src + "/", dst + "/"],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Total bytes sent:"):
                return int(line.split(":")[1].replace(",", "").split()[0])
    raise RuntimeError("no rsync stats")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--changed", type=float, default=0.01)
    a = ap.parse_args()
    night1 = rows(a.rows, 1)
    r = random.Random(2)
    changed = set(r.sample(range(a.rows), int(a.rows * a.changed)))
    updated = {i: night1[i].replace("GPL-2.0-or-later", "MIT") for i in changed}
    heap2 = [x for i, x in enumerate(night1) if i not in changed] + [updated[i] for i in sorted(changed)]
    keyed2 = [updated.get(i, x) for i, x in enumerate(night1)]
    t1, h2, k2 = "".join(night1), "".join(heap2), "".join(keyed2)
    print(f"{a.rows} rows, {len(t1)/1e6:.1f} MB of COPY text, {len(changed)} rows ({a.changed:.0%}) updated")
    cases = [
        ("sync (today)", compress(t1, zlib.Z_SYNC_FLUSH), compress(h2, zlib.Z_SYNC_FLUSH)),
        ("full flush", compress(t1, zlib.Z_FULL_FLUSH), compress(h2, zlib.Z_FULL_FLUSH)),
        ("full flush, key order", compress(t1, zlib.Z_FULL_FLUSH), compress(k2, zlib.Z_FULL_FLUSH)),
        ("plain text, key order", t1.encode(), k2.encode()),
    ]
    for name, old, new in cases:
        s = sent(old, new)
        print(f"{name:24s} file {len(new)/1e6:6.2f} MB  sent {s/1e6:6.2f} MB  = {s/len(new):6.1%} of the file")


if __name__ == "__main__":
    main()
