#!/usr/bin/env python3
"""Dump benchmark: bytes of the database dump that cross the wire each night when it is sent
with rsync against the previous night's dump (holdfast's default, `dump_rsync = true`),
against the whole compressed dump (what `dump_rsync = false` streams every night).

The site is a private copy of one of bench/dataset.py's sites (--size, default "whole":
real Debian source packages unpacked by `holdfast upload`, so the pfile, upload, job and
uploadtree rows are what FOSSology's agents write); the copy is deleted at the end. Backups
are gold-only (`mode = "gold"`: the dump is the same, the repository copy smaller), one store
per compression (gzip, zstd):

- night 1: the first backup (its dump is sent whole);
- night 2: a scan day's upload arrives (rows appended only);
- night 3: 1% of the rows of every table with more than 1,000 rows are updated
  (`UPDATE ... SET col = col`: PostgreSQL writes each as a new row version elsewhere in the
  table, so the dump's row order changes as after a real night's updates), and another scan
  day's upload arrives.

The stores are local folders, where holdfast streams the dump; a remote target gets it with
rsync against the previous night's (`--no-whole-file`), and the same rsync is run here on
each night's dump with the previous one in place: its `Total bytes sent` is the figure.

Usage: bench/dump-delta.py [--size whole] [--work DIR] [--holdfast target/release/holdfast]
Run as root (PostgreSQL runs as the postgres user); `flock /work/bench.lock` around it.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
from dataset import default_holdfast, warn_debug  # noqa: E402

ROOT = dataset.ROOT


def psql(site, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-h", site.pg, "-p", str(site.port), "-U", "postgres",
                          "-d", "fossology", "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def upload(site, holdfast, tarballs):
    r = subprocess.run([holdfast, "--config", site.toml("pool", os.path.join(site.root, "unused-store")),
                        "-q", "upload"] + tarballs, stdout=subprocess.DEVNULL)
    if r.returncode not in (0, 3):  # 3: stored, some members did not unpack
        sys.exit(f"holdfast upload failed ({r.returncode})")


def rsync_sent(basis, new, work):
    """`Total bytes sent` by rsync for `new` with `basis` (the previous night's dump) in place,
    as holdfast sends a remote target's dump."""
    d = tempfile.mkdtemp(dir=work)
    try:
        shutil.copyfile(basis, os.path.join(d, os.path.basename(new)))
        out = subprocess.run(["rsync", "--no-whole-file", "--stats", new, d + "/"], check=True,
                             capture_output=True, text=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("Total bytes sent:"))
        return int(line.split(":")[1].strip().replace(",", ""))
    finally:
        shutil.rmtree(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-bench-dump")
    ap.add_argument("--size", default="whole")
    ap.add_argument("--data", default=dataset.DATA)
    ap.add_argument("--keep", action="store_true", help="keep the site copy and the stores")
    ap.add_argument("--holdfast", default=default_holdfast())
    a = ap.parse_args()
    warn_debug(a.holdfast)
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "stores"))
    site = dataset.private_copy(a.data, a.size, os.path.join(work, "site"))
    try:
        site.start()
        run(a, site, work)
    finally:
        site.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(a, site, work):
    days = dataset.scan_days(a.data)
    cfgs = {}
    for c in ("gzip", "zstd"):
        cfgs[c] = site.toml("rolling", os.path.join(work, "stores", c),
                            f'mode = "gold"\ncompression = "{c}"\ndump_spool = "{work}"\n'
                            f'[backup.superuser]\nsocket_dir = "{site.pg}"\n')
        # toml() names the file by layout: keep one per compression.
        os.rename(cfgs[c], cfgs[c] + f".{c}")
        cfgs[c] += f".{c}"

    def tables():
        psql(site, "ANALYZE")
        return [(t, int(n)) for t, n in (l.split("|") for l in psql(
            site, "SELECT c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC").splitlines())]

    last = {}

    def night(name):
        out = {}
        for c, cfg in cfgs.items():
            r = subprocess.run([a.holdfast, "--config", cfg, "backup", "--json"], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"holdfast backup ({c}) failed ({r.returncode}): {r.stderr.strip()[-600:]}")
            o = json.loads(r.stdout)
            d = o["manifest"]["database"]
            out[c] = d
            dump = os.path.join(work, "stores", c, o["snapshot"], d["file"])
            if os.path.getsize(dump) != d["bytes"]:
                sys.exit(f"{dump} is not the dump the manifest describes")
            # A local target streams the dump; a remote one rsyncs it against the previous
            # night's (`dump_rsync`). rsync's delta is the same locally with --no-whole-file.
            sent = rsync_sent(last[c], dump, work) if c in last else d["bytes"]
            # Kept aside: the layout may reuse the previous night's folder.
            last[c] = os.path.join(work, f"last.{c}")
            shutil.copyfile(dump, last[c])
            print(f"{name:34s} {c}: dump {d['bytes']:>11,} bytes ({d['raw_bytes']:,} SQL), sent {sent:>11,} "
                  f"({100 * sent / d['bytes']:5.1f}% of the dump, rsync against the previous night's)", flush=True)
        return out

    t = tables()
    rows = sum(n for _, n in t)
    print(f"site {a.size}: {rows:,} rows; biggest tables " + ", ".join(f"{n} {k:,}" for n, k in t[:5]), flush=True)
    night("night 1 (first)")
    before = int(psql(site, "SELECT count(*) FROM uploadtree_a"))
    upload(site, a.holdfast, days[0]["tarballs"])
    added = int(psql(site, "SELECT count(*) FROM uploadtree_a")) - before
    night(f"night 2 (+1 upload, {added:,} rows)")
    changed = 0
    for name, n in tables():
        if n > 1000:
            col = psql(site, f"SELECT attname FROM pg_attribute WHERE attrelid = '{name}'::regclass "
                             "AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1")
            changed += int(psql(site, f'WITH u AS (UPDATE "{name}" SET "{col}" = "{col}" WHERE random() < 0.01 '
                                      'RETURNING 1) SELECT count(*) FROM u'))
    before = int(psql(site, "SELECT count(*) FROM uploadtree_a"))
    upload(site, a.holdfast, days[1]["tarballs"])
    added = int(psql(site, "SELECT count(*) FROM uploadtree_a")) - before
    night(f"night 3 ({changed:,} updated, +{added:,})")


if __name__ == "__main__":
    main()
