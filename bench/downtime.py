#!/usr/bin/env python3
"""Scheduler downtime per nightly backup: stop-for-everything, pre-copy and online mode, with
a busy FOSSology stand-in (agents adding and deleting uploads, files and rows, all through
the backups).

The site is a private copy of one of bench/dataset.py's sites (--size, default "whole":
78,371 files, 2.18 GB of real Debian source packages unpacked by `holdfast upload`, with
their rows): its database cluster copied, its repository hard-linked (see
dataset.private_copy); the copy is deleted at the end (--keep keeps it). The stand-in
scheduler (holdfast-sandbox, example `busy_standin`) runs two agents that add an upload (job
row running, files written in two halves, then rows) and delete the oldest busy upload
(files first, then rows) in a loop; its graceful stop takes 1 s.

Each "night": a scan day's upload arrives (a held-back source package, ~2,000 files, by
`holdfast upload` as FOSSology's agents would add it), then one `holdfast backup` per mode,
interleaved (the order rotates each night), each to its own local target so each builds on
its own previous night (rolling layout, hard links). Night 0 is one initial full copy
(stop-for-everything), hard-linked into the three stores, reported apart. Prints, per mode,
the medians over nights 1..N of: scheduler downtime
(`timings.downtime_secs`: stop command to the end of the start command) and its parts
(quiesce, dump, delta copy, the rest), pre-copy, total run time, dump bytes sent; and the
targets: downtime <= dump + 10 s (pre-copy), downtime = 0 (online). Warm caches (the site's
pages stay cached, as on a busy server); the load (`uptime`) is printed with every night.

Usage: bench/downtime.py [--size whole] [--work DIR] [--nights 3] [--holdfast BIN] [--keep]
                         [--lock /work/bench.lock]
Run as root (PostgreSQL runs as the postgres user). --lock takes the shared benchmark lock
for each measured night's backups only (night 0, the initial full copies, is preparation).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
from dataset import default_holdfast, warn_debug  # noqa: E402

ROOT = dataset.ROOT


MODES = [("stop-for-everything", ["--no-precopy"]), ("pre-copy", []), ("online", ["--online"])]


class Lock:
    """The shared benchmark lock (--lock), held for one night's backups at a time."""

    def __init__(self, path):
        self.path, self.f = path, None

    def __enter__(self):
        if self.path:
            import fcntl
            self.f = open(self.path, "a")
            fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_):
        if self.f:
            self.f.close()  # releases the flock
            self.f = None


def load():
    return open("/proc/loadavg").read().split()[0]


def upload(site, holdfast, tarballs):
    try:
        site.upload(holdfast, tarballs)
    except subprocess.CalledProcessError as e:
        # exit 3: stored, with members the unpacker could not read (counted by it)
        if e.returncode != 3:
            raise


def run_night(a, work, night, order, tomls, results):
    """One backup per mode, in `order`; appends each manifest's timings to results. Each
    run's log (stderr, info level) goes to WORK/logs/."""
    for mode, args in order:
        t = time.monotonic()
        r = subprocess.run([a.holdfast, "--config", tomls[mode], "backup", "--json"] + args,
                           capture_output=True, text=True)
        wall = time.monotonic() - t
        os.makedirs(os.path.join(work, "logs"), exist_ok=True)
        with open(os.path.join(work, "logs", f"night{night}-{mode}.log"), "w") as f:
            f.write(r.stderr)
        # Exit 1 with a snapshot written: files the database names are not in it (counted).
        if r.returncode not in (0, 1) or not r.stdout.startswith("{"):
            sys.exit(f"{mode} night {night} failed ({r.returncode}): {r.stderr.strip()[-600:]}")
        out = json.loads(r.stdout)
        with open(os.path.join(work, "logs", f"night{night}-{mode}.json"), "w") as f:
            f.write(r.stdout)
        m = out["manifest"]
        tm = m["timings"]
        row = dict(night=night, wall=wall, total=tm["total_secs"], downtime=tm["downtime_secs"],
                   dump=tm["dump_secs"], quiesce=tm["quiesce_secs"], copy=tm["copy_secs"],
                   precopy=tm.get("precopy_secs", 0.0), files=m["repository"]["files"],
                   new_files=m["repository"]["new_files"], dump_bytes=m["database"]["bytes"],
                   sent_bytes=m["database"].get("sent_bytes") or 0, load=load(),
                   missing=len(out.get("missing") or []),
                   being_deleted=len(m["repository"].get("being_deleted") or []),
                   exit=r.returncode,
                   online=m.get("online"))
        # Downtime not in quiesce, dump or delta copy: the job-queue reads and the start.
        row["rest"] = max(0.0, row["downtime"] - row["quiesce"] - row["dump"] - row["copy"]) \
            if row["downtime"] else 0.0
        results[mode].append(row)
        extra = ""
        if row["online"]:
            o = row["online"]
            extra = (f", running jobs {len(o['running'])}, from earlier {len(o.get('from_earlier', []))}, "
                     f"recopied {len(o.get('recopied', []))}, left out {len(o.get('left_out', []))}, "
                     f"deleted after the snapshot point {len(o.get('deleted_after', []))} upload(s)")
        if row["being_deleted"]:
            extra += f", {row['being_deleted']} files of uploads being deleted set aside"
        if row["missing"]:
            extra += f", MISSING {row['missing']} named files (exit {r.returncode})"
        print(f"night {night} {mode:20s} downtime {row['downtime']:6.1f} s  quiesce {row['quiesce']:5.1f} s  "
              f"dump {row['dump']:5.1f} s  copy {row['copy']:6.1f} s  rest {row['rest']:4.1f} s  "
              f"precopy {row['precopy']:6.1f} s  total {row['total']:6.1f} s  "
              f"dump {row['dump_bytes']/1e6:.1f} MB, sent {row['sent_bytes']/1e6:.1f} MB  "
              f"({row['files']} files, {row['new_files']} new{extra}; load {row['load']})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-downtime")
    ap.add_argument("--size", default="whole", help="bench/dataset.py's site: quarter, half, whole")
    ap.add_argument("--data", default=dataset.DATA)
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the site copy and the stores")
    ap.add_argument("--lock", default="", help="flock this file around each measured night's backups "
                    "(nights 1..N), not around the copy of the site, the initial full copies (night 0) "
                    "and the uploads")
    ap.add_argument("--holdfast", default=default_holdfast())
    a = ap.parse_args()
    warn_debug(a.holdfast)
    work = os.path.abspath(a.work)
    stores = os.path.join(work, "stores")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(stores)
    t = time.monotonic()
    site = dataset.private_copy(a.data, a.size, os.path.join(work, "site"))
    standin = None
    try:
        site.start()
        held = [d["tarballs"] for d in dataset.scan_days(a.data)]
        files, bytes_ = dataset.count(site.repo)
        print(f"site {a.size} (private copy): {files} files, {bytes_/1e9:.2f} GB from real Debian source "
              f"packages; database: {site.rows()} (ready in {time.monotonic()-t:.0f} s); holdfast {a.holdfast}",
              flush=True)
        if bytes_ < 1.5e9:
            print(f"warning: repository under 1.5 GB ({bytes_/1e9:.2f} GB)", flush=True)
        # Crash-left running queue rows: reset once, as FOSSology's --reset start would.
        reset = site.reset_crashed_jobs()
        print(f"queue rows left running by a crash, reset as FOSSology's scheduler start (--reset) does: {reset}",
              flush=True)
        # The stand-in with busy agents (holdfast-sandbox's example).
        subprocess.run(["cargo", "build", "-q", "-p", "holdfast-sandbox", "--example", "busy_standin"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_INCREMENTAL="0"))
        standin = os.path.join(work, "standin")
        shutil.rmtree(standin, ignore_errors=True)
        sched = subprocess.run([os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target", "debug/examples/busy_standin"), standin, "bench", site.conf],
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
                t = time.monotonic()
                upload(site, a.holdfast, held[(night - 1) % len(held)])
                print(f"night {night}: scan day's upload stored in {time.monotonic()-t:.0f} s", flush=True)
            if night == 0:
                # One initial full copy (stop-for-everything, as a first backup is today),
                # hard-linked into the other modes' stores: they start from the same snapshot.
                # Safe: files on a target are created and unlinked, never rewritten in place.
                run_night(a, work, 0, MODES[:1], tomls, results)
                for mode, _ in MODES[1:]:
                    dataset.sh(["cp", "-al", os.path.join(stores, MODES[0][0]), os.path.join(stores, mode)])
                continue
            order = MODES[night % len(MODES):] + MODES[:night % len(MODES)]
            with Lock(a.lock):
                run_night(a, work, night, order, tomls, results)
        up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"\nload: {up}\nmedians over nights 1..{a.nights} (night 0 = the first, full copy), warm caches:")
        keys = ("downtime", "quiesce", "dump", "copy", "rest", "precopy", "total")
        print(f"{'mode':22s}" + "".join(f"{k:>10s}" for k in keys) + "  target")
        for mode, _ in MODES:
            rows = [r for r in results[mode] if r["night"] > 0]
            med = {k: statistics.median(r[k] for r in rows) for k in keys}
            if mode == "pre-copy":
                ok = all(r["downtime"] <= r["dump"] + 10 for r in rows)
                target = f"downtime <= dump + 10 s: {'met' if ok else 'NOT met'}"
            elif mode == "online":
                ok = all(r["downtime"] == 0 for r in rows)
                target = f"downtime = 0: {'met' if ok else 'NOT met'}"
            else:
                target = ""
            print(f"{mode:22s}" + "".join(f"{med[k]:9.1f}s" for k in keys) + f"  {target}")
        first = results[MODES[0][0]][0]
        print(f"night 0 (initial full copy, stop-for-everything, not under the lock): downtime "
              f"{first['downtime']:.1f} s of {first['total']:.1f} s")
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    finally:
        if standin and os.path.exists(os.path.join(standin, "fo_sched_bench")):
            subprocess.run([os.path.join(standin, "fo_sched_bench"), "--kill"], stderr=subprocess.DEVNULL)
        site.stop()
        if not a.keep:
            # The copy's repository is hard links into the data set: unlinking them is safe.
            for d in ("site", "stores"):
                shutil.rmtree(os.path.join(work, d), ignore_errors=True)


if __name__ == "__main__":
    main()
