//! What the proxy tells others about a request: the access log line on stdout (`--access-log
//! text|json|off`, switched by SIGHUP too) and the forwarding headers a backend receives
//! (`X-Forwarded-For` appended, `X-Forwarded-Proto`, `X-Real-IP`, `Forwarded`). The proxy binary,
//! a real upstream that records the bytes it received, raw client sockets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{ip, AccessLines, ProxyProcess, Recorder, POD_PORT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The proxy in front of `upstream` (TCP checks: the recorder sees client requests only).
async fn proxy_logged(
    net: u8,
    upstream: SocketAddr,
    extra: &[&str],
) -> (ProxyProcess, AccessLines) {
    let upstream = upstream.to_string();
    let mut args = vec!["--upstream", upstream.as_str(), "--health-kind", "tcp"];
    args.extend_from_slice(extra);
    ProxyProcess::start_logged(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &args,
    )
    .await
}

/// Sends `request` from `from` (a loopback address of the test's own) and reads the whole answer.
async fn send_from(from: SocketAddr, to: SocketAddr, request: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(from).unwrap();
    let mut stream: TcpStream = socket.connect(to).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("answered within 10 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_says_who_asked_what_and_how_it_went() {
    let net = 71;
    let upstream = Recorder::start((ip(net, 1), POD_PORT).into()).await;
    let (proxy, mut lines) = proxy_logged(net, upstream.addr, &["--access-log", "json"]).await;
    let client = ip(net, 100);

    let body = "name=ada";
    let request = format!(
        "POST /users?page=2 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: lab-test/1.0 (json)\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = send_from((client, 0).into(), proxy.listen, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let line = lines
        .next(Duration::from_secs(5))
        .await
        .expect("an access line");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    assert!(
        v["client"]
            .as_str()
            .is_some_and(|c| c.starts_with(&format!("{client}:"))),
        "{line}"
    );
    assert_eq!(v["method"], "POST", "{line}");
    assert_eq!(v["target"], "/users?page=2", "{line}");
    assert_eq!(v["proto"], "HTTP/1.1", "{line}");
    assert_eq!(v["host"], "app.example", "{line}");
    assert_eq!(v["status"], 200, "{line}");
    assert_eq!(v["bytes_in"], body.len(), "{line}");
    assert_eq!(v["bytes_out"], 2, "{line}");
    assert_eq!(v["user_agent"], "lab-test/1.0 (json)", "{line}");
    assert_eq!(v["group"], "default", "{line}");
    assert_eq!(v["upstream"], upstream.addr.to_string(), "{line}");
    assert_eq!(v["attempts"], 1, "{line}");
    let first_byte = v["upstream_first_byte_ms"].as_f64().expect("first byte");
    let upstream_ms = v["upstream_ms"].as_f64().expect("upstream time");
    let total = v["duration_ms"].as_f64().expect("duration");
    assert!(
        0.0 < first_byte && first_byte <= upstream_ms && upstream_ms <= total,
        "{line}"
    );
    assert!(v["error"].is_null(), "{line}");

    // The same attempt in the upstream histograms: one new connection, one first byte, the
    // connect part of it.
    let series = |name: &str, part: &str| {
        format!("proxy_upstream_{name}_seconds_{part}{{group=\"default\"}}")
    };
    assert_eq!(proxy.metric(&series("connect", "count")).await, Some(1.0));
    assert_eq!(
        proxy.metric(&series("first_byte", "count")).await,
        Some(1.0)
    );
    let connect = proxy.metric(&series("connect", "sum")).await.unwrap();
    let first = proxy.metric(&series("first_byte", "sum")).await.unwrap();
    assert!(0.0 < connect && connect <= first, "{connect} {first}");

    // A request no upstream served is logged too, with what went wrong.
    let refused =
        "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let answer = send_from((client, 0).into(), proxy.listen, refused).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let line = lines
        .next(Duration::from_secs(5))
        .await
        .expect("a second line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 400, "{line}");
    assert!(
        v["upstream"].is_null() && v["upstream_ms"].is_null(),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_access_log_is_one_logfmt_line_and_sighup_switches_it() {
    let net = 72;
    let upstream = Recorder::start((ip(net, 1), POD_PORT).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, "access_log: text\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let (proxy, mut lines) = proxy_logged(net, upstream.addr, &["--config", config_arg]).await;
    let client = ip(net, 100);

    let request = "GET /a%20b HTTP/1.1\r\nHost: app.example\r\nUser-Agent: lab \"quoted\"\r\nConnection: close\r\n\r\n";
    send_from((client, 0).into(), proxy.listen, request).await;
    let line = lines
        .next(Duration::from_secs(5))
        .await
        .expect("an access line");
    assert!(line.starts_with("ts="), "{line}");
    for field in [
        format!(" client={client}:"),
        " method=GET target=/a%20b proto=HTTP/1.1 host=app.example status=200 bytes_in=0 bytes_out=2 group=default ".to_owned(),
        format!(" upstream={} attempts=1 held_ms=0 ", upstream.addr),
        " user_agent=\"lab \\\"quoted\\\"\"".to_owned(),
    ] {
        assert!(line.contains(&field), "{field:?} not in {line}");
    }
    assert!(!line.contains('\u{1b}'), "no colour codes: {line:?}");

    // Off by reload: the next request writes nothing; on again, it does.
    std::fs::write(&config, "access_log: off\n").unwrap();
    proxy.sighup();
    wait_reloaded(&proxy, 1).await;
    send_from((client, 0).into(), proxy.listen, request).await;
    std::fs::write(&config, "access_log: json\n").unwrap();
    proxy.sighup();
    wait_reloaded(&proxy, 2).await;
    send_from((client, 0).into(), proxy.listen, request).await;
    let line = lines
        .next(Duration::from_secs(5))
        .await
        .expect("a line after the reload");
    assert!(
        line.starts_with("{\"ts\":"),
        "the request while off wrote nothing, then JSON: {line}"
    );
}

async fn wait_reloaded(proxy: &ProxyProcess, n: u32) {
    let series = "proxy_config_reloads_total{result=\"ok\"}";
    for _ in 0..200 {
        if proxy.metric(series).await.unwrap_or(0.0) >= f64::from(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("reload {n} not applied");
}

/// The request lines and headers of every request the upstream received, as text.
fn received(upstream: &Recorder) -> String {
    String::from_utf8_lossy(&upstream.received()).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_learns_the_client_from_forwarding_headers() {
    let net = 73;
    let upstream = Recorder::start((ip(net, 1), POD_PORT).into()).await;
    let (proxy, _lines) = proxy_logged(net, upstream.addr, &[]).await;
    let client = ip(net, 100);

    let request =
        "GET /by-default HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 203.0.113.9\r\n\
                   X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
    send_from((client, 0).into(), proxy.listen, request).await;
    let seen = received(&upstream);
    assert!(
        seen.contains(&format!("x-forwarded-for: 203.0.113.9, {client}\r\n")),
        "{seen}"
    );
    assert!(seen.contains(&format!("x-real-ip: {client}\r\n")), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http\r\n"), "{seen}");
    assert!(
        !seen.contains("6.6.6.6") && !seen.contains("https"),
        "{seen}"
    );
    assert!(!seen.contains("\r\nforwarded:"), "{seen}");
    drop(proxy);

    // Chosen headers only: the standard one alone.
    let upstream = Recorder::start((ip(net, 2), POD_PORT).into()).await;
    let (proxy, _lines) =
        proxy_logged(net, upstream.addr, &["--forwarded-headers", "forwarded"]).await;
    let request = "GET /chosen HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n";
    send_from((client, 0).into(), proxy.listen, request).await;
    let seen = received(&upstream);
    assert!(
        seen.contains(&format!(
            "forwarded: for={client};proto=http;host=\"app.example\"\r\n"
        )),
        "{seen}"
    );
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.9\r\n"),
        "untouched: {seen}"
    );
    assert!(!seen.contains("x-real-ip"), "{seen}");
}

#[test]
fn an_unknown_forwarding_header_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args([
            "--upstream",
            "127.0.0.1:1",
            "--forwarded-headers",
            "x-forwarded-host",
        ])
        .args(["--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("x-forwarded-host"), "{stderr}");
}
