//! SIGHUP reloads the `--config` file of the real proxy binary, with a real DNS server and real
//! pods: a new upstream under load costs no request, a broken file changes nothing, and a group the
//! reload leaves alone keeps what it knows.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{assert_no_failures, get, ip, Load, Pod, ProxyProcess, Sample, POD_PORT};
use testkit::{DnsMode, DnsServer};

const TICK: Duration = Duration::from_millis(10);
const NAME_A: &str = "backend-a.highload-dns.svc.cluster.local";
const NAME_B: &str = "backend-b.highload-dns.svc.cluster.local";

/// A config file the test rewrites, in a directory of its own.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.yaml");
        std::fs::write(&path, yaml).unwrap();
        Self { _dir: dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Replaces the file whole, as a ConfigMap update does (kubelet swaps a symlink): the proxy
    /// never reads half a file.
    fn rewrite(&self, yaml: &str) {
        let tmp = Path::new(&self.path).with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

fn default_group(upstream: &str) -> String {
    format!("groups:\n  - name: default\n    upstream: {upstream}\n")
}

/// `proxy_config_reloads_total{result}`.
async fn reloads(proxy: &ProxyProcess, result: &str) -> Option<f64> {
    let series = format!("proxy_config_reloads_total{{result=\"{result}\"}}");
    proxy.metric(&series).await
}

/// Waits until `proxy_config_reloads_total{result}` reaches `n`.
async fn wait_reloads(proxy: &ProxyProcess, result: &str, n: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if reloads(proxy, result).await == Some(n) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reloads {result} did not reach {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(proxy: &ProxyProcess) -> serde_json::Value {
    serde_json::from_str(&proxy.admin_get("/status").await.expect("status")).unwrap()
}

/// Pods `<prefix><host>` on 127.0.<net>.<host>.
async fn pods(net: u8, prefix: &str, hosts: &[u8]) -> Vec<Pod> {
    let mut pods = Vec::new();
    for host in hosts {
        pods.push(Pod::start(ip(net, *host), POD_PORT, &format!("{prefix}{host}")).await);
    }
    pods
}

/// Sleeps until the load has run for `at`.
async fn sleep_until(load: &Load, at: Duration) {
    tokio::time::sleep(at.saturating_sub(load.now())).await;
}

fn served_by_any(sample: &Sample, pods: &[&Pod]) -> bool {
    pods.iter()
        .any(|p| sample.upstream() == Some(p.addr.to_string().as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_upstream_applied_by_sighup_under_load_costs_no_request() {
    let net = 28;
    let dns = DnsServer::start(ip(net, 53)).await.unwrap();
    let a = pods(net, "a", &[1, 2]).await;
    let b = pods(net, "b", &[11, 12]).await;
    dns.set(NAME_A, &[a[0].ip(), a[1].ip()]);
    dns.set(NAME_B, &[b[0].ip(), b[1].ip()]);
    let config = ConfigFile::new(&default_group(&format!("{NAME_A}:{POD_PORT}")));
    let resolver = dns.addr().to_string();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &["--config", config.path(), "--resolver", &resolver],
    )
    .await;
    let a_pods = [&a[0], &a[1]];
    let b_pods = [&b[0], &b[1]];

    let load = Load::start(proxy.listen, TICK);
    testkit::wait::until("both A pods serve", Duration::from_secs(10), || {
        a.iter().all(|p| p.served() >= 5)
    })
    .await;
    // About a second of load before the reload and two after it.
    sleep_until(&load, Duration::from_secs(1)).await;

    config.rewrite(&default_group(&format!("{NAME_B}:{POD_PORT}")));
    let signalled_at = load.now();
    proxy.sighup();
    wait_reloads(&proxy, "ok", 1.0).await;
    let reloaded_at = load.now();
    sleep_until(&load, reloaded_at + Duration::from_secs(2)).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    assert!(
        samples
            .iter()
            .filter(|s| s.sent < signalled_at)
            .all(|s| served_by_any(s, &a_pods)),
        "before the reload only A's pods serve"
    );
    let after: Vec<_> = samples.iter().filter(|s| s.sent > reloaded_at).collect();
    assert!(after.len() > 50, "load kept coming: {}", after.len());
    let late_to_a: Vec<_> = after.iter().filter(|s| served_by_any(s, &a_pods)).collect();
    assert!(
        late_to_a.is_empty(),
        "{} requests reached A's pods after the reload: {:?}",
        late_to_a.len(),
        &late_to_a[..late_to_a.len().min(3)]
    );
    for pod in b_pods {
        let n = after.iter().filter(|s| served_by_any(s, &[pod])).count();
        assert!(n > 10, "{} served {n} requests after the reload", pod.name);
    }
    assert_eq!(reloads(&proxy, "failed").await, Some(0.0));
    assert_eq!(proxy.metric("proxy_config_generation").await, Some(2.0));
    let v = status(&proxy).await;
    assert_eq!(v["config"]["generation"], 2);
    assert_eq!(v["groups"][0]["upstream"], format!("{NAME_B}:{POD_PORT}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_on_sighup_leaves_the_running_one_serving() {
    let net = 29;
    let pod = Pod::start(ip(net, 1), POD_PORT, "p1").await;
    let config = ConfigFile::new(&default_group(&pod.addr.to_string()));
    let mut proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        &["--config", config.path()],
    )
    .await;
    let load = Load::start(proxy.listen, TICK);
    testkit::wait::until("the pod serves", Duration::from_secs(10), || {
        pod.served() >= 5
    })
    .await;

    // A key that does not exist: a parse error.
    config.rewrite(&format!(
        "{}    bogus_key: 1\n",
        default_group(&ip(net, 2).to_string())
    ));
    proxy.sighup();
    wait_reloads(&proxy, "failed", 1.0).await;
    // A file that parses but does not validate.
    config.rewrite(&format!(
        "upstream:\n  max_attempts: 0\n{}",
        default_group(&format!("{}:{POD_PORT}", ip(net, 2)))
    ));
    proxy.sighup();
    wait_reloads(&proxy, "failed", 2.0).await;
    let served_before = pod.served();
    testkit::wait::until(
        "the pod keeps serving after both",
        Duration::from_secs(10),
        || pod.served() >= served_before + 50,
    )
    .await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    assert!(proxy.alive(), "the proxy survived SIGHUP");
    assert_eq!(reloads(&proxy, "ok").await, Some(0.0));
    let v = status(&proxy).await;
    assert_eq!(v["config"]["generation"], 1);
    assert_eq!(v["groups"][0]["upstream"], pod.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_a_config_file_changes_nothing_and_keeps_serving() {
    let net = 29;
    let pod = Pod::start(ip(net, 11), POD_PORT, "p11").await;
    let upstream = pod.addr.to_string();
    let mut proxy = ProxyProcess::start(
        (ip(net, 253), 8080).into(),
        (ip(net, 253), 9091).into(),
        &["--upstream", &upstream],
    )
    .await;
    proxy.sighup();
    // With SIGHUP's default action the process would be gone long before the last of these.
    for _ in 0..5 {
        assert!(get(proxy.listen, "/users").await.contains("p11"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxy.alive(), "SIGHUP did not end the process");
    assert_eq!(reloads(&proxy, "ok").await, Some(0.0));
    assert_eq!(reloads(&proxy, "failed").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_group_keeps_its_endpoints_across_a_reload_even_with_dns_silent() {
    let net = 30;
    let dns = DnsServer::start(ip(net, 53)).await.unwrap();
    let api = pods(net, "api", &[1, 2]).await;
    let old_default = Pod::start(ip(net, 21), POD_PORT, "d21").await;
    let new_default = Pod::start(ip(net, 22), POD_PORT, "d22").await;
    dns.set(NAME_A, &[api[0].ip(), api[1].ip()]);
    let api_group =
        format!("  - name: api\n    upstream: {NAME_A}:{POD_PORT}\n    path_prefix: /api\n");
    let config = ConfigFile::new(&format!(
        "{}{api_group}",
        default_group(&old_default.addr.to_string())
    ));
    let resolver = dns.addr().to_string();
    let proxy = ProxyProcess::start(
        (ip(net, 254), 8080).into(),
        (ip(net, 254), 9091).into(),
        // A group that lost its endpoints would answer 503 after 1 s instead of 10 s.
        &[
            "--config",
            config.path(),
            "--resolver",
            &resolver,
            "--hold-timeout",
            "1s",
        ],
    )
    .await;
    for _ in 0..20 {
        let response = get(proxy.listen, "/api/users").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let api_requests = |v: &serde_json::Value| -> u64 {
        let group = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "api")
            .expect("the api group");
        group["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["requests"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(api_requests(&status(&proxy).await), 20);

    // From now on DNS answers nothing: a rebuilt api group would never learn its endpoints.
    dns.set_mode(DnsMode::Silent);
    config.rewrite(&format!(
        "{}{api_group}",
        default_group(&new_default.addr.to_string())
    ));
    let load = Load::start(proxy.listen, TICK);
    testkit::wait::until("the old default serves", Duration::from_secs(10), || {
        old_default.served() >= 5
    })
    .await;
    proxy.sighup();
    wait_reloads(&proxy, "ok", 1.0).await;
    let v = status(&proxy).await;
    assert_eq!(
        api_requests(&v),
        20,
        "the api group's endpoints are the ones from before the reload, with their counters"
    );
    for _ in 0..20 {
        let response = get(proxy.listen, "/api/users").await;
        assert!(
            response.starts_with("HTTP/1.1 200") && response.contains("\"pod\":\"api"),
            "the api group serves from the endpoints it knew: {response}"
        );
    }
    testkit::wait::until("the new default serves", Duration::from_secs(10), || {
        new_default.served() >= 20
    })
    .await;
    let samples = load.finish().await;
    assert_no_failures(&samples);
}
