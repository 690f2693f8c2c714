//! A real Prometheus (Debian's `prometheus` package) for one lab run: started with a config the
//! lab writes, fed its targets through a `file_sd` file the cluster rewrites as pods come and go
//! (as Kubernetes pod discovery feeds the cluster's Prometheus), asked over its HTTP API, stopped
//! when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::bins::installed;
use crate::process::Process;

/// Where the lab's Prometheus listens: not :9090, which a Prometheus service Debian started on
/// the same machine may hold on every address.
pub const LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(127, 0, 100, 90),
    19090,
));

/// One scrape target, labelled as the cluster's relabelling labels a pod (`app`, `pod`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub addr: SocketAddr,
    pub app: String,
    pub pod: String,
}

/// The `file_sd` file Prometheus watches: fixed targets (the proxy) plus the cluster's pods.
#[derive(Debug, Clone)]
pub struct TargetsFile {
    path: PathBuf,
    fixed: Vec<Target>,
}

impl TargetsFile {
    /// Writes the fixed targets and `pods`, atomically (a rename), so Prometheus never reads half
    /// a file. Prometheus picks the change up within its discovery's 5 s update interval, as it
    /// does with Kubernetes pod discovery.
    pub fn write(&self, pods: &[Target]) -> anyhow::Result<()> {
        let groups: Vec<_> = self
            .fixed
            .iter()
            .chain(pods)
            .map(|t| {
                serde_json::json!({
                    "targets": [t.addr.to_string()],
                    "labels": { "app": t.app, "pod": t.pod },
                })
            })
            .collect();
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&groups)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} into place", tmp.display()))
    }
}

/// One series of a range query: its labels and its (unix seconds, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

pub struct Prometheus {
    process: Process,
    targets: TargetsFile,
    scrape_interval: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Prometheus {
    /// Why Prometheus cannot run here, with how to fix it.
    pub fn missing() -> Option<String> {
        (!installed("prometheus")).then(|| {
            "prometheus is not installed: apt-get install prometheus (or scripts/setup.sh)"
                .to_owned()
        })
    }

    /// Starts Prometheus scraping every target of `fixed` (and, once written, the pods) every
    /// `scrape_interval`, its config, targets and data under `work/prometheus`.
    pub async fn start(
        work: &Path,
        scrape_interval: Duration,
        fixed: Vec<Target>,
    ) -> anyhow::Result<Self> {
        if let Some(why) = Self::missing() {
            bail!("{why}");
        }
        let dir = work.join("prometheus");
        // A data directory left by an earlier run in the same work directory would mix runs.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let targets = TargetsFile {
            path: dir.join("targets.json"),
            fixed,
        };
        targets.write(&[])?;
        let interval = format!("{}ms", scrape_interval.as_millis());
        let config = format!(
            "# Written by the lab: every pod of the run, found through {targets}.\n\
             global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\n\
             scrape_configs:\n  - job_name: highload-pods\n    file_sd_configs:\n      - files: ['{targets}']\n",
            targets = targets.path.display(),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let args = [
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={LISTEN}"),
            "--log.level=warn".to_owned(),
        ];
        let process = Process::spawn("prometheus", Path::new("prometheus"), &args, &[], work)?;
        let mut prometheus = Self {
            process,
            targets,
            scrape_interval,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        prometheus.wait_ready(Duration::from_secs(30)).await?;
        Ok(prometheus)
    }

    /// The file the cluster writes its pods into.
    pub fn targets(&self) -> TargetsFile {
        self.targets.clone()
    }

    pub fn scrape_interval(&self) -> Duration {
        self.scrape_interval
    }

    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.process.check_running()?;
            if self.get("/-/ready").await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Prometheus is not ready on {LISTEN} after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `apps` (each at least once) are scraped and up: the run's first seconds are
    /// on the dashboard too.
    pub async fn wait_scraping(&mut self, apps: &[&str], limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.process.check_running()?;
            let now = unix_now();
            let up: Vec<String> = self
                .query_range("up == 1", now, now, Duration::from_secs(1))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.labels.get("app").cloned())
                .collect();
            if apps.iter().all(|a| up.iter().any(|u| u == a)) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Prometheus does not scrape {apps:?} after {limit:?} (up: {up:?}); its targets: http://{LISTEN}/targets"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `expr` evaluated from `start` to `end` (unix seconds) every `step`.
    pub async fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> anyhow::Result<Vec<Series>> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={}",
            encode(expr),
            step.as_secs_f64()
        );
        let body = self.get(&path).await?;
        parse_matrix(&body).with_context(|| format!("the answer to {expr}"))
    }

    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let uri = format!("http://{LISTEN}{path}");
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            self.client.get(uri.parse().context("a Prometheus URL")?),
        )
        .await
        .context("Prometheus did not answer in 10 s")??;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            bail!("Prometheus answered {status} to {path}: {body}");
        }
        Ok(body)
    }
}

/// The series of a Prometheus `matrix` answer; `NaN` and infinite values (a quantile of no
/// requests) are left out, as Grafana leaves a gap.
fn parse_matrix(body: &str) -> anyhow::Result<Vec<Series>> {
    let answer: serde_json::Value = serde_json::from_str(body).context("not JSON")?;
    if answer["status"] != "success" {
        bail!("Prometheus: {}", answer["error"]);
    }
    let result = answer["data"]["result"]
        .as_array()
        .context("no data.result")?;
    result
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .context("a series without labels")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let points = s["values"]
                .as_array()
                .context("a series without values")?
                .iter()
                .filter_map(|p| {
                    let t = p[0].as_f64()?;
                    let v: f64 = p[1].as_str()?.parse().ok()?;
                    v.is_finite().then_some((t, v))
                })
                .collect();
            Ok(Series { labels, points })
        })
        .collect()
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_encoded_whole() {
        assert_eq!(
            encode(r#"sum by (le) (rate(x{a="5xx"}[4s]))"#),
            "sum%20by%20%28le%29%20%28rate%28x%7Ba%3D%225xx%22%7D%5B4s%5D%29%29"
        );
    }

    #[test]
    fn a_matrix_keeps_labels_and_finite_points() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"class":"2xx"},"values":[[1.5,"3"],[2.5,"NaN"],[3.5,"+Inf"],[4.5,"0.25"]]}]}}"#;
        let series = parse_matrix(body).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels["class"], "2xx");
        assert_eq!(series[0].points, [(1.5, 3.0), (4.5, 0.25)]);
    }

    #[test]
    fn an_error_answer_is_an_error() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(parse_matrix(body)
            .unwrap_err()
            .to_string()
            .contains("parse error"));
    }
}
