//! Shared by the integration tests: a real Postgres cluster's URL and testkit's raw HTTP client for
//! talking to the real binary over a socket.

#![allow(dead_code)] // each test file uses its own part of this module

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend::App;
use http_body_util::BodyExt;
use serde_json::Value;
use testkit::{PgCluster, PgNode};
use tower::ServiceExt;

/// `DATABASE_URL` for the application user on `node`.
pub fn database_url(cluster: &PgCluster, node: &PgNode) -> String {
    format!(
        "postgres://{}:{}@{}/{}",
        cluster.user(),
        cluster.password(),
        node.addr(),
        cluster.database()
    )
}

/// One `GET` with `Connection: close` (testkit's raw client); the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let answer = testkit::http::get(addr, path).await?;
    Ok((answer.status, answer.body))
}

/// `http_get` with the body parsed as JSON.
pub async fn http_get_json(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Value)> {
    let (status, body) = http_get(addr, path).await?;
    let json = serde_json::from_str(&body)
        .map_err(|e| std::io::Error::other(format!("{path}: {e}: {body:?}")))?;
    Ok((status, json))
}

#[allow(unused_imports)] // not every test file polls
pub use testkit::wait::poll;

/// One `GET` through the app's router, no socket: the status and the body.
pub async fn router_get(app: &App, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.router().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// `router_get` with the body parsed as JSON.
pub async fn router_get_json(app: &App, path: &str) -> (StatusCode, Value) {
    let (status, body) = router_get(app, path).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}
