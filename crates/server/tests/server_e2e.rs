//! The backup server end to end: a real slapd with the shipped schema and example tree (plus
//! one account whose home was never made), a real sshd, clients pushing with plain
//! `rsync -e ssh` into two accounts' `incoming/<prefix>/`, nine simulated days of rotation,
//! then size accounting checked against `du` and against what slapd holds.

use holdfast_server::directory::Directory;
use holdfast_server::{homes, jobs, metrics, status::Status, ServerConfig};
use holdfast_testkit::{slapd::Slapd, sshd::Sshd};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOST: &str = "backup-01.stoney-cloud.org";

const EXTRA: &str = "dn: uid=4000004,ou=accounts,ou=backup,ou=services,dc=stoney-cloud,dc=org
objectClass: account
objectClass: sstBackup
uid: 4000004
host: backup-01.stoney-cloud.org
sstQuota: 1048576
sstBackupIntervalDaily: 2
";

fn push(sshd: &Sshd, src: &Path, home: &Path, prefix: &str) {
    let out = Command::new(holdfast_testkit::require("rsync"))
        .args(["-a", "--delete", "-e"])
        // one SSH connection for all pushes (the master dies with sshd)
        .arg(format!(
            "{} -o ControlMaster=auto -o ControlPersist=30 -o ControlPath={}/cm-%p",
            sshd.ssh_command(),
            sshd.dir.display()
        ))
        .arg(format!("{}/", src.display()))
        .arg(format!(
            "{}@127.0.0.1:{}/incoming/{prefix}/",
            Sshd::user(),
            home.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Closes the shared SSH connection `push` opens, so no ssh process outlives the test.
struct CloseMux<'a>(&'a Sshd);

impl Drop for CloseMux<'_> {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .args(["-O", "exit", "-o"])
            .arg(format!("ControlPath={}/cm-%p", self.0.dir.display()))
            .arg("-p")
            .arg(self.0.port.to_string())
            .arg("127.0.0.1")
            .output();
    }
}

fn sepiola(client: &Path, day: u32, ok: bool) {
    let d = client.join(".sepiola_backup");
    std::fs::create_dir_all(&d).unwrap();
    let id = 1000 + day;
    std::fs::write(
        d.join("backupStarted.xml"),
        format!("<?xml version=\"1.0\"?>\n<backup_started><startdate>2026-11-{:02}T02:00:00+01:00</startdate><id>{id}</id><client><identifier>online-backup</identifier><version>2.1</version><operatingsystem>Linux</operatingsystem></client></backup_started>\n", 10 + day),
    )
    .unwrap();
    std::fs::write(
        d.join("backupEnded.xml"),
        format!("<?xml version=\"1.0\"?>\n<backup_ended><enddate>2026-11-{:02}T02:10:00+01:00</enddate><id>{id}</id><success>{}</success><client><identifier>online-backup</identifier><version>2.1</version><operatingsystem>Linux</operatingsystem></client></backup_ended>\n", 10 + day, u8::from(ok)),
    )
    .unwrap();
}

/// `du -sb` (or another block mode) over several trees in one invocation, like holdfast's
/// walk: each inode once, the first argument wins.
fn du(cwd: &Path, mode: &[&str], args: &[&str]) -> Vec<u64> {
    let out = Command::new("du")
        .args(mode)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

fn snapshot_names(home: &Path) -> BTreeSet<String> {
    std::fs::read_dir(home.join(".snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[test]
fn clients_push_server_rotates_counts_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let extra = t.join("extra.ldif");
    std::fs::write(&extra, EXTRA).unwrap();
    let slapd = Slapd::start_with(
        &t.join("slapd"),
        &[
            holdfast_testkit::slapd::ldap_dir().join("example.ldif"),
            extra,
        ],
    )
    .unwrap();
    let sshd = Sshd::start(&t.join("sshd")).unwrap();
    let _mux = CloseMux(&sshd);
    let cfg = ServerConfig {
        ldap_url: Some(slapd.url.clone()),
        bind_dn: Some(slapd.bind_dn.clone()),
        password_file: Some(slapd.password_file.clone()),
        base_dn: Some(slapd.base.clone()),
        host: Some(HOST.into()),
        homes_root: t.join("homes"),
        state_dir: t.join("state"),
        ..ServerConfig::default()
    };
    let dir = Directory::open(&cfg).unwrap();
    let accounts = dir.accounts_for_host(HOST).unwrap();
    let uids: Vec<_> = accounts.iter().map(|a| a.uid.as_str()).collect();
    assert_eq!(uids, ["4000001", "4000002", "4000004"]);

    // homes for the two real accounts; 4000004's home is never made
    let key = std::fs::read_to_string(sshd.client_key.with_extension("pub")).unwrap();
    let mut home = vec![];
    for acc in &accounts[..2] {
        let r = homes::ensure_home(acc, &cfg.homes_root, std::slice::from_ref(&key)).unwrap();
        assert_eq!(r.keys_added, 1);
        let ak = std::fs::read_to_string(r.home.join(".ssh/authorized_keys")).unwrap();
        assert_eq!(ak.trim(), key.trim());
        let mode = std::fs::metadata(&r.home).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "others must not read a home: {mode:o}");
        home.push(r.home);
    }
    assert_eq!(
        home[0],
        t.join("homes/1/001/000/4000001"),
        "traditional sharded path"
    );

    // clients: 4000001 backs up two computers, 4000002 one (GUI layout: <prefix>/backup/)
    let anna = t.join("client/pc-anna");
    let srv = t.join("client/fileserver");
    let bob = t.join("client/laptop-bob/backup");
    for d in [&anna, &srv, &bob] {
        std::fs::create_dir_all(d.join("docs/deep/er")).unwrap();
    }
    std::fs::write(anna.join("docs/constant.txt"), vec![b'c'; 70_000]).unwrap();
    std::fs::write(anna.join("docs/deep/er/nested.bin"), vec![7u8; 12_345]).unwrap();
    std::os::unix::fs::symlink("/etc", anna.join("docs/etc-link")).unwrap();
    std::fs::write(srv.join("docs/big.dat"), vec![1u8; 300_000]).unwrap();
    std::fs::write(bob.join("docs/thesis.odt"), vec![2u8; 50_000]).unwrap();

    let mut rot = vec![];
    for day in 0..9u32 {
        // each day: a new file, a changed file, yesterday's new file deleted on one client
        std::fs::write(
            anna.join(format!("docs/day{day}.txt")),
            vec![b'a'; 1000 + day as usize],
        )
        .unwrap();
        std::fs::write(
            anna.join("docs/changing.txt"),
            format!("version {day}\n").repeat(500),
        )
        .unwrap();
        if day > 0 {
            std::fs::remove_file(anna.join(format!("docs/day{}.txt", day - 1))).unwrap();
        }
        std::fs::write(srv.join(format!("docs/log{day}")), vec![b'l'; 20_000]).unwrap();
        std::fs::write(
            bob.join("docs/notes.txt"),
            format!("day {day}\n").repeat(300),
        )
        .unwrap();
        sepiola(&anna, day, true);
        sepiola(&srv, day, day != 4);
        sepiola(bob.parent().unwrap(), day, true);
        // the simulated days pass in milliseconds: give the same-sized rewritten files their
        // day's mtime, or rsync's quick check (size + mtime) would rightly skip them
        let when = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(1_763_000_000 + 86_400 * day as u64);
        for f in [anna.join("docs/changing.txt"), bob.join("docs/notes.txt")] {
            std::fs::File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        push(&sshd, &anna, &home[0], "pc-anna");
        push(&sshd, &srv, &home[0], "fileserver");
        push(&sshd, bob.parent().unwrap(), &home[1], "laptop-bob");
        if day == 3 || day == 7 {
            let r = jobs::snapshot_all(&cfg, &dir, "weekly", None, false).unwrap();
            rot.push(r);
        }
        let r = jobs::snapshot_all(&cfg, &dir, "daily", None, false).unwrap();
        // the account without a home is reported every day; the others still rotate
        assert_eq!(r.errors(), 1, "{r:?}");
        let bad = r.outcomes.iter().find(|o| o.error.is_some()).unwrap();
        assert_eq!(bad.uid, "4000004");
        assert!(bad.error.as_ref().unwrap().contains("missing"), "{bad:?}");
        assert!(r.outcomes[..2]
            .iter()
            .all(|o| o.detail["created"] == "daily.0"));
        rot.push(r);
    }

    // 4000001 keeps 7 daily, 4 weekly; on day 3 there was no daily.6 yet, on day 7 there was
    let want1: BTreeSet<String> = (0..7)
        .map(|n| format!("daily.{n}"))
        .chain(["weekly.0".to_string()])
        .collect();
    assert_eq!(snapshot_names(&home[0]), want1);
    // 4000002 keeps 3 daily, 2 weekly: weekly on day 3 and day 7
    let want2: BTreeSet<String> = ["daily.0", "daily.1", "daily.2", "weekly.0", "weekly.1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(snapshot_names(&home[1]), want2);
    // trash emptied after each run
    assert!(!home[0].join(".holdfast/trash").exists());
    // an expiring daily no weekly took became the new daily.0: 4000002's daily.2 on days 4-6
    // and 8, 4000001's daily.6 on day 8; the new one holds exactly what the real client pushed
    let recycled = |uid: &str| {
        rot.iter()
            .flat_map(|r| &r.outcomes)
            .filter(|o| o.uid == uid && o.detail["recycled"].is_string())
            .count()
    };
    assert_eq!((recycled("4000001"), recycled("4000002")), (1, 4));
    let files = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(root)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                (rel, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        files(&home[1].join(".snapshots/daily.0")),
        files(&home[1].join("incoming"))
    );

    // content and inodes: an unchanged file is one inode shared by the 8 snapshots, and
    // another one in incoming/ (so nothing the account writes reaches a snapshot)
    let s = home[0].join(".snapshots");
    let c = std::fs::metadata(home[0].join("incoming/pc-anna/docs/constant.txt")).unwrap();
    assert_eq!(c.nlink(), 1);
    let first = std::fs::metadata(s.join("daily.0/pc-anna/docs/constant.txt")).unwrap();
    assert_eq!(first.nlink(), 8);
    assert_ne!(first.ino(), c.ino());
    for n in want1.iter() {
        let m = std::fs::metadata(s.join(n).join("pc-anna/docs/constant.txt")).unwrap();
        assert_eq!(m.ino(), first.ino(), "{n}");
    }
    assert_eq!(
        std::fs::read_to_string(s.join("daily.2/pc-anna/docs/changing.txt")).unwrap(),
        "version 6\n".repeat(500)
    );
    assert!(s.join("daily.2/pc-anna/docs/day6.txt").exists());
    assert!(!s.join("daily.2/pc-anna/docs/day7.txt").exists());
    // weekly.0 was daily.6 on day 7, the snapshot of day 0
    assert!(s.join("weekly.0/pc-anna/docs/day0.txt").exists());
    assert!(!s.join("weekly.0/pc-anna/docs/day1.txt").exists());
    assert!(s
        .join("daily.0/fileserver/.sepiola_backup/backupEnded.xml")
        .is_file());
    assert!(home[1]
        .join(".snapshots/weekly.1/laptop-bob/backup/docs/thesis.odt")
        .is_file());

    // the planted symlink is a symlink in every snapshot; /etc was never entered
    let link = s.join("daily.0/pc-anna/docs/etc-link");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    for e in walkdir::WalkDir::new(&home[0]).follow_links(false) {
        let p = e.unwrap().into_path();
        assert!(!p.ends_with("passwd") && !p.ends_with("hostname"), "{p:?}");
    }

    // sizes: holdfast's walk vs du over the same trees in one invocation
    // first with a full walk, then twice with the scan cache: all must agree with du
    let full = jobs::size_all(&cfg, &dir, None, false, true).unwrap();
    let _fill = jobs::size_all(&cfg, &dir, None, false, false).unwrap();
    let r = jobs::size_all(&cfg, &dir, None, true, false).unwrap();
    assert!(
        cfg.state_dir
            .join("size-cache/4000001")
            .read_dir()
            .unwrap()
            .count()
            >= 8
    );
    for i in 0..2 {
        assert_eq!(full.outcomes[i].detail, r.outcomes[i].detail);
    }
    assert_eq!(r.errors(), 1);
    for (i, h) in home.iter().enumerate() {
        let o = &r.outcomes[i];
        let apparent = du(h, &["-sb"], &["incoming", ".snapshots"]);
        let allocated = du(h, &["-s", "-B1"], &["incoming", ".snapshots"]);
        let b = o.detail["backup"]["apparent"].as_u64().unwrap();
        let sn = o.detail["snapshots"]["apparent"].as_u64().unwrap();
        assert_eq!([b, sn], [apparent[0], apparent[1]], "{} apparent", o.uid);
        assert_eq!(
            [
                o.detail["backup"]["allocated"].as_u64().unwrap(),
                o.detail["snapshots"]["allocated"].as_u64().unwrap()
            ],
            [allocated[0], allocated[1]],
            "{} allocated",
            o.uid
        );
        // LDAP holds the new sizes (read back with ldapsearch, not our client)
        let ldif = slapd
            .ldapsearch(
                &format!("(uid={})", o.uid),
                &["sstBackupSize", "sstIncrementSize"],
            )
            .unwrap();
        assert!(ldif.contains(&format!("sstBackupSize: {b}\n")), "{ldif}");
        assert!(
            ldif.contains(&format!("sstIncrementSize: {sn}\n")),
            "{ldif}"
        );
    }
    // the snapshots hold real extra bytes: deleted dayN files and old changing.txt versions
    let snap1 = r.outcomes[0].detail["snapshots"]["apparent"]
        .as_u64()
        .unwrap();
    assert!(snap1 > 7 * 5000, "{snap1}");
    // and /etc was not counted: the backup is what the clients sent, plus directories
    let b1 = r.outcomes[0].detail["backup"]["apparent"].as_u64().unwrap();
    assert!(b1 < 700_000, "{b1}");
    let missing = &r.outcomes[2];
    assert!(missing.error.as_ref().unwrap().contains("4000004"));

    // status + metrics
    let st = Status::load(&cfg.state_dir);
    assert_eq!(st.accounts["4000001"].backup_bytes, Some(b1));
    assert!(st.accounts["4000004"].error.is_some());
    let m = metrics::render_from_config(&cfg);
    assert!(m.contains("holdfast_server_accounts 3\n"), "{m}");
    assert!(m.contains(&format!(
        "holdfast_server_backup_bytes{{uid=\"4000001\"}} {b1}\n"
    )));
    assert!(m.contains("holdfast_server_account_error{uid=\"4000004\"} 1\n"));
    assert!(m.contains("holdfast_server_account_error{uid=\"4000001\"} 0\n"));
    assert!(m.contains("holdfast_server_last_snapshot_age_seconds{uid=\"4000002\"}"));
}

#[test]
fn ldap_down_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut slapd = Slapd::start(&tmp.path().join("slapd")).unwrap();
    let cfg = ServerConfig {
        ldap_url: Some(slapd.url.clone()),
        bind_dn: Some(slapd.bind_dn.clone()),
        password_file: Some(slapd.password_file.clone()),
        host: Some(HOST.into()),
        homes_root: tmp.path().join("homes"),
        state_dir: tmp.path().join("state"),
        ldap_timeout_secs: 2,
        ..ServerConfig::default()
    };
    slapd.stop();
    let e = Directory::open(&cfg).err().unwrap();
    assert!(e.to_string().contains("cannot reach LDAP server"), "{e}");
    assert!(!tmp.path().join("homes").exists());
    assert!(!tmp.path().join("state").exists());
}

/// Removes the OS users a test made, even when it fails.
struct OsUsers(Vec<String>);

impl Drop for OsUsers {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = Command::new("userdel").arg(u).output();
        }
    }
}

fn try_push(sshd: &Sshd, user: &str, src: &Path, dest: &Path) -> std::process::Output {
    Command::new(holdfast_testkit::require("rsync"))
        .args(["-a", "-e", &sshd.ssh_command()])
        .arg(format!("{}/", src.display()))
        .arg(format!("{user}@127.0.0.1:{}/", dest.display()))
        .output()
        .unwrap()
}

#[test]
fn accounts_as_os_users_cannot_touch_each_other() {
    let id = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        eprintln!("skipped: making OS users needs root");
        return;
    }
    holdfast_testkit::require("useradd");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tag = holdfast_testkit::tag();
    let (a, b) = (format!("hfa{tag}"), format!("hfb{tag}"));
    let mut ldif = String::new();
    for u in [&a, &b] {
        ldif += &format!(
            "dn: uid={u},ou=accounts,ou=backup,ou=services,dc=stoney-cloud,dc=org\n\
             objectClass: account\nobjectClass: sstBackup\nuid: {u}\nhost: os-users.test\n\
             sstQuota: 1048576\nsstBackupIntervalDaily: 2\n\n"
        );
    }
    let extra = t.join("users.ldif");
    std::fs::write(&extra, ldif).unwrap();
    let slapd = Slapd::start_with(
        &t.join("slapd"),
        &[
            holdfast_testkit::slapd::ldap_dir().join("example.ldif"),
            extra,
        ],
    )
    .unwrap();
    let sshd = Sshd::start(&t.join("sshd")).unwrap();
    let cfg = ServerConfig {
        ldap_url: Some(slapd.url.clone()),
        host: Some("os-users.test".into()),
        homes_root: t.join("homes"),
        state_dir: t.join("state"),
        ..ServerConfig::default()
    };
    // the homes root must be passable for the accounts (as /var/backup is)
    std::fs::create_dir_all(&cfg.homes_root).unwrap();
    let dir = Directory::open(&cfg).unwrap(); // anonymous bind: slapd's default read access
    let accounts = dir.accounts_for_host("os-users.test").unwrap();
    assert_eq!(accounts.len(), 2);
    let _users = OsUsers(vec![a.clone(), b.clone()]);
    let key = std::fs::read_to_string(sshd.client_key.with_extension("pub")).unwrap();
    let mut home = vec![];
    for acc in &accounts {
        let h = homes::home_of(acc, &cfg.homes_root).unwrap();
        let o = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--shell",
                "/bin/sh",
                "-p",
                "*",
                "--home-dir",
            ])
            .arg(&h)
            .arg(&acc.uid)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r = homes::ensure_home(acc, &cfg.homes_root, std::slice::from_ref(&key)).unwrap();
        assert!(r.owner.is_some() && r.warnings.is_empty(), "{r:?}");
        home.push(r.home);
    }
    // shard folders above the homes: root's, passable
    let mut p = home[0].parent().unwrap().to_path_buf();
    while p.starts_with(&cfg.homes_root) {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p.pop();
    }
    let m = std::fs::metadata(&home[0]).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o750));
    let inc = std::fs::metadata(home[0].join("incoming")).unwrap();
    assert_eq!(inc.mode() & 0o777, 0o700);
    assert_ne!(inc.uid(), 0);

    // each account pushes into its own incoming/ over SSH, as itself
    let src = t.join("client/pc");
    std::fs::create_dir_all(src.join(".sepiola_backup")).unwrap();
    std::fs::write(src.join("data.txt"), "mine").unwrap();
    for (u, h) in [(&a, &home[0]), (&b, &home[1])] {
        let o = try_push(&sshd, u, &src, &h.join("incoming/pc"));
        assert!(
            o.status.success(),
            "{u}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // ...but not into the other's, nor into its own snapshots
    let o = try_push(&sshd, &a, &src, &home[1].join("incoming/pc"));
    assert!(!o.status.success(), "{a} wrote into {b}'s incoming/");
    let r = jobs::snapshot_all(&cfg, &dir, "daily", None, false).unwrap();
    assert_eq!(r.errors(), 0, "{r:?}");
    std::fs::write(src.join("sneaked-in.txt"), "later").unwrap();
    let o = try_push(&sshd, &a, &src, &home[0].join(".snapshots/daily.0/pc"));
    assert!(!o.status.success(), "{a} changed its own snapshot");
    assert!(!home[0]
        .join(".snapshots/daily.0/pc/sneaked-in.txt")
        .exists());
    let run = |u: &str, cmd: &[&str]| {
        Command::new("runuser")
            .args(["-u", u, "--"])
            .args(cmd)
            .output()
            .unwrap()
            .status
            .success()
    };
    let h0 = home[0].display().to_string();
    let h1 = home[1].display().to_string();
    assert!(
        run(&a, &["ls", &format!("{h0}/.snapshots/daily.0/pc")]),
        "reads own snapshots"
    );
    assert!(!run(&a, &["ls", &h1]), "lists another home");
    assert!(
        !run(&b, &["cat", &format!("{h0}/incoming/pc/data.txt")]),
        "reads another's data"
    );
    assert!(!run(
        &a,
        &[
            "mv",
            &format!("{h0}/.snapshots"),
            &format!("{h0}/incoming/x")
        ]
    ));
    assert!(!run(
        &a,
        &["rm", "-rf", &format!("{h0}/.snapshots/daily.0")]
    ));
    assert!(home[0].join(".snapshots/daily.0/pc/data.txt").is_file());
}
