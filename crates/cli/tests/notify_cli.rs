//! `holdfast server check` and `holdfast templates sync` through the real binary: a real
//! slapd, the outbox as the mail delivery, and a real sshd + rsync for the template sync.

use holdfast_testkit::slapd::Slapd;
use holdfast_testkit::sshd::Sshd;
use std::path::Path;
use std::process::{Command, Output};

fn holdfast(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const BASE: &str = "dc=stoney-cloud,dc=org";

fn ldif(home: &Path) -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: stoney-cloud\no: x\n\n"
    );
    for ou in [
        "ou=people",
        "ou=services",
        "ou=backup,ou=services",
        "ou=accounts,ou=backup,ou=services",
        "ou=configuration,ou=backup,ou=services",
        "ou=reseller,ou=configuration,ou=backup,ou=services",
    ] {
        let n = ou.split(',').next().unwrap().trim_start_matches("ou=");
        s += &format!("dn: {ou},{BASE}\nobjectClass: organizationalUnit\nou: {n}\n\n");
    }
    let r = format!("uid=1000001,ou=reseller,ou=configuration,ou=backup,ou=services,{BASE}");
    s += &format!("dn: {r}\nobjectClass: account\nuid: 1000001\n\n");
    s += &format!("dn: ou=notifications,{r}\nobjectClass: organizationalUnit\nobjectClass: sstBackupNotifications\nou: notifications\nsstMailTo: Desk <desk@r1.example>\nsstNotificationWarning: quota\n\n");
    s += &format!("dn: ou=settings,{r}\nobjectClass: organizationalUnit\nobjectClass: sstBackupSettings\nou: settings\nsstMailFrom: backup@r1.example\nsstBackupWarningOn: TRUE\nsstNotificationWarningMedium: mail\nsstNotificationWarningLevel: 80\n\n");
    s += &format!(
        "dn: uid=4000001,ou=accounts,ou=backup,ou=services,{BASE}\nobjectClass: account\nobjectClass: sstBackup\nobjectClass: sstRelationship\nuid: 4000001\nhost: cli-test\nhomeDirectory: {}\nmail: it@a1.example\nsstQuota: 100\nsstBackupSize: 70\nsstIncrementSize: 20\nsstBelongsToResellerUID: 1000001\n\n",
        home.display()
    );
    s
}

#[test]
fn server_check_writes_the_outbox_and_dry_run_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(t.path().join("tree.ldif"), ldif(&home)).unwrap();
    let slapd = Slapd::start_with(&t.path().join("slapd"), &[t.path().join("tree.ldif")]).unwrap();
    let outbox = t.path().join("outbox");
    let config = t.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nldap_url = \"{}\"\nbind_dn = \"{}\"\npassword_file = \"{}\"\nhost = \"cli-test\"\n\n\
             [notify]\nstate = \"{}\"\noutbox = \"{}\"\nserver_name = \"cli\"\n",
            slapd.url,
            slapd.bind_dn,
            slapd.password_file.display(),
            t.path().join("state.sqlite").display(),
            outbox.display()
        ),
    )
    .unwrap();

    let o = holdfast(
        &config,
        &[
            "server",
            "check",
            "--task",
            "quota",
            "--dry-run",
            "--now",
            "2026-11-21T10:00:00Z",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("Subject: Backup space almost full (account 4000001)"),
        "{out}"
    );
    assert!(out.contains("To: Desk <desk@r1.example>"), "{out}");
    assert!(out.contains("1 warning(s) (dry run)"), "{out}");
    assert!(!outbox.exists() && !t.path().join("state.sqlite").exists());

    let o = holdfast(
        &config,
        &["server", "check", "--now", "2026-11-21T10:00:00Z", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["accounts"], 1);
    assert_eq!(r["mails"].as_array().unwrap().len(), 2);
    let emls: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(emls.len(), 2, "without SMTP the outbox is the delivery");
    // Nothing new the same day.
    let o = holdfast(
        &config,
        &["server", "check", "--now", "2026-11-21T11:00:00Z"],
    );
    assert!(text(&o).contains("0 message(s) written"), "{}", text(&o));

    let o = holdfast(&config, &["server", "check", "--task", "space"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown task"), "{}", text(&o));
}

#[test]
fn templates_sync_pulls_listed_folders_deletes_stale_and_reports_broken() {
    let t = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&t.path().join("sshd")).unwrap();
    let src = t.path().join("selfcare/themes");
    let dest = t.path().join("local/themes");
    let sub = "templates/services/backup";
    for (theme, file, body) in [
        (
            "r1.example",
            "quota.customer.en.txt",
            "Subject: Q {{ account }}\n\n{{ percent }}%\n",
        ),
        (
            "r2.example",
            "quota.reseller.en.txt",
            "Subject: {{ account }\n\nbroken\n",
        ),
        (
            "r3.example",
            "quota.customer.en.txt",
            "Subject: not listed\n\nx\n",
        ),
    ] {
        let d = src.join(theme).join(sub);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), body).unwrap();
    }
    std::fs::create_dir_all(src.join("r1.example/css")).unwrap();
    std::fs::write(src.join("r1.example/css/site.css"), "body{}").unwrap();
    let stale = dest
        .join("r1.example")
        .join(sub)
        .join("old.customer.en.txt");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "Subject: old\n\nold\n").unwrap();
    // planted on the self-care server: a template that links to a root-only file, and one
    // that links to a template of another reseller; on the receiving side, a link left
    // under a template's name
    let secret = t.path().join("secret.txt");
    std::fs::write(&secret, "Subject: SECRET\n\nroot only\n").unwrap();
    let r1 = src.join("r1.example").join(sub);
    std::os::unix::fs::symlink(&secret, r1.join("schedule.customer.en.txt")).unwrap();
    std::os::unix::fs::symlink(
        src.join("r2.example")
            .join(sub)
            .join("quota.reseller.en.txt"),
        r1.join("quota.reseller.en.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, stale.with_file_name("upgrade.customer.en.txt")).unwrap();
    let list = t.path().join("list.txt");
    std::fs::write(&list, format!("r1.example/{sub}/\nr2.example/{sub}/\n")).unwrap();
    // the port is its own setting; the other options stay options
    let ssh_opts: Vec<String> = sshd
        .ssh_args()
        .chunks(2)
        .filter(|kv| kv[0] == "-o")
        .flat_map(|kv| kv.iter().map(|a| format!("{a:?}")))
        .collect();
    let config = t.path().join("holdfast.toml");
    let pushed = t.path().join("backup-server/themes");
    std::fs::write(
        &config,
        format!(
            "[notify]\nthemes_dir = \"{}\"\n\n[notify.sync]\nremote = \"{user}@127.0.0.1\"\nidentity_file = \"{}\"\nport = {}\nssh_options = [{}]\nsource_dir = \"{}\"\nfiles_from = \"{}\"\npush_to = [\"{user}@127.0.0.1\", \"{user}@127.0.0.2\"]\nremote_dir = \"{}\"\n",
            dest.display(),
            sshd.client_key.display(),
            sshd.port,
            ssh_opts.join(", "),
            src.display(),
            list.display(),
            pushed.display(),
            user = Sshd::user(),
        ),
    )
    .unwrap();
    // A dry run lists what the pull would copy and delete, and changes nothing.
    let o = holdfast(&config, &["templates", "sync", "--dry-run"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("deleting") && out.contains("old.customer.en.txt"),
        "{out}"
    );
    assert!(out.contains("quota.customer.en.txt"), "{out}");
    assert!(stale.exists(), "a dry run deleted {}", stale.display());
    assert!(!dest.join("r2.example").exists(), "a dry run copied: {out}");
    let o = holdfast(&config, &["templates", "sync"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        dest.join("r1.example")
            .join(sub)
            .join("quota.customer.en.txt")
            .is_file(),
        "{out}"
    );
    assert!(dest
        .join("r2.example")
        .join(sub)
        .join("quota.reseller.en.txt")
        .is_file());
    assert!(
        !dest.join("r3.example").exists(),
        "unlisted reseller copied"
    );
    assert!(
        !dest.join("r1.example/css").exists(),
        "files outside the template folder copied"
    );
    assert!(
        !stale.exists(),
        "--delete did not remove the stale template"
    );
    // no link crossed over, and the one left here was removed
    let here = dest.join("r1.example").join(sub);
    for n in [
        "schedule.customer.en.txt",
        "quota.reseller.en.txt",
        "upgrade.customer.en.txt",
    ] {
        assert!(here.join(n).symlink_metadata().is_err(), "{n} synced");
    }
    assert!(
        out.contains("2 reseller folder(s), 2 template(s) checked, 1 broken"),
        "{out}"
    );
    assert!(
        out.contains("r2.example/templates/services/backup/quota.reseller.en.txt"),
        "{out}"
    );

    let cron = t.path().join("cron.d/holdfast-templates");
    let o = holdfast(
        &config,
        &[
            "templates",
            "sync",
            "--install-cron",
            "--cron-file",
            cron.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let entry = std::fs::read_to_string(&cron).unwrap();
    let line = entry
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("templates sync"))
        .unwrap();
    assert!(line.starts_with("00 04 * * * root "), "{line}");
    assert!(
        line.contains(&format!("--config {}", config.display())),
        "{line}"
    );
    // the seed's direction: pushed from the self-care node to each notification server; one
    // unreachable server (a bad target) is reported, the other still gets the templates
    std::fs::create_dir_all(&pushed).unwrap();
    let o = holdfast(&config, &["templates", "push", "--dry-run"]);
    let out = text(&o);
    assert!(out.contains("would get the changes above"), "{out}");
    assert!(
        !pushed.join("r1.example").exists(),
        "a dry run pushed: {out}"
    );
    let o = holdfast(&config, &["templates", "push"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("1 of 2 server(s) failed"), "{out}");
    // the two links are reported too: they would never be read
    assert!(
        out.contains("2 reseller folder(s), 4 template(s) checked, 3 broken"),
        "{out}"
    );
    let there = pushed.join("r1.example").join(sub);
    assert!(there.join("quota.customer.en.txt").is_file(), "{out}");
    assert!(pushed
        .join("r2.example")
        .join(sub)
        .join("quota.reseller.en.txt")
        .is_file());
    assert!(!pushed.join("r3.example").exists() && !pushed.join("r1.example/css").exists());
    for n in ["schedule.customer.en.txt", "quota.reseller.en.txt"] {
        assert!(there.join(n).symlink_metadata().is_err(), "{n} pushed");
    }
    let cron = t.path().join("cron.d/distribute-templates");
    let o = holdfast(
        &config,
        &[
            "templates",
            "push",
            "--install-cron",
            "--cron-file",
            cron.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let entry = std::fs::read_to_string(&cron).unwrap();
    let line = entry
        .lines()
        .find(|l| l.starts_with("00 04 * * * root "))
        .unwrap_or_else(|| panic!("{entry}"));
    assert!(
        line.contains("templates push 2>&1)") && line.contains("| logger -t distributeTemplates"),
        "{line}"
    );
    assert!(!line.contains('%'), "cron reads % as a newline: {line}");
    // Run as cron runs it, with a push that fails (a logger that only swallows input): the
    // failure reaches cron's mail, not only syslog.
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("logger"), "#!/bin/sh\ncat > /dev/null\n").unwrap();
    std::fs::set_permissions(
        bin.join("logger"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cmd = line.strip_prefix("00 04 * * * root ").unwrap();
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("holdfast templates push failed (exit 3)"),
        "{o:?}"
    );
}

#[test]
fn server_check_counts_a_message_the_relay_refused_and_exits_incomplete() {
    use holdfast_testkit::smtp::{Smtp, SmtpOptions};
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(t.path().join("tree.ldif"), ldif(&home)).unwrap();
    let slapd = Slapd::start_with(&t.path().join("slapd"), &[t.path().join("tree.ldif")]).unwrap();
    let smtp = Smtp::start(&t.path().join("smtp"), SmtpOptions::default()).unwrap();
    smtp.refuse(&["desk@r1.example"]);
    let outbox = t.path().join("outbox");
    let config = t.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nldap_url = \"{}\"\nbind_dn = \"{}\"\npassword_file = \"{}\"\nhost = \"cli-test\"\n\n\
             [notify]\nstate = \"{}\"\noutbox = \"{}\"\nserver_name = \"cli\"\n\n\
             [notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n",
            slapd.url,
            slapd.bind_dn,
            slapd.password_file.display(),
            t.path().join("state.sqlite").display(),
            outbox.display(),
            smtp.port
        ),
    )
    .unwrap();
    let o = holdfast(
        &config,
        &[
            "server",
            "check",
            "--task",
            "quota",
            "--now",
            "2026-11-21T10:00:00Z",
        ],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    let want = format!(
        "1 sent over SMTP, 0 waiting, 1 rejected (set aside in {})",
        outbox.join("rejected").display()
    );
    assert!(out.contains(&want), "{out}");
    assert_eq!(smtp.messages().len(), 1);
}
