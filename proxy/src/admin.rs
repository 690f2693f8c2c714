//! The admin listener: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz` (503 once
//! SIGTERM arrived), `/status` (JSON: groups, endpoints, health, counters) and `/` (the same as
//! an HTML stats page, [`page`]). Runs on the control runtime, apart from the proxy's threads.

mod page;
mod status;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::drain::Draining;
use crate::inflight::InFlight;
use crate::live::SharedLive;
use crate::metrics::Metrics;

pub struct AdminState {
    /// The running groups and configuration generation; follows every reload.
    pub live: SharedLive,
    pub metrics: Arc<Metrics>,
    pub inflight: InFlight,
    /// Set by SIGTERM: `/readyz` answers 503 through the shutdown delay and the drain.
    pub draining: Draining,
    pub started: Instant,
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/", get(page))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Ready unless shutting down. Upstreams do not count: with none, the proxy holds requests
/// (and then answers 503 itself); taking it out of its Service would only turn that into refused
/// connections.
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    ops::admin::readiness(if state.draining.is_draining() {
        Err(ops::admin::DRAINING.to_owned())
    } else {
        Ok(format!("{} in flight", state.inflight.count()))
    })
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    for group in state.live.load().router.groups() {
        group.update_gauges();
    }
    ops::admin::metrics(state.metrics.registry())
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<status::Status> {
    Json(status::Status::of(&state))
}

async fn page(State(state): State<Arc<AdminState>>) -> Html<String> {
    Html(page::render(&status::Status::of(&state)))
}
