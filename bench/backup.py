#!/usr/bin/env python3
"""Backup benchmark: holdfast against rsync --link-dest, restic and borg on one FOSSology-layout
repository, for an initial backup and a "scan day".

The repository is built from real archives, the way FOSSology stores uploads: each archive is a
gold file (in gold/ and, hard-linked, in files/), every member it unpacks to is a file in files/,
all named <sha1>.<md5>.<size> under <aa>/<bb>/<cc>/. Archives come from --archives DIR (anything
bsdtar reads: .deb, .tar.*, .zip, .iso...), or are made here with bsdtar from the machine's own
/usr/share and /usr/lib folders.

The scan day does what a day of FOSSology scanning does to a repository: a third of the files'
mtimes are touched (every agent read resets them) and ~2000 new files arrive (new uploads).
Each tool backs up the same data in the same state; the harness prints seconds, store sizes and
ratios. holdfast runs for real (`holdfast backup` against a scratch PostgreSQL cluster and a
scheduler that is not running), so its times include stopping the scheduler and the database
dump.

Usage: bench/backup.py [--work DIR] [--max-bytes 1G] [--archives DIR] [--new-files 2000]
                       [--tools holdfast,rsync,restic,borg] [--holdfast target/release/holdfast]
Run as root (PostgreSQL runs as the postgres user; store owners are kept).
"""
import argparse, hashlib, json, os, random, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def size_arg(s):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = s.strip().lower()
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


def pfile_name(path):
    h1, h5, n = hashlib.sha1(), hashlib.md5(), 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h1.update(b); h5.update(b); n += len(b)
    return f"{h1.hexdigest()}.{h5.hexdigest()}.{n}", n


def repo_path(repo, kind, name):
    return os.path.join(repo, "localhost", kind, name[0:2], name[2:4], name[4:6], name)


def make_archives(out, limit):
    """Archives made with bsdtar from the machine's own folders (one per folder)."""
    os.makedirs(out, exist_ok=True)
    made, total = [], 0
    dirs = []
    for top in ("/usr/share", "/usr/lib", "/usr/include", "/usr/lib/x86_64-linux-gnu"):
        if os.path.isdir(top):
            dirs += sorted(os.path.join(top, d) for d in os.listdir(top)
                           if os.path.isdir(os.path.join(top, d)) and not os.path.islink(os.path.join(top, d)))
    random.Random(7).shuffle(dirs)
    for d in dirs:
        if total >= limit:
            break
        a = os.path.join(out, d.strip("/").replace("/", "_") + ".tar.zst")
        if subprocess.run(["du", "-sb", d], capture_output=True, text=True).stdout.split()[0:1] and \
                int(subprocess.run(["du", "-sb", d], capture_output=True, text=True).stdout.split()[0]) > limit // 4:
            continue  # one folder must not be the whole data set
        if not os.path.exists(a):
            r = subprocess.run(["bsdtar", "--zstd", "-cf", a, "-C", os.path.dirname(d), os.path.basename(d)],
                               stderr=subprocess.DEVNULL)
            if r.returncode != 0 or os.path.getsize(a) < 1024:
                os.path.exists(a) and os.remove(a)
                continue
        made.append(a)
        total += os.path.getsize(a) * 3  # rough unpacked size
    return made


def upload(repo, archive, scratch):
    """Stores one archive as FOSSology would; returns (new files, bytes)."""
    files = bytes_ = 0
    name, n = pfile_name(archive)
    gold = repo_path(repo, "gold", name)
    if not os.path.exists(gold):
        os.makedirs(os.path.dirname(gold), exist_ok=True)
        shutil.copyfile(archive, gold)
        files += 1; bytes_ += n
    twin = repo_path(repo, "files", name)
    if not os.path.exists(twin):
        os.makedirs(os.path.dirname(twin), exist_ok=True)
        os.link(gold, twin)
        files += 1
    tmp = tempfile.mkdtemp(dir=scratch)
    subprocess.run(["bsdtar", "-xf", archive, "-C", tmp], stderr=subprocess.DEVNULL)
    for d, _, fs in os.walk(tmp):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            name, n = pfile_name(p)
            dst = repo_path(repo, "files", name)
            if not os.path.exists(dst):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.rename(p, dst)
                os.chmod(dst, 0o660)
                files += 1; bytes_ += n
    shutil.rmtree(tmp, ignore_errors=True)
    return files, bytes_


def count(repo):
    files = bytes_ = 0
    for d, _, fs in os.walk(repo):
        for f in fs:
            files += 1
            bytes_ += os.lstat(os.path.join(d, f)).st_size
    return files, bytes_


def du(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def timed(cmd, env=None):
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode not in (0, 24):
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[:400]}")
    return time.monotonic() - t


def drop_caches():
    # Same start for every tool: the source's pages stay warm, as on a busy server.
    sh(["sync"])


class Site:
    """A scratch FOSSology site for `holdfast backup`: a PostgreSQL cluster, conf files, and
    a holdfast.toml whose scheduler commands do nothing (no scheduler runs here)."""

    def __init__(self, work, repo):
        self.dir = os.path.join(work, "site")
        pgbin = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        self.bin = f"/usr/lib/postgresql/{pgbin}/bin"
        os.makedirs(self.dir, exist_ok=True)
        self.pg = os.path.join(self.dir, "pg")
        shutil.rmtree(self.pg, ignore_errors=True)
        os.makedirs(self.pg)
        shutil.chown(self.pg, "postgres", "postgres")
        for p in (work, self.dir):
            os.chmod(p, os.stat(p).st_mode | 0o001)
        import socket
        s = socket.socket(); s.bind(("127.0.0.1", 0)); self.port = s.getsockname()[1]; s.close()
        self.run_pg([f"{self.bin}/initdb", "-D", f"{self.pg}/data", "-U", "postgres", "-E", "UTF8",
                     "--locale=C", "--auth=trust"])
        self.run_pg([f"{self.bin}/pg_ctl", "-D", f"{self.pg}/data", "-l", f"{self.pg}/log", "-w", "-o",
                     f"-p {self.port} -k {self.pg} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        sh(psql + ["-c", "CREATE ROLE fossy LOGIN SUPERUSER PASSWORD 'fossy'"])
        sh(psql + ["-c", "CREATE DATABASE fossology OWNER fossy"])
        sh(psql + ["-d", "fossology", "-f", os.path.join(ROOT, "crates/site/sql/fossology.sql")],
           stdout=subprocess.DEVNULL)
        conf = os.path.join(self.dir, "etc")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "fossology.conf"), "w") as f:
            f.write(f"[FOSSOLOGY]\npath = {repo}\ndepth = 3\n[REPOSITORY]\nlocalhost[] = * 00 ff\n")
        with open(os.path.join(conf, "Db.conf"), "w") as f:
            f.write(f"dbname=fossology;\nhost=127.0.0.1;\nport={self.port};\nuser=fossy;\npassword=fossy;\n")
        os.chmod(os.path.join(conf, "Db.conf"), 0o600)
        self.conf = conf

    def toml(self, layout, store):
        path = os.path.join(self.dir, f"holdfast-{layout}.toml")
        with open(path, "w") as f:
            f.write(f'[site]\nconf_dir = "{self.conf}"\nname = "bench"\n'
                    f'[scheduler]\nstop_command = ["true"]\nstart_command = ["true"]\nprocess_names = []\n'
                    f'[backup]\ntarget = "{store}"\nlayout = "{layout}"\nkeep = 7\n'
                    f'lock_file = "{self.dir}/lock"\ncron_file = "{self.dir}/cron"\n')
        return path

    def run_pg(self, cmd):
        sh(["runuser", "-u", "postgres", "--"] + cmd, stdout=subprocess.DEVNULL, cwd="/")

    def stop(self):
        self.run_pg([f"{self.bin}/pg_ctl", "-D", f"{self.pg}/data", "-m", "immediate", "-w", "stop"])


def main():
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.signal(signal.SIGINT, lambda *_: sys.exit("interrupted"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-bench")
    ap.add_argument("--max-bytes", type=size_arg, default=size_arg("1G"))
    ap.add_argument("--archives")
    ap.add_argument("--new-files", type=int, default=2000)
    ap.add_argument("--tools", default="holdfast,holdfast-rolling,rsync,restic,borg")
    # holdfast's own work is small (rsync and pg_dumpall do the copying): a debug build is fine.
    default_bin = os.path.join(ROOT, "target/release/holdfast")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(ROOT, "target/debug/holdfast")
    ap.add_argument("--holdfast", default=default_bin)
    ap.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    a = ap.parse_args()
    tools = a.tools.split(",")
    work = os.path.abspath(a.work)
    repo = os.path.join(work, "repository")
    stores = os.path.join(work, "stores")
    scratch = os.path.join(work, "scratch")
    shutil.rmtree(stores, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    for d in (repo, stores, scratch):
        os.makedirs(d, exist_ok=True)

    if a.archives:
        archives = sorted(os.path.join(a.archives, f) for f in os.listdir(a.archives))
    else:
        archives = make_archives(os.path.join(work, "archives"), a.max_bytes * 13 // 10)
    # Build the repository; hold back archives for the scan day's new files.
    t = time.monotonic()
    # Every 8th archive is held back: the scan day's new uploads.
    rest = [x for i, x in enumerate(archives) if i % 8 == 7]
    used = total = 0
    for arc in (x for i, x in enumerate(archives) if i % 8 != 7):
        if total >= a.max_bytes:
            break
        _, nb = upload(repo, arc, scratch)
        total += nb
        used += 1
    files, bytes_ = count(repo)
    print(f"repository: {files} files, {bytes_/1e9:.2f} GB from {used} archives, built in {time.monotonic()-t:.0f} s")

    results = {}
    env = dict(os.environ, RESTIC_PASSWORD="bench", BORG_PASSPHRASE="",
               BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
    site = None
    try:
        hf = {}
        if any(t.startswith("holdfast") for t in tools):
            site = Site(work, repo)
            # `holdfast` = the pool layout; `holdfast-rolling` = hard-link trees (--link-dest).
            for t in tools:
                if t.startswith("holdfast"):
                    layout = "rolling" if t == "holdfast-rolling" else "pool"
                    hf[t] = [a.holdfast, "--config", site.toml(layout, os.path.join(stores, t)), "-q", "backup"]

        def initial(tool):
            drop_caches()
            if tool in hf:
                return timed(hf[tool])
            if tool == "rsync":
                os.makedirs(os.path.join(stores, "rsync"), exist_ok=True)
                return timed(["rsync", "-aH", repo + "/", os.path.join(stores, "rsync", "day0") + "/"])
            if tool == "restic":
                sh(["restic", "init", "-q", "-r", os.path.join(stores, "restic")], env=env, stdout=subprocess.DEVNULL)
                return timed(["restic", "backup", "-q", "-r", os.path.join(stores, "restic"), repo], env=env)
            if tool == "borg":
                sh(["borg", "init", "-e", "none", os.path.join(stores, "borg")], env=env)
                return timed(["borg", "create", os.path.join(stores, "borg") + "::day0", repo], env=env)

        def scan_day(tool):
            drop_caches()
            if tool in hf:
                return timed(hf[tool])
            if tool == "rsync":
                return timed(["rsync", "-aH", "--link-dest=../day0", repo + "/",
                              os.path.join(stores, "rsync", "day1") + "/"])
            if tool == "restic":
                return timed(["restic", "backup", "-q", "-r", os.path.join(stores, "restic"), repo], env=env)
            if tool == "borg":
                return timed(["borg", "create", os.path.join(stores, "borg") + "::day1", repo], env=env)

        for tool in tools:
            secs = initial(tool)
            results[tool] = {"initial_s": secs, "store_after_initial": du(os.path.join(stores, tool))}
            print(f"initial  {tool:<9} {secs:7.1f} s  store {results[tool]['store_after_initial']/1e9:.2f} GB", flush=True)

        # The scan day: a third of the mtimes touched, ~new_files new files.
        all_files = []
        for d, _, fs in os.walk(repo):
            all_files += [os.path.join(d, f) for f in fs]
        rng = random.Random(42)
        now = time.time()
        for p in rng.sample(all_files, len(all_files) // 3):
            os.utime(p, (now, now))
        new = 0
        for arc in rest:
            if new >= a.new_files:
                break
            nf, _ = upload(repo, arc, scratch)
            new += nf
        files2, bytes2 = count(repo)
        print(f"scan day: {len(all_files)//3} mtimes touched, {files2-files} new files ({(bytes2-bytes_)/1e6:.1f} MB)")

        for tool in tools:
            secs = scan_day(tool)
            size = du(os.path.join(stores, tool))
            results[tool].update(scan_s=secs, store_after_scan=size,
                                 growth=size - results[tool]["store_after_initial"])
            print(f"scan day {tool:<9} {secs:7.1f} s  store grew {results[tool]['growth']/1e6:8.1f} MB", flush=True)
    finally:
        if site:
            site.stop()

    new_bytes = bytes2 - bytes_
    print(f"\nsource: {files} files, {bytes_/1e9:.2f} GB; scan day adds {files2-files} files, {new_bytes/1e6:.1f} MB\n")
    print(f"{'tool':<9} {'initial s':>10} {'scan day s':>11} {'store GB':>9} {'growth MB':>10} {'growth/new':>11}")
    for tool, r in results.items():
        print(f"{tool:<9} {r['initial_s']:10.1f} {r['scan_s']:11.1f} {r['store_after_scan']/1e9:9.2f} "
              f"{r['growth']/1e6:10.1f} {r['growth']/max(new_bytes,1):11.2f}")
    if "holdfast" in results:
        h = results["holdfast"]
        print()
        for tool, r in results.items():
            if tool not in ("holdfast",):
                print(f"scan day: holdfast is {r['scan_s']/h['scan_s']:.1f}x faster than {tool}; "
                      f"initial: holdfast/{tool} = {h['initial_s']/r['initial_s']:.2f}")
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"files": files, "bytes": bytes_, "new_files": files2 - files, "new_bytes": new_bytes,
                   "results": results}, f, indent=2)
    if not a.keep:
        shutil.rmtree(stores, ignore_errors=True)


if __name__ == "__main__":
    main()
