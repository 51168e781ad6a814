//! A real browser (Debian's headless Chromium, driven over its DevTools pipe) opens a
//! missing file's page, clicks "Recover from gold", and sees the file once the job is done.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Chromium with `--remote-debugging-pipe`: commands go to its fd 3, answers come from fd 4,
/// each a JSON message ended by a NUL byte. Killed with its whole process group on drop.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next: u64,
    session: Option<String>,
    profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// A browser that has answered its first command. A Chromium that dies while it starts
    /// (seen once in CI, three starting at once on two cores) is started again; its own
    /// messages are kept in its profile and shown if every try fails.
    fn start() -> Browser {
        // One Chromium starts at a time; the tests run beside each other once started.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut b = Browser::launch();
            match b.call("Browser.getVersion", json!({})) {
                Ok(_) => return b,
                Err(e) => {
                    let log = std::fs::read_to_string(b.profile.path().join("chromium.log"));
                    seen.push(format!("{e}; chromium said: {}", log.unwrap_or_default()));
                }
            }
        }
        panic!("chromium did not start:\n{}", seen.join("\n"));
    }

    fn launch() -> Browser {
        let exe = holdfast_testkit::require("chromium");
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let (cmd_r, cmd_w) = pipe(); // we write, chromium reads fd 3
        let (ans_r, ans_w) = pipe(); // chromium writes fd 4, we read
        use std::os::fd::AsRawFd;
        let (cr, aw) = (cmd_r.as_raw_fd(), ans_w.as_raw_fd());
        let mut cmd = Command::new(exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setpgid(0, 0);
                if libc::dup2(cr, 3) < 0 || libc::dup2(aw, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        drop(cmd_r);
        drop(ans_w);
        let (tx, rx) = mpsc::channel();
        let mut reader = std::fs::File::from(ans_r);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to: std::fs::File::from(cmd_w),
            from: rx,
            next: 0,
            session: None,
            profile,
        }
    }

    /// Sends a command and waits for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).map_err(|e| e.to_string())?;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .map_err(|_| format!("no answer to {method}"))?;
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    return Err(format!("{method}: {e}"));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    fn open(&mut self, url: &str) {
        let t = self
            .call("Target.createTarget", json!({ "url": url }))
            .unwrap();
        let s = self
            .call(
                "Target.attachToTarget",
                json!({ "targetId": t["targetId"], "flatten": true }),
            )
            .unwrap();
        self.session = Some(s["sessionId"].as_str().unwrap().to_string());
    }

    /// Evaluates JavaScript in the page; `None` while the page is (re)loading.
    fn eval(&mut self, js: &str) -> Option<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true }),
            )
            .ok()?;
        if r.get("exceptionDetails").is_some() {
            return None;
        }
        Some(r["result"]["value"].clone())
    }

    fn screenshot(&mut self, path: &std::path::Path) {
        if let Ok(r) = self.call("Page.captureScreenshot", json!({ "format": "png" })) {
            if let Some(b64) = r["data"].as_str() {
                let _ = std::fs::write(path, decode_base64(b64));
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling the process group this test created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::new();
    for ch in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in ch.iter().enumerate() {
            n |= (val(*c) as u32) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..ch.len() - 1]);
    }
    out
}

#[test]
fn browser_recovers_a_missing_file_with_one_click() {
    let f = fixture();
    let srv = start(&f);
    let (pk, path) = item(&f, "main.c");
    let content = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let url = format!("{}/upload/{}/item/{pk}", srv.url(), f.upload);

    add_user(&f, "fossy-admin", "an admin's password", 10, false);

    // The page needs a login: the browser lands on the login form, logs in with a
    // FOSSology user and comes back to the page it asked for.
    let mut b = Browser::start();
    b.open(&url);
    wait_for("the login form", 30, || {
        b.eval("document.getElementById('login') ? true : null")
            .filter(|v| v.as_bool() == Some(true))
    });
    b.screenshot(&f.dir.path().join("login.png"));
    b.eval(
        "document.getElementById('user').value = 'fossy-admin'; \
         document.getElementById('password').value = \"an admin's password\"; \
         document.getElementById('login').submit(); true",
    )
    .unwrap();
    let status = wait_for("the missing file's page", 30, || {
        b.eval("document.getElementById('status') && document.getElementById('status').innerText")
            .and_then(|v| v.as_str().map(str::to_string))
    });
    assert_eq!(status, "not in the repository");
    let notice = b
        .eval("document.getElementById('missing').innerText")
        .unwrap();
    assert!(notice.as_str().unwrap().contains("gold file"), "{notice}");
    let shots = f.dir.path();
    b.screenshot(&shots.join("missing.png"));

    // A real click on the button submits the form; the page follows the job and reloads.
    let clicked = b
        .eval("document.getElementById('recover').click(); true")
        .unwrap();
    assert_eq!(clicked, json!(true));
    let shown = wait_for("the recovered file in the page", 60, || {
        b.eval(
            "(location.search.includes('job=') && document.getElementById('content')) \
             ? document.getElementById('content').innerText : null",
        )
        .and_then(|v| v.as_str().map(str::to_string))
    });
    assert_eq!(shown, content);
    // The file can be in place a moment before the job is marked done; the page reloads
    // itself until then.
    let job = wait_for("the job marked done", 30, || {
        b.eval("document.getElementById('job') && document.getElementById('job').innerText")
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|j| j.contains("done"))
    });
    assert!(job.contains("done"), "{job}");
    b.screenshot(&shots.join("recovered.png"));
    if let Ok(dir) = std::env::var("HOLDFAST_SCREENSHOTS") {
        for n in ["login.png", "missing.png", "recovered.png"] {
            let _ = std::fs::copy(shots.join(n), std::path::Path::new(&dir).join(n));
        }
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

/// A backup server without FOSSology: the dashboard behind a token login shows the accounts
/// with quota bars, the last client run per prefix, the open warnings with the addresses
/// their mails wait for, and the outbox; /metrics has the per-account numbers.
#[test]
fn backup_server_dashboard_in_a_browser() {
    use holdfast_notify::mail::{Mail, Mailer};
    use holdfast_notify::state::{Key, State};
    use holdfast_server::status::{AccountStatus, RunStatus, Status};
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let server = holdfast_server::ServerConfig {
        state_dir: d.path().join("state"),
        ..Default::default()
    };
    let notify = holdfast_notify::NotifyConfig {
        state: d.path().join("notify.sqlite"),
        outbox: d.path().join("outbox"),
        ..Default::default()
    };
    let mib = 1024 * 1024;
    let mut status = Status {
        host: "backup1".into(),
        ..Default::default()
    };
    status.accounts.insert(
        "4000001".into(),
        AccountStatus {
            quota: Some(4 * mib),
            backup_bytes: Some(3 * mib + mib / 2),
            snapshot_bytes: Some(mib / 4),
            last_snapshot: Some(now),
            measured_at: Some(now),
            ..Default::default()
        },
    );
    status.accounts.insert(
        "4000002".into(),
        AccountStatus {
            quota: Some(10 * mib),
            backup_bytes: Some(mib),
            snapshot_bytes: Some(0),
            measured_at: Some(now),
            ..Default::default()
        },
    );
    status.runs.insert(
        "size".into(),
        RunStatus {
            at: Some(now),
            accounts: 2,
            errors: 0,
            seconds: 0.4,
        },
    );
    status.save(&server.state_dir).unwrap();
    let st = State::open(&notify.state).unwrap();
    let k = Key {
        task: "quota",
        account: "4000001",
        prefix: "",
    };
    st.mark_sent(&k, now).unwrap();
    st.record_run("4000002", "nas", "r1", false, now).unwrap();
    st.record_run("4000001", "laptop", "r2", true, now).unwrap();
    drop(st);
    // A mail a check run queued and recorded, waiting for SMTP.
    let mailer = Mailer::new(&notify.outbox, None).unwrap();
    mailer
        .queue(&Mail {
            from: "backup@provider.example".into(),
            to: vec!["customer@example.org".into()],
            subject: "Backup account 4000001: quota almost used up".into(),
            body: "3.75 of 4 MiB used.\n".into(),
        })
        .unwrap();
    assert_eq!(mailer.publish().unwrap(), 1);

    let tokens = d.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = holdfast_web::WebConfig {
        listen: "127.0.0.1:0".into(),
        token_file: Some(tokens),
        ..Default::default()
    };
    let (s2, n2) = (server.clone(), notify.clone());
    let dash: holdfast_web::dashboard::DashboardFn = std::sync::Arc::new(move || {
        serde_json::to_value(holdfast_notify::dashboard::gather(&s2, &n2)).unwrap()
    });
    let (s3, n3) = (server.clone(), notify.clone());
    let metrics: holdfast_web::MetricsFn = std::sync::Arc::new(move || {
        let d = holdfast_notify::dashboard::gather(&s3, &n3);
        holdfast_server::metrics::render_from_config(&s3) + &holdfast_notify::dashboard::metrics(&d)
    });
    let srv = holdfast_web::Server::start_server_only(cfg, dash, Some(metrics)).unwrap();
    assert_eq!(
        http_with(srv.addr, "GET", "/metrics", &[], None).status,
        401
    );
    let m = http(srv.addr, "GET", "/metrics", None).body;
    assert!(
        m.contains("holdfast_server_open_warnings{uid=\"4000001\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("holdfast_server_open_warnings{uid=\"4000002\"} 0"),
        "{m}"
    );
    assert!(m.contains("holdfast_server_outbox_mails 1"), "{m}");
    assert!(
        m.contains("holdfast_server_quota_bytes{uid=\"4000001\"} 4194304"),
        "{m}"
    );
    assert!(
        m.contains(
            "holdfast_server_client_last_success_timestamp_seconds{uid=\"4000002\",prefix=\"nas\"}"
        ),
        "{m}"
    );

    let page = http(srv.addr, "GET", "/", None);
    assert_eq!(page.status, 200, "{}", page.body);
    let mut b = Browser::start();
    b.open(&format!("{}/", srv.url()));
    wait_for("the token login form", 30, || {
        b.eval("document.getElementById('token') ? true : null")
            .filter(|v| v.as_bool() == Some(true))
    });
    b.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; document.getElementById('login').submit(); true"
    ))
    .unwrap();
    let rows = wait_for("the accounts table", 30, || {
        b.eval("document.querySelectorAll('tr.account').length || null")
            .and_then(|v| v.as_i64())
    });
    assert_eq!(rows, 2);
    // 3.75 of 4 MiB: a 93% bar, red.
    let bar = b
        .eval("(() => { const s = document.querySelector('tr.account[data-uid=\"4000001\"] .bar span'); return s.style.width + ' ' + s.className; })()")
        .unwrap();
    assert_eq!(bar.as_str(), Some("93% full"), "{bar}");
    let warnings = b
        .eval("document.getElementById('warnings').innerText")
        .unwrap();
    let w = warnings.as_str().unwrap();
    assert!(
        w.contains("quota") && w.contains("4000001") && w.contains("customer@example.org"),
        "{w}"
    );
    let prefixes = b
        .eval("document.getElementById('prefixes').innerText")
        .unwrap();
    let p = prefixes.as_str().unwrap();
    assert!(
        p.contains("laptop") && p.contains("failed") && p.contains("nas"),
        "{p}"
    );
    let outbox = b
        .eval("document.getElementById('outbox').innerText")
        .unwrap();
    assert!(
        outbox.as_str().unwrap().contains("quota almost used up"),
        "{outbox}"
    );
    b.screenshot(&d.path().join("server-dashboard.png"));
    if let Ok(dir) = std::env::var("HOLDFAST_SCREENSHOTS") {
        let _ = std::fs::copy(
            d.path().join("server-dashboard.png"),
            std::path::Path::new(&dir).join("server-dashboard.png"),
        );
    }
}

/// The FOSSology side's backups page, behind the same login: two real snapshots of the site
/// (a backup with the stand-in scheduler), the older one verified whole, the newer one with a
/// flipped byte verified bad, and the last runs with their result.
#[test]
fn backups_page_in_a_browser() {
    use holdfast_backup::content::{self, VerifyOptions};
    use holdfast_sandbox::standin::{Behaviour, StandIn};
    let f = fixture();
    let d = f.dir.path();
    let standin = StandIn::create(
        &d.join("standin"),
        &holdfast_testkit::tag(),
        Behaviour::default(),
    )
    .unwrap();
    standin.start().unwrap();
    let sched = standin.config(30);
    let cfg = holdfast_backup::BackupConfig {
        target: d.join("target").display().to_string(),
        lock_file: d.join("run/backup.lock"),
        check_percent: 0.0,
        ..Default::default()
    };
    holdfast_backup::backup(&f.s.site, "web", &sched, &cfg).unwrap();
    holdfast_backup::backup(&f.s.site, "web", &sched, &cfg).unwrap();
    let target = cfg.target().unwrap();
    let snaps = holdfast_store::layout::snapshots(&target).unwrap();
    assert_eq!(snaps.len(), 2);
    let newest = snaps
        .iter()
        .max_by_key(|s| s.manifest.finished)
        .unwrap()
        .clone();
    let oldest = snaps
        .iter()
        .min_by_key(|s| s.manifest.finished)
        .unwrap()
        .clone();
    let r = content::verify_snapshot(&target, &oldest, &VerifyOptions::default()).unwrap();
    assert!(r.is_ok());
    // Bit rot in the newest snapshot's copy of main.c (a copy of its own: break the link).
    let (_, main_c) = item(&f, "main.c");
    let rel = main_c.strip_prefix(&f.s.site.repo.root).unwrap();
    let rotten = d
        .join("target")
        .join(&newest.name)
        .join("repository")
        .join(rel);
    let mut bytes = std::fs::read(&rotten).unwrap();
    bytes[0] ^= 1;
    std::fs::remove_file(&rotten).unwrap();
    std::fs::write(&rotten, &bytes).unwrap();
    let r = content::verify_snapshot(&target, &newest, &VerifyOptions::default()).unwrap();
    assert_eq!(r.bad.len(), 1, "{:?}", r.bad);

    let runs = serde_json::json!({
        "command": "backup", "site": "web", "kind": "full", "result": "failure", "exit_code": 1,
        "finished_at": chrono::Utc::now().timestamp(), "secs": 2.5,
        "error": "the target is full", "scheduler_down_secs": 1.5,
        "last_success_at": newest.manifest.finished.timestamp(),
    });
    let cfg2 = cfg.clone();
    let backups: holdfast_web::dashboard::DashboardFn = std::sync::Arc::new(move || {
        serde_json::json!({
            "target": cfg2.target,
            "snapshots": holdfast_backup::overview::snapshots(&cfg2).unwrap(),
            "last_backup": runs,
            "last_verify": null,
            "runs": [runs],
        })
    });
    let srv = start_extras(
        &f,
        |_| {},
        holdfast_web::SiteExtras {
            lock_file: Some(cfg.lock_file.clone()),
            backups: Some(backups),
            ..Default::default()
        },
    );
    assert_eq!(
        http_with(srv.addr, "GET", "/backups", &[], None).status,
        303,
        "behind the login"
    );
    add_user(&f, "fossy-admin", "an admin's password", 10, false);
    let mut b = Browser::start();
    b.open(&format!("{}/backups", srv.url()));
    wait_for("the login form", 30, || {
        b.eval("document.getElementById('login') ? true : null")
            .filter(|v| v.as_bool() == Some(true))
    });
    b.eval(
        "document.getElementById('user').value = 'fossy-admin'; \
         document.getElementById('password').value = \"an admin's password\"; \
         document.getElementById('login').submit(); true",
    )
    .unwrap();
    let rows = wait_for("the snapshots table", 30, || {
        b.eval("document.querySelectorAll('tr.snapshot').length || null")
            .and_then(|v| v.as_i64())
    });
    assert_eq!(rows, 2);
    let mut cell = |name: &str| {
        b.eval(&format!(
            "document.querySelector('tr.snapshot[data-name=\"{name}\"] td.verify').className + ': ' + \
             document.querySelector('tr.snapshot[data-name=\"{name}\"] td.verify').innerText"
        ))
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap()
    };
    let old = cell(&oldest.name);
    assert!(
        old.starts_with("verify ok") && old.contains("ok: "),
        "{old}"
    );
    let new = cell(&newest.name);
    assert!(
        new.starts_with("verify bad") && new.contains("1 bad file(s)"),
        "{new}"
    );
    let last = b
        .eval("document.getElementById('last-backup').innerText")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap();
    assert!(
        last.contains("failure") && last.contains("the target is full") && last.contains("1.5 s"),
        "{last}"
    );
    let table = b
        .eval("document.getElementById('snapshots').innerText")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap();
    assert!(
        table.contains("full full") && table.contains("files, "),
        "{table}"
    );
    b.screenshot(&d.join("backups.png"));
    if let Ok(dir) = std::env::var("HOLDFAST_SCREENSHOTS") {
        let _ = std::fs::copy(
            d.join("backups.png"),
            std::path::Path::new(&dir).join("backups.png"),
        );
    }
}
