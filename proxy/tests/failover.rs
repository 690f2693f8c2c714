//! Pods come and go under a steady stream of requests through the real proxy binary, with a real
//! DNS server whose records change. Every scenario asserts zero failed requests.

mod support;

use std::time::Duration;

use support::{assert_no_failures, ip, served_by, warm_up, Lab, Load, Pod, NAME, POD_PORT};
use testkit::DnsMode;

const TICK: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_removed_from_dns_and_stopped_costs_no_request() {
    let mut lab = Lab::start(11, &[1, 2], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2]).await;

    // Deleted: out of DNS and not listening, at the same moment.
    lab.set_dns(&[2]);
    lab.pod(1).stop();
    let removed_at = load.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    let late_to_gone_pod = served_by(&samples, &lab.addr(1))
        .filter(|s| s.sent > removed_at)
        .count();
    assert_eq!(late_to_gone_pod, 0, "requests reached the stopped pod");
    assert!(
        served_by(&samples, &lab.addr(2))
            .filter(|s| s.sent > removed_at)
            .count()
            > 50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_refusing_connections_while_still_in_dns_costs_no_request() {
    let mut lab = Lab::start(12, &[1, 2], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2]).await;

    lab.pod(1).stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = lab.proxy.admin_get("/status").await.expect("status");
    let samples = load.finish().await;

    assert_no_failures(&samples);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let endpoints = v["groups"][0]["endpoints"].as_array().unwrap();
    let dead = endpoints.iter().find(|e| e["addr"] == lab.addr(1)).unwrap();
    assert_ne!(
        dead["state"], "usable",
        "a refusing pod stays out of rotation: {dead}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_ip_stops_answering_costs_no_request_and_under_500ms() {
    let mut lab = Lab::start(13, &[1, 2], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2]).await;

    lab.pod(1).blackhole().await;
    let blackholed_at = load.now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    let slowest = samples.iter().map(|s| s.latency).max().unwrap();
    assert!(
        slowest < Duration::from_millis(500),
        "a request took {slowest:?}; the pod answers at once, so the proxy added that much"
    );
    // After the first failure the dead IP gets no more attempts; requests all land on pod 2.
    let after = samples
        .iter()
        .filter(|s| s.sent > blackholed_at + Duration::from_millis(500));
    assert!(after
        .clone()
        .all(|s| s.upstream() == Some(lab.addr(2).as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_2_to_1_to_2_gives_the_new_pod_its_share_within_2s() {
    let mut lab = Lab::start(14, &[1, 2], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2]).await;

    lab.set_dns(&[1]);
    lab.pod(2).stop();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Scale back up: a new pod under a new IP, in DNS once it listens.
    let new = Pod::start(ip(14, 3), POD_PORT, "pod-3").await;
    lab.set_dns(&[1, 3]);
    let added_at = load.now();
    lab.pods.push(new);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    let first_to_new = served_by(&samples, &lab.addr(3))
        .map(|s| s.sent)
        .min()
        .expect("the new pod got traffic");
    assert!(
        first_to_new < added_at + Duration::from_secs(2),
        "new pod's first request {:?} after it entered DNS",
        first_to_new - added_at
    );
    // In the last two seconds the two pods share the load evenly.
    let tail: Vec<_> = samples
        .iter()
        .filter(|s| s.sent > added_at + Duration::from_secs(2))
        .cloned()
        .collect();
    let to_new = served_by(&tail, &lab.addr(3)).count() as f64;
    let share = to_new / tail.len() as f64;
    assert!(
        (0.35..=0.65).contains(&share),
        "new pod's share {share:.2} of {}",
        tail.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_pod_replaced_under_a_new_ip_costs_no_request() {
    let mut lab = Lab::start(15, &[1], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1]).await;

    // Deleted: out of DNS (NXDOMAIN, as CoreDNS answers with no ready pod), IP silent.
    lab.dns.remove(NAME);
    lab.pod(1).blackhole().await;
    let deleted_at = load.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replacement = Pod::start(ip(15, 2), POD_PORT, "pod-2").await;
    lab.set_dns(&[2]);
    let replaced_at = load.now();
    lab.pods.push(replacement);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    let in_between: Vec<_> = samples
        .iter()
        .filter(|s| s.sent > deleted_at && s.sent < replaced_at)
        .collect();
    assert!(
        in_between.len() > 50,
        "load kept coming: {}",
        in_between.len()
    );
    assert!(
        in_between
            .iter()
            .all(|s| s.upstream() == Some(lab.addr(2).as_str())),
        "requests issued while no pod existed were held and served by the replacement"
    );
    let metrics = lab.proxy.admin_get("/metrics").await.unwrap();
    assert!(metrics.contains("proxy_held_requests_total{group=\"default\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_resolver_keeps_traffic_on_the_last_known_pods() {
    let lab = Lab::start(16, &[1, 2], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2]).await;

    lab.dns.set_mode(DnsMode::Silent);
    let silent_at = load.now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    for host in [1, 2] {
        let n = served_by(&samples, &lab.addr(host))
            .filter(|s| s.sent > silent_at + Duration::from_secs(2))
            .count();
        assert!(n > 20, "pod {host} kept serving with DNS silent: {n}");
    }
    let status = lab.proxy.admin_get("/status").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(v["groups"][0]["dns"]["lookups_failed"].as_u64().unwrap() > 0);
}
