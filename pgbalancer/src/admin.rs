//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process is alive), `/status`
//! (JSON snapshot) and `/`, an HTML stats page in the spirit of HAProxy's.

mod page;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tracing::warn;

use crate::shared::Shared;
use crate::status::Status;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(shared)
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    if let Err(e) = axum::serve(listener, router(shared)).await {
        warn!(error = %e, "admin listener stopped");
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    ops::admin::metrics(shared.metrics.registry())
}

/// Liveness only: a database outage must not get pgbalancer restarted; its clients are told by
/// the 57P03 error instead.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: at least one backend passed its checks, so a client would be served at once. A
/// rolling update (the lab's pgbalancer restart, a Deployment's) sends traffic to a new pod only
/// once this answers 200.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    ops::admin::readiness(
        if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
            Err(ops::admin::DRAINING.to_owned())
        } else {
            match shared.pool.usable().len() {
                0 => Err("no healthy backend".to_owned()),
                n => Ok(format!("{n} healthy backend(s)")),
            }
        },
    )
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Status> {
    Json(Status::collect(&shared))
}

async fn index(State(shared): State<Arc<Shared>>) -> Html<String> {
    Html(page::render(&Status::collect(&shared)))
}
