//! A scratch site with a real upload, `holdfast serve` on loopback, and a tiny HTTP client.
#![allow(dead_code)]

use holdfast_sandbox::scratch::ScratchSite;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use holdfast_web::{Server, SiteExtras, WebConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Fixture {
    pub s: ScratchSite,
    pub upload: i32,
    pub dir: tempfile::TempDir,
}

fn run(cwd: &Path, prog: &str, args: &[&str]) {
    holdfast_testkit::require(prog);
    let out = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{prog}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One upload, `project.tar.gz`: README, src/main.c, a binary file and a nested zip.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let w = dir.path().join("work/project");
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::write(w.join("README"), "hello holdfast <b>not bold</b>\n").unwrap();
    std::fs::write(w.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
    let bin: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(w.join("src/blob.bin"), bin).unwrap();
    std::fs::write(w.join("notes.txt"), "nested notes\n").unwrap();
    run(&w, "zip", &["-q", "docs.zip", "notes.txt"]);
    std::fs::remove_file(w.join("notes.txt")).unwrap();
    run(
        &dir.path().join("work"),
        "tar",
        &["czf", "project.tar.gz", "project"],
    );
    let done = upload_files(
        &s.site,
        &[dir.path().join("work/project.tar.gz")],
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    Fixture {
        upload: done[0].0,
        s,
        dir,
    }
}

/// The bearer token the fixture's server accepts (what `http` sends).
pub const TOKEN: &str = "test-token-4f1c2a9e7d3b";

pub fn start(f: &Fixture) -> Server {
    start_with(f, |_| {})
}

pub fn start_with(f: &Fixture, tweak: impl FnOnce(&mut WebConfig)) -> Server {
    start_extras(f, tweak, SiteExtras::default())
}

pub fn start_extras(f: &Fixture, tweak: impl FnOnce(&mut WebConfig), extras: SiteExtras) -> Server {
    use std::os::unix::fs::PermissionsExt;
    let tokens = f.dir.path().join("web-tokens");
    std::fs::write(&tokens, format!("# scripts\n{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cfg = WebConfig {
        listen: "127.0.0.1:0".into(),
        poll_ms: 100,
        token_file: Some(tokens),
        ..Default::default()
    };
    tweak(&mut cfg);
    Server::start(f.s.site.clone(), UnpackConfig::default(), cfg, extras).unwrap()
}

/// A FOSSology user as FOSSology's UI writes one: `password_hash()` bcrypt (`$2y$`), or with
/// `legacy` the old `sha1(seed . password)`. Its root folder is FOSSology's top folder 1.
pub fn add_user(f: &Fixture, name: &str, password: &str, perm: i32, legacy: bool) {
    let mut c = f.s.site.connect().unwrap();
    let (seed, pass) = if legacy {
        use sha1::Digest;
        let seed = "4711seed".to_string();
        let h = hex::encode(sha1::Sha1::digest(format!("{seed}{password}").as_bytes()));
        (seed, h)
    } else {
        let h = bcrypt::hash_with_result(password, 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        ("Seed".to_string(), h)
    };
    c.execute(
        "INSERT INTO users (user_name, user_email, user_seed, user_pass, user_perm, root_folder_fk) \
         VALUES ($1, $1, $2, $3, $4, 1)",
        &[&name, &seed, &pass, &perm],
    )
    .unwrap();
}

/// (uploadtree_pk, repository path) of the row named `name`.
pub fn item(f: &Fixture, name: &str) -> (i32, PathBuf) {
    let mut c = f.s.site.connect().unwrap();
    let r = c
        .query_one(
            "SELECT t.uploadtree_pk, lower(p.pfile_sha1) || '.' || lower(p.pfile_md5) || '.' || p.pfile_size \
             FROM uploadtree_a t JOIN pfile p ON p.pfile_pk = t.pfile_fk \
             WHERE t.upload_fk = $1 AND t.ufile_name = $2",
            &[&f.upload, &name],
        )
        .unwrap();
    let pfile: String = r.get(1);
    (r.get(0), f.s.site.repo.path("files", &pfile).unwrap())
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`, as a script with the bearer token.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<(&str, &str)>) -> Reply {
    http_with(
        addr,
        method,
        path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        body,
    )
}

/// One request with exactly these extra headers (Host is the address unless given).
pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((ctype, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("Content-Length: 0\r\n\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
