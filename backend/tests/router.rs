//! The HTTP contract through the router itself (no HTTP socket): routes, status codes, JSON
//! bodies, draining, metrics, and a database that is down or never answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use backend::{App, Config};
use support::{router_get as get, router_get_json as get_json};

mod support;

/// A loopback port nothing listens on: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn app_for(db: SocketAddr) -> App {
    let url = format!("postgres://app@{}:{}/app", db.ip(), db.port());
    let mut config = Config::with_database_url(&url).unwrap();
    config.pod = "backend-test-1".to_owned();
    config.connect_timeout = Duration::from_millis(300);
    config.ready_timeout = Duration::from_millis(300);
    App::new(&config)
}

#[tokio::test]
async fn healthz_answers_without_a_database() {
    let app = app_for(closed_port());
    let (status, body) = get_json(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn users_with_the_database_down_is_a_503_naming_the_connect() {
    let app = app_for(closed_port());
    let (status, body) = get_json(&app, "/users").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["stage"], "connect");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("connecting to the database"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

#[tokio::test]
async fn a_database_that_never_answers_times_out_instead_of_hanging() {
    // Accepts TCP connections (the kernel's backlog) but never speaks Postgres.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = app_for(silent.local_addr().unwrap());
    let started = Instant::now();
    let (status, body) = get_json(&app, "/users").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["stage"], "connect_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let (status, body) = get_json(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unready");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_down_and_when_draining() {
    let app = app_for(closed_port());
    let (status, body) = get_json(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unready");
    assert_eq!(body["stage"], "connect");

    app.begin_drain();
    let (status, body) = get_json(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "draining");
    let (status, _) = get_json(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "liveness stays up while draining");
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let app = app_for(closed_port());
    let (status, body) = get_json(&app, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such route");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = app_for(closed_port());
    get(&app, "/healthz").await;
    get(&app, "/healthz").await;
    get(&app, "/users").await;
    get(&app, "/random/path/1").await;
    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(r#"backend_http_requests_total{route="/healthz",status="200"} 2"#),
        "{text}"
    );
    assert!(
        has(r#"backend_http_requests_total{route="/users",status="503"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"backend_http_requests_total{route="other",status="404"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"backend_db_errors_total{stage="connect"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"backend_http_request_duration_seconds_count{route="/users"} 1"#),
        "{text}"
    );
    assert!(has("backend_draining 0"), "{text}");
}
