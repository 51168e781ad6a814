//! JSON API: the same data as the pages, for scripts.
//!
//! `GET /api/uploads`, `GET /api/uploads/{id}` (repository check of one upload with its
//! missing files), `GET /api/uploads/{id}/items/{item}` (a tree row and its children),
//! `POST /api/uploads/{id}/recover` (202 with the job; `created` is false when a job for the
//! upload was already queued or running), `GET /api/jobs`, `GET /api/jobs/{id}`.

use crate::data;
use crate::pages::{blocking, PageError};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Errors as `{"error": "..."}` with the status code.
pub struct ApiError(PageError);

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({ "error": self.0.message }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

pub async fn uploads(State(st): State<AppState>) -> ApiResult {
    let v = blocking(&st, |c, st| data::uploads(c, &st.site.repo)).await?;
    Ok(Json(json!(v)))
}

pub async fn upload(State(st): State<AppState>, Path(upload): Path<i32>) -> ApiResult {
    let v = blocking(&st, move |c, st| {
        let mut checks = holdfast_recover::check_repo(c, &st.site.repo, Some(upload))?;
        Ok(checks.pop())
    })
    .await?;
    Ok(Json(json!(v)))
}

pub async fn item(State(st): State<AppState>, Path((upload, pk)): Path<(i32, i32)>) -> ApiResult {
    let v = blocking(&st, move |c, st| {
        let repo = &st.site.repo;
        let item = data::item(c, repo, upload, pk)?;
        let children = data::children(c, repo, upload, pk)?;
        Ok(item.map(|i| json!({ "item": i, "children": children })))
    })
    .await?;
    v.map(Json).ok_or_else(|| {
        ApiError(PageError::not_found(format!(
            "upload {upload} has no item {pk}"
        )))
    })
}

pub async fn recover(
    State(st): State<AppState>,
    Path(upload): Path<i32>,
) -> Result<Response, ApiError> {
    let (job, created) =
        blocking(&st, move |c, st| Ok(st.queue.enqueue(c, upload, "api")?)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": job, "created": created })),
    )
        .into_response())
}

pub async fn jobs(State(st): State<AppState>) -> ApiResult {
    let v = blocking(&st, |c, st| Ok(st.queue.list(c, 1000)?)).await?;
    Ok(Json(json!(v)))
}

pub async fn job(State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult {
    let v = blocking(&st, move |c, st| Ok(st.queue.get(c, id)?)).await?;
    Ok(Json(json!(v)))
}

/// Prometheus text: the recovery queue, plus the backup server's metrics when wired in.
pub async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let restoring = holdfast_site::restoring::restoring(&st.site).is_some();
    // Nothing touches the database a restore is loading: the queue's table and index are in
    // the dump, and creating them first makes psql stop on "already exists".
    let counts = if restoring {
        Vec::new()
    } else {
        st.pool
            .run(|c| Ok(holdfast_recover::RecoveryQueue::counts(c)?))
            .await?
    };
    let mut out = format!(
        "# HELP holdfast_restore_in_progress 1 while a restore of this site is unfinished (killed or failed).\n\
         # TYPE holdfast_restore_in_progress gauge\nholdfast_restore_in_progress {}\n\
         # HELP holdfast_recovery_jobs Recovery jobs by state.\n# TYPE holdfast_recovery_jobs gauge\n",
        u8::from(restoring)
    );
    for s in ["queued", "running", "done", "failed"]
        .into_iter()
        .filter(|_| !restoring)
    {
        let n = counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        out.push_str(&format!("holdfast_recovery_jobs{{state=\"{s}\"}} {n}\n"));
    }
    if let Some(m) = &st.metrics {
        let m = m.clone();
        let more = tokio::task::spawn_blocking(move || m())
            .await
            .map_err(|e| ApiError(PageError::internal(e.to_string())))?;
        out.push_str(&more);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// `GET /api/backups`: the site's snapshots, last runs and verify results.
pub async fn backups(State(st): State<AppState>) -> ApiResult {
    Ok(Json(crate::pages::gather_backups(&st).await?))
}
