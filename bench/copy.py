#!/usr/bin/env python3
"""Off-site copy benchmark: `holdfast copy` of a day's new snapshot to a second ssh server,
against the rsync runs an operator would script for the same job, on the same data.

The site is the shared benchmark data set (bench/dataset.py: real Debian source packages
unpacked by `holdfast upload` into a site with FOSSology's schema): the `--site` stage when it
is built, else a site made here from the first source packages DATA/src already holds, up to
--max-bytes. `holdfast backup` writes it to a local primary target (pool layout); then each
"day" uploads one more source package (a scan day's new files, with their database rows),
backs up again, and copies the new snapshot to an sshd on loopback (a second server) with:

  holdfast       `holdfast copy`: sends the files the copy's newest list lacks, proves each
                 one on the copy (sha1sum + md5sum there), sends the dump against the copy's
                 previous dump, commits (manifest last), applies the copy's retention
  rsync-mirror   `rsync -aH --size-only --delete` of the whole primary target (pool and
                 snapshot folders) to the second server: walks every file each day
  rsync-linkdest `rsync -aH --size-only --link-dest=../<previous day>` of the repository to a
                 new folder per day on the second server (hard-link trees, rsnapshot style)

Each day the tools run interleaved, in a rotating order; the day's caches are dropped before
each tool (cold). Reported: seconds, bytes sent over ssh (rsync's `Total bytes sent`;
holdfast's own count of rsync's bytes for the files and the dump), medians over the days, and
the machine's load. The initial copy (day 0) is reported too.

Usage: bench/copy.py [--work DIR] [--site quarter] [--max-bytes 300M] [--days 3]
                     [--holdfast target/release/holdfast] [--holdfast-b OTHER_BUILD]
Run as root (PostgreSQL runs as the postgres user; sshd needs root).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
from dataset import default_holdfast, warn_debug  # noqa: E402
from dataset import DATA, ROOT, Site, Sshd, count  # noqa: E402


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def cold():
    """Dirty pages written, the page cache dropped; a run that cannot drop it stops rather
    than time warm runs as cold ones."""
    sh(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        sys.exit(f"cannot drop the page cache ({e}): the runs would be warm, not cold; run as root")


def load():
    return open("/proc/loadavg").read().split()[0]


def rsync_sent(out):
    for line in out.splitlines():
        if line.startswith("Total bytes sent:"):
            return int(line.split(":")[1].strip().replace(",", ""))
    return 0


def timed(cmd, env=None, ok=(0,)):
    """Seconds and output of `cmd`, which must exit with one of `ok` (rsync's 24, files that
    vanished while it ran, is passed for rsync alone)."""
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    secs = time.monotonic() - t
    if r.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[:600]}")
    return secs, r.stdout


RSYNC_OK = (0, 24)


def size_arg(s):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = s.strip().lower()
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


def make_site(work, stage, max_bytes, holdfast):
    """A copy of the data set's `stage` site, or a site built from DATA/src. Returns the site
    (started) and the source packages left for the days."""
    main_pkgs, day_pkgs = dataset.packages()
    root = os.path.join(work, "site")
    mark = os.path.join(work, "site-built")
    if os.path.exists(mark):
        site = Site(root)  # built by an earlier run (its days' uploads are added again)
        site.start()
        return site, day_pkgs
    shutil.rmtree(root, ignore_errors=True)
    built = os.path.join(DATA, "sites", stage)
    if os.path.exists(os.path.join(built, "site.json")):
        sh(["cp", "-a", built, root])
        site = Site(root)
        site.start()
        return site, day_pkgs
    site = Site(root)
    site.create()
    left = []
    for p in main_pkgs:
        tb = dataset.tarballs(DATA, p)
        if not tb:
            continue
        if count(site.repo)[1] >= max_bytes:
            left.append(p)
            continue
        upload(site, holdfast, tb)
    open(mark, "w").close()
    return site, day_pkgs + left


def upload(site, holdfast, tarballs):
    """`holdfast upload`; exit code 3 (a member it could not unpack) still made the upload."""
    # (its own file: Site.toml names the file by layout, and the copy's is the pool one)
    cfg = site.toml("rolling", os.path.join(site.root, "unused-store"))
    r = subprocess.run([holdfast, "--config", cfg, "-q", "upload", "--json"] + tarballs,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode not in (0, 3):
        sys.exit(f"holdfast upload {tarballs} failed ({r.returncode}): {r.stderr.strip()[:400]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-bench-copy")
    ap.add_argument("--site", default="quarter")
    ap.add_argument("--max-bytes", type=size_arg, default=size_arg("300M"))
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--holdfast", default=default_holdfast())
    ap.add_argument("--holdfast-b", help="a second build, timed as `holdfast-b` in the same rotation: "
                    "it copies the same primary to an off-site folder of its own (A/B of a change)")
    a = ap.parse_args()
    warn_debug(a.holdfast)
    if os.geteuid() != 0:
        sys.exit("run as root: sshd, and the page cache dropped before every timed run")
    work = os.path.abspath(a.work)
    stores, scratch = os.path.join(work, "stores"), os.path.join(work, "scratch")
    shutil.rmtree(stores, ignore_errors=True)
    for d in (stores, scratch):
        os.makedirs(d, exist_ok=True)
    site, day_pkgs = make_site(work, a.site, a.max_bytes, a.holdfast)
    repo = site.repo
    files, bytes_ = count(repo)
    print(f"site: {files} files, {bytes_/1e6:.0f} MB, {site.rows()}", flush=True)

    sshd = Sshd(os.path.join(work, "sshd"))
    primary = os.path.join(stores, "primary")
    offsite = os.path.join(stores, "offsite")
    q = json.dumps
    def copy_toml(name, folder):
        return site.toml("pool", primary,
                         f'dump_spool = {q(scratch)}\n\n[[backup.copy]]\nname = "offsite"\n'
                         f'target = {q(f"ssh://root@127.0.0.1:{sshd.port}{folder}")}\nkeep = 30\n'
                         f'after_backup = false\nssh_identity = {q(sshd.key)}\n'
                         f'ssh_options = [{", ".join(q(o) for o in sshd.opts)}]\n'
                         f'\n[backup.superuser]\nsocket_dir = {q(site.pg)}\n', name=name)
    toml = copy_toml("pool", offsite)
    builds = {"holdfast": (a.holdfast, toml)}
    if a.holdfast_b:
        builds["holdfast-b"] = (a.holdfast_b, copy_toml("pool-b", os.path.join(stores, "offsite-b")))
        print(f"holdfast   = {a.holdfast}\nholdfast-b = {a.holdfast_b}", flush=True)
    hf = [a.holdfast, "--config", toml, "-q"]
    results = {t: [] for t in list(builds) + ["rsync-mirror", "rsync-linkdest"]}
    try:
        def run(tool, day):
            cold()
            if tool in builds:
                binary, conf = builds[tool]
                secs, out = timed([binary, "--config", conf, "copy", "--json"])
                runs = json.loads(out)
                c = runs[0]["run"]["copied"]
                sent = sum(x["sent_bytes"] + x["dump_sent_bytes"] for x in c)
                new = sum(x["new_files"] for x in c)
                return secs, sent, new
            if tool == "rsync-mirror":
                secs, out = timed(["rsync", "-aH", "--size-only", "--delete", "--stats", "-e", sshd.rsh,
                                   primary + "/", f"root@127.0.0.1:{stores}/rsync-mirror/"], ok=RSYNC_OK)
            else:
                dest = f"{stores}/rsync-linkdest/day{day}/"
                args = ["rsync", "-aH", "--size-only", "--stats", "-e", sshd.rsh, "--rsync-path",
                        f"mkdir -p {stores}/rsync-linkdest && rsync"]
                if day > 0:
                    args.append(f"--link-dest=../day{day-1}")
                secs, out = timed(args + [repo + "/", f"root@127.0.0.1:{dest}"], ok=RSYNC_OK)
            nf = 0
            for line in out.splitlines():
                if line.startswith("Number of regular files transferred:"):
                    nf = int(line.split(":")[1].strip().replace(",", ""))
            return secs, rsync_sent(out), nf

        timed(hf + ["backup"])
        order = list(results)
        for day in range(a.days + 1):
            if day > 0:
                before = count(repo)[0]
                while day_pkgs:
                    tb = dataset.tarballs(DATA, day_pkgs.pop(0))
                    if tb:
                        upload(site, a.holdfast, tb)
                        break
                secs, _ = timed(hf + ["backup"])
                print(f"day {day}: {count(repo)[0] - before} new files, backup {secs:.1f} s", flush=True)
            order = order[1:] + order[:1]
            for tool in order:
                secs, sent, nf = run(tool, day)
                print(f"  day {day} {tool:<15} {secs:7.2f} s  sent {sent/1e6:8.2f} MB  "
                      f"files {nf:6}  load {load()}", flush=True)
                if day > 0:
                    results[tool].append({"secs": secs, "sent": sent, "files": nf})
    finally:
        site.stop()
        sshd.stop()
    print(f"\nmedians over {a.days} day(s), cold caches, load now {load()}:")
    med = {t: (statistics.median(r["secs"] for r in v), statistics.median(r["sent"] for r in v))
           for t, v in results.items() if v}
    for t, (s, b) in med.items():
        print(f"  {t:<15} {s:7.2f} s  sent {b/1e6:8.2f} MB")
    if "holdfast" in med:
        h = med["holdfast"]
        for t, (s, b) in med.items():
            if t != "holdfast":
                print(f"  {t} / holdfast: time {s/h[0]:.2f}x, bytes sent {b/max(h[1],1):.2f}x")
    with open(os.path.join(work, "copy-results.json"), "w") as f:
        json.dump({"files": files, "bytes": bytes_, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
