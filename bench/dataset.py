#!/usr/bin/env python3
"""The benchmark data set: FOSSology-layout sites made from real Debian source packages,
unpacked by `holdfast upload` into scratch sites with FOSSology's schema, so the repository
and the database rows are what a real FOSSology server holds.

    bench/dataset.py [--data /work/bench-data] [--holdfast BIN]

Idempotent and resumable: source packages are fetched once through apt (a private deb-src
list; the system's apt configuration is not touched) into DATA/src/<package>/, and the sites
are built once into DATA/sites/{quarter,half,whole}/ (each: pg/ cluster, etc/ fossology.conf
and Db.conf, repository/, site.json with its counts). A site's repository holds gold/ and
files/ as FOSSology keeps them; "whole" is >= 75,000 files and >= 2 GB, "half" and "quarter"
stop at a half and a quarter of that. The packages of bench/dataset-packages.txt's last
section are not uploaded: they are the scan days' new uploads (DATA/scan-days.json lists
which tarballs make each day's ~2,000 new files). The benchmarks copy a site before they
change it; nothing here is ever modified once built.

Needs root (PostgreSQL runs as the postgres user), apt-get, bsdtar, PostgreSQL.
"""
import argparse, atexit, json, os, shutil, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("BENCH_DATA", "/work/bench-data")
# (name, bytes, files): a stage is saved once the repository reaches both.
STAGES = [("quarter", 520_000_000, 19_500), ("half", 1_040_000_000, 39_000),
          ("whole", 2_080_000_000, 78_000)]
DAY_FILES = 2000


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Sshd:
    """A real sshd on loopback serving this machine's files as root, with a throwaway key."""

    def __init__(self, d):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.key = os.path.join(d, "client")
        host = os.path.join(d, "host")
        for k in (self.key, host):
            if not os.path.exists(k):
                sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k])
        auth = os.path.join(d, "authorized_keys")
        shutil.copyfile(self.key + ".pub", auth)
        os.chmod(auth, 0o600)
        s = socket.socket(); s.bind(("127.0.0.1", 0)); self.port = s.getsockname()[1]; s.close()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host}\n"
                    f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n"
                    f"PasswordAuthentication no\nStrictModes no\nPidFile {d}/pid\n"
                    "UsePAM no\nSubsystem sftp internal-sftp\nMaxStartups 100\nMaxSessions 100\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf],
                                     stderr=open(os.path.join(d, "log"), "w"))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        self.opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR"]
        self.rsh = " ".join(["ssh", "-i", self.key, "-p", str(self.port)] + self.opts)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def packages():
    """(main packages in upload order, scan-day packages)."""
    main, days, cur = [], [], None
    cur = main
    with open(os.path.join(ROOT, "bench/dataset-packages.txt")) as f:
        for line in f:
            if line.startswith("# scan-day"):
                cur = days
            elif not line.startswith("#"):
                cur += line.split()
    return main, days


def apt_opts(data):
    a = os.path.join(data, "apt")
    return ["-q", "-o", f"Dir::Etc::SourceList={a}/src.list", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={a}/lists", "-o", f"Dir::Cache={a}/cache"]


def fetch(data, pkgs):
    a = os.path.join(data, "apt")
    for d in ("lists/partial", "cache/archives/partial"):
        os.makedirs(os.path.join(a, d), exist_ok=True)
    if not os.path.exists(os.path.join(a, "src.list")):
        uri, suite = "http://deb.debian.org/debian", "bookworm"
        for line in open("/etc/os-release"):
            if line.startswith("VERSION_CODENAME="):
                suite = line.split("=", 1)[1].strip()
        with open(os.path.join(a, "src.list"), "w") as f:
            f.write(f"deb-src {uri} {suite} main\n")
    if not os.listdir(os.path.join(a, "lists")) or len(os.listdir(os.path.join(a, "lists"))) < 3:
        sh(["apt-get"] + apt_opts(data) + ["update"], stdout=subprocess.DEVNULL)
    src = os.path.join(data, "src")
    os.makedirs(src, exist_ok=True)
    for p in pkgs:
        d = os.path.join(src, p)
        if os.path.exists(os.path.join(d, ".done")) or os.path.exists(os.path.join(d, ".missing")):
            continue
        tmp = d + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        r = subprocess.run(["apt-get"] + apt_opts(data) + ["source", "--download-only", p], cwd=tmp,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a missing signature (.asc, 404 on some mirrors) fails apt-get but the tarballs came
        ok = any(".tar." in f for f in os.listdir(tmp))
        shutil.rmtree(d, ignore_errors=True)
        os.rename(tmp, d)
        open(os.path.join(d, ".done" if ok else ".missing"), "w").close()
        if not ok:
            print(f"no source package {p} in this release: skipped", file=sys.stderr)


def tarballs(data, pkg):
    d = os.path.join(data, "src", pkg)
    if not os.path.exists(os.path.join(d, ".done")):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if ".tar." in f and not f.endswith(".asc"))


def count(repo):
    """Names (every hard link, as the tools see them) and bytes (each inode once)."""
    files = bytes_ = 0
    seen = set()
    for d, _, fs in os.walk(repo):
        for f in fs:
            st = os.lstat(os.path.join(d, f))
            files += 1
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                bytes_ += st.st_size
    return files, bytes_


class Site:
    """A scratch FOSSology site in one folder: pg/ (a PostgreSQL cluster run as postgres),
    etc/ (fossology.conf, Db.conf), repository/. Works on a fresh folder or a copied one."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.pg = os.path.join(self.root, "pg")
        self.conf = os.path.join(self.root, "etc")
        self.repo = os.path.join(self.root, "repository")
        pgver = sorted(os.listdir("/usr/lib/postgresql"))[-1]
        self.bin = f"/usr/lib/postgresql/{pgver}/bin"
        self.port = None

    def pg_run(self, cmd, **kw):
        sh(["runuser", "-u", "postgres", "--"] + cmd, stdout=subprocess.DEVNULL, cwd="/", **kw)

    def reset_crashed_jobs(self):
        """Queue rows a crash left marked running (the data set holds two, from its interrupted
        build) are put back in the queue, as FOSSology's scheduler does when it starts with
        --reset (its init script's start; jobsql_resetqueue): a real site holds them until its
        next start only, and else every backup waits stale_row_grace_secs for them.
        Returns how many were reset."""
        return self.psql("-At", "-c", "WITH r AS (UPDATE jobqueue SET jq_starttime = NULL, jq_endtext = NULL, "
                         "jq_schedinfo = NULL WHERE jq_endtime IS NULL AND jq_starttime IS NOT NULL RETURNING 1) "
                         "SELECT count(*) FROM r", db="fossology", capture_output=True, text=True).stdout.strip()

    def psql(self, *args, db="postgres", **kw):
        return sh(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg, "-p", str(self.port),
                   "-U", "postgres", "-d", db] + list(args), **kw)

    def create(self):
        os.makedirs(self.pg, exist_ok=True)
        os.makedirs(os.path.join(self.repo, "localhost"), exist_ok=True)
        shutil.chown(self.pg, "postgres", "postgres")
        p = self.root
        while p != "/":  # postgres must reach its folder
            os.chmod(p, os.stat(p).st_mode | 0o001)
            p = os.path.dirname(p)
        self.pg_run([f"{self.bin}/initdb", "-D", f"{self.pg}/data", "-U", "postgres", "-E", "UTF8",
                     "--locale=C", "--auth=trust"])
        self.start()
        self.psql("-c", "CREATE ROLE fossy WITH CREATEDB LOGIN PASSWORD 'fossy'")
        self.psql("-c", "CREATE DATABASE fossology OWNER fossy ENCODING 'UTF8' TEMPLATE template0")
        self.psql("-c", 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"', db="fossology")
        sh(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg, "-p", str(self.port), "-U", "fossy",
            "-d", "fossology", "-f", os.path.join(ROOT, "crates/site/sql/fossology.sql")],
           stdout=subprocess.DEVNULL)

    def start(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.pg_run([f"{self.bin}/pg_ctl", "-D", f"{self.pg}/data", "-l", f"{self.pg}/log", "-w", "-t", "120",
                     "-o", f"-p {self.port} -k {self.pg},/tmp -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        os.makedirs(self.conf, exist_ok=True)
        with open(os.path.join(self.conf, "fossology.conf"), "w") as f:
            f.write(f"[FOSSOLOGY]\naddress = localhost\nport = 24693\npath = {self.repo}\ndepth = 3\n\n"
                    f"[REPOSITORY]\nlocalhost[] = * 00 ff\n\n[DIRECTORIES]\nPROJECTGROUP=root\nPROJECTUSER=root\n")
        dbconf = os.path.join(self.conf, "Db.conf")
        with open(dbconf, "w") as f:
            f.write(f"dbname=fossology;\nhost=127.0.0.1;\nport={self.port};\nuser=fossy;\npassword=fossy;\n")
        os.chmod(dbconf, 0o600)

    def stop(self):
        if self.port:
            self.pg_run([f"{self.bin}/pg_ctl", "-D", f"{self.pg}/data", "-m", "fast", "-w", "stop"])
            self.port = None

    def toml(self, layout, store, extra="", name=None, keep=30):
        path = os.path.join(self.root, f"holdfast-{name or layout}.toml")
        with open(path, "w") as f:
            f.write(f'[site]\nconf_dir = "{self.conf}"\nname = "bench"\n'
                    f'[scheduler]\nstop_command = ["true"]\nstart_command = ["true"]\nprocess_names = []\n'
                    f'[backup]\ntarget = "{store}"\nlayout = "{layout}"\nkeep = {keep}\n'
                    f'lock_file = "{self.root}/lock-{layout}"\ncron_file = "{self.root}/cron"\n{extra}')
        return path

    def upload(self, holdfast, files):
        # its own file: the benchmarks' backup configurations are holdfast-<layout>.toml, and
        # writing over them sent a scan day's backup to this unused store (no new snapshot)
        cfg = self.toml("pool", os.path.join(self.root, "unused-store"), name="upload")
        r = subprocess.run([holdfast, "--config", cfg, "-q", "upload", "--json"] + files,
                           stdout=subprocess.PIPE, text=True)
        # 3: stored, with members that did not unpack (real packages ship corrupt test
        # archives on purpose); FOSSology records those uploads too
        if r.returncode not in (0, 3):
            sys.exit(f"holdfast upload {' '.join(files)} failed ({r.returncode})")
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    def rows(self, db="fossology"):
        """Row counts of `db` (the site's own database, or a restored copy of it)."""
        out = subprocess.run(["psql", "-X", "-A", "-t", "-h", self.pg, "-p", str(self.port), "-U", "postgres",
                              "-d", db, "-c",
                              "SELECT (SELECT count(*) FROM upload), (SELECT count(*) FROM pfile), "
                              "(SELECT count(*) FROM uploadtree)"],
                             capture_output=True, text=True, check=True).stdout.strip().split("|")
        return dict(zip(("uploads", "pfiles", "uploadtree"), map(int, out)))


def private_copy(data, size, dest):
    """A copy of the built site `size` at `dest` that a benchmark may change: the database
    cluster copied (the built site's cluster is stopped), the repository hard-linked (`cp -al`:
    seconds, no space; safe because repository files are only ever created under new names
    and unlinked, never rewritten in place). Returns the copy as a Site, not started; delete
    it with shutil.rmtree when done."""
    src = os.path.join(data, "sites", size)
    if not os.path.exists(os.path.join(src, "site.json")):
        sys.exit(f"no data set at {src}: run bench/dataset.py first")
    if os.path.exists(os.path.join(src, "pg", "data", "postmaster.pid")):
        sys.exit(f"the cluster of {src} is running: a copy of it would be torn")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for part in ("pg", "etc", "site.json"):
        sh(["cp", "-a", os.path.join(src, part), dest])
    sh(["cp", "-al", os.path.join(src, "repository"), dest])
    return Site(dest)


def build(data, holdfast):
    main, _ = packages()
    sites = os.path.join(data, "sites")
    os.makedirs(sites, exist_ok=True)
    if os.path.exists(os.path.join(sites, "whole", "site.json")):
        return
    b = os.path.join(sites, ".build")
    site = Site(b)
    done_file = os.path.join(b, "uploaded.txt")
    if not os.path.exists(done_file):
        shutil.rmtree(b, ignore_errors=True)
        site.create()
        open(done_file, "w").close()
    else:
        site.start()
    done = set(open(done_file).read().split())
    files, bytes_ = count(site.repo)
    t0 = time.monotonic()
    try:
        stage = 0
        while stage < len(STAGES) and os.path.exists(os.path.join(sites, STAGES[stage][0], "site.json")):
            stage += 1
        for p in main:
            if p in done:
                continue
            tb = tarballs(data, p)
            if tb:
                site.upload(holdfast, tb)
            with open(done_file, "a") as f:
                f.write(p + "\n")
            done.add(p)
            files, bytes_ = count(site.repo)
            print(f"  {p:<24} {files:>7} files {bytes_/1e9:5.2f} GB  ({time.monotonic()-t0:.0f} s)", flush=True)
            name, nb, nf = STAGES[stage]
            if bytes_ >= nb and files >= nf:
                info = dict(name=name, files=files, bytes=bytes_, packages=len(done), **site.rows())
                with open(os.path.join(b, "site.json"), "w") as f:
                    json.dump(info, f, indent=1)
                site.stop()
                dst = os.path.join(sites, name)
                shutil.rmtree(dst + ".tmp", ignore_errors=True)
                if name == STAGES[-1][0]:
                    os.rename(b, dst)
                    print(f"site {name}: {info}")
                    return
                sh(["cp", "-a", b, dst + ".tmp"])
                os.rename(dst + ".tmp", dst)
                print(f"site {name}: {info}", flush=True)
                stage += 1
                site.start()
        sys.exit(f"the packages of bench/dataset-packages.txt make only {files} files, {bytes_/1e9:.2f} GB: "
                 f"add packages to reach {STAGES[-1][2]} files and {STAGES[-1][1]/1e9:.2f} GB")
    finally:
        site.stop()


def scan_days(data):
    """One held-back package a day (each about DAY_FILES files)."""
    out = os.path.join(data, "scan-days.json")
    if os.path.exists(out):
        return json.load(open(out))
    _, days = packages()
    res = []
    for p in days:
        tb = tarballs(data, p)
        n = sum(len([x for x in subprocess.run(["bsdtar", "-tvf", t], capture_output=True, text=True)
                     .stdout.splitlines() if x.startswith("-")]) for t in tb)
        if n >= DAY_FILES // 2:
            res.append({"package": p, "tarballs": tb, "members": n})
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    return res



def default_holdfast():
    """The release build (under $CARGO_TARGET_DIR when set); the debug build only when there
    is none, and then said loudly by warn_debug."""
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
    release = os.path.join(target, "release/holdfast")
    return release if os.path.exists(release) else os.path.join(target, "debug/holdfast")


def warn_debug(holdfast):
    """A debug build's times are not holdfast's: say so at the start and again at the end."""
    if os.path.basename(os.path.dirname(os.path.abspath(holdfast))) != "debug":
        return
    msg = (f"WARNING: this run uses a DEBUG build ({holdfast}): its times are not holdfast's; "
           "build with `cargo build --release -p holdfast` or pass --holdfast")
    print(msg, file=sys.stderr, flush=True)
    atexit.register(print, msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--holdfast", default=os.path.join(ROOT, "target/release/holdfast"))
    a = ap.parse_args()
    main_pkgs, day_pkgs = packages()
    fetch(a.data, main_pkgs + day_pkgs)
    build(a.data, a.holdfast)
    days = scan_days(a.data)
    for name, _, _ in STAGES:
        print(name, json.load(open(os.path.join(a.data, "sites", name, "site.json"))))
    print(f"{len(days)} scan days:", [d["members"] for d in days])


if __name__ == "__main__":
    main()
