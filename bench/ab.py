#!/usr/bin/env python3
"""A/B of two holdfast builds on one layout: the same site, the same scan days, caches
dropped before every run, the order alternating from day to day. For changes whose effect is
smaller than the disk's noise between separate runs of bench/backup.py.

    bench/ab.py --size whole --a OLD_BIN --b NEW_BIN [--layout rolling|pool|rotating] [--days 3]
                [--work DIR] [--lock FILE] [--stores-fs btrfs|ext4|ext4-inline] [--keep N]
                [--a-extra TOML] [--b-extra TOML] [--ssh] [--walk] [--log FILTER]

Each run's log (HOLDFAST_LOG=info, or --log's filter: `--log 'debug,holdfast=trace'` times every
script a remote target runs) is kept in --work; the step times printed are read from it.
The load average is recorded with every run and printed with its time; every run must leave a
new snapshot (`holdfast snapshots --json`, listed before the caches are dropped), or the A/B
stops. ext4 images are made as bench/backup.py makes them (inode tables and journal
initialised by mkfs, not in the background while runs are timed).
Run as root (caches are dropped). The site is copied into --work first. --stores-fs puts both
stores on one loop-mounted image of that file system (as bench/backup.py does). --a-extra/--b-extra add lines
to one build's [backup] table: the same build with and without a setting (`precopy = false`).
--ssh puts both stores behind a real sshd on loopback (as bench/backup.py --ssh does): the
builds reach them as a backup server is reached, `ssh://`. --walk makes every scan day's
night a walk night (`backup --full-walk`), as a store's weekly walk is.
"""
import argparse, fcntl, json, os, random, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
from backup import MKFS, snapshots as backup_snapshots  # noqa: E402

STEPS = ["new rows matched", "walked and matched", "previous day's files linked", "new files sent", "new files pre-copied",
         "agents stopped", "database dumped", "repository copied", "downtime",
         "database dump sent", "pool files", "pruned snapshots deleted"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="whole", choices=["quarter", "half", "whole"])
    ap.add_argument("--a", required=True, help="the build before the change")
    ap.add_argument("--b", required=True, help="the build after it")
    ap.add_argument("--layout", default="rolling", choices=["rolling", "pool", "rotating"])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--data", default=dataset.DATA)
    ap.add_argument("--work", default="/var/tmp/holdfast-bench/ab")
    ap.add_argument("--lock", help="flock held for the whole run")
    ap.add_argument("--stores-fs", default="", choices=[""] + list(MKFS))
    ap.add_argument("--a-extra", default="", help="TOML lines added to A's [backup] table")
    ap.add_argument("--b-extra", default="", help="TOML lines added to B's [backup] table (e.g. 'precopy = false')")
    ap.add_argument("--ssh", action="store_true", help="both stores behind a real sshd on loopback")
    ap.add_argument("--walk", action="store_true", help="scan days' nights walk (backup --full-walk)")
    ap.add_argument("--log", default="info", help="the builds' HOLDFAST_LOG filter (the uploads' stays as set)")
    ap.add_argument("--keep", type=int, default=30,
                    help="snapshots kept: below --days + 1 every night also prunes (the steady state)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: caches are dropped before every run")
    if a.lock:
        lock = open(a.lock, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
    src = os.path.join(a.data, "sites", a.size)
    if not os.path.exists(os.path.join(src, "site.json")):
        sys.exit(f"no data set at {src}: run bench/dataset.py first")
    if os.path.exists(a.work):
        subprocess.run(["rm", "-rf", a.work], check=True)
    os.makedirs(a.work)
    stores = os.path.join(a.work, "stores")
    os.makedirs(stores)
    if a.stores_fs:
        img = os.path.join(a.work, "stores.img")
        with open(img, "w") as f:
            f.truncate(64 << 30)
        subprocess.run(MKFS[a.stores_fs] + [img], check=True)
        subprocess.run(["mount", "-o", "loop", img, stores], check=True)
    site = dataset.Site(os.path.join(a.work, "site"))
    subprocess.run(["cp", "-a", src, site.root], check=True)
    site.start()
    site.reset_crashed_jobs()
    bins = {"A": a.a, "B": a.b}
    sshd = dataset.Sshd(os.path.join(a.work, "sshd")) if a.ssh else None

    def config(n, extra):
        target = os.path.join(stores, n)
        extra = extra + "\n" if extra else ""
        if sshd:
            target = f"ssh://root@127.0.0.1:{sshd.port}{target}"
            extra += f'ssh_identity = {json.dumps(sshd.key)}\nssh_options = {json.dumps(sshd.opts)}\n'
        return site.toml(a.layout, target, extra=extra, name=f"{a.layout}-{n}", keep=a.keep)

    cfg = {"A": config("A", a.a_extra), "B": config("B", a.b_extra)}

    def snapshots(name):
        return backup_snapshots(bins[name], cfg[name])

    def run(name, tag):
        """(seconds, step times, load average at the start) of one cold `backup`."""
        # listed before the caches are dropped, so the timed run starts cold
        before = {x["manifest"]["started"] for x in snapshots(name)}
        subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=True)
        l0 = round(os.getloadavg()[0], 2)
        log = os.path.join(a.work, f"{tag}-{name}.log")
        t = time.monotonic()
        # Each line stamped with the seconds since the start: the gaps between logged steps
        # (start-up, the commit) show too.
        with open(log, "w") as f:
            walk = ["--full-walk"] if a.walk and tag != "init" else []
            p = subprocess.Popen([bins[name], "--config", cfg[name], "backup"] + walk, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=dict(os.environ, HOLDFAST_LOG=a.log))
            for line in p.stdout:
                f.write(f"{time.monotonic() - t:7.3f} {line}")
            r = p.wait()
        s = time.monotonic() - t
        if r != 0:
            sys.exit(f"{name} ({bins[name]}) failed on {tag}: see {log}")
        # a run that wrote no snapshot proves nothing (by start time: the rolling layout's
        # newest is always named `current`)
        after = snapshots(name)
        if not after or after[-1]["manifest"]["started"] in before:
            sys.exit(f"{name} ({bins[name]}) exited 0 on {tag} but wrote no new snapshot: see {log}")
        steps = {}
        for line in open(log):
            for k in STEPS:
                if k in line and "secs=" in line and k not in steps:
                    steps[k] = float(line.split("secs=")[1].split()[0])
        return s, steps, l0

    try:
        for n in bins:
            s, _, l0 = run(n, 'init')
            print(f"initial {n}: {s:.1f} s  load {l0}", flush=True)
        days = dataset.scan_days(a.data)
        totals = {n: [] for n in bins}
        loads = []
        for day in range(1, a.days + 1):
            files = [os.path.join(d, f) for d, _, fs in os.walk(site.repo) for f in fs]
            rng = random.Random(day)
            now = time.time()
            for p in rng.sample(files, len(files) // 3):
                os.utime(p, (now, now), follow_symlinks=False)
            site.upload(a.b, days[day - 1]["tarballs"])
            for n in (("A", "B") if day % 2 else ("B", "A")):
                s, steps, l0 = run(n, f"day{day}")
                totals[n].append(s)
                loads.append(l0)
                print(f"day {day} {n}: {s:.2f} s  load {l0}  " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()),
                      flush=True)
        for n in bins:
            print(f"{n} {bins[n]}: median {statistics.median(totals[n]):.2f} s ({', '.join(f'{x:.1f}' for x in totals[n])})")
        if loads:
            print(f"loads {min(loads)}-{max(loads)} (median {statistics.median(loads)})")
    finally:
        site.stop()
        if sshd:
            sshd.stop()
        if a.stores_fs:
            subprocess.run(["umount", stores])


if __name__ == "__main__":
    main()
