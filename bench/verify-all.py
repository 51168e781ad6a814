#!/usr/bin/env python3
"""`holdfast verify --all` (the weekly job) on a store of several snapshots, against the same
proof by the peers operators would script, each reading every stored file once.

    bench/verify-all.py --holdfast BIN [--before OLD_BIN] [--size whole] [--days 2] [--reps 3]
                        [--layouts rolling,pool] [--work DIR] [--keep-stores]

Makes a rolling store (hard-linked day trees, the stores on the root file system) and a pool
store of a private copy of bench/dataset.py's site: its first backup and --days scan days
(1/3 of the mtimes touched, one held-back package uploaded with its rows), so the store holds
days + 1 snapshots sharing most of their files. Then, interleaved, REPS rounds, each run cold
(`sync; echo 3 > /proc/sys/vm/drop_caches` first) and warm (run again at once):
  holdfast     `holdfast verify --all` (BIN);
  before       the same with OLD_BIN (each snapshot read on its own), when given;
  peer-each    (rolling) every day tree's files hashed, `find` of each day tree piped to
               `xargs -0 -P2 -n 256 sh -c 'sha1sum; md5sum'`: what a script proving each
               snapshot does;
  peer-once    the same, each stored file once: one `find -printf '%D:%i'` over all the day
               trees keeping one name per inode, or the pool's objects: the peer's best flags.
Prints medians, ratios and the load average of every run. Run as root.
"""
import argparse, os, random, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402

HASH = "xargs -0 -r -P2 -n 256 sh -c 'sha1sum \"$@\"; md5sum \"$@\"' _ > /dev/null"


def peer(store, layout, once):
    """The shell pipeline proving the store's snapshots (each file once, or per snapshot)."""
    if layout == "pool":
        return f"find {store}/pool -type f -name '*.*.*' -print0 | {HASH}"
    trees = f"{store}/current/repository {store}/day.*/repository"
    if once:
        return (f"find {trees} -type f -printf '%D:%i %p\\n' | sort -u -k1,1 | cut -d' ' -f2- "
                f"| tr '\\n' '\\0' | {HASH}")
    return f"for t in {trees}; do find $t -type f -print0 | {HASH}; done"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--holdfast", required=True)
    ap.add_argument("--before", help="an earlier build, run the same way")
    ap.add_argument("--size", default="whole", choices=["quarter", "half", "whole"])
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layouts", default="rolling,pool")
    ap.add_argument("--data", default=dataset.DATA)
    ap.add_argument("--work", default="/var/tmp/holdfast-bench/verify-all")
    ap.add_argument("--keep-stores", action="store_true", help="reuse the stores of an earlier run")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: caches are dropped before every cold run")
    src = os.path.join(a.data, "sites", a.size)
    if not os.path.exists(os.path.join(src, "site.json")):
        sys.exit(f"no data set at {src}: run bench/dataset.py first")
    layouts = a.layouts.split(",")
    site = dataset.Site(os.path.join(a.work, "site"))
    stores = {l: os.path.join(a.work, "stores", l) for l in layouts}
    if not (a.keep_stores and all(os.path.exists(s) for s in stores.values())):
        subprocess.run(["rm", "-rf", a.work], check=True)
        os.makedirs(os.path.join(a.work, "stores"))
        subprocess.run(["cp", "-a", src, site.root], check=True)
    site.start()
    try:
        site.reset_crashed_jobs()
        cfg = {l: site.toml(l, stores[l], name=f"verify-{l}", keep=a.days + 1) for l in layouts}
        def has_snapshots(store):
            names = os.listdir(store) if os.path.isdir(store) else []
            return any(n == "current" or n.startswith("snap.") for n in names)

        if not all(has_snapshots(s) for s in stores.values()):
            days = dataset.scan_days(a.data)
            for day in range(a.days + 1):
                if day:
                    files = [os.path.join(d, f) for d, _, fs in os.walk(site.repo) for f in fs]
                    now = time.time()
                    for p in random.Random(day).sample(files, len(files) // 3):
                        os.utime(p, (now, now), follow_symlinks=False)
                    site.upload(a.holdfast, days[day - 1]["tarballs"])
                for l in layouts:
                    subprocess.run([a.holdfast, "--config", cfg[l], "-q", "backup"], check=True)
            print(f"stores made: {a.days + 1} snapshots each", flush=True)
        for l in layouts:
            n = sum(len(fs) for _, _, fs in os.walk(stores[l]))
            print(f"{l}: {n} names under {stores[l]}", flush=True)

        tools = {"holdfast": [a.holdfast, "--config", "{cfg}", "-q", "verify", "--all"]}
        if a.before:
            tools["before"] = [a.before, "--config", "{cfg}", "-q", "verify", "--all"]
        tools["peer-each"] = None
        tools["peer-once"] = None
        # A pool's snapshots are lists of its objects: its peer reads the objects, once.
        tools_of = {l: [t for t in tools if not (l == "pool" and t == "peer-each")] for l in layouts}
        times = {(l, t, c): [] for l in layouts for t in tools_of[l] for c in ("cold", "warm")}
        for rep in range(a.reps):
            for l in layouts:
                order = list(tools_of[l])
                random.Random(rep * 7 + len(l)).shuffle(order)
                for t in order:
                    if tools[t]:
                        cmd = [x.replace("{cfg}", cfg[l]) for x in tools[t]]
                    else:
                        cmd = ["sh", "-c", peer(stores[l], l, t == "peer-once")]
                    for c in ("cold", "warm"):
                        if c == "cold":
                            subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=True)
                        start = time.monotonic()
                        r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
                        s = time.monotonic() - start
                        if r.returncode != 0:
                            sys.exit(f"{t} on {l} failed ({r.returncode}): {' '.join(cmd)}")
                        times[(l, t, c)].append(s)
                        print(f"rep {rep + 1} {l} {t} {c}: {s:.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        print()
        for l in layouts:
            for c in ("cold", "warm"):
                med = {t: statistics.median(times[(l, t, c)]) for t in tools_of[l]}
                line = ", ".join(f"{t} {v:.2f}" for t, v in med.items())
                ratios = ", ".join(f"{med[t] / med['holdfast']:.2f}x {t}" for t in med if t != "holdfast")
                print(f"{l} {c}: {line} s; holdfast is {ratios}")
    finally:
        site.stop()


if __name__ == "__main__":
    main()
