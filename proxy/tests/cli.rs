//! The proxy as an operator meets it: config checks, exit codes, the hold and its 503, headers,
//! malformed requests, admin endpoints, SIGTERM.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{ip, Pod, ProxyProcess, NAME, POD_PORT};
use testkit::DnsServer;

fn proxy_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_proxy"))
}

/// One raw HTTP/1.1 exchange (testkit's client): (status, headers+body text).
async fn raw(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let exchange = testkit::http::raw(addr, request.as_bytes());
    match tokio::time::timeout(Duration::from_secs(20), exchange).await {
        Ok(Ok(a)) => (a.status, format!("{}\r\n\r\n{}", a.head, a.body)),
        Ok(Err(_)) | Err(_) => (0, String::new()),
    }
}

/// One pod on 127.0.<net>.1 and the proxy in front of it by IP literal.
async fn pod_behind_proxy(net: u8) -> (Pod, ProxyProcess) {
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &["--upstream", &pod.addr.to_string()],
    )
    .await;
    (pod, proxy)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: lab.local\r\nConnection: close\r\n\r\n")
}

#[test]
fn check_config_accepts_the_example_and_rejects_a_bad_key_with_exit_2() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.example.yaml");
    let out = proxy_cmd()
        .args(["--check-config", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "upstream:\n  connect_timeout: fast\n").unwrap();
    let out = proxy_cmd()
        .args(["--check-config", "--upstream", "a:1", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("upstream.connect_timeout"),
        "{err}"
    );

    let out = proxy_cmd().args(["--check-config"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no upstream at all is a config error"
    );
    let out = proxy_cmd()
        .args(["--check-config", "--upstream", "no-port"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:PORT"));
}

/// A value `--check-config` accepts must start: a health path the checker cannot send (it
/// panicked at start before) is a configuration error, exit 2, naming the key.
#[test]
fn a_health_path_the_checker_cannot_send_is_a_config_error() {
    let out = proxy_cmd()
        .args([
            "--check-config",
            "--upstream",
            "127.0.0.1:9",
            "--health-path",
            "/a b",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("health.path") && stderr.contains("/a b"),
        "{stderr}"
    );
    // Not only --check-config: starting with it fails the same way, without a panic.
    let out = proxy_cmd()
        .args([
            "--upstream",
            "127.0.0.1:9",
            "--health-path",
            "/a b",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_yet_holds_then_503s_then_recovers() {
    let net = 21;
    let dns = DnsServer::start(ip(net, 53)).await.unwrap();
    let upstream = format!("{NAME}:{POD_PORT}");
    let resolver = dns.addr().to_string();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &[
            "--upstream",
            &upstream,
            "--resolver",
            &resolver,
            "--hold-timeout",
            "1500ms",
        ],
    )
    .await;

    let t0 = Instant::now();
    let (status, text) = raw(proxy.listen, &get("/users")).await;
    let waited = t0.elapsed();
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("no endpoint of") && text.contains(NAME),
        "{text}"
    );
    assert!(
        waited >= Duration::from_millis(1400),
        "held {waited:?} before the 503"
    );

    // A request already waiting is sent as soon as the pod appears.
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let held = tokio::spawn({
        let listen = proxy.listen;
        async move { raw(listen, &get("/users")).await }
    });
    testkit::wait::poll("the request is held", Duration::from_secs(5), || async {
        let held = proxy
            .metric("proxy_held_requests{group=\"default\"}")
            .await?;
        (held >= 1.0).then_some(())
    })
    .await;
    dns.set(NAME, &[pod.ip()]);
    let (status, text) = held.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains(&format!("x-upstream-addr: {}", pod.addr)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_and_the_proxy_keeps_serving() {
    let net = 22;
    let (_pod, proxy) = pod_behind_proxy(net).await;

    for bad in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "GET /\x01 HTTP/1.1\r\n\r\n",
    ] {
        let (status, text) = raw(proxy.listen, bad).await;
        assert!(
            (400..500).contains(&status) || status == 0,
            "{bad:?} answered {status}: {text}"
        );
    }
    let (status, text) = raw(proxy.listen, &get("/users")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"pod\":\"pod-1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_serves_metrics_status_and_healthz() {
    let net = 23;
    let (pod, proxy) = pod_behind_proxy(net).await;
    for _ in 0..3 {
        assert_eq!(raw(proxy.listen, &get("/users")).await.0, 200);
    }
    assert_eq!(proxy.admin_get("/healthz").await.as_deref(), Some("ok\n"));
    let metrics = proxy.admin_get("/metrics").await.unwrap();
    for name in [
        "proxy_requests_total{class=\"2xx\",group=\"default\"} 3",
        "proxy_request_duration_seconds_bucket",
        "proxy_upstream_attempts_total{group=\"default\",outcome=\"ok\"} 3",
        "proxy_endpoints{group=\"default\",state=\"usable\"} 1",
        "proxy_dns_lookups_total",
        "proxy_hold_timeouts_total",
        "proxy_endpoint_ejections_total",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    let status: serde_json::Value =
        serde_json::from_str(&proxy.admin_get("/status").await.unwrap()).unwrap();
    let endpoint = &status["groups"][0]["endpoints"][0];
    assert_eq!(endpoint["addr"], pod.addr.to_string());
    assert_eq!(endpoint["state"], "usable");
    assert_eq!(endpoint["requests"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let net = 24;
    let (_pod, mut proxy) = pod_behind_proxy(net).await;

    let slow = tokio::spawn({
        let listen = proxy.listen;
        async move { raw(listen, &get("/slow")).await }
    });
    testkit::wait::poll(
        "the request is in flight",
        Duration::from_secs(5),
        || async {
            let status: serde_json::Value =
                serde_json::from_str(&proxy.admin_get("/status").await?).ok()?;
            (status["requests_in_flight"].as_u64()? >= 1).then_some(())
        },
    )
    .await;
    proxy.sigterm();
    let (status, text) = slow.await.unwrap();
    assert_eq!(status, 200, "the in-flight request finished: {text}");
    let exit = proxy.wait_exit(Duration::from_secs(5)).await;
    let exit = exit.expect("exited soon after the last request, not after the grace period");
    assert!(exit.success(), "{exit:?}");
}

/// Kubernetes' order: SIGTERM and the endpoint removal race, so the pod keeps accepting for the
/// shutdown delay while `/readyz` tells probes it is going; only then does it stop listening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_shutdown_delay_keeps_accepting_while_readyz_answers_503() {
    let net = 26;
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let mut proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &[
            "--upstream",
            &pod.addr.to_string(),
            "--shutdown-delay",
            "2s",
        ],
    )
    .await;
    assert_eq!(proxy.admin_status("/readyz").await, Some(200));
    proxy.sigterm();
    let signalled = Instant::now();
    // /readyz turns 503 at once (within a poll), while the proxy is alive and serving.
    loop {
        match proxy.admin_status("/readyz").await {
            Some(503) => break,
            other => assert!(
                signalled.elapsed() < Duration::from_secs(1),
                "/readyz still {other:?} after SIGTERM"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New connections are accepted and answered through the delay.
    let mut served = 0;
    while signalled.elapsed() < Duration::from_millis(1500) {
        let (status, text) = raw(proxy.listen, &get("/users")).await;
        assert_eq!(status, 200, "a new connection during the delay: {text}");
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served >= 5, "{served} requests during the delay");
    let exit = proxy
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits after the delay");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "kept running for the whole delay: exited after {:?}",
        signalled.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(proxy.listen).await.is_err(),
        "the listener is closed once it exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_routes_groups_by_host_and_path_prefix() {
    let net = 25;
    let web = Pod::start(ip(net, 1), POD_PORT, "web").await;
    let api = Pod::start(ip(net, 2), POD_PORT, "api").await;
    let admin_api = Pod::start(ip(net, 3), POD_PORT, "admin-api").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "groups:\n  - name: web\n    upstream: {}\n  - name: api\n    upstream: {}\n    path_prefix: /api\n  - name: admin-api\n    upstream: {}\n    hosts: [admin.example.com]\n    path_prefix: /api\n",
            web.addr, api.addr, admin_api.addr
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &["--config", &config],
    )
    .await;

    let cases = [
        ("lab.local", "/users", "web"),
        ("lab.local", "/api/users", "api"),
        ("lab.local", "/apiary", "web"),
        ("ADMIN.example.com:8080", "/api/users", "admin-api"),
        ("admin.example.com", "/other", "web"),
    ];
    for (host, path, pod) in cases {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(proxy.listen, &req).await;
        assert_eq!(status, 200, "{host}{path}: {text}");
        assert!(
            text.contains(&format!("\"pod\":\"{pod}\"")),
            "{host}{path} should reach {pod}: {text}"
        );
    }
}
