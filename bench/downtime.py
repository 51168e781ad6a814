#!/usr/bin/env python3
"""Scheduler downtime per nightly backup: stop-for-everything, pre-copy and online mode, with
a busy FOSSology stand-in (agents adding and deleting uploads, files and rows, all through
the backups).

The repository is built from real archives the way FOSSology stores uploads (bench/backup.py's
`upload`: each archive is a gold file, every member it unpacks to a file in files/), with
pfile/upload/uploadtree rows naming every file, in a scratch PostgreSQL cluster holding
FOSSology's schema. The stand-in scheduler (holdfast-sandbox, example `busy_standin`) runs
two agents that add an upload (job row running, files written in two halves, then rows) and
delete the oldest busy upload (files first, then rows) in a loop.

Each "night": a new upload of real files arrives (one held-back archive), then one
`holdfast backup` per mode, interleaved, each to its own target so each builds on its own
previous night (rolling layout, hard links). The first night of each mode (the initial full
copy) is reported apart. Prints, per mode, the medians over the nights of: scheduler downtime
(`timings.downtime_secs`), dump time, total run time, and the checks: downtime <= dump + 10 s
(pre-copy), downtime = 0 (online). Warm caches (the site's pages stay cached, as on a busy
server); the load (`uptime`) is printed with the results.

Usage: bench/downtime.py [--work DIR] [--archives DIR] [--max-bytes 1.6G] [--nights 3]
                         [--holdfast target/release/holdfast]
Run as root (PostgreSQL runs as the postgres user).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util

spec = importlib.util.spec_from_file_location("bbackup", os.path.join(os.path.dirname(os.path.abspath(__file__)), "backup.py"))
bb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bb)
ROOT = bb.ROOT

MODES = [("stop-for-everything", ["--no-precopy"]), ("pre-copy", []), ("online", ["--online"])]


def archives_under(d):
    out = []
    for dirpath, _, fs in os.walk(d):
        for f in fs:
            if any(f.endswith(x) for x in (".tar.gz", ".tar.xz", ".tar.bz2", ".tgz", ".deb", ".zip")):
                out.append(os.path.join(dirpath, f))
    return sorted(out)


def add_rows(site, repo, upload_name):
    """pfile rows for every repository file no row names yet, and one upload whose tree
    names them (the gold files as its roots)."""
    psql = ["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(site.port), "-U", "fossy", "-d", "fossology"]
    env = dict(os.environ, PGPASSWORD="fossy")
    known = set(subprocess.run(psql + ["-c", "SELECT lower(pfile_sha1)||'.'||lower(pfile_md5)||'.'||pfile_size FROM pfile"],
                               env=env, capture_output=True, text=True, check=True).stdout.split())
    rows = []
    for kind in ("files",):
        for d, _, fs in os.walk(os.path.join(repo, "localhost", kind)):
            for f in fs:
                if f not in known:
                    s, m, z = f.split(".")
                    rows.append((s.upper(), m.upper(), z))
    if not rows:
        return 0
    data = "".join(f"{s}\t{m}\t{z}\n" for s, m, z in rows)
    sql = (
        "BEGIN;"
        "CREATE TEMP TABLE n (s text, m text, z int8);"
        "\\copy n FROM STDIN\n"
    )
    script = sql + data + "\\.\n" + (
        "INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_size) SELECT s, m, z FROM n;"
        f"WITH u AS (INSERT INTO upload (upload_filename, user_fk, upload_mode, upload_origin) VALUES ('{upload_name}', 1, 104, 'bench') RETURNING upload_pk) "
        "INSERT INTO uploadtree_a (upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) "
        "SELECT u.upload_pk, p.pfile_pk, 33188, 2*row_number() OVER (), 2*row_number() OVER () + 1, 'f' "
        "FROM u, n JOIN pfile p ON p.pfile_sha1 = n.s AND p.pfile_md5 = n.m AND p.pfile_size = n.z;"
        "COMMIT;\n"
    )
    subprocess.run(psql, input=script, env=env, text=True, check=True, stdout=subprocess.DEVNULL)
    return len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/holdfast-downtime")
    ap.add_argument("--archives", default="/work/bench-data/src")
    ap.add_argument("--max-bytes", type=bb.size_arg, default=bb.size_arg("1.6G"))
    ap.add_argument("--nights", type=int, default=3)
    default_bin = os.path.join(ROOT, "target/release/holdfast")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(ROOT, "target/debug/holdfast")
    ap.add_argument("--holdfast", default=default_bin)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    repo, stores, scratch = (os.path.join(work, x) for x in ("repository", "stores", "scratch"))
    for d in (repo, stores, scratch):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)

    arcs = archives_under(a.archives)
    held = arcs[-a.nights:]
    t = time.monotonic()
    total = used = 0
    for arc in arcs[: -a.nights]:
        if total >= a.max_bytes:
            break
        _, nb = bb.upload(repo, arc, scratch)
        total += nb
        used += 1
    files, bytes_ = bb.count(repo)
    print(f"repository: {files} files, {bytes_/1e9:.2f} GB from {used} real archives (built in {time.monotonic()-t:.0f} s)", flush=True)
    if bytes_ < 1.5e9:
        print(f"warning: repository under 1.5 GB ({bytes_/1e9:.2f} GB): give --archives more archives", flush=True)

    site = bb.Site(work, repo)
    standin = None
    try:
        n = add_rows(site, repo, "base")
        print(f"database: {n} pfile rows", flush=True)
        # The stand-in with busy agents (built from holdfast-sandbox's example).
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "holdfast-sandbox", "--example", "busy_standin"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_INCREMENTAL="0"))
        standin = os.path.join(work, "standin")
        shutil.rmtree(standin, ignore_errors=True)
        sched = subprocess.run([os.path.join(ROOT, "target/release/examples/busy_standin"), standin, "bench", site.conf],
                               capture_output=True, text=True, check=True).stdout
        tomls = {}
        for mode, _ in MODES:
            p = os.path.join(site.dir, f"holdfast-{mode}.toml")
            with open(p, "w") as f:
                f.write(f'[site]\nconf_dir = "{site.conf}"\nname = "bench"\n{sched}\nstop_timeout_secs = 120\n'
                        f'[backup]\ntarget = "{os.path.join(stores, mode)}"\nkeep = 3\ncheck_percent = 0.0\n'
                        f'lock_file = "{site.dir}/lock"\ncron_file = "{site.dir}/cron"\n'
                        f'[backup.superuser]\nsocket_dir = "{site.pg}"\n')
            tomls[mode] = p
        time.sleep(5)  # the agents get going

        results = {m: [] for m, _ in MODES}
        for night in range(a.nights + 1):
            if night > 0:
                bb.upload(repo, held[night - 1], scratch)
                add_rows(site, repo, f"night{night}")
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
