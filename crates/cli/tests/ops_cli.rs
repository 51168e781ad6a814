//! What an operator sees of unattended runs: systemd units that systemd accepts, the journal
//! entry a failed run leaves (read back from a real systemd-journald), `-q` silence on
//! success, the scheduler started again after a run, exit code 130 on Ctrl-C mid-dump.
//!
//! The journal tests start `systemd-journald` in a private mount namespace (`unshare -m`,
//! tmpfs over /run/systemd/journal and /run/log/journal), so they need root, as the rest of
//! the suite does, and never touch the machine's own journal.

mod common;

use common::holdfast;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `commands` (argv lists) with a real systemd-journald listening on the standard
/// sockets of a private mount namespace, then returns every journal entry of identifier
/// `holdfast` as JSON objects, and each command's exit code.
fn with_journal(dir: &Path, commands: &[Vec<String>]) -> (Vec<serde_json::Value>, Vec<i32>) {
    let journald = holdfast_testkit::require("/lib/systemd/systemd-journald");
    let out = dir.join("journal.json");
    let codes = dir.join("codes");
    let mut script = format!(
        "set -u\nmount -t tmpfs tmpfs /run/systemd/journal || exit 90\n\
         mount -t tmpfs tmpfs /run/log/journal || exit 91\n\
         {} </dev/null >/dev/null 2>&1 &\njpid=$!\ntrap 'kill $jpid' EXIT\n\
         for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done\n\
         [ -S /run/systemd/journal/socket ] || exit 92\n: > {codes}\n",
        journald.display(),
        codes = codes.display()
    );
    for c in commands {
        let words: Vec<String> = c
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect();
        script.push_str(&format!(
            "env -u JOURNAL_STREAM {} >/dev/null 2>&1; echo $? >> {}\n",
            words.join(" "),
            codes.display()
        ));
    }
    // journald writes asynchronously; sync makes it flush before we read.
    script.push_str(&format!(
        "journalctl --sync 2>/dev/null || sleep 1\n\
         journalctl -D /run/log/journal -o json --no-pager -t holdfast > {}\n",
        out.display()
    ));
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    std::fs::create_dir_all("/run/log/journal").unwrap();
    let st = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .status()
        .unwrap();
    assert!(
        st.success(),
        "journal namespace script failed ({st}); it needs root and unshare -m"
    );
    let entries = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes = std::fs::read_to_string(&codes)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    (entries, codes)
}

/// The `ExecStart=` / `ExecStopPost=` argv of an installed unit (holdfast writes no quotes
/// for these temp paths; the assert keeps the split honest).
fn exec(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in\n{unit}"));
    assert!(!line.contains('"'), "{line}");
    line.split_whitespace().map(String::from).collect()
}

/// The value of `name{labels}` in Prometheus text.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    let key = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn field<'a>(e: &'a serde_json::Value, k: &str) -> &'a str {
    e.get(k).and_then(|v| v.as_str()).unwrap_or("")
}

#[test]
fn installed_units_pass_systemd_analyze_and_replace_the_cron_file() {
    let analyze = holdfast_testkit::require("systemd-analyze");
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("h.toml");
    let units = d.path().join("units");
    let cron = d.path().join("cron.d/holdfast");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nschedule = \"01:45\"\ncron_file = \"{}\"\n[schedule]\nunit_dir = \"{}\"\n",
            cron.display(),
            units.display()
        ),
    )
    .unwrap();
    // Without systemd: the cron file, with -q so cron mails only failures, and the scheduler
    // check after the backup whatever it returned.
    let o = holdfast(&cfg, &["schedule", "install", "--system", "cron"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let c = std::fs::read_to_string(&cron).unwrap();
    assert!(
        c.contains(&format!(
            "\n45 1 * * * root {BIN} --config {} --syslog -q backup; ",
            cfg.display()
        )),
        "{c}"
    );
    assert!(c.contains("-q scheduler ensure\n"), "{c}");
    let o = holdfast(&cfg, &["schedule", "show"]);
    assert!(
        text(&o.stdout).contains(&format!("active: cron file {}", cron.display()))
            || text(&o.stdout).contains("no cron daemon"),
        "{}",
        text(&o.stdout)
    );

    let o = holdfast(
        &cfg,
        &[
            "schedule", "install", "--system", "systemd", "--server", "--serve",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!cron.exists(), "the cron file goes: one scheduler only");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&units)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "holdfast-backup.service",
        "holdfast-backup.timer",
        "holdfast-serve.service",
        "holdfast-server-snapshot-daily.timer",
        "holdfast-server-check.service",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let timer = std::fs::read_to_string(units.join("holdfast-backup.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 01:45:00\n"), "{timer}");
    assert!(timer.contains("Persistent=true\n") && timer.contains("RandomizedDelaySec="));
    // The server's daily snapshot no longer fires at the clients' default backup time.
    let daily =
        std::fs::read_to_string(units.join("holdfast-server-snapshot-daily.timer")).unwrap();
    assert!(!daily.contains("02:30"), "{daily}");
    assert!(units
        .join("timers.target.wants/holdfast-backup.timer")
        .symlink_metadata()
        .is_ok());
    assert!(units
        .join("multi-user.target.wants/holdfast-serve.service")
        .symlink_metadata()
        .is_ok());
    // systemd's own parser: unknown keys, bad calendar specs, missing executables fail here.
    let o = Command::new(&analyze)
        .arg("verify")
        .args(&files)
        .current_dir(&units)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "systemd-analyze verify: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = holdfast(&cfg, &["schedule", "show"]);
    let out = text(&o.stdout);
    assert!(
        out.contains("active: systemd timer holdfast-backup.timer")
            || out.contains("holdfast-backup.timer is enabled"),
        "{out}"
    );
}

#[test]
fn unattended_runs_quiet_on_success_journal_on_failure_scheduler_restarted() {
    let (d, scratch) = common::scratch();
    let sources = holdfast_sandbox::sample::find_gz(2);
    holdfast_sandbox::sample::populate(&scratch.site, &sources).unwrap();
    let standin = StandIn::create(
        &d.path().join("sched"),
        &holdfast_testkit::tag(),
        Behaviour::default(),
    )
    .unwrap();
    standin.start().unwrap();
    let sc = standin.config(30);
    // pg_dumpall through a wrapper that says when it started and then takes its time, so a
    // Ctrl-C can land in the middle of the dump.
    let slow = d.path().join("slow-dumpall");
    // pg_dumpall runs as the postgres OS user (the superuser over the local socket) when
    // the tests run as root: its flag goes into a folder that user may write.
    let flags = d.path().join("flags");
    std::fs::create_dir(&flags).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&flags, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let dumping = flags.join("dumping");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nif [ -e {flag}.on ]; then touch {flag}; sleep 30; fi\nexec pg_dumpall \"$@\"\n",
            flag = dumping.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sched_toml = toml::to_string(&sc).unwrap();
    let config = |target: &Path| {
        format!(
            "[site]\nconf_dir = \"{}\"\nname = \"opsite\"\nstate_dir = \"{}\"\n[backup]\n\
             target = \"{}\"\nlock_file = \"{}\"\npg_dumpall = \"{}\"\n[schedule]\nunit_dir = \"{}\"\n\
             [scheduler]\n{sched_toml}",
            scratch.conf_dir().display(),
            d.path().join("state").display(),
            target.display(),
            d.path().join("lock").display(),
            slow.display(),
            d.path().join("units").display(),
        )
    };
    let cfg = d.path().join("h.toml");
    std::fs::write(&cfg, config(&d.path().join("target"))).unwrap();

    // A successful run with -q prints nothing at all: cron mails nothing.
    let o = holdfast(&cfg, &["-q", "backup"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "", "stdout with -q");
    assert_eq!(text(&o.stderr), "", "stderr with -q");
    // The run is recorded for monitoring.
    let m = text(&holdfast(&cfg, &["metrics"]).stdout);
    let labels = "{site=\"opsite\",kind=\"full\"}";
    assert_eq!(
        metric(&m, "holdfast_backup_last_result", labels),
        1.0,
        "{m}"
    );
    let success = metric(&m, "holdfast_backup_last_success_timestamp_seconds", labels);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - success).abs() < 120.0, "{m}");
    assert!(
        metric(&m, "holdfast_backup_last_bytes", labels) > 0.0,
        "{m}"
    );
    assert!(
        metric(&m, "holdfast_backup_last_files", labels) > 0.0,
        "{m}"
    );
    assert!(metric(&m, "holdfast_backup_last_scheduler_down_seconds", labels) > 0.0);
    // A dry run is no backup to monitoring: the record stays as the real run left it.
    let record = d.path().join("state/last-backup.json");
    let before = std::fs::read_to_string(&record).unwrap();
    let o = holdfast(&cfg, &["backup", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&record).unwrap(), before);
    // Without -q the same run reports its snapshot.
    let o = holdfast(&cfg, &["backup"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("snapshot "), "{}", text(&o.stdout));

    // An upload that does not exist is an error, not "0 checked".
    let o = holdfast(&cfg, &["verify", "--upload", "99999"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("no upload 99999"),
        "{}",
        text(&o.stderr)
    );
    // The snapshots' proof is recorded apart: the failed site check stays failed.
    let o = holdfast(&cfg, &["verify", "--all"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = text(&holdfast(&cfg, &["metrics"]).stdout);
    let proof = "{site=\"opsite\",kind=\"\"}";
    assert_eq!(metric(&m, "holdfast_verify_last_result", proof), 0.0, "{m}");
    assert_eq!(
        metric(&m, "holdfast_verify_snapshots_last_result", proof),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "holdfast_verify_snapshots_last_damaged_files", proof),
        0.0,
        "{m}"
    );

    // Ctrl-C in the middle of the dump: the terminal sends SIGINT to the whole foreground
    // process group (holdfast and pg_dumpall); holdfast cleans up and exits 130.
    std::fs::write(dumping.with_extension("on"), "").unwrap();
    let mut child =
        backup_signalled_mid_dump(&cfg, &dumping, std::process::Stdio::piped(), libc::SIGINT);
    let st = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(130), "{err}");
    assert!(
        standin.is_running(),
        "the scheduler runs again after Ctrl-C"
    );

    // The units are installed first: like every holdfast command, `schedule install` would
    // start a scheduler a dead run left stopped, and the unit's own ExecStopPost must do it here.
    let o = holdfast(&cfg, &["schedule", "install", "--system", "systemd"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // kill -9 in the middle of the dump (nothing can clean up): the scheduler stays stopped,
    // and holdfast's note says it was holdfast.
    std::fs::remove_file(&dumping).unwrap();
    let mut child =
        backup_signalled_mid_dump(&cfg, &dumping, std::process::Stdio::null(), libc::SIGKILL);
    child.wait().unwrap();
    std::fs::remove_file(dumping.with_extension("on")).unwrap();
    assert!(
        !standin.is_running(),
        "the killed run left the scheduler stopped"
    );

    // A failing run started as the installed unit starts it (the target cannot be made: a
    // regular file is in the way), then the unit's ExecStopPost. The journal gets the
    // failure at error priority with site and command, and the scheduler the killed run
    // left stopped is started.
    let blocker = d.path().join("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    std::fs::write(&cfg, config(&blocker.join("target"))).unwrap();
    let unit = std::fs::read_to_string(d.path().join("units/holdfast-backup.service")).unwrap();
    let (entries, codes) = with_journal(
        d.path(),
        &[exec(&unit, "ExecStart"), exec(&unit, "ExecStopPost")],
    );
    assert_eq!(codes, vec![1, 0], "{entries:#?}");
    let failed: Vec<_> = entries
        .iter()
        .filter(|e| field(e, "HOLDFAST_RESULT") == "failure")
        .collect();
    assert_eq!(failed.len(), 1, "{entries:#?}");
    let e = failed[0];
    assert_eq!(field(e, "PRIORITY"), "3", "{e:#}");
    assert_eq!(field(e, "SYSLOG_IDENTIFIER"), "holdfast");
    assert_eq!(field(e, "HOLDFAST_SITE"), "opsite");
    assert_eq!(field(e, "HOLDFAST_COMMAND"), "backup");
    assert_eq!(field(e, "HOLDFAST_EXIT_CODE"), "1");
    assert!(
        field(e, "MESSAGE").contains("blocker"),
        "the error names the target: {e:#}"
    );
    // The scheduler start is a warning in the journal, and it really started.
    assert!(
        entries.iter().any(|e| field(e, "PRIORITY") == "4"
            && field(e, "HOLDFAST_COMMAND") == "scheduler ensure"
            && field(e, "MESSAGE").contains("starting it")),
        "{entries:#?}"
    );
    let t = Instant::now();
    while !standin.is_running() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "scheduler not started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The failure is what the guide's alert rules fire on (evaluated here by hand on the
    // real metric values; promtool is not installed on the test machines):
    //   holdfast_backup_last_result == 0
    //   time() - holdfast_backup_last_success_timestamp_seconds > 26 * 3600
    let m = text(&holdfast(&cfg, &["metrics"]).stdout);
    assert_eq!(
        metric(&m, "holdfast_backup_last_result", labels),
        0.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "holdfast_backup_last_exit_code", labels),
        1.0,
        "{m}"
    );
    let last_ok = metric(&m, "holdfast_backup_last_success_timestamp_seconds", labels);
    assert!(last_ok >= success, "a failure keeps the last success: {m}");
    let fires_at = |t: f64| t - last_ok > 26.0 * 3600.0;
    assert!(!fires_at(chrono::Utc::now().timestamp() as f64));
    assert!(fires_at(last_ok + 27.0 * 3600.0));

    // A scheduler the operator stopped stays stopped.
    standin.kill_all();
    let t = Instant::now();
    while standin.is_running() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "scheduler not killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = holdfast(&cfg, &["scheduler", "ensure"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("left as it is"),
        "{}",
        text(&o.stdout)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!standin.is_running());
}

#[test]
fn first_run_sample_config_completions_and_man_page() {
    let d = tempfile::tempdir().unwrap();
    let none = d.path().join("empty.toml");
    std::fs::write(&none, "").unwrap();
    let o = holdfast(&none, &["config", "init"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sample = text(&o.stdout);
    for key in [
        "# [backup]",
        "# schedule = \"02:30\"",
        "# precopy = true",
        "# dump_rsync = true",
        "# dump_spool = \"/var/tmp\"",
        "# online = false",
        "# [web]",
        "# listen = \"127.0.0.1:8340\"",
        "# [schedule]",
        "# random_delay_secs = 600",
        "# [scheduler]",
        "# [server]",
        "# [notify]",
    ] {
        assert!(sample.contains(key), "{key} in\n{sample}");
    }
    // As written it changes nothing; with every key line uncommented it is valid (unknown
    // keys are refused) and still the defaults.
    let written = d.path().join("holdfast.toml");
    let o = holdfast(
        &none,
        &["config", "init", "--output", written.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = holdfast(
        &none,
        &["config", "init", "--output", written.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "an existing file is not overwritten"
    );
    let defaults = text(&holdfast(&none, &["config", "show"]).stdout);
    assert_eq!(
        text(&holdfast(&written, &["config", "show"]).stdout),
        defaults
    );
    let open: String = sample
        .lines()
        .filter(|l| !l.contains("...") && !l.contains("(a table"))
        .map(|l| match l.strip_prefix("# ") {
            // A key line (`name = value`), not an explanation that happens to hold " = ".
            Some(k)
                if k.starts_with('[')
                    || k.split_once(" = ").is_some_and(|(key, _)| {
                        key.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    }) =>
            {
                format!("{k}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let uncommented = d.path().join("open.toml");
    std::fs::write(&uncommented, &open).unwrap();
    let o = holdfast(&uncommented, &["config", "show"]);
    assert!(o.status.success(), "{}\n{open}", text(&o.stderr));
    // Uncommented, the optional [notify.smtp] table is present (at its keys' defaults);
    // everything else is the default configuration.
    let shown = text(&o.stdout);
    let (before, after) = shown
        .split_once("[notify.smtp]\n")
        .expect("the optional table is shown");
    let after = after.split_once("\n\n").map_or("", |(_, rest)| rest);
    assert_eq!(format!("{before}{after}"), defaults);

    let o = holdfast(&none, &["completions", "bash"]);
    assert!(o.status.success());
    let bash = text(&o.stdout);
    assert!(
        bash.contains("complete -F _holdfast") && bash.contains("schedule"),
        "{bash}"
    );
    let o = holdfast(&none, &["man"]);
    let man = text(&o.stdout);
    assert!(
        man.contains(".TH holdfast 1") && man.contains("backup"),
        "{man}"
    );
}

/// Starts `holdfast backup` in its own process group and sends `signal` to the whole group
/// once the dump has begun (`dumping` appears), as a terminal or the OOM killer would.
fn backup_signalled_mid_dump(
    cfg: &Path,
    dumping: &Path,
    stderr: std::process::Stdio,
    signal: libc::c_int,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let child = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .arg("backup")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !dumping.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "dump never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: plain kill(2) on the process group we just created.
    unsafe { libc::kill(-(child.id() as i32), signal) };
    child
}

#[test]
fn quiet_runs_that_are_not_a_success_say_so_and_helpers_need_no_valid_config() {
    let d = tempfile::tempdir().unwrap();
    let none = d.path().join("empty.toml");
    std::fs::write(&none, "").unwrap();
    let dir = d.path().join("templates");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("quota.reseller.en.txt"),
        "Subject: {{ account }\n\nbroken\n",
    )
    .unwrap();
    // Exit 3 under -q (as the cron lines run): one line on stderr, so cron mails it.
    let o = holdfast(&none, &["-q", "templates", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "");
    assert!(
        text(&o.stderr).contains("holdfast templates check: incomplete (exit code 3)"),
        "{}",
        text(&o.stderr)
    );
    // A folder that is not there is an error, not "0 broken".
    let o = holdfast(&none, &["templates", "check", "/nonexistent/templates"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("/nonexistent/templates"));

    // With a configuration that does not parse, the helpers that make or need none work.
    let broken = d.path().join("broken.toml");
    std::fs::write(&broken, "[backup\n").unwrap();
    for args in [&["config", "init"][..], &["completions", "bash"], &["man"]] {
        let o = holdfast(&broken, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    }
    let o = holdfast(&broken, &["config", "show"]);
    assert_eq!(o.status.code(), Some(1));
    // `config init` writes the very file --config names, which does not exist yet.
    let new = d.path().join("new.toml");
    let o = holdfast(&new, &["config", "init", "--output", new.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(new.exists());

    // Commands that only read make no target: a wrong path or an unmounted disk is an
    // error, not an empty store.
    let nope = d.path().join("not-mounted/backups");
    let cfg = d.path().join("nope.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\ntarget = {:?}\n", nope.display().to_string()),
    )
    .unwrap();
    for args in [&["snapshots"][..], &["verify", "--all"]] {
        let o = holdfast(&cfg, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stdout));
        assert!(
            text(&o.stderr).contains("does not exist"),
            "{}",
            text(&o.stderr)
        );
    }
    assert!(!d.path().join("not-mounted").exists());

    // Every drill the crate has is offered, busy-backup included.
    let o = holdfast(&none, &["drill", "no-such-drill"]);
    assert_eq!(o.status.code(), Some(2));
    for s in holdfast_drill::Scenario::ALL {
        assert!(text(&o.stderr).contains(s.name()), "{}", text(&o.stderr));
    }
}
