//! Hostile HTTP clients against the proxy binary, over raw sockets: malformed and smuggling
//! requests (400, never forwarded), size limits (414, 431, 413), slowloris (closed after the
//! header and body timeouts) and a connection flood (503 over the limit, the proxy keeps serving).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{ip, Pod, ProxyProcess, Recorder, POD_PORT};
use testkit::sockets::closed_within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request`, reads until the proxy closes (at most 10 s): (status, response text).
/// Status 0 when the proxy closed without answering.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The proxy may answer and close before it read everything; that is fine.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn proxy_in_front_of(net: u8, upstream: SocketAddr, extra: &[&str]) -> ProxyProcess {
    let upstream = upstream.to_string();
    // TCP checks send no bytes: whatever the upstream records came from a client's request.
    let mut args = vec!["--upstream", upstream.as_str(), "--health-kind", "tcp"];
    args.extend_from_slice(extra);
    ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &args,
    )
    .await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: lab.local\r\nConnection: close\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_smuggling_requests_get_400_and_reach_no_upstream() {
    let net = 41;
    let upstream = Recorder::start((ip(net, 1), POD_PORT).into()).await;
    let proxy = proxy_in_front_of(net, upstream.addr, &[]).await;

    let cases: [(&str, &str); 10] = [
        ("garbage request line", "GARBAGE\r\n\r\n"),
        ("no version", "GET /\r\nHost: a\r\n\r\n"),
        ("unknown version", "GET / HTTP/7.1\r\nHost: a\r\n\r\n"),
        ("no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n"),
        (
            "CL.TE",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        ),
        (
            "TE.CL",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        ),
        (
            "duplicate differing Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        ),
        (
            "Content-Length with non-digits",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello",
        ),
        (
            "chunked is not the final Transfer-Encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let (status, text) = exchange(proxy.listen, request.as_bytes()).await;
        assert_eq!(status, 400, "{what}: {text}");
    }
    // Three of them pass Pingora's parser and are refused by ours (counted); Pingora answers the
    // other seven itself, before any hook runs, and they are not counted (proxy/README.md).
    let ours = proxy
        .metric("proxy_requests_refused_total{reason=\"bad_request\"}")
        .await;
    assert_eq!(ours, Some(3.0));
    assert_eq!(
        String::from_utf8_lossy(&upstream.received()),
        "",
        "nothing may reach the upstream"
    );

    // A control character or space in the target is not refused: Pingora percent-encodes it and
    // the request goes on. The upstream never sees the raw byte.
    let (status, text) = exchange(
        proxy.listen,
        b"GET /a\x01b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let received = String::from_utf8_lossy(&upstream.received()).into_owned();
    assert!(
        received.starts_with("GET /a%01b HTTP/1.1\r\n"),
        "{received:?}"
    );

    // The recorder does see what the proxy forwards: a valid chunked POST arrives.
    let good = "POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (status, text) = exchange(proxy.listen, good.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let received = String::from_utf8_lossy(&upstream.received()).into_owned();
    assert!(received.contains("POST /ok HTTP/1.1\r\n"), "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_size_limits_get_414_431_413_and_reach_no_upstream() {
    let net = 42;
    let upstream = Recorder::start((ip(net, 1), POD_PORT).into()).await;
    let proxy = proxy_in_front_of(net, upstream.addr, &[]).await;

    let long_uri = format!("/{}", "a".repeat(9000));
    let (status, text) = exchange(proxy.listen, get(&long_uri).as_bytes()).await;
    assert_eq!(status, 414, "{}", &text[..text.len().min(200)]);

    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40 * 1024)
    );
    assert_eq!(exchange(proxy.listen, big_header.as_bytes()).await.0, 431);

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert_eq!(exchange(proxy.listen, many.as_bytes()).await.0, 431);

    // Past Pingora's own parser limits (256 lines, 1 MiB) the answer is its 400: documented.
    let too_many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let too_many = format!("GET / HTTP/1.1\r\nHost: a\r\n{too_many}\r\n");
    assert_eq!(exchange(proxy.listen, too_many.as_bytes()).await.0, 400);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(2 * 1024 * 1024)
    );
    let (status, _) = exchange(proxy.listen, huge.as_bytes()).await;
    assert!(status == 400 || status == 0, "a 2 MiB header: {status}");

    let declared = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n";
    let (status, text) = exchange(proxy.listen, declared.as_bytes()).await;
    assert_eq!(status, 413, "{text}");

    assert!(
        upstream.received().is_empty(),
        "refused requests reached the upstream: {}",
        String::from_utf8_lossy(&upstream.received())
    );
    assert_eq!(exchange(proxy.listen, get("/fine").as_bytes()).await.0, 200);
    // Counted by reason; the 400s past Pingora's parser limits are its own, before any hook.
    for (reason, n) in [
        ("uri_too_long", 1),
        ("header_too_large", 2),
        ("body_too_large", 1),
    ] {
        let series = format!("proxy_requests_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(proxy.metric(&series).await, Some(n as f64), "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_group_serves_gets_404_and_is_counted() {
    let net = 46;
    let upstream = Recorder::start((ip(net, 1), POD_PORT).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    let groups = format!(
        "health:\n  kind: tcp\ngroups:\n  - name: app\n    upstream: {}\n    hosts: [app.example]\n",
        upstream.addr
    );
    std::fs::write(&config, groups).unwrap();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let other = "GET /x HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n";
    let (status, text) = exchange(proxy.listen, other.as_bytes()).await;
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("no upstream group serves host \"other.example\""),
        "{text}"
    );
    assert!(upstream.received().is_empty());
    let app = "GET /x HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n";
    assert_eq!(exchange(proxy.listen, app.as_bytes()).await.0, 200);
    let series = "proxy_requests_refused_total{reason=\"unrouted\"}";
    assert_eq!(proxy.metric(series).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    let net = 43;
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let proxy = proxy_in_front_of(net, pod.addr, &["--max-body-bytes", "1000"]).await;

    let chunk = format!("200\r\n{}\r\n", "c".repeat(0x200));
    let body: String = std::iter::repeat_n(chunk.as_str(), 4).collect();
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}0\r\n\r\n"
    );
    let (status, text) = exchange(proxy.listen, request.as_bytes()).await;
    // Pingora may have sent the header and the first chunks on before the limit was passed;
    // the upstream then sees a body that stops without its last chunk, never a whole request.
    assert_eq!(status, 413, "{text}");
    assert_eq!(pod.served(), 0, "the pod got a whole body over the limit");
    let series = "proxy_requests_refused_total{reason=\"body_too_large\"}";
    assert_eq!(proxy.metric(series).await, Some(1.0));

    let small =
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(exchange(proxy.listen, small.as_bytes()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_after_the_header_and_body_timeouts() {
    let net = 44;
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let proxy = proxy_in_front_of(
        net,
        pod.addr,
        &["--header-timeout", "1s", "--body-timeout", "1s"],
    )
    .await;

    // Silent after connecting.
    let mut silent = TcpStream::connect(proxy.listen).await.unwrap();
    // Slowloris: a header byte every 100 ms, never finishing (Pingora alone times out per read).
    let mut trickle = TcpStream::connect(proxy.listen).await.unwrap();
    let trickling = tokio::spawn(async move {
        let started = Instant::now();
        trickle
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            .await
            .unwrap();
        while started.elapsed() < Duration::from_secs(8) {
            if trickle.write_all(b"z").await.is_err() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    });
    // A body that stops half-way.
    let mut slow_body = TcpStream::connect(proxy.listen).await.unwrap();
    slow_body
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();

    let limit = Duration::from_secs(5);
    let waited = closed_within(&mut silent, limit).await;
    assert!(
        waited.is_some(),
        "a silent client is still connected after {limit:?}"
    );
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, slow_body.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled body is still open after {limit:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let cut = trickling.await.unwrap();
    let cut = cut.expect("a trickling header was never cut off");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(4),
        "slowloris cut after {cut:?}, header timeout 1s"
    );

    assert_eq!(
        exchange(proxy.listen, get("/still-fine").as_bytes())
            .await
            .0,
        200
    );
    let metrics = proxy.admin_get("/metrics").await.unwrap();
    assert!(
        metrics.contains("proxy_client_connections_closed_total{reason=\"header_timeout\"} 2"),
        "{metrics}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_and_the_proxy_keeps_serving() {
    let net = 45;
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let proxy = proxy_in_front_of(
        net,
        pod.addr,
        &["--max-connections", "20", "--header-timeout", "60s"],
    )
    .await;
    // The start-up probe's connection may still hold a slot: begin from a quiet proxy.
    testkit::wait::until("no client connection open", Duration::from_secs(5), || {
        open_connections(&proxy) == Some(0)
    })
    .await;

    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(proxy.listen).await.unwrap());
    }
    testkit::wait::until("20 connections open", Duration::from_secs(5), || {
        open_connections(&proxy) == Some(20)
    })
    .await;
    let rss_before = rss_kib(proxy.pid());
    let refused_before = refused_connections(&proxy).expect("metrics");

    // A flood, bounded: 500 connections over the limit, 50 at a time.
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..10 {
        let batch: Vec<_> = (0..50)
            .map(|_| tokio::spawn(exchange(proxy.listen, get("/flood").into_bytes().leak())))
            .collect();
        for b in batch {
            *statuses.entry(b.await.unwrap().0).or_default() += 1;
        }
    }
    assert_eq!(
        statuses.get(&503),
        Some(&500),
        "answers to the flood: {statuses:?}"
    );
    assert_eq!(pod.served(), 0);
    let grew = rss_kib(proxy.pid()).saturating_sub(rss_before);
    assert!(
        grew < 32 * 1024,
        "RSS grew {grew} KiB over 500 refused connections"
    );

    drop(idle);
    testkit::wait::until(
        "the idle connections closed",
        Duration::from_secs(5),
        || open_connections(&proxy) == Some(0),
    )
    .await;
    let (status, text) = exchange(proxy.listen, get("/after").as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        refused_connections(&proxy).map(|n| n - refused_before),
        Some(500),
        "connections counted as refused during the flood"
    );
}

/// `proxy_client_connections` from /metrics, read synchronously for `wait_for`.
fn open_connections(proxy: &ProxyProcess) -> Option<i64> {
    metric(proxy, "proxy_client_connections ")
}

/// Connections refused for `max_connections`, from /metrics.
fn refused_connections(proxy: &ProxyProcess) -> Option<i64> {
    metric(
        proxy,
        "proxy_client_connections_closed_total{reason=\"max_connections\"} ",
    )
}

/// One sample from /metrics, by the text before its value.
fn metric(proxy: &ProxyProcess, series: &str) -> Option<i64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(proxy.admin).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads one response (header and Content-Length body) from a kept-alive connection: its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                return head[9..12].parse().unwrap();
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_idles_up_to_the_header_timeout_and_its_next_header_gets_it_whole()
{
    let net = 47;
    let pod = Pod::start(ip(net, 1), POD_PORT, "pod-1").await;
    let proxy = proxy_in_front_of(net, pod.addr, &["--header-timeout", "2s"]).await;
    let request = b"GET /ka HTTP/1.1\r\nHost: lab.local\r\n\r\n";

    // Idle for most of the header timeout between requests: the connection still serves.
    let mut conn = TcpStream::connect(proxy.listen).await.unwrap();
    for _ in 0..3 {
        conn.write_all(request).await.unwrap();
        assert_eq!(read_response(&mut conn).await, 200);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // Then silent: closed once the header timeout has passed, not at Pingora's 60 s.
    let waited = closed_within(&mut conn, Duration::from_secs(5)).await;
    let waited = waited.expect("an idle keep-alive connection still open 6.5 s after its request");
    assert!(
        waited < Duration::from_secs(3),
        "closed {waited:?} after the 1.5 s of idling"
    );

    // A next request trickled after an idle pause has the whole header timeout from its first
    // byte: still open 1.5 s into it (3 s after the last response), cut before 4 s.
    let mut slow = TcpStream::connect(proxy.listen).await.unwrap();
    slow.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut slow).await, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    slow.write_all(b"GET /ka HTTP/1.1\r\nHost: lab.local\r\nX-Slow: ")
        .await
        .unwrap();
    let mut cut = None;
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"z").await.is_err() {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("a trickled header on a kept-alive connection was never cut off");
    assert!(
        cut >= Duration::from_millis(1500) && cut < Duration::from_secs(4),
        "cut {cut:?} after its first byte, header timeout 2 s"
    );
    let metrics = proxy.admin_get("/metrics").await.unwrap();
    assert!(
        metrics.contains("proxy_client_connections_closed_total{reason=\"header_timeout\"} 1"),
        "{metrics}"
    );
}
