//! `holdfast serve` facing a network: nothing without a login or a token, FOSSology's own
//! users and password hashes, no cross-origin or token-less POST, no foreign Host, a bounded
//! number of database connections under load, and slow clients dropped.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn form(body: &str) -> Option<(&'static str, &str)> {
    Some(("application/x-www-form-urlencoded", body))
}

fn session_cookie(r: &Reply) -> String {
    let c = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie: {}", r.headers));
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    c.split(';').next().unwrap().to_string()
}

fn csrf_of(page: &str) -> String {
    let i = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no csrf field: {page}"));
    let rest = &page[i + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[test]
fn logins_origins_hosts_and_tokens() {
    let f = fixture();
    add_user(&f, "admin", "correct horse", 10, false);
    add_user(&f, "oldadmin", "battery staple", 10, true);
    add_user(&f, "writer", "writer pw", 3, false);
    let srv = start(&f);
    let a = srv.addr;
    let host = a.to_string();
    let origin = format!("http://{a}");
    let u = f.upload;

    // Nothing without a login: pages redirect to the login, API and metrics say 401.
    let r = http_with(a, "GET", "/", &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/login?next=%2F"));
    for p in ["/api/uploads", "/metrics", "/api/jobs"] {
        assert_eq!(http_with(a, "GET", p, &[], None).status, 401, "{p}");
    }
    assert_eq!(http_with(a, "GET", "/healthz", &[], None).status, 200);
    let r = http_with(
        a,
        "POST",
        &format!("/api/uploads/{u}/recover"),
        &[("Origin", &origin)],
        None,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http_with(
        a,
        "POST",
        &format!("/upload/{u}/recover"),
        &[],
        form("back=%2Fjobs"),
    );
    assert_eq!(
        r.status, 403,
        "unauthenticated POST without Origin: {}",
        r.body
    );
    let r = http_with(
        a,
        "GET",
        "/api/uploads",
        &[("Authorization", "Bearer wrong-token-123456")],
        None,
    );
    assert_eq!(r.status, 401);

    // A foreign Host (DNS rebinding) is refused, even with a valid token.
    let r = http_with(
        a,
        "GET",
        "/api/uploads",
        &[
            ("Host", "attacker.example:8340"),
            ("Authorization", &format!("Bearer {TOKEN}")),
        ],
        None,
    );
    assert_eq!(r.status, 421, "{}", r.body);

    // Login with FOSSology's users: bcrypt ($2y$ from password_hash) and the old sha1 seed.
    let login = |user: &str, pw: &str, hdrs: &[(&str, &str)]| {
        let body = format!(
            "user={}&password={}&next=%2Fjobs",
            user,
            pw.replace(' ', "+")
        );
        http_with(a, "POST", "/login", hdrs, form(&body))
    };
    let same = [("Origin", origin.as_str())];
    let r = login("admin", "wrong", &same);
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = login("writer", "writer pw", &same);
    assert_eq!(
        r.status, 401,
        "level 3 is below the default min_user_perm 10"
    );
    let r = login(
        "admin",
        "correct horse",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403, "cross-origin login");
    let r = login("admin", "correct horse", &[]);
    assert_eq!(r.status, 403, "login without Origin or Referer");
    let r = login("oldadmin", "battery staple", &same);
    assert_eq!(r.status, 303, "{}", r.body);
    let r = login("admin", "correct horse", &same);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location").as_deref(), Some("/jobs"));
    let cookie = session_cookie(&r);

    // With the session: pages, and a form POST needs same origin AND the CSRF token.
    let page = http_with(a, "GET", "/check", &[("Cookie", &cookie)], None);
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    let post = |hdrs: &[(&str, &str)], body: &str| {
        http_with(a, "POST", &format!("/upload/{u}/recover"), hdrs, form(body))
    };
    let r = post(&[("Cookie", &cookie), ("Origin", &origin)], "back=%2Fjobs");
    assert_eq!(r.status, 403, "no CSRF token: {}", r.body);
    let r = post(
        &[("Cookie", &cookie), ("Origin", &origin)],
        "back=%2Fjobs&csrf=0000",
    );
    assert_eq!(r.status, 403, "wrong CSRF token");
    let r = post(
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        &format!("back=%2Fjobs&csrf={csrf}"),
    );
    assert_eq!(r.status, 403, "cross-origin with a stolen token");
    let r = post(
        &[("Cookie", &cookie), ("Origin", "null")],
        &format!("back=%2Fjobs&csrf={csrf}"),
    );
    assert_eq!(r.status, 403, "opaque origin");
    let r = post(
        &[
            ("Cookie", &cookie),
            ("Referer", &format!("http://{host}/check")),
        ],
        &format!("back=%2Fjobs&csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "same-site form post: {}", r.body);
    // The API with a session takes the token as a header.
    let r = http_with(
        a,
        "POST",
        &format!("/api/uploads/{u}/recover"),
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("X-CSRF-Token", &csrf),
        ],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // A bearer token: scripts post without Origin, but a foreign Origin is still refused.
    let r = http(a, "POST", &format!("/api/uploads/{u}/recover"), None);
    assert_eq!(r.status, 202, "{}", r.body);
    let r = http_with(
        a,
        "POST",
        &format!("/api/uploads/{u}/recover"),
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Origin", "http://evil.example"),
        ],
        None,
    );
    assert_eq!(r.status, 403);

    // Logout ends the session.
    let r = http_with(
        a,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", &origin)],
        form(&format!("csrf={csrf}")),
    );
    assert_eq!(r.status, 303);
    let r = http_with(a, "GET", "/api/jobs", &[("Cookie", &cookie)], None);
    assert_eq!(r.status, 401);

    // A restore that did not finish: the pages say so instead of showing a half site.
    holdfast_site::restoring::mark(
        &f.s.site,
        &holdfast_site::restoring::Restoring {
            snapshot: "day.x".into(),
            started: chrono::Utc::now(),
            pid: 1,
            database: "fossology".into(),
        },
    )
    .unwrap();
    let r = http(a, "GET", "/api/uploads", None);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("half restored"), "{}", r.body);
    // Mid-load, the dump has made the queue's table but not yet its index: a scrape must
    // not make it (psql would stop on "already exists" when the dump gets there).
    f.s.site
        .connect()
        .unwrap()
        .batch_execute("DROP INDEX holdfast_recovery_one_active")
        .unwrap();
    let m = http(a, "GET", "/metrics", None);
    assert!(
        m.body.contains("holdfast_restore_in_progress 1"),
        "{}",
        m.body
    );
    let index: bool =
        f.s.site
            .connect()
            .unwrap()
            .query_one(
                "SELECT to_regclass('holdfast_recovery_one_active') IS NOT NULL",
                &[],
            )
            .unwrap()
            .get(0);
    assert!(
        !index,
        "a scrape wrote to the database a restore is loading"
    );
    holdfast_site::restoring::clear(&f.s.site).unwrap();
    assert_eq!(http(a, "GET", "/api/uploads", None).status, 200);
}

#[test]
fn load_keeps_fossology_connections_free_and_slow_clients_are_dropped() {
    let f = fixture();
    let srv = start_with(&f, |c| {
        c.header_timeout_secs = 1;
        c.db_connections = 4;
    });
    let a = srv.addr;
    let max: i64 = {
        let mut c = f.s.site.connect().unwrap();
        let r = c.query_one("SHOW max_connections", &[]).unwrap();
        r.get::<_, String>(0).parse().unwrap()
    };
    // 200 page and API loads at once (more than the cluster's max_connections, so one
    // connection per request could not work), while FOSSology connects as usual.
    let n = 200;
    assert!(n as i64 > max, "max_connections {max}");
    let statuses = std::thread::scope(|s| {
        let loads: Vec<_> = (0..n)
            .map(|i| {
                s.spawn(move || {
                    let p = if i % 2 == 0 { "/api/uploads" } else { "/" };
                    http(a, "GET", p, None).status
                })
            })
            .collect();
        // FOSSology's own clients during the load.
        let mut fossology = Vec::new();
        for _ in 0..10 {
            let c = f.s.site.connect();
            fossology.push(c.map(|mut c| c.query_one("SELECT 1", &[]).is_ok()));
            std::thread::sleep(Duration::from_millis(20));
        }
        let st: Vec<u16> = loads.into_iter().map(|h| h.join().unwrap()).collect();
        for r in fossology {
            assert!(
                matches!(r, Ok(true)),
                "FOSSology's connection refused: {r:?}"
            );
        }
        st
    });
    let bad: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(bad.is_empty(), "non-200 answers under load: {bad:?}");
    // The pages used at most db_connections of the cluster.
    let mut c = f.s.site.connect().unwrap();
    let used: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(used <= 4 + 2, "connections held after the load: {used}");

    // A client that sends half a request and stops is dropped after header_timeout_secs.
    let mut s = std::net::TcpStream::connect(a).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "slow client held for {:?}",
        t.elapsed()
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
    // And the server still answers.
    assert_eq!(http(a, "GET", "/healthz", None).status, 200);
}

/// Password guessing neither holds the pages' database connections while bcrypt runs nor
/// lets anyone else's page wait for it: with one connection, a burst of wrong passwords for
/// a user of FOSSology's real cost leaves the API answering.
#[test]
fn wrong_passwords_do_not_lock_the_pages_out() {
    let f = fixture();
    {
        let mut c = f.s.site.connect().unwrap();
        let h = bcrypt::hash_with_result("right one", 13)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        c.execute(
            "INSERT INTO users (user_name, user_email, user_seed, user_pass, user_perm, root_folder_fk) \
             VALUES ('slow', 'slow', 'Seed', $1, 10, 1)",
            &[&h],
        )
        .unwrap();
    }
    let srv = start_with(&f, |c| {
        c.db_connections = 1;
        // Room for the eight look-ups on a loaded machine; held through bcrypt (about a
        // second each at cost 13), the eight would keep the API out far longer.
        c.db_wait_secs = 3;
    });
    let a = srv.addr;
    let origin = format!("http://{a}");
    let guesses: Vec<_> = (0..8)
        .map(|i| {
            let origin = origin.clone();
            std::thread::spawn(move || {
                http_with(
                    a,
                    "POST",
                    "/login",
                    &[("Origin", &origin)],
                    form(&format!("user=slow&password=guess{i}")),
                )
                .status
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = http(a, "GET", "/api/uploads", None);
    assert_eq!(r.status, 200, "{}", r.body);
    for g in guesses {
        assert_eq!(g.join().unwrap(), 401, "each guess is refused");
    }
}

/// A FOSSology user demoted or deactivated after logging in loses the pages at the next
/// re-check of the session (every `session_check_secs`; at once here), even while the
/// session is kept busy.
#[test]
fn a_session_ends_when_its_user_may_no_longer_use_the_pages() {
    let f = fixture();
    add_user(&f, "admin", "correct horse", 10, false);
    let srv = start_with(&f, |c| c.session_check_secs = 0);
    let a = srv.addr;
    let origin = format!("http://{a}");
    let r = http_with(
        a,
        "POST",
        "/login",
        &[("Origin", &origin)],
        form("user=admin&password=correct+horse&next=%2Fjobs"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = session_cookie(&r);
    let jobs = |cookie: &str| http_with(a, "GET", "/jobs", &[("Cookie", cookie)], None).status;
    assert_eq!(jobs(&cookie), 200);
    f.s.site
        .connect()
        .unwrap()
        .execute(
            "UPDATE users SET user_perm = 3 WHERE user_name = 'admin'",
            &[],
        )
        .unwrap();
    assert_eq!(jobs(&cookie), 303, "a demoted user is sent to the login");
    // The session is gone for good, not only refused once.
    f.s.site
        .connect()
        .unwrap()
        .execute(
            "UPDATE users SET user_perm = 10 WHERE user_name = 'admin'",
            &[],
        )
        .unwrap();
    assert_eq!(jobs(&cookie), 303);
}
