//! Steady load through the proxy under test: one request every 1/rate s, each in its own task
//! over a keep-alive pool, every outcome recorded with whether a backend and a replica were ready
//! when it was sent. Prints one line per request as the original lab's load test did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::cluster::Readiness;

/// At most this many requests per run, whatever the phases say.
const MAX_REQUESTS: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Status(u16),
    Timeout,
    /// No HTTP answer: refused, reset, closed.
    Reset,
}

impl Outcome {
    /// The failure kind for the tables: 502, 503, 504, other status, timeout, reset.
    pub fn kind(&self) -> Option<String> {
        match self {
            Self::Ok => None,
            Self::Status(code) => Some(code.to_string()),
            Self::Timeout => Some("timeout".into()),
            Self::Reset => Some("reset".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub seq: u64,
    /// Since the load started.
    pub sent_ms: f64,
    pub latency_ms: f64,
    pub outcome: Outcome,
    pub backend: String,
    pub db: String,
    /// A backend and a replica were in DNS when it was sent.
    pub ready: bool,
    /// The response body of a failed request (first 200 characters), to tell whose error it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_body: Option<String>,
}

pub struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    driver: tokio::task::JoinHandle<()>,
    started: Instant,
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

impl Load {
    pub fn start(
        target: SocketAddr,
        rate: u32,
        timeout: Duration,
        quiet: bool,
        ready: Arc<Readiness>,
    ) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let driver = {
            let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                let mut ticker = tokio::time::interval(interval);
                for seq in 1..=MAX_REQUESTS {
                    ticker.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (client, samples) = (client.clone(), Arc::clone(&samples));
                    let is_ready = ready.serving();
                    tasks.spawn(async move {
                        let sent = started.elapsed();
                        let t0 = Instant::now();
                        let (outcome, backend, db, body) = one(&client, target, timeout).await;
                        let sample = Sample {
                            seq,
                            sent_ms: sent.as_secs_f64() * 1000.0,
                            latency_ms: t0.elapsed().as_secs_f64() * 1000.0,
                            outcome,
                            backend,
                            db,
                            ready: is_ready,
                            error_body: None,
                        };
                        let sample = Sample {
                            error_body: sample
                                .outcome
                                .kind()
                                .map(|_| truncate(&body, 200).to_owned()),
                            ..sample
                        };
                        // Quiet drops the answered lines, never the failures.
                        if !quiet || sample.error_body.is_some() {
                            println!("{}", line(&sample, &body));
                        }
                        samples
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(sample);
                    });
                    while tasks.try_join_next().is_some() {}
                }
                while tasks.join_next().await.is_some() {}
            })
        };
        Self {
            samples,
            stop,
            driver,
            started,
        }
    }

    /// Time since the load started, on the samples' clock.
    pub fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Requests answered so far, and how many of them failed.
    pub fn tally(&self) -> (usize, usize) {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let failed = samples
            .iter()
            .filter(|s| s.outcome.kind().is_some())
            .count();
        (samples.len(), failed)
    }

    /// Stops sending and waits for the requests in flight.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.driver.await;
        let mut samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        samples.sort_by_key(|s| s.seq);
        samples
    }
}

async fn one(
    client: &HttpClient,
    target: SocketAddr,
    timeout: Duration,
) -> (Outcome, String, String, String) {
    let req = hyper::Request::get(format!("http://{target}/users"))
        .header("Host", "lab.local")
        .body(Empty::new())
        .expect("a valid request");
    let exchange = async {
        let response = client.request(req).await.map_err(|_| Outcome::Reset)?;
        let status = response.status().as_u16();
        let backend = response
            .headers()
            .get("x-upstream-addr")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| Outcome::Reset)?
            .to_bytes();
        Ok::<_, Outcome>((status, backend, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => (Outcome::Timeout, "-".into(), "-".into(), String::new()),
        Ok(Err(outcome)) => (outcome, "-".into(), "-".into(), String::new()),
        Ok(Ok((status, backend, body))) => {
            let db = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("db").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "-".into());
            let outcome = if status == 200 {
                Outcome::Ok
            } else {
                Outcome::Status(status)
            };
            (outcome, backend, db, body.trim().to_owned())
        }
    }
}

/// `[07] 10:17:48 | backend=127.0.101.2:8000 | db=pg2 | body={...}`, as the original load test.
fn line(s: &Sample, body: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    let clock = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let body = truncate(body, 120);
    match s.outcome.kind() {
        None => format!(
            "[{:02}] {clock} | backend={} | db={} | body={body}",
            s.seq % 100,
            s.backend,
            s.db
        ),
        Some(kind) => format!(
            "[{:02}] {clock} | FAILED {kind} after {:.2}s | backend={} | body={body}",
            s.seq % 100,
            s.latency_ms / 1000.0,
            s.backend
        ),
    }
}

fn truncate(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}
