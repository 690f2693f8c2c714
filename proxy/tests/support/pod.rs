//! A "pod": an HTTP server on its own loopback IP answering every request with its name
//! (`/slow…` after a second, `/sleep/<ms>` after that long, `/upload…` after reading the whole
//! body). It can
//! be stopped (the IP then refuses connections) or blackholed (the IP stops answering: a listener
//! whose accept queue is full drops every SYN, as a deleted pod's IP does in a cluster). It can
//! also fail gray: frozen (as a SIGSTOPped process: the kernel still completes handshakes into
//! the accept queue, but nothing is accepted or answered until it thaws) or slow (every answer
//! delayed).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub struct Pod {
    pub name: String,
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    gray: Arc<Gray>,
    server: Option<tokio::task::JoinHandle<()>>,
    blackhole: Vec<socket2::Socket>,
}

impl Pod {
    pub async fn start(ip: Ipv4Addr, port: u16, name: &str) -> Self {
        let addr = SocketAddr::from((ip, port));
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding pod {name} on {addr}: {e}"));
        let served = Arc::new(AtomicU64::new(0));
        let gray = Arc::new(Gray::default());
        let server = tokio::spawn(serve(
            listener,
            name.to_owned(),
            Arc::clone(&served),
            Arc::clone(&gray),
        ));
        Self {
            name: name.to_owned(),
            addr,
            served,
            gray,
            server: Some(server),
            blackhole: Vec::new(),
        }
    }

    pub fn ip(&self) -> Ipv4Addr {
        match self.addr.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => unreachable!("pods are on IPv4 loopback"),
        }
    }

    /// Requests this pod answered.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Freezes the pod: nothing is accepted or answered (connections and requests wait) until
    /// [`Pod::thaw`].
    pub fn freeze(&self) {
        self.gray.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.gray.frozen.send_replace(false);
    }

    /// Every answer from now on comes `delay` late.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.gray.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops serving: the listener and every connection close; the IP refuses connections.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Stops serving and makes the IP stop answering: new SYNs are dropped.
    pub async fn blackhole(&mut self) {
        self.stop();
        // Let the aborted server release the port.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.bind(&self.addr.into()).unwrap();
        socket.listen(0).unwrap();
        // Fill the accept queue (backlog 0 holds one) and never accept.
        for _ in 0..3 {
            let client =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            client.set_nonblocking(true).unwrap();
            let _ = client.connect(&self.addr.into());
            self.blackhole.push(client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.blackhole.push(socket);
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the pod fails gray.
struct Gray {
    frozen: tokio::sync::watch::Sender<bool>,
    delay_ms: AtomicU64,
}

impl Default for Gray {
    fn default() -> Self {
        Self {
            frozen: tokio::sync::watch::channel(false).0,
            delay_ms: AtomicU64::new(0),
        }
    }
}

impl Gray {
    /// Returns once the pod is not frozen.
    async fn running(&self) {
        let mut frozen = self.frozen.subscribe();
        let _ = frozen.wait_for(|f| !*f).await;
    }
}

async fn serve(listener: TcpListener, name: String, served: Arc<AtomicU64>, gray: Arc<Gray>) {
    // Connections are tasks of this set, so aborting the server closes them all.
    let mut connections = JoinSet::new();
    loop {
        gray.running().await;
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        let served = Arc::clone(&served);
        let gray = Arc::clone(&gray);
        connections.spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let name = name.clone();
                let served = Arc::clone(&served);
                let gray = Arc::clone(&gray);
                async move {
                    gray.running().await;
                    let delay = gray.delay_ms.load(Ordering::Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let path = req.uri().path().to_owned();
                    if path.starts_with("/slow") {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    if let Some(ms) = path.strip_prefix("/sleep/").and_then(|n| n.parse().ok()) {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    // An upload is answered only once its whole body is in, like a real handler.
                    if path.starts_with("/upload") {
                        use http_body_util::BodyExt;
                        if req.into_body().collect().await.is_err() {
                            return Ok(Response::builder()
                                .status(400)
                                .body(Full::new(Bytes::new()))
                                .unwrap());
                        }
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                    let body = format!("{{\"pod\":\"{name}\",\"path\":\"{path}\"}}");
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}
