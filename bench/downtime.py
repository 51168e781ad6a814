#!/usr/bin/env python3
"""Scheduler downtime per nightly backup: stop-for-everything, pre-copy and online mode, with
a busy FOSSology stand-in (agents adding and deleting uploads, files and rows, all through
the backups).

The site is bench/dataset.py's "whole" site when it has been built (copied first), else one
built here the same way: real Debian source packages (DATA/src) unpacked by `holdfast upload`
into a scratch PostgreSQL cluster holding FOSSology's schema, until the repository holds
--max-bytes (1.6 GB). The stand-in scheduler (holdfast-sandbox, example `busy_standin`) runs
two agents that add an upload (job row running, files written in two halves, then rows) and
delete the oldest busy upload (files first, then rows) in a loop.

Each "night": a new upload arrives (a held-back source package), then one
`holdfast backup` per mode, interleaved, each to its own target so each builds on its own
previous night (rolling layout, hard links). The first night of each mode (the initial full
copy) is reported apart. Prints, per mode, the medians over the nights of: scheduler downtime
(`timings.downtime_secs`), dump time, total run time, and the checks: downtime <= dump + 10 s
(pre-copy), downtime = 0 (online). Warm caches (the site's pages stay cached, as on a busy
server); the load (`uptime`) is printed with the results.

Usage: bench/downtime.py [--work DIR] [--max-bytes 1.6e9] [--nights 3] [--holdfast BIN]
Run as root (PostgreSQL runs as the postgres user).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402

ROOT = dataset.ROOT

MODES = [("stop-for-everything", ["--no-precopy"]), ("pre-copy", []), ("online", ["--online"])]


def build_site(work, holdfast, max_bytes):
    """The site: a copy of the data set's "whole" site when bench/dataset.py has built it,
    else one built here the same way (Debian source packages from DATA/src, unpacked by
    `holdfast upload`) until the repository holds max_bytes."""
    root = os.path.join(work, "site")
    shutil.rmtree(root, ignore_errors=True)
    whole = os.path.join(dataset.DATA, "sites", "whole")
    if os.path.exists(os.path.join(whole, "site.json")):
        subprocess.run(["cp", "-a", whole, root], check=True)
        site = dataset.Site(root)
        site.start()
        return site, []
    site = dataset.Site(root)
    site.create()
    pkgs = sorted(os.listdir(os.path.join(dataset.DATA, "src")))
    t0 = time.monotonic()
    held = []
    for i, p in enumerate(pkgs):
        tb = dataset.tarballs(dataset.DATA, p)
        if not tb:
            continue
        if i % 10 == 9:
            held.append(tb)  # the nights' new uploads
            continue
        _, nb = dataset.count(site.repo)
        if nb >= max_bytes:
            continue
        try:
            site.upload(holdfast, tb)
        except subprocess.CalledProcessError as e:
            # exit 3: stored, with members the unpacker could not read (counted by it)
            if e.returncode != 3:
                raise
        print(f"  {p:<24} {nb/1e9:5.2f} GB  ({time.monotonic()-t0:.0f} s)", flush=True)
    return site, held


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-downtime")
    ap.add_argument("--max-bytes", type=float, default=1.6e9)
    ap.add_argument("--nights", type=int, default=3)
    default_bin = os.path.join(ROOT, "target/release/holdfast")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(ROOT, "target/debug/holdfast")
    ap.add_argument("--holdfast", default=default_bin)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    stores = os.path.join(work, "stores")
    shutil.rmtree(stores, ignore_errors=True)
    os.makedirs(stores)
    t = time.monotonic()
    site, held = build_site(work, a.holdfast, a.max_bytes)
    if not held:
        held = [d["tarballs"] for d in dataset.scan_days(dataset.DATA)]
    files, bytes_ = dataset.count(site.repo)
    print(f"repository: {files} files, {bytes_/1e9:.2f} GB from real Debian source packages; "
          f"database: {site.rows()} (ready in {time.monotonic()-t:.0f} s)", flush=True)
    if bytes_ < 1.5e9:
        print(f"warning: repository under 1.5 GB ({bytes_/1e9:.2f} GB)", flush=True)
    standin = None
    try:
        # The stand-in with busy agents (holdfast-sandbox's example).
        subprocess.run(["cargo", "build", "-q", "-p", "holdfast-sandbox", "--example", "busy_standin"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_INCREMENTAL="0"))
        standin = os.path.join(work, "standin")
        shutil.rmtree(standin, ignore_errors=True)
        sched = subprocess.run([os.path.join(ROOT, "target/debug/examples/busy_standin"), standin, "bench", site.conf],
                               capture_output=True, text=True, check=True).stdout
        tomls = {}
        for mode, _ in MODES:
            p = os.path.join(site.root, f"holdfast-{mode}.toml")
            with open(p, "w") as f:
                f.write(f'[site]\nconf_dir = "{site.conf}"\nname = "bench"\n{sched}\nstop_timeout_secs = 120\n'
                        f'[backup]\ntarget = "{os.path.join(stores, mode)}"\nkeep = 3\ncheck_percent = 0.0\n'
                        f'lock_file = "{site.root}/lock"\ncron_file = "{site.root}/cron"\n'
                        f'[backup.superuser]\nsocket_dir = "{site.pg}"\n')
            tomls[mode] = p
        time.sleep(5)  # the agents get going

        results = {m: [] for m, _ in MODES}
        for night in range(a.nights + 1):
            if night > 0:
                try:
                    site.upload(a.holdfast, held[(night - 1) % len(held)])
                except subprocess.CalledProcessError as e:
                    if e.returncode != 3:
                        raise
            for mode, args in MODES:
                t = time.monotonic()
                r = subprocess.run([a.holdfast, "--config", tomls[mode], "-q", "backup", "--json"] + args,
                                   capture_output=True, text=True)
                wall = time.monotonic() - t
                if r.returncode != 0:
                    sys.exit(f"{mode} night {night} failed ({r.returncode}): {r.stderr.strip()[-600:]}")
                m = json.loads(r.stdout)["manifest"]
                tm = m["timings"]
                row = dict(night=night, wall=wall, total=tm["total_secs"], downtime=tm["downtime_secs"],
                           dump=tm["dump_secs"], quiesce=tm["quiesce_secs"], copy=tm["copy_secs"],
                           precopy=tm.get("precopy_secs", 0.0), files=m["repository"]["files"],
                           new_files=m["repository"]["new_files"],
                           online=m.get("online"))
                results[mode].append(row)
                extra = ""
                if row["online"]:
                    o = row["online"]
                    extra = (f", running jobs {len(o['running'])}, from earlier {len(o.get('from_earlier', []))}, "
                             f"recopied {len(o.get('recopied', []))}, left out {len(o.get('left_out', []))}")
                print(f"night {night} {mode:20s} downtime {row['downtime']:6.1f} s  dump {row['dump']:5.1f} s  "
                      f"quiesce {row['quiesce']:5.1f} s  copy {row['copy']:6.1f} s  total {row['total']:6.1f} s  "
                      f"({row['files']} files, {row['new_files']} new{extra})", flush=True)
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"\nload: {load}\nmedians over nights 1..{a.nights} (night 0 = the first, full copy), warm caches:")
        print(f"{'mode':22s}{'downtime':>10s}{'dump':>8s}{'total':>8s}  target")
        for mode, _ in MODES:
            rows = [r for r in results[mode] if r["night"] > 0]
            med = {k: statistics.median(r[k] for r in rows) for k in ("downtime", "dump", "total")}
            if mode == "pre-copy":
                ok = all(r["downtime"] <= r["dump"] + 10 for r in rows)
                target = f"downtime <= dump + 10 s: {'met' if ok else 'NOT met'}"
            elif mode == "online":
                ok = all(r["downtime"] == 0 for r in rows)
                target = f"downtime = 0: {'met' if ok else 'NOT met'}"
            else:
                target = ""
            first = results[mode][0]
            print(f"{mode:22s}{med['downtime']:9.1f}s{med['dump']:7.1f}s{med['total']:7.1f}s  {target}"
                  f"   (night 0: downtime {first['downtime']:.1f} s of {first['total']:.1f} s)")
    finally:
        if standin and os.path.exists(os.path.join(standin, "fo_sched_bench")):
            subprocess.run([os.path.join(standin, "fo_sched_bench"), "--kill"], stderr=subprocess.DEVNULL)
        site.stop()


if __name__ == "__main__":
    main()
