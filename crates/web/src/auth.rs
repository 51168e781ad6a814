//! Who may use `holdfast serve`, and which requests it believes.
//!
//! - **Login** with FOSSology's own users (its `users` table, read through
//!   `holdfast_site::users`): `user_pass` is checked as FOSSology checks it, bcrypt from PHP's
//!   `password_hash()` first, then the old `sha1(user_seed . password)`; the account must be
//!   active and have at least `[web] min_user_perm` (default 10, FOSSology's user admin level:
//!   these pages show every upload's files and rewrite the repository). A login makes a
//!   session: a random id in an `HttpOnly; SameSite=Strict` cookie, kept in memory, expiring
//!   after `[web] session_hours` without use.
//! - **Tokens** for scripts and Prometheus: `Authorization: Bearer <token>`, one token a line
//!   in `[web] token_file`, which must not be readable by others. A backup server without
//!   FOSSology has tokens only.
//! - **Host** must be an IP address, `localhost`, or one of `[web] allowed_hosts`: a DNS name
//!   an attacker controls cannot be rebound to this server (DNS rebinding).
//! - **Every POST** must come from this site: its `Origin` (or, without one, its `Referer`)
//!   names the same host; a session's POST also carries the session's CSRF token (form field
//!   `csrf` or header `X-CSRF-Token`). A bearer-token POST without Origin is a script, which a
//!   browser cannot forge (it never adds the header by itself).

use crate::pages::{PageError, Pages};
use crate::pool::Pool;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "holdfast_session";
/// Largest POST body read (forms and API calls are small).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_SESSIONS: usize = 10_000;

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    /// The session's CSRF token; None for a bearer token.
    pub csrf: Option<String>,
}

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
    /// When its FOSSology user was last found allowed (None: a token's session).
    checked: Option<Instant>,
}

pub struct Auth {
    tokens: Vec<String>,
    sessions: Mutex<HashMap<String, Session>>,
    users: Option<Arc<Pool>>,
    min_perm: i32,
    ttl: Duration,
    secure_cookie: bool,
    allowed_hosts: Vec<String>,
    pages: Arc<Pages>,
    /// Password checks at once (bcrypt is CPU work): guessers queue here, neither on the
    /// pages' database connections nor on every core.
    checks: tokio::sync::Semaphore,
    /// How long a FOSSology user's session goes before its user is looked up again.
    recheck: Duration,
}

/// A bcrypt hash of FOSSology's cost (10) to check an unknown user's password against, so
/// that how long a failed login takes does not tell whether the user exists.
fn decoy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| bcrypt::hash(random_hex(), 10).unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the token file {path} is readable by others (mode {mode:o}): chmod 600 it")]
    Open { path: String, mode: u32 },
    #[error("the token file {path} has a token shorter than 16 characters: use long random tokens (e.g. `openssl rand -hex 32`)")]
    Short { path: String },
}

/// Reads `[web] token_file`: one token a line, `#` comments; refused when group or others
/// may read it.
pub fn read_tokens(path: &Path) -> Result<Vec<String>, AuthError> {
    use std::os::unix::fs::MetadataExt;
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| AuthError::Read {
        path: p.clone(),
        source,
    })?;
    if meta.mode() & 0o077 != 0 {
        return Err(AuthError::Open {
            path: p,
            mode: meta.mode() & 0o777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: p.clone(),
        source,
    })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if tokens.iter().any(|t| t.len() < 16) {
        return Err(AuthError::Short { path: p });
    }
    Ok(tokens)
}

/// Checks a password against FOSSology's `user_pass` (and `user_seed` for the old sha1 form).
pub fn password_matches(password: &str, user_pass: &str, seed: Option<&str>) -> bool {
    if user_pass.starts_with("$2") {
        return bcrypt::verify(password, user_pass).unwrap_or(false);
    }
    match seed {
        Some(seed) if !seed.is_empty() && user_pass.len() == 40 => {
            use sha1::Digest;
            let mut h = sha1::Sha1::new();
            h.update(seed.as_bytes());
            h.update(password.as_bytes());
            let hex = hex::encode(h.finalize());
            constant_eq(hex.as_bytes(), user_pass.to_ascii_lowercase().as_bytes())
        }
        _ => false,
    }
}

/// Whether FOSSology user `u` may use these pages: active, and at permission level `min`
/// or more (at login and at every re-check of a session).
fn may_use_pages(u: &holdfast_site::users::User, min: i32) -> bool {
    u.active && u.perm >= min
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Auth {
    pub fn new(
        cfg: &crate::WebConfig,
        users: Option<Arc<Pool>>,
        pages: Arc<Pages>,
    ) -> Result<Auth, AuthError> {
        let tokens = match &cfg.token_file {
            Some(p) => read_tokens(p)?,
            None => Vec::new(),
        };
        Ok(Auth {
            tokens,
            sessions: Mutex::new(HashMap::new()),
            users,
            min_perm: cfg.min_user_perm,
            ttl: Duration::from_secs(cfg.session_hours.max(1) * 3600),
            secure_cookie: cfg.secure_cookie,
            allowed_hosts: cfg
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            pages,
            checks: tokio::sync::Semaphore::new(2),
            recheck: Duration::from_secs(cfg.session_check_secs),
        })
    }

    /// True when anyone can log in at all (users or tokens).
    pub fn has_logins(&self) -> bool {
        self.users.is_some() || !self.tokens.is_empty()
    }

    fn token_ok(&self, t: &str) -> bool {
        // Every token compared, in constant time each.
        self.tokens
            .iter()
            .fold(false, |ok, k| ok | constant_eq(k.as_bytes(), t.as_bytes()))
    }

    fn session(&self, id: &str) -> Option<Principal> {
        let mut s = self.sessions.lock().ok()?;
        let now = Instant::now();
        let entry = s.get_mut(id)?;
        if entry.expires < now {
            s.remove(id);
            return None;
        }
        entry.expires = now + self.ttl;
        Some(Principal {
            user: entry.user.clone(),
            csrf: Some(entry.csrf.clone()),
        })
    }

    /// False when session `id`'s FOSSology user, looked up again once `recheck` has passed,
    /// is gone, inactive or below `min_user_perm`: the session ends then. A database that
    /// cannot answer leaves it for the next request.
    async fn still_allowed(&self, id: &str) -> bool {
        let due = self.sessions.lock().ok().and_then(|s| {
            let e = s.get(id)?;
            e.checked
                .filter(|t| t.elapsed() >= self.recheck)
                .map(|_| e.user.clone())
        });
        let (Some(user), Some(pool)) = (due, &self.users) else {
            return true;
        };
        let min = self.min_perm;
        let found = pool
            .run(move |c| {
                Ok(holdfast_site::users::find(c, &user)?.is_some_and(|u| may_use_pages(&u, min)))
            })
            .await;
        let Ok(mut s) = self.sessions.lock() else {
            return false;
        };
        match found {
            Ok(true) | Err(_) => {
                if let Some(e) = s.get_mut(id) {
                    e.checked = Some(Instant::now());
                }
                true
            }
            Ok(false) => {
                if let Some(e) = s.remove(id) {
                    tracing::warn!(user = %e.user, "session ended: the user may no longer use these pages");
                }
                false
            }
        }
    }

    fn new_session(&self, user: &str, fossology_user: bool) -> String {
        let id = random_hex();
        if let Ok(mut s) = self.sessions.lock() {
            let now = Instant::now();
            if s.len() >= MAX_SESSIONS {
                s.retain(|_, v| v.expires >= now);
            }
            if s.len() >= MAX_SESSIONS {
                // Still full of live sessions: drop the one closest to expiry.
                if let Some(k) = s
                    .iter()
                    .min_by_key(|(_, v)| v.expires)
                    .map(|(k, _)| k.clone())
                {
                    s.remove(&k);
                }
            }
            s.insert(
                id.clone(),
                Session {
                    user: user.to_string(),
                    csrf: random_hex(),
                    expires: now + self.ttl,
                    checked: fossology_user.then_some(now),
                },
            );
        }
        id
    }

    /// An IP literal, `localhost`, or a configured name (with or without its port).
    pub fn host_ok(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let name = strip_port(&host);
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self
                .allowed_hosts
                .iter()
                .any(|a| *a == host || strip_port(a) == name && !a.contains(':'))
    }

    fn cookie(&self, id: &str, max_age: u64) -> String {
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }
}

/// `example.org:8340` → `example.org`, `[::1]:8340` → `::1`.
fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !n.contains(':') => n,
        _ => h,
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn cookie_value<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The request's Origin (or Referer) names this very host.
fn same_origin(h: &HeaderMap, host: &str) -> Option<bool> {
    let ours = |u: &str| {
        ["http://", "https://"].iter().any(|s| {
            u.strip_prefix(s).is_some_and(|rest| {
                rest.eq_ignore_ascii_case(host)
                    || rest
                        .get(..host.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(host))
                        && rest[host.len()..].starts_with('/')
            })
        })
    };
    if let Some(o) = header_str(h, header::ORIGIN) {
        return Some(o != "null" && ours(o));
    }
    header_str(h, header::REFERER).map(ours)
}

fn deny(status: StatusCode, msg: &str) -> Response {
    (status, format!("{msg}\n")).into_response()
}

fn wants_html(path: &str) -> bool {
    !(path.starts_with("/api/") || path == "/metrics")
}

/// The middleware in front of every route but `/healthz`.
pub async fn guard(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let host = header_str(req.headers(), header::HOST)
        .unwrap_or("")
        .to_string();
    if !auth.host_ok(&host) {
        return deny(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown Host: add it to [web] allowed_hosts in holdfast.toml",
        );
    }
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return next.run(req).await;
    }
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);
    let bearer = header_str(req.headers(), header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let principal = match &bearer {
        Some(t) if auth.token_ok(t) => Some(Principal {
            user: "token".into(),
            csrf: None,
        }),
        Some(_) => {
            return deny(StatusCode::UNAUTHORIZED, "unknown token");
        }
        None => match cookie_value(req.headers(), COOKIE) {
            Some(id) => match auth.session(id) {
                Some(p) if auth.still_allowed(id).await => Some(p),
                _ => None,
            },
            None => None,
        },
    };
    if unsafe_method {
        match same_origin(req.headers(), &host) {
            Some(true) => {}
            Some(false) => {
                return deny(StatusCode::FORBIDDEN, "cross-origin request refused");
            }
            // No Origin and no Referer: a script, acceptable with a bearer token only.
            None if principal.as_ref().is_some_and(|p| p.csrf.is_none()) => {}
            None => {
                return deny(
                    StatusCode::FORBIDDEN,
                    "request without Origin refused (scripts use a bearer token)",
                );
            }
        }
    }
    if path == "/login" {
        return next.run(req).await;
    }
    let Some(principal) = principal else {
        if wants_html(&path) && !unsafe_method {
            let next_page = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            return Redirect::to(&format!("/login?next={}", urlencode(next_page))).into_response();
        }
        let mut r = deny(
            StatusCode::UNAUTHORIZED,
            "log in first, or send a bearer token",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"holdfast\""),
        );
        return r;
    };
    let mut req = req;
    if unsafe_method {
        if let Some(want) = &principal.csrf {
            let (parts, body) = req.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(b) => b,
                Err(_) => return deny(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            };
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .or_else(|| {
                    form_urlencoded::parse(&bytes)
                        .find(|(k, _)| k == "csrf")
                        .map(|(_, v)| v.into_owned())
                });
            if !sent.is_some_and(|s| constant_eq(s.as_bytes(), want.as_bytes())) {
                return deny(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: reload the page and try again",
                );
            }
            req = Request::from_parts(parts, Body::from(bytes));
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only our own pages: a path of printable ASCII, never `//host` or a scheme. Browsers drop
/// tabs and newlines from a `Location` before reading it, so `/\t/evil.example` would be
/// `//evil.example`: any control character refuses the path.
fn safe_next(n: Option<&str>) -> String {
    match n {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    pub next: Option<String>,
}

pub async fn login_page(
    State(auth): State<Arc<Auth>>,
    Query(q): Query<LoginQuery>,
) -> Result<Html<String>, PageError> {
    auth.pages.render(
        "login.html",
        context! {
            title => "Log in", next => safe_next(q.next.as_deref()),
            users => auth.users.is_some(), error => None::<String>,
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    /// An access token instead of a user (a backup server has no FOSSology users).
    #[serde(default)]
    pub token: String,
    pub next: Option<String>,
}

pub async fn login(State(auth): State<Arc<Auth>>, Form(mut f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    let ok = match &auth.users {
        _ if !f.token.is_empty() => {
            let ok = auth.token_ok(f.token.trim());
            f.user = "token".into();
            Ok(ok)
        }
        Some(pool) => {
            let name = f.user.clone();
            // The row only: the connection goes back before the password is checked.
            match pool
                .run(move |c| Ok(holdfast_site::users::find(c, &name)?))
                .await
            {
                Err(e) => Err(e),
                Ok(user) => {
                    let _turn = auth.checks.acquire().await;
                    let (password, min) = (f.password.clone(), auth.min_perm);
                    let checked = tokio::task::spawn_blocking(move || match user {
                        Some(u) => {
                            let pass_ok = u
                                .pass
                                .as_deref()
                                .is_some_and(|p| password_matches(&password, p, u.seed.as_deref()));
                            pass_ok && may_use_pages(&u, min)
                        }
                        None => {
                            let _ = password_matches(&password, decoy_hash(), None);
                            false
                        }
                    })
                    .await;
                    Ok(checked.unwrap_or(false))
                }
            }
        }
        None => Ok(false),
    };
    match ok {
        Ok(true) => {
            let id = auth.new_session(&f.user, f.token.is_empty());
            tracing::info!(user = %f.user, "login");
            let mut r = Redirect::to(&next).into_response();
            if let Ok(v) = auth
                .cookie(&id, auth.ttl.as_secs())
                .parse::<header::HeaderValue>()
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(false) => {
            tracing::warn!(user = %f.user, "failed login");
            // Slows guessing; the blocking pool is not held while waiting.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let page = auth.pages.render(
                "login.html",
                context! {
                    title => "Log in", next, users => auth.users.is_some(),
                    error => Some(format!(
                        "User name or password is wrong, or the account may not use these pages \
                         (it needs FOSSology permission level {} or more).",
                        auth.min_perm
                    )),
                },
            );
            match page {
                Ok(p) => (StatusCode::UNAUTHORIZED, p).into_response(),
                Err(e) => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

pub async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers, COOKIE) {
        if let Ok(mut s) = auth.sessions.lock() {
            s.remove(id);
        }
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = auth.cookie("", 0).parse::<header::HeaderValue>() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fossology_hashes_are_checked_as_fossology_checks_them() {
        // PHP password_hash(PASSWORD_DEFAULT, cost 10) writes $2y$.
        let h = bcrypt::hash_with_result("s3cret", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        assert!(h.starts_with("$2y$"));
        assert!(password_matches("s3cret", &h, Some("Seed")));
        assert!(!password_matches("S3cret", &h, Some("Seed")));
        // Old accounts: sha1(seed . password) in hex.
        let old = "5d9b4ec3a4bfb40f1fbb1c5a1c6ad1bc0f4d1f4c";
        assert!(!password_matches("x", old, Some("seed")));
        use sha1::Digest;
        let good = hex::encode(sha1::Sha1::digest(b"seedpw"));
        assert!(password_matches("pw", &good, Some("seed")));
        assert!(!password_matches("pw", &good, None));
        assert!(!password_matches("pw", "", Some("seed")));
    }

    #[test]
    fn hosts_and_origins() {
        assert_eq!(strip_port("[::1]:8340"), "::1");
        assert_eq!(strip_port("example.org:8340"), "example.org");
        assert_eq!(strip_port("example.org"), "example.org");
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "http://127.0.0.1:8340".parse().unwrap());
        assert_eq!(same_origin(&h, "127.0.0.1:8340"), Some(true));
        assert_eq!(same_origin(&h, "127.0.0.1:83400"), Some(false));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(same_origin(&h, "127.0.0.1:8340"), Some(false));
        let mut h = HeaderMap::new();
        h.insert(
            header::REFERER,
            "http://127.0.0.1:8340/upload/1".parse().unwrap(),
        );
        assert_eq!(same_origin(&h, "127.0.0.1:8340"), Some(true));
        assert_eq!(same_origin(&h, "127.0.0.1:834"), Some(false));
        assert_eq!(same_origin(&HeaderMap::new(), "x"), None);
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/upload/1")), "/upload/1");
        // A browser reads `/\t/evil.example/` as `//evil.example/`.
        assert_eq!(safe_next(Some("/\t/evil.example/")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example/")), "/");
    }
}
