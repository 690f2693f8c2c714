//! A steady stream of requests through the proxy: one every `interval`, each in its own task over
//! a keep-alive connection pool, every outcome recorded. Bounded: it stops by itself after
//! `MAX_REQUESTS` even if the test forgets to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const MAX_REQUESTS: usize = 5_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200, with the `X-Upstream-Addr` the proxy added.
    Ok { upstream: String },
    /// Any other status, with its body.
    Status(u16, String),
    /// No HTTP answer at all.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was sent, from the start of the load.
    pub sent: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
}

impl Sample {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    pub fn upstream(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Ok { upstream } => Some(upstream),
            _ => None,
        }
    }
}

pub struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    driver: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Load {
    pub fn start(target: SocketAddr, interval: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let driver = {
            let samples = Arc::clone(&samples);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut requests = tokio::task::JoinSet::new();
                let mut ticker = tokio::time::interval(interval);
                for _ in 0..MAX_REQUESTS {
                    ticker.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let client = client.clone();
                    let samples = Arc::clone(&samples);
                    requests.spawn(async move {
                        let sent = started.elapsed();
                        let t0 = Instant::now();
                        let outcome = one(&client, target).await;
                        let sample = Sample {
                            sent,
                            latency: t0.elapsed(),
                            outcome,
                        };
                        samples.lock().unwrap().push(sample);
                    });
                    while requests.try_join_next().is_some() {}
                }
                while requests.join_next().await.is_some() {}
            })
        };
        Self {
            samples,
            stop,
            driver,
            started,
        }
    }

    /// Time since the load started, on the same clock as [`Sample::sent`].
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops sending and waits for every request in flight to finish.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.driver.await.expect("load driver");
        let mut samples = self.samples.lock().unwrap().clone();
        samples.sort_by_key(|s| s.sent);
        samples
    }
}

async fn one(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    target: SocketAddr,
) -> Outcome {
    let req = hyper::Request::get(format!("http://{target}/users"))
        .header("Host", "lab.local")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, client.request(req)).await {
        Err(_) => return Outcome::Error("timed out".into()),
        Ok(Err(e)) => return Outcome::Error(format!("{e:?}")),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let upstream = response
        .headers()
        .get("x-upstream-addr")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match response.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => return Outcome::Error(format!("reading body: {e}")),
    };
    if status == 200 {
        Outcome::Ok { upstream }
    } else {
        Outcome::Status(status, body)
    }
}

/// The failures among `samples`, for assertion messages.
pub fn failures(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| !s.ok()).collect()
}

/// Panics naming the first few failures, if any request failed.
pub fn assert_no_failures(samples: &[Sample]) {
    let failed = failures(samples);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        samples.len(),
        &failed[..failed.len().min(5)]
    );
}
