#!/usr/bin/env python3
"""Dump benchmark: bytes of the database dump that cross the wire on a night with ~1% of rows
changed, sent with rsync against the previous night's dump (holdfast's default), against the
whole dump (streamed, `dump_rsync = false`).

A scratch site (PostgreSQL cluster with FOSSology's schema, see backup.py) gets real rows:
`holdfast upload` of real archives (made with bsdtar from the machine's own folders, or taken
from --archives DIR) writes pfile, upload, job and uploadtree rows as FOSSology's agents do.
Night 1 backs up; then 1% of the rows of every table with more than 1,000 rows are updated
(`UPDATE ... SET col = col`: PostgreSQL writes each as a new row version at the table's end,
so the dump's row order changes as after a real night's updates), and ~1% more rows arrive
with one more upload. Night 2 backs up again. Each compression (gzip, zstd) runs in its own
store. Nights 1 and 2 stream as well, for the full-dump reference.

Usage: bench/dump-delta.py [--work DIR] [--max-bytes 150M] [--holdfast target/debug/holdfast]
Run as root (PostgreSQL runs as the postgres user).
"""
import argparse, importlib.util, json, os, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
spec = importlib.util.spec_from_file_location("bench_backup", os.path.join(HERE, "backup.py"))
bb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bb)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-bench-dump")
    ap.add_argument("--max-bytes", type=bb.size_arg, default=bb.size_arg("150M"))
    ap.add_argument("--archives")
    default_bin = os.path.join(ROOT, "target/release/holdfast")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(ROOT, "target/debug/holdfast")
    ap.add_argument("--holdfast", default=default_bin)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    repo, stores = os.path.join(work, "repository"), os.path.join(work, "stores")
    for d in (repo, stores):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    if a.archives:
        archives = sorted(os.path.join(a.archives, f) for f in os.listdir(a.archives))
    else:
        archives = bb.make_archives(os.path.join(work, "archives"), a.max_bytes)
    site = bb.Site(work, repo)
    try:
        run(a, site, archives, stores)
    finally:
        site.stop()


def psql(site, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(site.port), "-U", "fossy",
                          "-d", "fossology", "-c", sql], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PGPASSWORD="fossy"))
    return out.stdout.strip()


def run(a, site, archives, stores):
    base = site.toml("pool", os.path.join(stores, "unused"))

    def config(name, compression, rsync):
        path = os.path.join(site.dir, f"holdfast-{name}.toml")
        text = open(base).read().replace(os.path.join(stores, "unused"), os.path.join(stores, name))
        text += f'compression = "{compression}"\ndump_rsync = {"true" if rsync else "false"}\n'
        text += f'dump_spool = "{site.dir}"\n'
        with open(path, "w") as f:
            f.write(text)
        return path

    hf = lambda cfg, *args: [a.holdfast, "--config", cfg, *args]
    held = archives[-1]
    subprocess.run(hf(base, "upload", *archives[:-1]), check=True, stdout=subprocess.DEVNULL)
    psql(site, "ANALYZE")
    tables = [l.split("|") for l in psql(site, "SELECT c.relname, c.reltuples::bigint FROM pg_class c "
                                               "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                               "WHERE c.relkind = 'r' AND n.nspname = 'public' "
                                               "ORDER BY 2 DESC").splitlines()]
    rows = sum(int(n) for _, n in tables)
    print(f"site: {len(archives) - 1} uploads, {rows:,} rows; biggest tables "
          + ", ".join(f"{t} {int(n):,}" for t, n in tables[:4]))
    setups = [(c, r) for c in ("gzip", "zstd") for r in (True, False)]
    cfgs = {s: config(f"{s[0]}-{'rsync' if s[1] else 'stream'}", *s) for s in setups}

    def night():
        out = {}
        for s in setups:
            r = subprocess.run(hf(cfgs[s], "backup", "--json"), capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"holdfast backup ({s}) failed: {r.stderr.strip()[-600:]}")
            out[s] = json.loads(r.stdout)["manifest"]["database"]
        return out

    night()
    # A night's work: 1% of the rows of each table with over 1,000 rows updated...
    changed = 0
    for t, n in tables:
        if int(n) > 1000:
            col = psql(site, f"SELECT attname FROM pg_attribute WHERE attrelid = '{t}'::regclass "
                             "AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1")
            psql(site, f'UPDATE "{t}" SET "{col}" = "{col}" WHERE random() < 0.01')
            changed += int(n) // 100
    # ... and one more upload.
    before = sum(int(x) for x in psql(site, "SELECT count(*) FROM uploadtree_a").split())
    subprocess.run(hf(base, "upload", held), check=True, stdout=subprocess.DEVNULL)
    after = sum(int(x) for x in psql(site, "SELECT count(*) FROM uploadtree_a").split())
    print(f"night 2: ~{changed:,} rows updated, {after - before:,} uploadtree rows added")
    second = night()
    for c in ("gzip", "zstd"):
        r, s = second[(c, True)], second[(c, False)]
        print(f"{c}: dump {r['bytes']:,} bytes ({r['raw_bytes']:,} SQL); sent with rsync {r['sent_bytes']:,} "
              f"({100 * r['sent_bytes'] / r['bytes']:.1f}%), streamed {s['sent_bytes']:,}: "
              f"{s['sent_bytes'] / max(r['sent_bytes'], 1):.1f}x less on the wire")


if __name__ == "__main__":
    main()
