//! The backup-server side of `holdfast serve` (a server without FOSSology): the dashboard
//! page, its JSON, and `/metrics`, behind the same login (tokens: there are no FOSSology
//! users there). The data comes from a function the caller gives ([`DashboardFn`]), which
//! reads the status and state files the server jobs write.

use crate::pages::{PageError, Pages};
use crate::{auth::Principal, MetricsFn};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use minijinja::context;
use std::sync::Arc;

/// Gathers what the dashboard shows (blocking; run on the blocking pool).
pub type DashboardFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

#[derive(Clone)]
pub struct ServerState {
    pub dashboard: DashboardFn,
    pub metrics: Option<MetricsFn>,
    pub pages: Arc<Pages>,
}

async fn gather(st: &ServerState) -> Result<serde_json::Value, PageError> {
    let f = st.dashboard.clone();
    tokio::task::spawn_blocking(move || f())
        .await
        .map_err(|e| PageError::internal(e.to_string()))
}

pub async fn page(
    State(st): State<ServerState>,
    Extension(who): Extension<Principal>,
) -> Result<Html<String>, PageError> {
    let d = gather(&st).await?;
    let nav = vec![
        ("/", "Backup server"),
        ("/api/server", "JSON"),
        ("/metrics", "Metrics"),
    ];
    st.pages.render_as(
        &who,
        "server.html",
        context! { title => "Backup server", d => minijinja::Value::from(minijinja::value::Serde(&d)), nav },
    )
}

pub async fn json(State(st): State<ServerState>) -> Result<Json<serde_json::Value>, PageError> {
    Ok(Json(gather(&st).await?))
}

pub async fn metrics(State(st): State<ServerState>) -> Result<Response, PageError> {
    let out = match &st.metrics {
        Some(m) => {
            let m = m.clone();
            tokio::task::spawn_blocking(move || m())
                .await
                .map_err(|e| PageError::internal(e.to_string()))?
        }
        None => String::new(),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// The server-only routes, behind the login.
pub fn router(st: ServerState, auth: Arc<crate::auth::Auth>) -> Router {
    let app = Router::new()
        .route("/", get(page))
        .route("/api/server", get(json))
        .route("/metrics", get(metrics))
        .with_state(st);
    crate::guarded(app, auth)
}
