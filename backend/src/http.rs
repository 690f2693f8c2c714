//! The HTTP contract: routes, JSON bodies, status codes, and the per-request log line and metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tracing::{info, info_span, warn, Instrument};

use crate::config::Config;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;

/// Everything a request needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    pod: String,
    metrics: Metrics,
    draining: AtomicBool,
    response_delay: std::time::Duration,
}

impl App {
    pub fn new(config: &Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                db: Db::new(config),
                pod: config.pod.clone(),
                metrics: Metrics::new(),
                draining: AtomicBool::new(false),
                response_delay: config.response_delay,
            }),
        }
    }

    /// The service's routes, with the request log and metrics around all of them.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/users", get(users))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(self.clone(), track))
            .with_state(self.clone())
    }

    /// From now on /readyz answers 503; everything else keeps being served.
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.inner.metrics.draining.set(1);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

async fn users(State(app): State<App>) -> Response {
    if !app.inner.response_delay.is_zero() {
        tokio::time::sleep(app.inner.response_delay).await;
    }
    let started = Instant::now();
    let result = app.inner.db.users().await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    app.inner
        .metrics
        .db_duration
        .with_label_values(&[outcome])
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(users) => Json(json!({
            "users": users.count,
            "pod": app.inner.pod,
            "db": users.server,
        }))
        .into_response(),
        Err(error) => db_unavailable(&app, &error, json!({})),
    }
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    if app.is_draining() {
        let body = json!({"status": "draining", "error": "shutting down after SIGTERM"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    match app.inner.db.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => db_unavailable(&app, &error, json!({"status": "unready"})),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    ops::admin::metrics(app.inner.metrics.registry())
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "no such route"})),
    )
        .into_response()
}

/// 503 with a body that says which database step failed and why; `extra` adds fields.
fn db_unavailable(app: &App, error: &DbError, mut extra: serde_json::Value) -> Response {
    let detail = error.detail();
    warn!(stage = error.stage(), error = %detail, "database unavailable");
    app.inner
        .metrics
        .db_errors
        .with_label_values(&[error.stage()])
        .inc();
    extra["error"] = detail.into();
    extra["stage"] = error.stage().into();
    (StatusCode::SERVICE_UNAVAILABLE, Json(extra)).into_response()
}

/// One span and one log line per request, and the request metrics.
async fn track(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = Metrics::route_label(request.uri().path());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = info_span!("request", %method, %path);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let metrics = &app.inner.metrics;
    metrics
        .requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        info!(
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            "request"
        );
    });
    response
}
