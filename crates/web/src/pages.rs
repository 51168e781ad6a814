//! Server-rendered HTML pages (minijinja templates under `templates/`, auto-escaped).

use crate::auth::Principal;
use crate::data;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use holdfast_core::human_bytes;
use holdfast_recover::{RecoveryJob, RecoveryQueue};
use minijinja::{context, Environment};
use serde::Deserialize;

/// The compiled templates, and why recoveries wait (shown on every page).
pub struct Pages {
    env: Environment<'static>,
    pub busy: crate::worker::Busy,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("../templates/base.html")),
            ("index.html", include_str!("../templates/index.html")),
            ("item.html", include_str!("../templates/item.html")),
            ("jobs.html", include_str!("../templates/jobs.html")),
            ("check.html", include_str!("../templates/check.html")),
            ("error.html", include_str!("../templates/error.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("server.html", include_str!("../templates/server.html")),
            ("backups.html", include_str!("../templates/backups.html")),
        ] {
            env.add_template(name, src)
                .expect("built-in templates are valid");
        }
        env.add_filter("bytes", |n: i64| human_bytes(n.max(0) as u64));
        // Unix seconds as a UTC time.
        env.add_filter("when", |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| t.to_string())
        });
        Pages {
            env,
            busy: Default::default(),
        }
    }

    /// Renders a page for a logged-in user: the header's logout form needs their CSRF token.
    pub fn render_as(
        &self,
        who: &crate::auth::Principal,
        name: &str,
        ctx: minijinja::Value,
    ) -> Result<Html<String>, PageError> {
        let busy = self.busy.lock().ok().and_then(|b| b.clone());
        self.render(
            name,
            context! { who => who.user.clone(), csrf => who.csrf.clone(), busy, ..ctx },
        )
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<Html<String>, PageError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map(Html)
            .map_err(|e| PageError::internal(format!("template {name}: {e}")))
    }
}

/// Any serializable value as a template value.
fn v<T: serde::Serialize>(x: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(x))
}

/// An error page with a status code.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn internal(m: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: m.into(),
        }
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: m.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: m.into(),
        }
    }
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast_ref::<holdfast_recover::RecoverError>() {
            Some(holdfast_recover::RecoverError::NoUpload(_))
            | Some(holdfast_recover::RecoverError::NoJob(_)) => PageError::not_found(e.to_string()),
            _ => PageError::internal(format!("{e:#}")),
        }
    }
}

impl From<holdfast_recover::RecoverError> for PageError {
    fn from(e: holdfast_recover::RecoverError) -> Self {
        PageError::from(anyhow::Error::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::warn!(status = %self.status, error = %self.message, "page failed");
        let body = Pages::new()
            .render(
                "error.html",
                context! { status => self.status.as_u16(), message => self.message },
            )
            .map(|h| h.0)
            .unwrap_or_else(|e| e.message);
        (self.status, Html(body)).into_response()
    }
}

/// Runs blocking database work off the async threads, with a pooled connection.
pub async fn blocking<T, F>(st: &AppState, f: F) -> Result<T, PageError>
where
    T: Send + 'static,
    F: FnOnce(&mut postgres::Client, &AppState) -> anyhow::Result<T> + Send + 'static,
{
    // A half-restored site is not shown as if it were whole (nor recovered into).
    if let Some(r) = holdfast_site::restoring::restoring(&st.site) {
        return Err(PageError::unavailable(r.to_string()));
    }
    let st2 = st.clone();
    st.pool.run(move |c| f(c, &st2)).await
}

pub async fn index(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Html<String>, PageError> {
    let uploads = blocking(&st, |c, st| data::uploads(c, &st.site.repo)).await?;
    st.pages.render_as(
        &who,
        "index.html",
        context! { title => "Uploads", uploads => v(&uploads) },
    )
}

pub async fn check(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Html<String>, PageError> {
    use std::sync::atomic::Ordering;
    if st.checking.swap(true, Ordering::SeqCst) {
        return Err(PageError::unavailable(
            "a repository check is already running (it reads every file the site names): reload in a while",
        ));
    }
    // Cleared when the work ends, not when the request does: a timed-out request leaves
    // the blocking check running.
    struct Done(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let done = Done(st.checking.clone());
    let (checks, active) = blocking(&st, move |c, st| {
        let _done = done;
        let checks = holdfast_recover::check_repo(c, &st.site.repo, None)?;
        let jobs = active_jobs(c, &st.queue)?;
        Ok((checks, jobs))
    })
    .await?;
    let incomplete: Vec<_> = checks.iter().filter(|c| !c.is_whole()).collect();
    st.pages.render_as(
        &who,
        "check.html",
        context! { title => "Repository check", uploads => checks.len(), incomplete => v(&incomplete), active => v(&active) },
    )
}

fn active_jobs(
    c: &mut postgres::Client,
    q: &RecoveryQueue,
) -> anyhow::Result<std::collections::BTreeMap<String, RecoveryJob>> {
    Ok(q.list(c, 500)?
        .into_iter()
        .filter(|j| !j.state.finished())
        .map(|j| (j.upload_fk.to_string(), j))
        .collect())
}

/// What the `/backups` page shows (see [`crate::SiteExtras::backups`]); null without it.
pub async fn gather_backups(st: &AppState) -> Result<serde_json::Value, PageError> {
    let Some(f) = st.backups.clone() else {
        return Ok(serde_json::Value::Null);
    };
    // Not through `blocking`: the snapshots are worth seeing most while a restore is unfinished.
    tokio::task::spawn_blocking(move || f())
        .await
        .map_err(|e| PageError::internal(e.to_string()))
}

/// The site's backups: snapshots (size, duration, scheduler downtime, verify result) and the
/// last backup and verify runs with their result.
pub async fn backups(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Html<String>, PageError> {
    let d = gather_backups(&st).await?;
    st.pages.render_as(
        &who,
        "backups.html",
        context! { title => "Backups", d => v(&d) },
    )
}

pub async fn jobs(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Html<String>, PageError> {
    let jobs = blocking(&st, |c, st| Ok(st.queue.list(c, 200)?)).await?;
    let active = jobs.iter().any(|j| !j.state.finished());
    let rows: Vec<_> = jobs
        .iter()
        .map(|j| context! { job => v(j), percent => j.percent() })
        .collect();
    st.pages.render_as(
        &who,
        "jobs.html",
        context! { title => "Recovery jobs", jobs => rows, refresh => active },
    )
}

pub async fn upload(
    State(st): State<AppState>,
    Path(upload): Path<i32>,
) -> Result<Response, PageError> {
    let root = blocking(&st, move |c, _| data::root_item(c, upload)).await?;
    match root {
        Some(r) => Ok(Redirect::to(&format!("/upload/{upload}/item/{r}")).into_response()),
        None => Err(PageError::not_found(format!(
            "upload {upload} has no file tree yet (its unpack has not run)"
        ))),
    }
}

#[derive(Deserialize)]
pub struct ItemQuery {
    pub job: Option<i64>,
}

pub async fn item(
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((upload, pk)): Path<(i32, i32)>,
    Query(q): Query<ItemQuery>,
) -> Result<Html<String>, PageError> {
    let max = st.cfg.max_text_bytes;
    let page = blocking(&st, move |c, st| {
        let repo = &st.site.repo;
        let Some(up) = data::upload(c, repo, upload)? else {
            return Err(holdfast_recover::RecoverError::NoUpload(upload).into());
        };
        let Some(item) = data::item(c, repo, upload, pk)? else {
            return Ok(None);
        };
        let children = data::children(c, repo, upload, pk)?;
        let trail = data::trail(c, upload, pk)?;
        let content = match (&item.pfile_name, item.present) {
            (Some(name), Some(true)) => Some(data::content(repo, name, max)?),
            _ => None,
        };
        RecoveryQueue::ensure_schema(c)?;
        // A job named in the address shows only on its own upload's pages, and one that is
        // gone (a restore replaced the queue) leaves the page as it is.
        let named = match q.job {
            Some(id) => st.queue.get(c, id).ok().filter(|j| j.upload_fk == upload),
            None => None,
        };
        let job = match named {
            Some(j) => Some(j),
            None => st.queue.active_for(c, upload)?,
        };
        Ok(Some((up, item, children, trail, content, job)))
    })
    .await?;
    let Some((up, item, children, trail, content, job)) = page else {
        return Err(PageError::not_found(format!(
            "upload {upload} has no item {pk}"
        )));
    };
    let refresh = job.as_ref().is_some_and(|j| !j.state.finished());
    let percent = job.as_ref().map(|j| j.percent());
    let missing_children = children.iter().filter(|c| c.present == Some(false)).count();
    st.pages.render_as(
        &who,
        "item.html",
        context! {
            title => item.name.clone(), upload => v(&up), item => v(&item),
            children => v(&children), trail => v(&trail), content => v(&content), job => v(&job),
            percent, refresh, missing_children,
            back => format!("/upload/{upload}/item/{pk}"),
        },
    )
}

#[derive(Deserialize)]
pub struct RecoverForm {
    /// Page to return to (an item page of this site).
    pub back: Option<String>,
}

pub async fn recover(
    State(st): State<AppState>,
    Path(upload): Path<i32>,
    Form(f): Form<RecoverForm>,
) -> Result<Redirect, PageError> {
    let job = blocking(&st, move |c, st| {
        let (job, _) = st.queue.enqueue(c, upload, "web")?;
        Ok(job)
    })
    .await?;
    // Only our own pages: never redirect elsewhere.
    let back = f
        .back
        .filter(|b| b.starts_with(&format!("/upload/{upload}/")) && !b.contains(['?', '#', '\\']))
        .unwrap_or_else(|| "/jobs".to_string());
    if back == "/jobs" {
        return Ok(Redirect::to("/jobs"));
    }
    Ok(Redirect::to(&format!("{back}?job={}", job.id)))
}
