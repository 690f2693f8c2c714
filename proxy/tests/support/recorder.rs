//! An upstream that records every byte it receives and answers each connection's first request
//! with `200 ok`. Unlike [`super::Pod`] (hyper, which would refuse a smuggled request itself), it
//! shows exactly what the proxy forwarded, valid HTTP or not.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct Recorder {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding the recorder on {addr}: {e}"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn({
            let received = Arc::clone(&received);
            async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let received = Arc::clone(&received);
                    tokio::spawn(async move {
                        let mut conn = Vec::new();
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            received.lock().unwrap().extend_from_slice(&buf[..n]);
                            conn.extend_from_slice(&buf[..n]);
                            if conn.windows(4).any(|w| w == b"\r\n\r\n") {
                                let _ = stream
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                                    .await;
                                break;
                            }
                        }
                    });
                }
            }
        });
        Self {
            addr,
            received,
            server,
        }
    }

    /// Every byte any connection sent so far, concatenated.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}
