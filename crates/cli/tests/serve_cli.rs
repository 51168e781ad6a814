//! `holdfast serve` as a process: listens where told, serves pages, the API and /metrics,
//! works queued recoveries, and stops cleanly on SIGTERM.

use holdfast_sandbox::scratch::ScratchSite;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve(Child);

/// The access token in the test's `[web] token_file`.
const TOKEN: &str = "serve-cli-token-8e21f0";

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out))
}

#[test]
fn serve_answers_recovers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let src = dir.path().join("hello.txt.gz");
    let gz = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'hello from serve\\n' | gzip -9 > {}",
            src.display()
        ))
        .status()
        .unwrap();
    assert!(gz.success());
    let up = upload_files(
        &s.site,
        &[src],
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap()[0]
        .0;
    let mut c = s.site.connect().unwrap();
    let refs = holdfast_site::db::references(&mut c, Some(up)).unwrap();
    let leaf = refs
        .iter()
        .find(|r| r.kind == "files" && r.size == 17)
        .expect("the unpacked text file");
    let leaf_path = s.site.repo.path("files", &leaf.name).unwrap();
    std::fs::remove_file(&leaf_path).unwrap();

    let port = holdfast_sandbox::cluster::free_port();
    let conf = dir.path().join("holdfast.toml");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &conf,
        format!(
            "[site]\nconf_dir = \"{}\"\nstate_dir = \"{site_state}\"\n[backup]\ntarget = \"{}\"\n\
             lock_file = \"{}\"\n[web]\nlisten = \"127.0.0.1:{port}\"\npoll_ms = 100\ntoken_file = \"{}\"\n\
             [server]\nstate_dir = \"{}\"\n",
            s.conf_dir().display(),
            dir.path().join("target").display(),
            dir.path().join("run/backup.lock").display(),
            tokens.display(),
            dir.path().join("state").display(),
            site_state = dir.path().join("site-state").display(),
        ),
    )
    .unwrap();
    // The last backup failed (as `holdfast backup` records it for monitoring).
    std::fs::create_dir_all(dir.path().join("site-state")).unwrap();
    std::fs::write(
        dir.path().join("site-state/last-backup.json"),
        r#"{"command":"backup","site":"s","kind":"full","result":"failure","exit_code":1,
            "finished_at":1764590400,"secs":4.5,"error":"the target is full"}"#,
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(&conf)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut serve = Serve(child);
    let end = Instant::now() + Duration::from_secs(30);
    while get(port, "GET", "/healthz").is_none() {
        assert!(Instant::now() < end, "serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, body) = get(port, "GET", "/").unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("hello.txt.gz"));
    let (st, body) = get(port, "GET", "/check").unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("1 with files missing"), "{body}");
    // The backups page and its JSON: the last run with its result, the target's snapshots.
    let (st, body) = get(port, "GET", "/backups").unwrap();
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains("failure") && body.contains("the target is full"),
        "{body}"
    );
    let (st, body) = get(port, "GET", "/api/backups").unwrap();
    assert_eq!(st, 200, "{body}");
    let json = &body[body.find("\r\n\r\n").unwrap() + 4..];
    assert!(
        json.contains(r#""result":"failure""#) && json.contains(r#""snapshots":[]"#),
        "{json}"
    );
    let (st, _) = get(port, "POST", &format!("/api/uploads/{up}/recover")).unwrap();
    assert_eq!(st, 202);
    while !leaf_path.exists() {
        assert!(Instant::now() < end, "serve did not recover the file");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&leaf_path).unwrap(),
        "hello from serve\n"
    );
    let (_, metrics) = get(port, "GET", "/metrics").unwrap();
    assert!(
        metrics.contains("holdfast_recovery_jobs{state=\"done\"} 1")
            || metrics.contains("holdfast_recovery_jobs{state=\"running\"} 1"),
        "{metrics}"
    );

    // SIGTERM: a clean stop with exit code 0.
    let kill = Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
}
