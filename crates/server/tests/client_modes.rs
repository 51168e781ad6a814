//! The real stoney Perl client's two modes, over a real sshd as the account's own OS user and
//! with the exact rsync options of `OnlineBackup.pl` 2.0.11: legacy (`LEGACY=1`: `rsync
//! --delete -rSlHtvz ... ~/incoming/<prefix>/`) and its default dated mode (`--delete --backup
//! --backup-dir ~/.snapshots/YYYYMMDD/<prefix>` into the same `~/incoming/<prefix>/`). Several
//! runs of each with server snapshots in between; then every attack the account's key allows
//! (`rsync --inplace`, `--backup-dir` into a snapshot, `chmod`, `mv`, `rm`, `ln`, a planted
//! `daily.N`) leaves every server snapshot byte-identical, and the sizes equal `du -sb`.
//! One sshd and one directory for the whole file (CI time).

use holdfast_server::directory::Directory;
use holdfast_server::{homes, jobs, size, ServerConfig};
use holdfast_testkit::sshd::Sshd;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HOST: &str = "modes.test";

struct OsUsers(Vec<String>);

impl Drop for OsUsers {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = Command::new("userdel").arg(u).output();
        }
    }
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `cmd` over ssh as `user` (the account's key, its login shell expands `~`).
fn ssh(sshd: &Sshd, user: &str, cmd: &str) -> Output {
    Command::new("ssh")
        .args(sshd.ssh_args())
        .arg(format!("{user}@127.0.0.1"))
        .arg(cmd)
        .output()
        .unwrap()
}

/// The client's XML upload: `ssh mkdir -p` then `rsync -e ssh FILE host:DIR/FILE`.
fn upload_xml(sshd: &Sshd, user: &str, t: &Path, prefix: &str, name: &str, body: &str) {
    let dir = format!("~/incoming/{prefix}/.sepiola_backup");
    ok(
        &ssh(sshd, user, &format!("mkdir -p {dir}")),
        "mkdir xml dir",
    );
    let f = t.join(format!("{user}-{name}"));
    std::fs::write(&f, body).unwrap();
    let o = Command::new("rsync")
        .arg("-e")
        .arg(sshd.ssh_command())
        .arg(&f)
        .arg(format!("{user}@127.0.0.1:{dir}/{name}"))
        .output()
        .unwrap();
    ok(&o, "xml upload");
}

/// `OnlineBackup.pl` with `LEGACY=1` (its options, `--files-from=-` on stdin).
fn legacy_run(sshd: &Sshd, user: &str, client: &Path, excl: &Path, prefix: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new("rsync")
        .arg(format!("--exclude-from={}", excl.display()))
        .args(["--delete", "-rSlHtvze", &sshd.ssh_command()])
        .args([
            "--chmod=Du+wx,u+r",
            "--perms",
            "--delete-excluded",
            "--files-from=-",
        ])
        .arg(client)
        .arg(format!("{user}@127.0.0.1:~/incoming/{prefix}/"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"data\n").unwrap();
    c.wait_with_output().unwrap()
}

/// `OnlineBackup.pl` in its default mode (no `LEGACY` key in the shipped config).
fn dated_run(
    sshd: &Sshd,
    user: &str,
    client: &Path,
    incl: &Path,
    excl: &Path,
    prefix: &str,
    day: &str,
) -> Output {
    Command::new("rsync")
        .args(["--rsh", &sshd.ssh_command()])
        .args([
            "--recursive",
            "--sparse",
            "--links",
            "--hard-links",
            "--times",
        ])
        .args(["--verbose", "--compress", "--delete", "--backup"])
        .arg("--backup-dir")
        .arg(format!("~/.snapshots/{day}/{prefix}"))
        .arg("--files-from")
        .arg(incl)
        .arg("--exclude-from")
        .arg(excl)
        .arg(client)
        .arg(format!("{user}@127.0.0.1:~/incoming/{prefix}/"))
        .output()
        .unwrap()
}

fn started(id: u32) -> String {
    format!("<?xml version=\"1.0\"?>\n<backup_started><startdate>2026-11-2{id}T20:00:00+01:00</startdate><id>{id}</id><client><identifier>Online Backup Perl Script</identifier><version>2.0.11</version><operatingsystem>Linux</operatingsystem></client></backup_started>\n")
}

/// Every file, link and folder of the server's snapshots: path -> (bytes or link target,
/// owner, mode).
fn server_snapshots(home: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, u32)> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(home.join(".snapshots"))
        .unwrap()
        .flatten()
    {
        // the server's snapshots only: not what the account planted under such a name
        let md = e.path().symlink_metadata().unwrap();
        if !homes::is_rotating(&e.file_name().to_string_lossy()) || !md.is_dir() || md.uid() != 0 {
            continue;
        }
        for f in walkdir::WalkDir::new(e.path()).follow_links(false) {
            let f = f.unwrap();
            let md = f.path().symlink_metadata().unwrap();
            let bytes = if md.file_type().is_symlink() {
                std::fs::read_link(f.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if md.is_file() {
                std::fs::read(f.path()).unwrap()
            } else {
                vec![]
            };
            m.insert(f.path().to_path_buf(), (bytes, md.uid(), md.mode()));
        }
    }
    m
}

fn du_sb(home: &Path) -> [u64; 2] {
    let o = Command::new("du")
        .args(["-sb", "incoming", ".snapshots"])
        .current_dir(home)
        .output()
        .unwrap();
    ok(&o, "du");
    let v: Vec<u64> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    [v[0], v[1]]
}

#[test]
fn both_client_modes_work_and_no_attack_changes_a_snapshot() {
    let id = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        eprintln!("skipped: making OS users needs root");
        return;
    }
    holdfast_testkit::require("useradd");
    holdfast_testkit::require("rsync");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tag = holdfast_testkit::tag();
    let (legacy, dated) = (format!("hfl{tag}"), format!("hfd{tag}"));
    let mut ldif =
        std::fs::read_to_string(holdfast_testkit::slapd::ldap_dir().join("example.ldif")).unwrap();
    for u in [&legacy, &dated] {
        ldif += &format!(
            "\ndn: uid={u},ou=accounts,ou=backup,ou=services,dc=stoney-cloud,dc=org\n\
             objectClass: account\nobjectClass: sstBackup\nuid: {u}\nhost: {HOST}\n\
             sstQuota: 104857600\nsstBackupIntervalDaily: 3\n"
        );
    }
    std::fs::write(t.join("dir.ldif"), ldif).unwrap();
    let sshd = Sshd::start(&t.join("sshd")).unwrap();
    let cfg = ServerConfig {
        ldif: Some(t.join("dir.ldif")),
        host: Some(HOST.into()),
        homes_root: t.join("homes"),
        state_dir: t.join("state"),
        ..ServerConfig::default()
    };
    std::fs::create_dir_all(&cfg.homes_root).unwrap();
    let dir = Directory::open(&cfg).unwrap();
    let accounts = dir.accounts_for_host(HOST).unwrap();
    assert_eq!(accounts.len(), 2);
    let _users = OsUsers(vec![legacy.clone(), dated.clone()]);
    let key = std::fs::read_to_string(sshd.client_key.with_extension("pub")).unwrap();
    let mut home = BTreeMap::new();
    for acc in &accounts {
        let h = homes::home_of(acc, &cfg.homes_root).unwrap();
        let o = Command::new("useradd")
            .args(["--system", "--user-group", "--shell", "/bin/sh", "-p", "*"])
            .arg("--home-dir")
            .arg(&h)
            .arg(&acc.uid)
            .output()
            .unwrap();
        ok(&o, "useradd");
        let r = homes::ensure_home(acc, &cfg.homes_root, std::slice::from_ref(&key)).unwrap();
        assert!(r.owner.is_some(), "{r:?}");
        home.insert(acc.uid.clone(), r.home);
    }
    let mut p = home[&legacy].parent().unwrap().to_path_buf();
    while p.starts_with(&cfg.homes_root) {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p.pop();
    }
    for p in home[&dated].ancestors().skip(1) {
        if !p.starts_with(&cfg.homes_root) {
            break;
        }
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let snaps_mode = std::fs::metadata(home[&dated].join(".snapshots"))
        .unwrap()
        .mode();
    assert_eq!(snaps_mode & 0o7777, 0o1770);

    // the client machine: /data with files; an empty exclude list, an include list
    let client = t.join("client");
    std::fs::create_dir_all(client.join("data/sub")).unwrap();
    let excl = t.join("excludes");
    std::fs::write(&excl, "").unwrap();
    let incl = t.join("includes");
    std::fs::write(&incl, "data\n").unwrap();
    std::fs::write(client.join("data/constant.bin"), vec![3u8; 40_000]).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", client.join("data/shadow-link")).unwrap();

    // three runs in each mode, the server's daily snapshot after each
    let mut versions = vec![];
    for run in 0..3u32 {
        let text = format!("run {run}\n").repeat(100 + run as usize);
        std::fs::write(client.join("data/sub/changing.txt"), &text).unwrap();
        std::fs::write(client.join(format!("data/new{run}")), vec![b'n'; 500]).unwrap();
        if run > 0 {
            std::fs::remove_file(client.join(format!("data/new{}", run - 1))).unwrap();
        }
        versions.push(text);
        for u in [&legacy, &dated] {
            upload_xml(&sshd, u, t, "pc", "backupStarted.xml", &started(run));
        }
        ok(
            &legacy_run(&sshd, &legacy, &client, &excl, "pc"),
            &format!("legacy run {run}"),
        );
        let day = format!("2026112{run}");
        ok(
            &dated_run(&sshd, &dated, &client, &incl, &excl, "pc", &day),
            &format!("dated run {run}"),
        );
        let r = jobs::snapshot_all(&cfg, &dir, "daily", None, false).unwrap();
        assert_eq!(r.errors(), 0, "{r:?}");
    }
    for u in [&legacy, &dated] {
        let s = home[u].join(".snapshots");
        for (n, v) in versions.iter().rev().enumerate() {
            assert_eq!(
                &std::fs::read_to_string(s.join(format!("daily.{n}/pc/data/sub/changing.txt")))
                    .unwrap(),
                v,
                "{u} daily.{n}"
            );
        }
        assert!(s.join("daily.2/pc/data/new0").is_file());
        assert!(!s.join("daily.1/pc/data/new0").exists());
        assert!(s
            .join("daily.0/pc/.sepiola_backup/backupStarted.xml")
            .is_file());
        let link = s.join("daily.0/pc/data/shadow-link");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        // no snapshot file shares an inode with incoming/; unchanged ones are shared
        let inc = std::fs::metadata(home[u].join("incoming/pc/data/constant.bin")).unwrap();
        let d0 = std::fs::metadata(s.join("daily.0/pc/data/constant.bin")).unwrap();
        let d2 = std::fs::metadata(s.join("daily.2/pc/data/constant.bin")).unwrap();
        assert_ne!(inc.ino(), d0.ino(), "{u}");
        assert_eq!(d0.ino(), d2.ino(), "{u}");
        assert_eq!((d0.uid(), d0.mode() & 0o777), (0, 0o640), "{u}");
    }
    // the dated mode's own change folders: the client's, writable by it, with old versions
    let ds = home[&dated].join(".snapshots");
    for (run, day) in [(0usize, "20261121"), (1, "20261122")] {
        let old = ds.join(day).join("pc/data/sub/changing.txt");
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            versions[run],
            "{day}"
        );
        assert_ne!(std::fs::metadata(ds.join(day)).unwrap().uid(), 0);
    }
    assert!(ds.join("20261122/pc/data/new1").is_file());

    // sizes measured once (fills the scan cache), then the attacks
    let before: BTreeMap<String, _> = home
        .iter()
        .map(|(u, h)| (u.clone(), server_snapshots(h)))
        .collect();
    jobs::size_all(&cfg, &dir, None, false, false).unwrap();

    let u = &legacy;
    let h = &home[u];
    let f = "data/sub/changing.txt";
    // 1. rsync --inplace over a file that every snapshot also holds (unchanged content
    //    there: constant.bin), growing it
    std::fs::write(client.join("data/constant.bin"), vec![9u8; 900_000]).unwrap();
    let o = Command::new("rsync")
        .args(["-rt", "--inplace", "-e", &sshd.ssh_command()])
        .arg(client.join("data/constant.bin"))
        .arg(format!("{u}@127.0.0.1:~/incoming/pc/data/constant.bin"))
        .output()
        .unwrap();
    ok(&o, "inplace into incoming (its own files)");
    // 2. the same with --inplace straight at a snapshot, and --backup-dir into one
    let o = Command::new("rsync")
        .args(["-rt", "--inplace", "-e", &sshd.ssh_command()])
        .arg(client.join("data/constant.bin"))
        .arg(format!(
            "{u}@127.0.0.1:~/.snapshots/daily.0/pc/data/constant.bin"
        ))
        .output()
        .unwrap();
    assert!(!o.status.success(), "inplace into a snapshot");
    std::fs::write(client.join(f), "evil\n").unwrap();
    let o = Command::new("rsync")
        .args(["-rt", "--backup", "--backup-dir", "~/.snapshots/daily.1/pc"])
        .args(["-e", &sshd.ssh_command()])
        .arg(format!("{}/", client.display()))
        .arg(format!("{u}@127.0.0.1:~/incoming/pc/"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "backup-dir into a snapshot");
    // 3. shell commands with the account's key
    let planted = [
        "chmod -R u+w ~/.snapshots/daily.0".to_string(),
        format!("chmod 666 ~/.snapshots/daily.0/pc/{f}"),
        format!("echo evil > ~/.snapshots/daily.0/pc/{f}"),
        "mv ~/.snapshots/daily.1 ~/.snapshots/mine".to_string(),
        "rm -rf ~/.snapshots/daily.2".to_string(),
        "ln ~/.snapshots/daily.0/pc/data/constant.bin ~/incoming/hardlink".to_string(),
        "touch ~/.snapshots/daily.0/new".to_string(),
        "chmod 777 ~/.snapshots".to_string(),
    ];
    for cmd in &planted {
        let o = ssh(&sshd, u, cmd);
        assert!(!o.status.success(), "{cmd} succeeded");
    }
    // allowed, but never used as a snapshot: a daily.3 of its own, and a symlink daily.4
    ok(
        &ssh(
            &sshd,
            u,
            "mkdir ~/.snapshots/daily.3 && echo x > ~/.snapshots/daily.3/planted",
        ),
        "mkdir daily.3",
    );
    ok(
        &ssh(&sshd, u, "ln -s /etc ~/.snapshots/daily.4"),
        "symlink daily.4",
    );
    // and data hidden under the names an older holdfast did not count: counted all the same
    ok(
        &ssh(
            &sshd,
            u,
            "mkdir ~/.snapshots/.trash ~/.snapshots/.incomplete.daily && head -c 200000 /dev/zero > ~/.snapshots/.trash/hidden && head -c 100000 /dev/zero > ~/.snapshots/.incomplete.daily/hidden",
        ),
        "hide data",
    );
    let after: BTreeMap<String, _> = home
        .iter()
        .map(|(u, h)| (u.clone(), server_snapshots(h)))
        .collect();
    for (u, b) in &before {
        let a = &after[u];
        let changed: Vec<_> = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .take(5)
            .collect();
        assert!(changed.is_empty(), "{u}: a snapshot changed: {changed:?}");
        assert!(b.len() > 20, "{u}: {} entries", b.len());
    }
    // sizes are exact after the attack, with the cache and without
    for full in [false, true] {
        let r = jobs::size_all(&cfg, &dir, Some(u), false, full).unwrap();
        let got = [
            r.outcomes[0].detail["backup"]["apparent"].as_u64().unwrap(),
            r.outcomes[0].detail["snapshots"]["apparent"]
                .as_u64()
                .unwrap(),
        ];
        assert_eq!(got, du_sb(h), "full={full}");
        assert!(got[0] > 900_000, "the grown file counts: {got:?}");
        assert!(got[1] > 300_000, "the hidden data counts: {got:?}");
    }
    // the next rotation moves the planted folders aside and rotates the real ones
    let r = jobs::snapshot_all(&cfg, &dir, "daily", Some(u), false).unwrap();
    assert_eq!(r.errors(), 0, "{r:?}");
    let repaired = r.outcomes[0].detail["repaired"].to_string();
    assert!(
        repaired.contains("daily.3") && repaired.contains("daily.4"),
        "{repaired}"
    );
    let s = h.join(".snapshots");
    for n in 0..3 {
        let m = s.join(format!("daily.{n}")).symlink_metadata().unwrap();
        assert!(m.is_dir() && m.uid() == 0, "daily.{n}");
    }
    assert_eq!(
        std::fs::read(s.join("daily.0/pc/data/constant.bin")).unwrap(),
        vec![9u8; 900_000]
    );
    assert_eq!(
        std::fs::read(s.join("daily.1/pc/data/constant.bin")).unwrap(),
        vec![3u8; 40_000]
    );
    // getQuota over the account's key: the line the size job wrote, same numbers as
    // `server quota` (used sizes rounded up, so free space is never overstated)
    let r = jobs::size_all(&cfg, &dir, Some(u), false, false).unwrap();
    assert_eq!(r.errors(), 0, "{r:?}");
    let du = du_sb(h);
    let quota = size::quota_line(104_857_600, du[0], du[1]);
    assert!(quota.starts_with("100 1 "), "{quota}");
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("getQuota"), size::GETQUOTA_SCRIPT).unwrap();
    for p in [t, &bin, &bin.join("getQuota")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let o = ssh(&sshd, u, &bin.join("getQuota").display().to_string());
    ok(&o, "getQuota");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), quota);
    let q = std::fs::metadata(h.join(size::QUOTA_FILE)).unwrap();
    assert_eq!((q.uid(), q.mode() & 0o777), (0, 0o640));
    assert!(!ssh(&sshd, u, "echo '9999 0 0' > ~/.quota").status.success());
}
