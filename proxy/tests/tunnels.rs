//! Upgraded connections through the proxy binary: a real websocket client (tokio-tungstenite)
//! and a real websocket echo server on a pod address. A tunnel outlives every other timeout of
//! the proxy and its body size limit, ends after its own idle timeout, is counted in metrics, and
//! lives through a SIGHUP reload and a SIGTERM drain.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use support::{ip, ProxyProcess, POD_PORT};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A websocket server that echoes every text and binary message, one task per connection.
async fn echo_server(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr)
        .await
        .expect("binding the echo server");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                // TCP health checks connect and close: not a websocket, nothing to do.
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

async fn connect(proxy: &ProxyProcess) -> Client {
    let url = format!("ws://{}/ws", proxy.listen);
    let (ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(response.status(), 101);
    ws
}

/// Sends `text` and waits (at most 5 s) for its echo.
async fn echo(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an echo within 5 s")
        .expect("the tunnel is open")
        .expect("a message");
    assert_eq!(answer.into_text().unwrap().as_str(), text);
}

async fn metric(proxy: &ProxyProcess, series: &str) -> f64 {
    proxy.metric(series).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_websocket_outlives_every_other_timeout_and_ends_at_its_own() {
    let net = 75;
    let pod: SocketAddr = (ip(net, 1), POD_PORT).into();
    let _server = echo_server(pod).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    // Every other timeout 1 s, a body limit of 1 KiB; the tunnel's own idle timeout 4 s.
    std::fs::write(
        &config,
        "upstream:\n  read_timeout: 1s\n  write_timeout: 1s\n",
    )
    .unwrap();
    let upstream = pod.to_string();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--upstream",
            &upstream,
            "--health-kind",
            "tcp",
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--max-body-bytes",
            "1024",
            "--tunnel-idle-timeout",
            "4s",
        ],
    )
    .await;

    let mut ws = connect(&proxy).await;
    echo(&mut ws, "hello").await;
    assert_eq!(
        metric(&proxy, "proxy_tunnels_open{group=\"default\"}").await,
        1.0
    );
    // Quiet for 2.5 s: longer than the body, header, read and write timeouts.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    echo(&mut ws, "still here").await;
    // 8 KiB across the tunnel, over the 1 KiB body limit.
    let big = "x".repeat(8 * 1024);
    echo(&mut ws, &big).await;
    let from_client = metric(
        &proxy,
        "proxy_tunnel_bytes_total{direction=\"from_client\",group=\"default\"}",
    )
    .await;
    let to_client = metric(
        &proxy,
        "proxy_tunnel_bytes_total{direction=\"to_client\",group=\"default\"}",
    )
    .await;
    assert!(
        from_client >= 8192.0 && to_client >= 8192.0,
        "{from_client} {to_client}"
    );

    // Quiet past the tunnel's idle timeout: the proxy closes it.
    let quiet = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    let waited = quiet.elapsed();
    assert!(
        matches!(end, Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))),
        "the tunnel was closed: {end:?}"
    );
    assert!(
        waited >= Duration::from_millis(3500) && waited < Duration::from_secs(7),
        "closed after {waited:?} of quiet, the idle timeout is 4 s"
    );
    let closed = "proxy_tunnels_closed_total{group=\"default\",reason=\"idle_timeout\"}";
    let mut n = 0.0;
    for _ in 0..100 {
        n = metric(&proxy, closed).await;
        if n >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(n, 1.0, "counted as an idle timeout");
    assert_eq!(
        metric(&proxy, "proxy_tunnels_open{group=\"default\"}").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_lives_through_a_reload_and_is_drained_not_cut_on_sigterm() {
    let net = 76;
    let pod: SocketAddr = (ip(net, 1), POD_PORT).into();
    let _server = echo_server(pod).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    let group = |interval: &str| {
        format!(
            "health:\n  kind: tcp\n  interval: {interval}\ngroups:\n  - name: default\n    upstream: {pod}\n"
        )
    };
    std::fs::write(&config, group("1s")).unwrap();
    let mut proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--shutdown-timeout",
            "20s",
        ],
    )
    .await;
    let mut ws = connect(&proxy).await;
    echo(&mut ws, "before the reload").await;

    // A reload that restarts the group (its checks changed): the tunnel keeps going.
    std::fs::write(&config, group("500ms")).unwrap();
    proxy.sighup();
    let ok = "proxy_config_reloads_total{result=\"ok\"}";
    for _ in 0..200 {
        if metric(&proxy, ok).await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(metric(&proxy, ok).await, 1.0, "the reload applied");
    echo(&mut ws, "after the reload").await;

    // SIGTERM: no new connection is accepted, but the open tunnel is drained, not cut.
    proxy.sigterm();
    tokio::time::sleep(Duration::from_secs(2)).await;
    echo(&mut ws, "while draining").await;
    assert!(proxy.alive(), "the proxy waits for the open tunnel");
    // Once its client closes it, the proxy has nothing left and exits.
    ws.close(None).await.expect("close");
    let closed_at = Instant::now();
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the proxy exits once the tunnel closed");
    assert!(status.success(), "{status:?}");
    assert!(
        closed_at.elapsed() < Duration::from_secs(5),
        "exited {:?} after the tunnel closed",
        closed_at.elapsed()
    );
}
