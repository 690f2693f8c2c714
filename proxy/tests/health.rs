//! HTTP health checks (`--health-path`): an endpoint whose check path answers non-2xx leaves the
//! rotation even though it still accepts connections, and comes back when the check passes.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{get, ip, ProxyProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A pod whose `/healthz` answers 200 or 503 as `healthy` says; every other path answers 200
/// with the pod's name. One request per connection.
async fn pod(addr: SocketAddr, name: &'static str, healthy: Arc<AtomicBool>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let healthy = Arc::clone(&healthy);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => n += m,
                    }
                }
                let check = buf[..n].starts_with(b"GET /healthz ");
                let (status, body) = if check && !healthy.load(Ordering::Relaxed) {
                    ("503 Service Unavailable", "unhealthy".to_owned())
                } else {
                    ("200 OK", name.to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_http_check_takes_an_endpoint_out_and_a_passing_one_brings_it_back() {
    let net = 27;
    let (a, b) = (
        SocketAddr::from((ip(net, 1), 8000)),
        SocketAddr::from((ip(net, 2), 8000)),
    );
    let b_healthy = Arc::new(AtomicBool::new(true));
    pod(a, "pod-a", Arc::new(AtomicBool::new(true))).await;
    pod(b, "pod-b", Arc::clone(&b_healthy)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!("groups:\n  - name: pods\n    upstream: {a}\n  - name: b\n    upstream: {b}\n    path_prefix: /users\n"),
    )
    .unwrap();
    // Two groups keep the test simple: "b" serves /users from pod b alone, so the hold shows when
    // its only endpoint is out.
    let config = config.to_str().unwrap().to_owned();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &[
            "--config",
            &config,
            "--health-path",
            "/healthz",
            "--hold-timeout",
            "500ms",
        ],
    )
    .await;
    assert!(get(proxy.listen, "/users").await.contains("pod-b"));

    b_healthy.store(false, Ordering::Relaxed);
    let listen = proxy.listen;
    // fall = 2 checks, 1 s apart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = get(listen, "/users").await;
        if response.starts_with("HTTP/1.1 503") {
            assert!(response.contains("none of the 1 endpoints"), "{response}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod b never left the rotation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = proxy.admin_get("/status").await.unwrap();
    assert!(status.contains("\"state\":\"down\""), "{status}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let b_status = &status["groups"][1]["endpoints"][0];
    assert_eq!(b_status["addr"], b.to_string(), "{status}");
    assert!(
        b_status["since"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{b_status}"
    );
    assert_eq!(b_status["in_flight"], 0, "{b_status}");
    // pod b answered /users before it failed: its response time is known.
    assert!(
        b_status["response_time_ms"].as_f64().is_some(),
        "{b_status}"
    );

    let failed = proxy
        .metric("proxy_health_checks_total{group=\"b\",result=\"fail\"}")
        .await;
    assert!(
        failed.is_some_and(|n| n >= 2.0),
        "fall = 2 failed checks: {failed:?}"
    );
    let passed = proxy
        .metric("proxy_health_checks_total{group=\"pods\",result=\"pass\"}")
        .await;
    assert!(passed.is_some_and(|n| n >= 1.0), "{passed:?}");

    // The stats page shows the same, one coloured row per endpoint, and refreshes itself.
    let page = proxy.admin_get("/").await.expect("the stats page");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(
        page.contains("<h2>group pods</h2>") && page.contains("<h2>group b</h2>"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<tr class=\"down\"><td class=\"l\">{b}</td><td class=\"l\">down</td>"
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<tr class=\"usable\"><td class=\"l\">{a}</td><td class=\"l\">usable</td>"
        )),
        "{page}"
    );
    assert!(page.contains("usable 0 of 1"), "{page}");
    // And as a browser renders it: the rows are in the DOM Chromium built; the screenshot is the
    // one proxy/README.md shows (copied from target/tmp after a run).
    let url = format!("http://{}/", proxy.admin);
    let dom = support::browser::dom(&url);
    for (state, addr) in [("down", b), ("usable", a)] {
        let row = format!("<tr class=\"{state}\"><td class=\"l\">{addr}</td>");
        assert!(dom.contains(&row), "{row} in {dom}");
    }
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stats-page.png");
    support::browser::screenshot(&url, &png, 1100, 520);

    b_healthy.store(true, Ordering::Relaxed);
    let back = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&back);
    let probe = tokio::spawn(async move {
        for _ in 0..40 {
            if get(listen, "/users").await.contains("pod-b") {
                flag.store(true, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    testkit::wait::until(
        "pod b back after a passing check",
        Duration::from_secs(5),
        || back.load(Ordering::Relaxed),
    )
    .await;
    probe.abort();
}
