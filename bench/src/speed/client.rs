//! A minimal HTTP/1.1 keep-alive client over one TCP connection: enough to check a server answers
//! and to hold thousands of idle connections that each did one request, at a few KiB apiece.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `to`, from `from` when given (spreads many connections over source addresses).
pub async fn connect(from: Option<IpAddr>, to: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding {ip}"))?;
    }
    socket
        .connect(to)
        .await
        .with_context(|| format!("connecting to {to}"))
}

/// Sends `GET path` and reads the whole response; fails unless it is a 200.
pub async fn get(stream: &mut TcpStream, path: &str) -> anyhow::Result<()> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the response header");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!(
            "answered {}",
            head.lines().next().unwrap_or_default().trim()
        );
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let done = |buf: &[u8]| match length {
        Some(len) => buf.len() >= head_end + len,
        // Chunked: the last chunk ends the body.
        None => buf[head_end..].ends_with(b"0\r\n\r\n"),
    };
    while !done(&buf) {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed in the middle of the body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Polls until `GET path` at `addr` answers 200 on a fresh connection, for at most `limit`.
pub async fn wait_answering(addr: SocketAddr, path: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let attempt = async {
            let mut s = connect(None, addr).await?;
            get(&mut s, path).await
        };
        let error = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => anyhow::anyhow!("no answer within 2s"),
        };
        if tokio::time::Instant::now() > deadline {
            return Err(error.context(format!("GET {path} at {addr} after {limit:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
