//! Shared by the integration tests: a real Postgres cluster's URL and a tiny HTTP/1.1 client for
//! talking to the real binary over a socket.

#![allow(dead_code)] // each test file uses its own part of this module

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend::App;
use http_body_util::BodyExt;
use serde_json::Value;
use testkit::{PgCluster, PgNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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

/// One `GET` with `Connection: close`; the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    Ok((status, body.to_owned()))
}

/// `http_get` with the body parsed as JSON.
pub async fn http_get_json(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Value)> {
    let (status, body) = http_get(addr, path).await?;
    let json = serde_json::from_str(&body)
        .map_err(|e| std::io::Error::other(format!("{path}: {e}: {body:?}")))?;
    Ok((status, json))
}

/// Polls `probe` every 20 ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn poll<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
