//! `holdfast server ...` as an operator runs it: a config file pointing at a real slapd with
//! the shipped tree, homes in a temp dir.

use holdfast_testkit::slapd::Slapd;
use std::path::Path;
use std::process::{Command, Output};

const HOST: &str = "backup-01.stoney-cloud.org";

fn holdfast(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn server_commands_against_real_slapd() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let slapd = Slapd::start(&t.join("slapd")).unwrap();
    let conf = t.join("holdfast.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nldap_url = \"{}\"\nbind_dn = \"{}\"\npassword_file = \"{}\"\n\
             host = \"{HOST}\"\nhomes_root = \"{}\"\nstate_dir = \"{}\"\n",
            slapd.url,
            slapd.bind_dn,
            slapd.password_file.display(),
            t.join("homes").display(),
            t.join("state").display()
        ),
    )
    .unwrap();
    let password = std::fs::read_to_string(&slapd.password_file).unwrap();

    let o = holdfast(&conf, &["server", "account", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("4000001") && out.contains("4000002") && !out.contains("4000003"));
    assert!(out.contains("(missing)"));

    // keys: a bad key file is refused with the line number, a good one is authorized
    let bad = t.join("bad.pub");
    std::fs::write(&bad, "not a key\n").unwrap();
    let o = holdfast(&conf, &["server", "account", "add", "4000001", "--key"]);
    assert!(!o.status.success());
    let o = holdfast(
        &conf,
        &[
            "server",
            "account",
            "add",
            "4000001",
            "--key",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));
    assert!(
        !t.join("homes/1/001/000/4000001").exists(),
        "nothing made on bad input"
    );
    let key = t.join("k.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyForTests test@host\n",
    )
    .unwrap();
    for uid in ["4000001", "4000002"] {
        let o = holdfast(
            &conf,
            &[
                "server",
                "account",
                "add",
                uid,
                "--key",
                key.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let home1 = t.join("homes/1/001/000/4000001");
    let home2 = t.join("homes/2/002/000/4000002");
    assert!(home1.join("incoming").is_dir() && home1.join(".snapshots").is_dir());
    let ak = std::fs::read_to_string(home1.join(".ssh/authorized_keys")).unwrap();
    assert_eq!(ak.lines().count(), 1);
    // adding again changes nothing and duplicates no key
    let o = holdfast(
        &conf,
        &[
            "server",
            "account",
            "add",
            "4000001",
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(home1.join(".ssh/authorized_keys")).unwrap(),
        ak
    );
    // an unknown account is a clear error
    let o = holdfast(&conf, &["server", "account", "add", "4999999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no backup account 4999999"),
        "{}",
        stderr(&o)
    );

    // another user cannot even list a home
    let id = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&id.stdout).trim() == "0" {
        let o = Command::new("runuser")
            .args(["-u", "nobody", "--", "ls"])
            .arg(home2.join("incoming"))
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "nobody could list another account's home"
        );
    }

    // data, then snapshot (dry run first), size, quota
    std::fs::create_dir_all(home1.join("incoming/pc/.sepiola_backup")).unwrap();
    std::fs::write(
        home1.join("incoming/pc/big"),
        vec![1u8; 3 * 1024 * 1024 + 5],
    )
    .unwrap();
    std::fs::create_dir_all(home2.join("incoming/laptop")).unwrap();
    let o = holdfast(&conf, &["server", "snapshot", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("4000001: would create daily.0 from incoming"),
        "{}",
        stdout(&o)
    );
    assert!(!home1.join(".snapshots/daily.0").exists());
    let o = holdfast(&conf, &["server", "snapshot", "--interval", "daily"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(home1.join(".snapshots/daily.0/pc/big").is_file());
    // the file leaves incoming: its 3 MiB are now only in the snapshot
    std::fs::remove_file(home1.join("incoming/pc/big")).unwrap();
    std::fs::write(home1.join("incoming/pc/small"), vec![1u8; 2 * 1024 * 1024]).unwrap();
    let o = holdfast(&conf, &["server", "size", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcomes"].as_array().unwrap().len(), 2);
    let o = holdfast(&conf, &["server", "quota", "4000001"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // used sizes round up (2 MiB + folders, 3 MiB + folders), so free is never overstated;
    // the jail's getQuota prints the line the size job wrote into the home
    assert_eq!(stdout(&o), "1024 3 4\n");
    assert_eq!(
        std::fs::read_to_string(home1.join(".quota")).unwrap(),
        "1024 3 4\n"
    );
    let o = holdfast(&conf, &["server", "account", "show", "4000001", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prefixes"], serde_json::json!(["pc"]));
    assert_eq!(v["layout"], "rotating");
    assert!(v["account"]["backup_size"].as_u64().unwrap() >= 2 * 1024 * 1024);

    // cron file
    let cron = t.join("cron.d-holdfast-server");
    let o = holdfast(
        &conf,
        &[
            "server",
            "schedule",
            "install",
            "--system",
            "cron",
            "--cron-file",
            cron.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = std::fs::read_to_string(&cron).unwrap();
    assert!(c.contains("server snapshot --interval daily") && c.contains(" server size"));
    assert!(c.contains(&conf.canonicalize().unwrap().display().to_string()));

    // nothing printed or logged carries the LDAP password
    for args in [
        vec!["-vv", "server", "account", "list"],
        vec!["-vv", "server", "size"],
    ] {
        let o = holdfast(&conf, &args);
        assert!(!stdout(&o).contains(password.trim()) && !stderr(&o).contains(password.trim()));
    }

    // LDAP down: one line naming the server, exit 1, homes untouched
    drop(slapd);
    let before = std::fs::read_dir(home1.join(".snapshots")).unwrap().count();
    let o = holdfast(&conf, &["server", "snapshot"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot reach LDAP server ldap://127.0.0.1"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert_eq!(
        std::fs::read_dir(home1.join(".snapshots")).unwrap().count(),
        before
    );
}

/// systemd first: one timer per server job (enabled) where systemd runs, replacing a cron file
/// written earlier; the cron file only without systemd. No LDAP needed.
#[test]
fn server_schedule_install_prefers_systemd_timers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let units = t.join("units");
    let conf = t.join("holdfast.toml");
    std::fs::write(
        &conf,
        format!("[schedule]\nunit_dir = \"{}\"\n", units.display()),
    )
    .unwrap();
    let cron = t.join("cron.d-holdfast-server");
    let cron_arg = cron.to_str().unwrap();

    // Without systemd (forced): the cron file, no units.
    let o = holdfast(
        &conf,
        &[
            "server",
            "schedule",
            "install",
            "--system",
            "cron",
            "--cron-file",
            cron_arg,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&cron)
        .unwrap()
        .contains("server snapshot --interval daily"));
    assert!(!units.exists());

    // With systemd: a service and a timer per job, the timers enabled, the cron file gone.
    let o = holdfast(
        &conf,
        &[
            "server",
            "schedule",
            "install",
            "--system",
            "systemd",
            "--cron-file",
            cron_arg,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!cron.exists(), "one scheduler only: {}", stdout(&o));
    for (when, unit, args) in holdfast_server::jobs::JOBS {
        let svc = std::fs::read_to_string(units.join(format!("holdfast-server-{unit}.service")))
            .unwrap_or_else(|e| panic!("{unit}.service: {e}"));
        assert!(svc.contains(&format!(" server {args}")), "{svc}");
        let timer =
            std::fs::read_to_string(units.join(format!("holdfast-server-{unit}.timer"))).unwrap();
        assert!(timer.contains("OnCalendar="), "{when}: {timer}");
        assert!(
            units
                .join("timers.target.wants")
                .join(format!("holdfast-server-{unit}.timer"))
                .symlink_metadata()
                .is_ok(),
            "{unit}.timer enabled"
        );
    }
    assert!(
        !units.join("holdfast-backup.timer").exists(),
        "a backup server gets no client backup"
    );

    // auto: whichever this machine runs.
    let o = holdfast(
        &conf,
        &[
            "server",
            "schedule",
            "install",
            "--dry-run",
            "--cron-file",
            cron_arg,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    if Path::new("/run/systemd/system").is_dir() {
        assert!(out.contains("holdfast-server-check.timer"), "{out}");
    } else {
        assert!(
            out.contains("server check") && !out.contains(".timer"),
            "{out}"
        );
    }
}

/// `schedule install --server` and `server schedule install` are one install: the same
/// lines, and the server jobs in one cron file whichever ran last.
#[test]
fn the_server_jobs_live_in_one_cron_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (main, server) = (t.join("cron-holdfast"), t.join("cron-server"));
    let conf = t.join("holdfast.toml");
    std::fs::write(
        &conf,
        format!(
            "[backup]\ncron_file = {:?}\n[server]\ncron_file = {:?}\n",
            main.display().to_string(),
            server.display().to_string()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| holdfast(&conf, args);
    // `--cron-file`, as `server schedule install` names it (an alias of `--file`).
    let o = run(&[
        "schedule",
        "install",
        "--server",
        "--no-backup",
        "--system",
        "cron",
        "--cron-file",
        main.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&main)
        .unwrap()
        .contains(" server check"));

    let o = run(&["server", "schedule", "install", "--system", "cron"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!main.exists(), "the server jobs twice: {}", stdout(&o));
    let c = std::fs::read_to_string(&server).unwrap();
    let check = c.lines().find(|l| l.contains(" server check")).unwrap();
    assert!(
        check.contains(" -q ") && check.contains("--syslog"),
        "{check}"
    );

    let o = run(&["schedule", "install", "--server", "--system", "cron"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = std::fs::read_to_string(&main).unwrap();
    assert!(c.contains(" backup") && c.contains(" server check"), "{c}");
    assert!(!server.exists(), "the server jobs twice: {}", stdout(&o));

    // Now beside the backup job: moving them is refused, naming the file.
    let o = run(&["server", "schedule", "install", "--system", "cron"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&main.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert!(!server.exists());
}
