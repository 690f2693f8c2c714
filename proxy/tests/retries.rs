//! A pooled upstream connection that fails before any response byte: idempotent requests are
//! retried on a fresh connection, a POST is not (it may have been processed).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{ip, ProxyProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers the first request of each connection (keep-alive) and closes the
/// connection, unanswered, when a second request arrives on it: what a pooled connection to a
/// server that has just restarted or timed it out looks like.
async fn one_answer_per_connection(addr: SocketAddr) -> Arc<AtomicU64> {
    let dropped = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind(addr).await.unwrap();
    let counter = Arc::clone(&dropped);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_none() {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                if read_request(&mut stream).await.is_some() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // Dropped here: the second request gets no answer.
            });
        }
    });
    dropped
}

/// Reads one request head (and a Content-Length body); None at EOF.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(())
}

/// Sends `request` on a keep-alive connection and reads one response's status.
async fn send(client: &mut TcpStream, request: &str) -> u16 {
    client.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            client.read(&mut byte).await.unwrap(),
            1,
            "proxy closed the connection"
        );
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).await.unwrap();
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pooled_connection_is_retried_for_get_not_for_post() {
    let net = 26;
    let upstream = SocketAddr::from((ip(net, 1), 8000));
    let dropped = one_answer_per_connection(upstream).await;
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &["--upstream", &upstream.to_string()],
    )
    .await;
    let mut client = TcpStream::connect(proxy.listen).await.unwrap();
    let get = "GET /users HTTP/1.1\r\nHost: lab.local\r\n\r\n";

    for i in 0..10 {
        assert_eq!(send(&mut client, get).await, 200, "GET {i}");
    }
    // The proxy reused pooled connections, hit the closed ones and retried elsewhere.
    testkit::wait::until("reused connections failed", Duration::from_secs(5), || {
        dropped.load(Ordering::Relaxed) >= 5
    })
    .await;

    // The last GET's fresh connection is pooled; a POST on it reaches the upstream, which drops
    // it. The POST may have been processed, so it is not sent again: 502.
    let post = "POST /users HTTP/1.1\r\nHost: lab.local\r\nContent-Length: 2\r\n\r\nhi";
    let before = dropped.load(Ordering::Relaxed);
    assert_eq!(send(&mut client, post).await, 502);
    // A retry would have come before the 502; the upstream counts its drop a moment later.
    testkit::wait::until(
        "the POST reached the upstream",
        Duration::from_secs(5),
        || dropped.load(Ordering::Relaxed) > before,
    )
    .await;
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        before + 1,
        "the POST was sent once, not retried"
    );
}
