#!/usr/bin/env python3
"""Backup and restore benchmark: holdfast (pool, rolling and rotating layouts) against rsync
--link-dest (three flag sets, and a fourth that recycles the expiring day), restic and borg on
one FOSSology site with real database rows (bench/dataset.py builds it from Debian source
packages, unpacked by `holdfast upload`).

    bench/backup.py [--size quarter|half|whole] [--reps 3] [--warm] [--restore]
                    [--tools holdfast,holdfast-walk,holdfast-rolling,holdfast-rolling-walk,rsync,
                             rsync-size,rsync-size-not,rsync-recycle,restic,borg]
                    [--holdfast BIN] [--work DIR] [--stores-fs btrfs|ext4|ext4-inline] [--retain N]

holdfast's nights after the first take the day's change from FOSSology's database and walk
nothing (unchanged files keep the mode and mtime of the previous list); the whole repository is
walked every `backup.full_walk_days` (7) or with `holdfast backup --full-walk`. Every peer walks
every night. So each holdfast layout runs twice, each with its own store: `holdfast`,
`holdfast-rolling` (database nights) and `holdfast-walk`, `holdfast-rolling-walk` (`backup
--full-walk`: a walk every night; `holdfast-rolling-links-walk` too). The summary gives both
nights' ratios and a weekly one: (6 database nights + 1 walk night) / 7 against the peers'
nights. A walk tool's night that did not walk stops the run.

Peers: `rsync` (-aH), `rsync-size` (-aH --size-only), `rsync-size-not` (-aH --no-t --size-only),
each into a new day tree with --link-dest to the previous day; `rsync-recycle` renames the day
--retain would delete tonight to the new day's name and refreshes it in place (`rsync -aH --no-t
--size-only --delete --link-dest=../day{prev}`), as holdfast's rolling layout begins a night as
its spare day (without --retain nothing expires: a new tree, with --delete); `restic` (version
2 repository, `--compression off`) and `borg` (`create -C none`) store plain data as holdfast
does; `restic-z` and `borg-z` are the same with each tool's default compression (zstd auto,
lz4), for the growth figures. Every timed backup and restore ends with a `sync` inside its
timer.

The same work for every tool: each night backs up the repository, the configuration folder
and the database. holdfast dumps the database and checks it inside `holdfast backup`; every
peer gets a `pg_dump -Fc` of the same database first, and its time includes that dump (the
dump's own time is printed too). Restores bring back the repository and load the database
into a scratch database (holdfast: `restore --into --keep-db`; peers: their restore, then
`pg_restore -j <cores>`). After every restore the restored repository is compared with the site
(each file's relative path, size, mode, owner, mtime; the site is not changed after the last
day's backups) and the restored database's upload, pfile and uploadtree row counts with the
site's: a missing, extra or resized file or other counts stop the run; mode, owner and mtime
differences are counted per tool and printed. One rsync store is restored (the same `rsync -aH`
for every variant); the other rsync variants' day trees are checked where they are.

A "scan day" does what a day of FOSSology scanning does: a third of the repository's mtimes
are touched (agents' reads reset them) and one day's new uploads (~2,000 files, made by
`holdfast upload` from source packages held back from the site, so with their database rows)
arrive. Each day is backed up by every tool, in an order that rotates from day to day.
Cold runs drop the page cache first (`sync; echo 3 > /proc/sys/vm/drop_caches`: the
repository, the stores and the tools' caches are read from disk); warm runs (--warm, extra
days) follow the previous tool's run with everything cached. The load average is recorded
with every run; the summary shows medians and ratios of the same run.

Every holdfast run must leave a new snapshot (`holdfast snapshots --json`, listed before the
caches are dropped so the cold run starts cold), or the run stops;
its manifest's way of finding the change (walk or database), files copied and step times are
recorded with its time. --lock FILE takes that flock around each measured round (one day's
backups, one restore) and releases it in between, so other measurements can run between them.

--stores-fs btrfs puts every tool's store on one btrfs file system (a loop-mounted image in
--work, made with mkfs.btrfs' defaults) and adds the peers that use it: `rsync-btrfs` (rsync
`--no-t --size-only --delete` into a subvolume, then a read-only snapshot of it per day, as
btrbk or snapper set-ups do) and `holdfast-rolling-links` (the rolling layout with
`day_trees = "hard-links"`); `holdfast-rolling` then makes its days as snapshots. Growth is
then what `btrfs filesystem usage` says is used (data and metadata as stored), since `du`
counts a snapshot's shared files again in every day.

--stores-fs ext4 and ext4-inline put the stores on a loop-mounted ext4 image in --work instead:
`ext4` made with mkfs.ext4's defaults (but inode tables and journal initialised at once:
`-E lazy_itable_init=0,lazy_journal_init=0`), `ext4-inline` with `-O inline_data -I 512`, where a
folder of a few entries lives in its inode and takes no block of its own (each of the
repository's ~124,000 folders otherwise takes 4 KB in every hard-linked day tree). Growth is
then the file system's blocks in use (`statvfs` after a sync), so folders count as stored.

Each scan day also records the site's own growth, counted as the stores are (`du -sb`, or on
btrfs the blocks in use): the new files and the folders they brought, which any tree of the
repository must hold too. The summary gives growth against both it and the new files' bytes.

--retain N measures the steady state, a store that has reached its retention: every tool keeps
the newest N backups and drops the oldest one each night, as its nightly job would, and that
is part of the night's time: holdfast `keep = N` (its own prune), rsync `rm -rf` of the oldest
day tree (rsync-recycle: that tree renamed to the new day, see above), rsync-btrfs `btrfs
subvolume delete` of the oldest snapshot, restic `forget --keep-last N --prune` (default repack
threshold), borg `prune --keep-last N` then `compact`
(borg 1.2: prune alone frees nothing). The summary then also shows the nights that dropped a
backup (day >= N) on their own, with the retention's share of each peer's night. On btrfs a
dropped subvolume is freed in the background after `btrfs subvolume delete` returns: after each
run the bench waits, untimed, for that (`btrfs subvolume sync`), so the cleaner neither slows
the next tool's run nor hides the freed space from this one's growth; the wait is printed.

--ssh puts every store behind a real sshd on loopback (a throwaway key, root, the stores'
folder as before), as a backup server is reached: holdfast's target is `ssh://`, the rsync
peers send with `-e ssh` (the recycled day renamed and the dropped day removed by `ssh`, inside
their timers), restic uses its `sftp:` backend and borg `ssh://` (`borg serve` on the far side).
Growth is measured on the stores' folder as without it. With --restore every tool restores
from the far side: holdfast from its `ssh://` target, rsync `-aH -e ssh`, restic over `sftp:`,
borg over `ssh://`. Not with --stores-fs btrfs.

Run as root. The site is copied into --work first; the cached data set is not changed.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402

ROOT = dataset.ROOT
ALL_TOOLS = ("holdfast,holdfast-walk,holdfast-rolling,holdfast-rolling-walk,"
             "rsync,rsync-size,rsync-size-not,rsync-recycle,restic,borg")
# holdfast tools: (layout, extra config, extra `backup` arguments). A night after the first
# takes the day's change from FOSSology's database and walks nothing; the whole repository is
# walked every backup.full_walk_days (7) or with --full-walk: each `-walk` tool (its own
# store) walks every night, so a week's cost is 6 nights of the one and 1 of the other.
# `holdfast-rotating`: the seed's Solution 2, its nights after the base incrementals (a cycle
# of 20, the longest: no second base within a run; a base night copies the whole site).
HOLDFAST = {"holdfast": ("pool", "", []), "holdfast-rolling": ("rolling", "", []),
            "holdfast-rolling-links": ("rolling", 'day_trees = "hard-links"\n', []),
            "holdfast-rotating": ("rotating", "full_every = 20\n", [])}
WALK = {f"{h}-walk": h for h in HOLDFAST}  # walk tool -> its database-night tool
HOLDFAST.update({w: HOLDFAST[h][:2] + (["--full-walk"],) for w, h in WALK.items()})
RSYNC_FLAGS = {
    "rsync": ["-aH"],
    # FOSSology's files are named by their content: a file whose size matches is the same
    # file, so --size-only is safe here and skips the mtime the agents touched
    "rsync-size": ["-aH", "--size-only"],
    # and without -t no mtime is kept, so --link-dest links touched files too
    "rsync-size-not": ["-aH", "--no-t", "--size-only"],
}
# the peer that recycles the expiring day as holdfast's rolling layout does: the day --retain
# would delete is renamed to the new day and refreshed in place (see Bench.copy)
RECYCLE = "rsync-recycle"
RECYCLE_FLAGS = ["-aH", "--no-t", "--size-only", "--delete"]
# every tool whose store holds one plain tree per day (storeDIR/dayN/)
DAY_TREES = set(RSYNC_FLAGS) | {RECYCLE, "rsync-btrfs"}
# restic and borg compress by default and holdfast stores plain files: the plain names run
# uncompressed (the speed figures), the -z names with each tool's default compression
RESTIC = {"restic": ["--compression", "off"], "restic-z": []}
BORG = {"borg": ["-C", "none"], "borg-z": []}
ENV = dict(os.environ, RESTIC_PASSWORD="bench", BORG_PASSPHRASE="",
           BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")


class Lock:
    """The shared benchmark lock (--lock), held for one measured round at a time and released
    between rounds, so a long run never keeps the machine from other measurements for long.
    Re-entrant within this process (one open file per path: a second flock on another open
    file of the same path would wait for ourselves)."""
    held = {}  # path -> [open file, depth]

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        if self.path:
            h = Lock.held.get(self.path)
            if h:
                h[1] += 1
            else:
                import fcntl
                t = time.monotonic()
                f = open(self.path, "a")
                fcntl.flock(f, fcntl.LOCK_EX)
                if time.monotonic() - t > 1:
                    print(f"  (waited {time.monotonic()-t:.0f} s for {self.path})", flush=True)
                Lock.held[self.path] = [f, 1]
        return self

    def __exit__(self, *_):
        h = Lock.held.get(self.path) if self.path else None
        if h:
            h[1] -= 1
            if h[1] == 0:
                h[0].close()  # closing releases the flock
                del Lock.held[self.path]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def drop_caches():
    """Really cold: dirty pages written, then page cache, dentries and inodes dropped."""
    sh(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def load():
    return round(os.getloadavg()[0], 2)


def du(path, allocated=False):
    """`du -sb` (file lengths, folder sizes), or with `allocated` the blocks in use."""
    if not os.path.exists(path):
        return 0
    out = subprocess.run(["du", "-s", "-B1" if allocated else "-b", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def btrfs_used(mount):
    """Bytes the btrfs file system at `mount` uses (data and metadata, as stored)."""
    sh(["btrfs", "filesystem", "sync", mount], stdout=subprocess.DEVNULL)
    out = subprocess.run(["btrfs", "filesystem", "usage", "-b", mount], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("Used:"):
            return int(line.split()[1])
    sys.exit(f"no Used: line in `btrfs filesystem usage` of {mount}")


def ext4_used(mount):
    """Bytes in use on the ext4 at `mount` (blocks, after a sync of that file system)."""
    sh(["sync", "-f", mount])
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


# how each --stores-fs image is made
MKFS = {"btrfs": ["mkfs.btrfs", "-q", "-f"],
        # inode tables and journal written now: else the kernel's ext4lazyinit thread zeroes
        # them in the background while the first nights are timed
        "ext4": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
        "ext4-inline": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                        "-O", "inline_data", "-I", "512"]}


def snapshots(holdfast, config):
    """The store's snapshots, oldest first by start (`holdfast snapshots --json`; none when the
    store is not there yet)."""
    out = subprocess.run([holdfast, "--config", config, "snapshots", "--json"], capture_output=True, text=True)
    # (-q would silence the listing too)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return sorted(json.loads(out.stdout), key=lambda x: x["manifest"]["started"])


def timed(cmd, env=None, cwd=None, sync=True):
    """Seconds `cmd` took, ended by a `sync` inside the timer (every tool alike: holdfast syncs
    at its commit, rsync, restic and borg leave their writes to the kernel)."""
    t = time.monotonic()
    r = subprocess.run(cmd, env=env or ENV, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # 24: rsync's "some files vanished", harmless for rsync only
    if r.returncode != 0 and not (cmd[0] == "rsync" and r.returncode == 24):
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-600:]}")
    if sync:
        os.sync()
    return time.monotonic() - t


def listing(root):
    """Every non-folder under `root`: relative path -> (size, mode, uid, gid, mtime ns)."""
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


def compare(want, got):
    """What differs between two listings: missing, extra and size-differing paths (a restore
    with any of these is wrong), and counts of mode, owner and mtime differences."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    size, mode, owner, mtime, mtime_sub = [], [], [], 0, 0
    for p in set(want) & set(got):
        w, g = want[p], got[p]
        if w[0] != g[0]:
            size.append(p)
        if w[1] != g[1]:
            mode.append(p)
        if w[2:4] != g[2:4]:
            owner.append(p)
        if w[4] != g[4]:
            if abs(w[4] - g[4]) >= 1_000_000_000:
                mtime += 1
            else:
                mtime_sub += 1
    return dict(missing=missing, extra=extra, size=sorted(size), mode=sorted(mode), owner=sorted(owner),
                mtime=mtime, mtime_sub=mtime_sub)


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.stores = os.path.join(self.work, "stores")
        self.dumpdir = os.path.join(self.work, "dump")
        self.site = dataset.Site(os.path.join(self.work, "site"))
        self.day = 0
        self.sshd = None
        self.hf = {}
        self.last_manifest = {}

    def prepare(self):
        src = os.path.join(self.a.data, "sites", self.a.size)
        if not os.path.exists(os.path.join(src, "site.json")):
            sys.exit(f"no data set at {src}: run bench/dataset.py first")
        if os.path.ismount(self.stores):
            # an interrupted run's btrfs (its read-only snapshots refuse `rm`)
            sh(["umount", self.stores])
        if os.path.exists(self.work):
            sh(["rm", "-rf", self.work])
        os.makedirs(self.stores)
        os.makedirs(self.dumpdir)
        if self.a.stores_fs:
            img = os.path.join(self.work, "stores.img")
            with open(img, "w") as f:
                f.truncate(64 << 30)
            sh(MKFS[self.a.stores_fs] + [img])
            sh(["mount", "-o", "loop", img, self.stores])
        t = time.monotonic()
        sh(["cp", "-a", src, self.site.root])
        self.info = json.load(open(os.path.join(src, "site.json")))
        print(f"site {self.a.size}: {self.info['files']} files, {self.info['bytes']/1e9:.2f} GB, "
              f"{self.info['uploads']} uploads, {self.info['pfiles']} pfile and {self.info['uploadtree']} "
              f"uploadtree rows (copied in {time.monotonic()-t:.0f} s)", flush=True)
        self.site.start()
        # Crash-left running queue rows would cost holdfast's stop stale_row_grace_secs each
        # night (the peers never look): reset once, as FOSSology's --reset start would.
        print(f"queue rows left running by a crash, reset as FOSSology's start does: "
              f"{self.site.reset_crashed_jobs()}", flush=True)
        if self.a.ssh:
            self.sshd = dataset.Sshd(os.path.join(self.work, "sshd"))
            ENV["BORG_RSH"] = self.sshd.rsh
        for t in self.tools:
            if t in HOLDFAST:
                layout, extra, _ = HOLDFAST[t]
                target = os.path.join(self.stores, t)
                if self.sshd:
                    target = f"ssh://root@127.0.0.1:{self.sshd.port}{target}"
                    extra += (f'ssh_identity = {json.dumps(self.sshd.key)}\n'
                              f'ssh_options = {json.dumps(self.sshd.opts)}\n')
                self.hf[t] = self.site.toml(layout, target, extra=extra, name=t,
                                            keep=self.a.retain or 30)
        self.days = dataset.scan_days(self.a.data)

    # ---- peers' database dump: the same work holdfast does inside `backup`
    def dump(self):
        t = time.monotonic()
        out = os.path.join(self.dumpdir, "fossology.dump")
        sh(["pg_dump", "-Fc", "-h", self.site.pg, "-p", str(self.site.port), "-U", "postgres",
            "-f", out + ".tmp", "fossology"])
        os.rename(out + ".tmp", out)
        return time.monotonic() - t

    def used(self, tool):
        """The store's size: `du -sb`, or on an image the file system's used bytes (the tools
        run one at a time, so the difference around a run is that run's)."""
        if self.a.stores_fs == "btrfs":
            return btrfs_used(self.stores)
        if self.a.stores_fs:
            return ext4_used(self.stores)
        return du(os.path.join(self.stores, tool))

    def settle(self):
        """Wait, untimed, for btrfs to finish deleting the subvolumes a run dropped: deletion
        goes on in the background after `btrfs subvolume delete` returns, and would otherwise
        slow the next tool's run and hide the freed space from this one's growth."""
        if self.a.stores_fs != "btrfs":
            return 0.0
        return timed(["btrfs", "-q", "subvolume", "sync", self.stores], sync=False)

    def far(self, path):
        """`path` as the tools name it: on the sshd with --ssh."""
        return f"root@127.0.0.1:{path}" if self.sshd else path

    def rsync(self):
        return ["rsync", "-e", self.sshd.rsh] if self.sshd else ["rsync"]

    def on_server(self, cmd):
        """`cmd` (a list) run where the stores are: through ssh with --ssh."""
        if not self.sshd:
            return cmd
        return self.sshd.rsh.split() + ["root@127.0.0.1", " ".join(cmd)]

    def restic_repo(self, store):
        if not self.sshd:
            return ["-r", store]
        return ["-r", f"sftp:root@127.0.0.1:{store}", "-o",
                f"sftp.command={self.sshd.rsh} root@127.0.0.1 -s sftp"]

    def borg_repo(self, store):
        return f"ssh://root@127.0.0.1:{self.sshd.port}{store}" if self.sshd else store

    def snapshots(self, tool):
        return snapshots(self.a.holdfast, self.hf[tool])

    def sources(self):
        return [self.site.repo, self.site.conf, self.dumpdir]

    def backup(self, tool, day, before=None):
        """One night's backup by `tool` and, with --retain, its retention; returns (seconds,
        dump seconds, retention seconds: 0 for holdfast, whose prune is inside `backup`, and
        for rsync-recycle, whose expiring day becomes the new one). `before`: holdfast's
        snapshots, listed by the caller before it dropped the caches."""
        s, d = self.copy(tool, day, before)
        n = self.a.retain
        if not n or day < n or tool in self.hf or tool == RECYCLE:
            return s, d, 0.0
        r = self.drop(tool, day - n)
        return s + r, d, r

    def drop(self, tool, day):
        """Drop the backup of `day`, as the tool's own retention does."""
        store = os.path.join(self.stores, tool)
        if tool in RSYNC_FLAGS:
            return timed(self.on_server(["rm", "-rf", f"{store}/day{day}"]))
        if tool == "rsync-btrfs":
            return timed(["btrfs", "-q", "subvolume", "delete", f"{store}/day{day}"])
        if tool in RESTIC:
            return timed(["restic", "forget", "-q"] + self.restic_repo(store) + RESTIC[tool] +
                         ["--keep-last", str(self.a.retain), "--prune"])
        if tool in BORG:
            repo = self.borg_repo(store)
            return timed(["borg", "prune", "--keep-last", str(self.a.retain), repo]) + \
                timed(["borg", "compact", repo])
        sys.exit(f"unknown tool {tool}")

    def copy(self, tool, day, before=None):
        """One night's backup by `tool`; returns (seconds, dump seconds)."""
        if tool in self.hf:
            # listed before the caches were dropped (by the caller): listing them here would
            # page in the binary, its configuration and the store's manifests for the cold run
            if before is None:
                before = self.snapshots(tool)
            s = timed([self.a.holdfast, "--config", self.hf[tool], "-q", "backup"] + HOLDFAST[tool][2])
            after = self.snapshots(tool)
            # a run that wrote no snapshot proves nothing: stop rather than print its time
            # (by start time: the rolling layout's newest is always named `current`)
            if not after or after[-1]["manifest"]["started"] in {x["manifest"]["started"] for x in before}:
                sys.exit(f"{tool}: `holdfast backup` exited 0 but wrote no new snapshot in "
                         f"{os.path.join(self.stores, tool)}")
            self.last_manifest[tool] = after[-1]["manifest"]
            # a walk tool's night must have walked, or its figure is another database night
            found = after[-1]["manifest"]["repository"].get("found_by")
            if tool in WALK and found != "walk":
                sys.exit(f"{tool}: `holdfast backup --full-walk` found its change by {found!r}, not by a walk")
            # the same retention as the peers', or their nights' work is not the same; the
            # rotating layout keeps its cycle (a base and its incrementals) whatever --retain
            want = (min(day + 1, self.a.retain) if self.a.retain and HOLDFAST[tool][0] != "rotating"
                    else len(after))
            if len(after) != want:
                sys.exit(f"{tool}: {len(after)} snapshots after day {day}, expected {want} (--retain)")
            return s, 0.0
        d = self.dump()
        store = os.path.join(self.stores, tool)
        if tool in RSYNC_FLAGS:
            os.makedirs(store, exist_ok=True)
            link = [f"--link-dest={store}/day{day-1}"] if day > 0 else []
            return d + timed(self.rsync() + RSYNC_FLAGS[tool] + link + self.sources() +
                             [self.far(f"{store}/day{day}/")]), d
        if tool == RECYCLE:
            # The day --retain would delete tonight (day - N) is renamed to the new day and
            # refreshed in place: unchanged files stay, new ones are linked from the previous
            # day, vanished ones deleted; as many days are kept as by every other tool.
            os.makedirs(store, exist_ok=True)
            t = time.monotonic()
            n = self.a.retain
            if n and day >= n:
                if self.sshd:
                    sh(self.on_server(["mv", f"{store}/day{day-n}", f"{store}/day{day}"]))
                else:
                    os.rename(f"{store}/day{day-n}", f"{store}/day{day}")
            link = [f"--link-dest=../day{day-1}"] if day > 0 else []
            timed(self.rsync() + RECYCLE_FLAGS + link + self.sources() + [self.far(f"{store}/day{day}/")])
            return d + time.monotonic() - t, d
        if tool == "rsync-btrfs":
            t = time.monotonic()
            if day == 0:
                os.makedirs(store)
                sh(["btrfs", "-q", "subvolume", "create", f"{store}/current"])
            timed(["rsync", "-aH", "--no-t", "--size-only", "--delete"] + self.sources() + [f"{store}/current/"],
                  sync=False)
            sh(["btrfs", "-q", "subvolume", "snapshot", "-r", f"{store}/current", f"{store}/day{day}"])
            os.sync()
            return d + time.monotonic() - t, d
        if tool in RESTIC:
            if day == 0:
                # version 2: the only one that can store uncompressed (--compression off)
                sh(["restic", "init", "-q", "--repository-version", "2"] + self.restic_repo(store), env=ENV,
                   stdout=subprocess.DEVNULL)
            return d + timed(["restic", "backup", "-q"] + self.restic_repo(store) + RESTIC[tool] +
                             self.sources()), d
        if tool in BORG:
            if day == 0:
                sh(["borg", "init", "-e", "none", self.borg_repo(store)], env=ENV)
            return d + timed(["borg", "create"] + BORG[tool] + [f"{self.borg_repo(store)}::day{day}"] +
                             self.sources()), d
        sys.exit(f"unknown tool {tool}")

    def scan_day(self):
        """A third of the mtimes touched, one day's uploads added (with their rows)."""
        if self.day > len(self.days):
            sys.exit(f"only {len(self.days)} scan days in the data set")
        files = []
        for d, _, fs in os.walk(self.site.repo):
            files += [os.path.join(d, f) for f in fs]
        before, bytes0 = dataset.count(self.site.repo)
        # The site's own growth, counted as the stores are: `du -sb`, or beside an image's
        # stores (whose used bytes are blocks) the blocks. The new files and the folders they brought (4 KB each
        # on ext4): any tree of the repository holds those too.
        alloc = bool(self.a.stores_fs)
        du0 = du(self.site.repo, alloc)
        rng = random.Random(self.day)
        now = time.time()
        for p in rng.sample(files, len(files) // 3):
            os.utime(p, (now, now), follow_symlinks=False)
        self.site.upload(self.a.holdfast, self.days[self.day - 1]["tarballs"])
        after, bytes1 = dataset.count(self.site.repo)
        return dict(touched=len(files) // 3, new_files=after - before, new_bytes=bytes1 - bytes0,
                    site_bytes=du(self.site.repo, alloc) - du0)

    def run(self):
        a = self.a
        results = {"size": a.size, "site": self.info, "initial": {}, "days": [], "restore": [], "check": [],
                   "retain": a.retain, "stores_fs": a.stores_fs, "ssh": a.ssh}
        print(f"initial backups (cold), load {load()}", flush=True)
        for tool in self.tools:
            with Lock(a.lock):
                size0 = self.used(tool)
                before = self.snapshots(tool) if tool in self.hf else None
                drop_caches()
                l0 = load()
                s, d, _ = self.backup(tool, 0, before)
                size = self.used(tool) - size0
            results["initial"][tool] = dict(s=s, dump_s=d, store=size, load=l0)
            print(f"  {tool:<16} {s:7.1f} s  store {results['initial'][tool]['store']/1e9:.2f} GB  load {l0}",
                  flush=True)
        kinds = ["cold"] * a.reps + (["warm"] * a.reps if a.warm else [])
        # cold and warm days alternate so both see the same repository sizes
        order = [k for pair in zip(kinds[:a.reps], kinds[a.reps:]) for k in pair] if a.warm else kinds
        for i, kind in enumerate(order):
            self.day += 1
            # the day's preparation under the lock too: its walk and upload would disturb
            # another run's measurements
            with Lock(a.lock):
                change = self.scan_day()
                print(f"day {self.day} ({kind}): {change['touched']} mtimes touched, {change['new_files']} new files "
                      f"({change['new_bytes']/1e6:.1f} MB)", flush=True)
                rot = self.tools[i % len(self.tools):] + self.tools[:i % len(self.tools)]
                for tool in rot:
                    store = os.path.join(self.stores, tool)
                    size0 = self.used(tool)
                    # (before the caches are dropped: the listing reads holdfast's store)
                    before = self.snapshots(tool) if tool in self.hf else None
                    if kind == "cold":
                        drop_caches()
                    l0 = load()
                    s, d, ret = self.backup(tool, self.day, before)
                    settle = self.settle()
                    grow = self.used(tool) - size0
                    m = self.last_manifest.pop(tool, None)
                    extra = {}
                    if m:
                        r, tm = m["repository"], m.get("timings", {})
                        extra = dict(found_by=r.get("found_by", ""), copied_files=r.get("new_files"),
                                     copied_bytes=r.get("new_bytes"), dump_s=tm.get("dump_secs", 0.0),
                                     copy_s=tm.get("copy_secs"), precopy_s=tm.get("precopy_secs"))
                        d = extra["dump_s"]
                    results["days"].append(dict(day=self.day, kind=kind, tool=tool, s=s, dump_s=d, growth=grow,
                                                retain_s=ret, settle_s=settle, load=l0, **change, **{k: v for k, v in extra.items() if k != "dump_s"}))
                    note = (f"  [{extra['found_by']}: copied {extra['copied_files']} files, copy {extra['copy_s']:.1f} s,"
                            f" pre-copy {extra['precopy_s']:.1f} s]" if extra else "")
                    ret_note = f", retention {ret:4.1f}" if ret else ""
                    if settle >= 0.05:
                        ret_note += f", then btrfs cleaner {settle:4.1f} untimed"
                    print(f"  {tool:<16} {s:7.2f} s (dump {d:4.1f}{ret_note})  store {grow/1e6:+9.1f} MB  load {l0}{note}",
                          flush=True)
        if a.restore:
            self.restores(results)
        return results

    # ---- restore: repository and database back, into a scratch folder and database
    def restore(self, tool, dst, db):
        """Seconds to bring back the last day's repository and database, ended by a sync; returns
        (seconds, the restored repository's folder)."""
        store = os.path.join(self.stores, tool)
        if tool in self.hf:
            # --keep-db: the scratch database is dropped by the bench for every tool alike
            return timed([self.a.holdfast, "--config", self.hf[tool], "-q", "restore", "--into", dst,
                          "--db", db, "-y", "--keep-db"] + self.a.restore_flags.split()), \
                os.path.join(dst, "repository")
        t = time.monotonic()
        os.makedirs(dst)
        if tool in DAY_TREES:
            timed(self.rsync() + ["-aH", self.far(f"{store}/day{self.day}/"), dst + "/"], sync=False)
            dump = os.path.join(dst, "dump/fossology.dump")
            repo = os.path.join(dst, "repository")
        elif tool in RESTIC:
            timed(["restic"] + self.restic_repo(store) + ["restore", "latest", "--target", dst], sync=False)
            dump = dst + self.dumpdir + "/fossology.dump"
            repo = dst + self.site.repo
        elif tool in BORG:
            timed(["borg", "extract", f"{self.borg_repo(store)}::day{self.day}"], cwd=dst, sync=False)
            dump = dst + self.dumpdir + "/fossology.dump"
            repo = dst + self.site.repo
        else:
            sys.exit(f"unknown tool {tool}")
        self.site.psql("-c", f"CREATE DATABASE {db} OWNER fossy TEMPLATE template0")
        # a custom-format dump loads in parallel: as many jobs as cores
        sh(["pg_restore", "-j", str(os.cpu_count()), "-h", self.site.pg, "-p", str(self.site.port),
            "-U", "postgres", "-d", db, "--no-owner", "--role=fossy", dump])
        os.sync()
        return time.monotonic() - t, repo

    def rows(self, db):
        """`db`'s upload, pfile and uploadtree row counts, as printed."""
        return ", ".join(str(v) for v in self.site.rows(db).values())

    def check(self, tool, repo, want, rows=None, where=""):
        """The restored repository (`repo`) against the site's listing `want`: a missing, extra
        or resized file, or other database row counts, stop the benchmark; mode, owner and
        mtime differences are counted and printed."""
        c = compare(want, listing(repo))
        res = dict(tool=tool, files=len(want), missing=len(c["missing"]), extra=len(c["extra"]),
                   size=len(c["size"]), mode=len(c["mode"]), owner=len(c["owner"]), mtime=c["mtime"],
                   mtime_sub=c["mtime_sub"], rows=rows, where=where)
        print(f"    check {tool}{where}: {len(want)} files; missing {res['missing']}, extra {res['extra']}, "
              f"size {res['size']}, mode {res['mode']}, owner {res['owner']}, mtime {res['mtime']} (>= 1 s) + "
              f"{res['mtime_sub']} (< 1 s){'' if rows is None else f'; rows (upload, pfile, uploadtree) {rows}'}",
              flush=True)
        bad = [f"{k}: {', '.join(c[k][:5])}{' ...' if len(c[k]) > 5 else ''}"
               for k in ("missing", "extra", "size") if c[k]]
        if rows is not None and rows != self.site_rows:
            bad.append(f"database rows {rows}, the site has {self.site_rows}")
        if bad:
            sys.exit(f"RESTORE CHECK FAILED: {tool}{where} restored another repository than the site's:\n  "
                     + "\n  ".join(bad))
        for k in ("mode", "owner"):
            if c[k]:
                print(f"    WARNING {tool}: {k} differs on {len(c[k])} files, e.g. {', '.join(c[k][:3])}", flush=True)
        return res

    def restores(self, results):
        # The site as every tool backed it up: nothing changes it after the last day's backups.
        want = listing(self.site.repo)
        self.site_rows = self.rows("fossology")
        # one rsync copy back (from the first plain rsync store): every variant's tree is
        # restored by the same `rsync -aH`; the others' day trees are checked where they are
        plain = [t for t in self.tools if t in RSYNC_FLAGS or t == RECYCLE]
        tools = [t for t in self.tools if t not in plain] + plain[:1]
        if self.a.restore_tools:
            tools = [t for t in tools if t in self.a.restore_tools.split(",")]
        print(f"restores (cold): {', '.join(tools)}; holdfast flags: {self.a.restore_flags or '(none)'}; "
              f"checked against the site's {len(want)} files and rows {self.site_rows}", flush=True)
        for t in plain[1:]:
            results["check"].append(self.check(t, os.path.join(self.stores, t, f"day{self.day}", "repository"),
                                               want, where=" (its day tree, in place)"))
        for rep in range(self.a.reps):
            rot = tools[rep % len(tools):] + tools[:rep % len(tools)]
            for tool in rot:
                with Lock(self.a.lock):
                    dst = os.path.join(self.work, "restored")
                    db = "restored"
                    sh(["rm", "-rf", dst])
                    self.site.psql("-c", f"DROP DATABASE IF EXISTS {db}")
                    drop_caches()
                    l0 = load()
                    s, repo = self.restore(tool, dst, db)
                    files, bytes_ = dataset.count(dst)
                    results["restore"].append(dict(rep=rep, tool=tool, s=s, load=l0, files=files, bytes=bytes_))
                    print(f"  {tool:<16} {s:7.1f} s  {files} files {bytes_/1e9:.2f} GB  load {l0}", flush=True)
                    results["check"].append(self.check(tool, repo, want, rows=self.rows(db)))
                    sh(["rm", "-rf", dst])
                    self.site.psql("-c", f"DROP DATABASE IF EXISTS {db}")


def weekly(stats, tools, what):
    """A week of holdfast nights per layout, (6 database nights + 1 walk night) / 7, against the
    peers' nights (every one of which walks): lines of ratios."""
    lines = []
    peers = [t for t in tools if not t.startswith("holdfast") and stats.get(t, {}).get("cold")]
    for w, h in WALK.items():
        for kind in ("cold", "warm"):
            db, walk = stats.get(h, {}).get(kind), stats.get(w, {}).get(kind)
            if not db or not walk:
                continue
            week = (6 * db + walk) / 7
            ps = [t for t in peers if stats[t].get(kind)]
            fastest = min(ps, key=lambda t: stats[t][kind]) if ps else None
            lines.append(f"{h} weekly{what}, {kind} ((6 database nights {db:.2f} s + 1 walk {walk:.2f} s) / 7 = "
                         f"{week:.2f} s a night): " + ", ".join(
                             f"{stats[t][kind]/week:.2f}x faster than {t}" for t in ps)
                         + (f"; against the fastest peer ({fastest}) {stats[fastest][kind]/week:.2f}x" if fastest else ""))
    return lines


def summary(r, tools):
    med = statistics.median
    lines = []
    site = r["site"]
    lines.append(f"site {r['size']}: {site['files']} files, {site['bytes']/1e9:.2f} GB, {site['uploads']} uploads, "
                 f"{site['pfiles']} pfiles, {site['uploadtree']} uploadtree rows")
    if r.get("ssh"):
        lines.append("stores: behind an sshd on loopback (holdfast ssh://, rsync -e ssh, restic sftp:, borg ssh://)")
    days = r["days"]
    if days:
        d0 = days[0]
        lines.append(f"scan day: {d0['touched']} mtimes touched, ~{med([d['new_files'] for d in days])} new files "
                     f"({med([d['new_bytes'] for d in days])/1e6:.1f} MB); loads "
                     f"{min(d['load'] for d in days)}-{max(d['load'] for d in days)}")
    lines.append("")
    lines.append("| tool | initial s | scan day cold, median s (runs) | warm, median s | growth/day MB | dump s | found by |")
    lines.append("|---|---|---|---|---|---|---|")
    stats = {}
    for t in tools:
        cold = [d["s"] for d in days if d["tool"] == t and d["kind"] == "cold"]
        warm = [d["s"] for d in days if d["tool"] == t and d["kind"] == "warm"]
        grow = [d["growth"] for d in days if d["tool"] == t]
        dump = [d["dump_s"] for d in days if d["tool"] == t]
        stats[t] = dict(cold=med(cold) if cold else None, warm=med(warm) if warm else None)
        ini = r["initial"].get(t, {}).get("s")
        found = "/".join(sorted({d["found_by"] for d in days if d["tool"] == t and d.get("found_by")})) or "-"
        lines.append(f"| {t} | {ini:.1f} | {med(cold):.2f} ({', '.join(f'{x:.1f}' for x in cold)}) | "
                     f"{(f'{med(warm):.2f}') if warm else '-'} | {med(grow)/1e6:.1f} | {med(dump):.1f} | {found} |"
                     if cold else f"| {t} | {ini} | - | - | - | - | - |")
    if days:
        nb = med([d["new_bytes"] for d in days])
        lines.append(f"\nnew data per day: {nb/1e6:.1f} MB; store growth / new data: " + ", ".join(
            f"{t} {med([d['growth'] for d in days if d['tool'] == t])/nb:.2f}" for t in tools
            if any(d['tool'] == t for d in days)))
        sb = [d["site_bytes"] for d in days if "site_bytes" in d]
        if sb:
            how = "blocks in use" if r.get("stores_fs") else "`du -sb`"
            lines.append(f"the site's own growth ({how}: new files and new folders) {med(sb)/1e6:.1f} MB; "
                         "store growth / it: " + ", ".join(
                             f"{t} {med([d['growth'] for d in days if d['tool'] == t])/med(sb):.2f}" for t in tools
                             if any(d['tool'] == t for d in days)))
    for h in HOLDFAST:
        if h in stats and stats[h]["cold"]:
            for t in tools:
                if not t.startswith("holdfast") and stats[t]["cold"]:
                    w = (f", warm {stats[t]['warm']/stats[h]['warm']:.2f}x" if stats[t]["warm"] and stats[h]["warm"]
                         else "")
                    lines.append(f"{h}: cold {stats[t]['cold']/stats[h]['cold']:.2f}x faster than {t}{w}")
    lines += weekly(stats, tools, "")
    n = r.get("retain")
    pruning = [d for d in days if n and d["day"] >= n and d["kind"] == "cold"]
    if pruning:
        lines.append(f"\nsteady state: the {len(set(d['day'] for d in pruning))} cold nights that dropped "
                     f"a backup (keep {n}), retention included")
        lines.append("| tool | night, median s (runs) | of it retention, median s | store change/day MB | "
                     "change / new files, / site's growth (nights) |")
        lines.append("|---|---|---|---|---|")
        steady = {}
        for t in tools:
            v = [d for d in pruning if d["tool"] == t]
            if not v:
                continue
            steady[t] = med([d["s"] for d in v])
            ret = ("(inside backup)" if t.startswith("holdfast") else "(recycled)" if t == RECYCLE
                   else f"{med([d['retain_s'] for d in v]):.2f}")
            runs = ", ".join(f"{d['s']:.1f}" for d in v)
            per = ", ".join(f"{d['growth']/d['new_bytes']:.2f} / {d['growth']/d['site_bytes']:.2f}"
                            if d.get("site_bytes") else f"{d['growth']/d['new_bytes']:.2f}" for d in v)
            lines.append(f"| {t} | {steady[t]:.2f} ({runs}) | {ret} | "
                         f"{med([d['growth'] for d in v])/1e6:+.1f} | {per} |")
        peers = [t for t in steady if not t.startswith("holdfast")]
        for h in HOLDFAST:
            if h in steady and peers:
                lines.append(f"{h} steady state: " + ", ".join(
                    f"{steady[t]/steady[h]:.2f}x faster than {t}" for t in peers))
        lines += weekly({t: dict(cold=v, warm=None) for t, v in steady.items()}, tools, " steady state")
    if r["restore"]:
        lines.append("\n| restore (cold) | median s | runs |\n|---|---|---|")
        rt = {}
        for t in dict.fromkeys(x["tool"] for x in r["restore"]):
            v = [x["s"] for x in r["restore"] if x["tool"] == t]
            rt[t] = med(v)
            lines.append(f"| {t} | {med(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
        for h in HOLDFAST:
            if h in rt:
                lines.append(f"{h} restore time / peer's: " +
                             ", ".join(f"{t} {rt[h]/rt[t]:.2f}" for t in rt if not t.startswith("holdfast")))
    if r.get("check"):
        lines.append("\nrestored repository against the site after the last day's backups (missing, extra or "
                     "resized files stop the benchmark)")
        lines.append("| tool | files | missing / extra / size | mode differs | owner differs | mtime differs >= 1 s "
                     "| < 1 s | database rows (upload, pfile, uploadtree) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for t in dict.fromkeys(x["tool"] for x in r["check"]):
            c = [x for x in r["check"] if x["tool"] == t][-1]
            lines.append(f"| {t}{c['where']} | {c['files']} | {c['missing']} / {c['extra']} / {c['size']} | "
                         f"{c['mode']} | {c['owner']} | {c['mtime']} | {c['mtime_sub']} | {c['rows'] or '-'} |")
    return "\n".join(lines)


def main():
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=dataset.DATA)
    ap.add_argument("--size", default="whole", choices=[s[0] for s in dataset.STAGES])
    ap.add_argument("--work", default="/var/tmp/holdfast-bench/backup")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warm", action="store_true", help="also warm-cache days (as many as cold ones)")
    ap.add_argument("--restore", action="store_true", help="then restore every tool's last backup, cold")
    ap.add_argument("--restore-tools", default="", help="restore only these tools' backups (a walk "
                    "night's store restores as its layout's: restoring both measures the same thing twice)")
    ap.add_argument("--restore-flags", default="", help="extra flags for `holdfast restore`")
    ap.add_argument("--tools", default=ALL_TOOLS)
    ap.add_argument("--holdfast", default=os.path.join(ROOT, "target/release/holdfast"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    ap.add_argument("--retain", type=int, default=0, metavar="N",
                    help="keep the newest N backups in every store, dropping the oldest each night (see above)")
    ap.add_argument("--stores-fs", default="", choices=[""] + list(MKFS),
                    help="the stores on a loop-mounted image of this file system (see above)")
    ap.add_argument("--ssh", action="store_true", help="every store behind a real sshd on loopback (see above)")
    ap.add_argument("--lock", default="", help="flock this file around each measured round "
                    "(a day's backups, one restore), not around the whole run")
    ap.add_argument("--hold", action="store_true", help="with --lock: hold it from the first measured "
                    "backup to the last restore (one locked run; keep it under ~25 minutes)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (PostgreSQL runs as postgres; cold runs drop the page cache)")
    if a.ssh and a.stores_fs == "btrfs":
        sys.exit("--ssh: not with --stores-fs btrfs (its peers' snapshots are made on the local store)")
    b = Bench(a)
    b.tools = a.tools.split(",")
    known = set(HOLDFAST) | DAY_TREES | set(RESTIC) | set(BORG)
    if set(b.tools) - known:
        sys.exit(f"unknown tools {', '.join(sorted(set(b.tools) - known))}; known: {', '.join(sorted(known))}")
    t0 = time.time()
    try:
        b.prepare()
        # --hold: one lock for the whole measured part (the site copy above is not measured);
        # the rounds' own takes of the re-entrant lock then keep it
        with Lock(a.lock if a.hold else ""):
            r = b.run()
    finally:
        b.site.stop()
        if b.sshd:
            b.sshd.stop()
        if a.stores_fs and not a.keep:
            subprocess.run(["umount", b.stores])
    r.update(holdfast=a.holdfast, started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
             cores=os.cpu_count(), commit=subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                                         capture_output=True, text=True).stdout.strip())
    out = os.path.join(os.path.dirname(b.work), f"backup-{a.size}.json")
    with open(out, "w") as f:
        json.dump(r, f, indent=1)
    print("\n" + summary(r, b.tools))
    print(f"\nresults: {out}")
    if not a.keep:
        sh(["rm", "-rf", b.work])


if __name__ == "__main__":
    main()
