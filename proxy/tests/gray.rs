//! Gray failures through the real proxy binary: a pod that is there but does not answer (frozen,
//! as a SIGSTOPped process: the kernel still completes its handshakes) or answers slowly, and a
//! request that is slow by nature. What a user sees is asserted: failed requests, requests slower
//! than a second, the service's p99, which endpoint served.

mod support;

use std::time::Duration;

use support::{assert_no_failures, served_by, warm_up, Lab, Load, Sample};

const TICK: Duration = Duration::from_millis(20);
const SECOND: Duration = Duration::from_secs(1);

fn p99(samples: &[&Sample]) -> Duration {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

fn endpoint_state(status: &str, addr: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(status).expect("status is JSON");
    let endpoints = v["groups"][0]["endpoints"].as_array().expect("endpoints");
    let e = endpoints
        .iter()
        .find(|e| e["addr"] == addr)
        .unwrap_or_else(|| panic!("{addr} not in {status}"));
    e["state"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_pod_costs_no_request_and_only_a_handful_wait_a_second() {
    let mut lab = Lab::start(61, &[1, 2], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2]).await;

    lab.pod(1).freeze();
    let frozen_at = load.now();
    tokio::time::sleep(3 * SECOND).await;
    let status = lab.proxy.admin_get("/status").await.expect("status");
    let stalls = lab
        .proxy
        .metric(r#"proxy_endpoint_ejections_total{group="default",reason="first_byte_timeout"}"#)
        .await
        .expect("the ejection series");
    let usable = lab
        .proxy
        .metric(&format!(
            r#"proxy_endpoint_usable{{endpoint="{}",group="default"}}"#,
            lab.addr(1)
        ))
        .await
        .expect("the endpoint's series");
    tokio::time::sleep(2 * SECOND).await;
    lab.pod(1).thaw();
    let thawed_at = load.now();
    tokio::time::sleep(4 * SECOND).await;
    let samples = load.finish().await;

    assert_no_failures(&samples);
    let over_a_second: Vec<_> = samples.iter().filter(|s| s.latency > SECOND).collect();
    assert!(
        over_a_second.len() <= 5,
        "{} requests took over 1 s: {over_a_second:?}",
        over_a_second.len()
    );
    let slowest = samples.iter().map(|s| s.latency).max().unwrap();
    assert!(slowest < 2 * SECOND, "a request took {slowest:?}");
    assert_ne!(
        endpoint_state(&status, &lab.addr(1)),
        "usable",
        "the frozen pod is out of rotation: {status}"
    );
    assert!(stalls >= 1.0, "a request that stalled on it ejected it");
    assert_eq!(usable, 0.0, "its proxy_endpoint_usable says so");
    let during = samples
        .iter()
        .filter(|s| s.sent > frozen_at + 2 * SECOND && s.sent < thawed_at);
    assert!(during.clone().count() > 50);
    assert!(
        during
            .clone()
            .all(|s| s.upstream() == Some(lab.addr(2).as_str())),
        "once out, the frozen pod serves nothing"
    );
    assert!(
        served_by(&samples, &lab.addr(1)).any(|s| s.sent > thawed_at),
        "the thawed pod comes back"
    );
}

/// One of three pods answers 300 ms late; the service's p99 over the next seconds, against the
/// healthy pods' own p99. `extra` picks the balancing.
async fn one_slow_pod_of_three(net: u8, extra: &[&str]) -> (Duration, Duration, usize, usize) {
    let lab = Lab::start(net, &[1, 2, 3], extra).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2, 3]).await;

    lab.pods[0].set_delay(Duration::from_millis(300));
    let slowed_at = load.now();
    tokio::time::sleep(8 * SECOND).await;
    let ewma = |host: u8| {
        let series = format!(
            r#"proxy_endpoint_response_time_ewma_seconds{{endpoint="{}",group="default"}}"#,
            lab.addr(host)
        );
        let proxy = &lab.proxy;
        async move {
            proxy
                .metric(&series)
                .await
                .expect("the endpoint's estimate")
        }
    };
    let (slow_estimate, healthy_estimate) = (ewma(1).await, ewma(2).await);
    let samples = load.finish().await;

    assert_no_failures(&samples);
    // What the balancer sees is what a user can graph.
    assert!(
        slow_estimate >= 0.25 && healthy_estimate < 0.1,
        "estimates: slow pod {slow_estimate} s, a healthy one {healthy_estimate} s"
    );
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent > slowed_at).collect();
    let slow = lab.addr(1);
    let healthy: Vec<&Sample> = after
        .iter()
        .copied()
        .filter(|s| s.upstream() != Some(slow.as_str()))
        .collect();
    let to_slow = after.len() - healthy.len();
    (p99(&after), p99(&healthy), to_slow, after.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pod_does_not_become_the_services_p99() {
    let (service, healthy, to_slow, total) = one_slow_pod_of_three(62, &[]).await;
    // Within 2x of the healthy pods' p99; on loopback that is a few ms, so 10 ms is the floor
    // below which a difference is scheduling noise, not the slow pod.
    assert!(
        service <= (2 * healthy).max(Duration::from_millis(10)),
        "service p99 {service:?}, healthy pods' p99 {healthy:?}; the slow pod got {to_slow} of {total}"
    );
    assert!(
        to_slow * 100 < total,
        "the slow pod got {to_slow} of {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_still_gives_the_slow_pod_its_third() {
    let (service, _, to_slow, total) =
        one_slow_pod_of_three(63, &["--balance", "round_robin"]).await;
    assert!(to_slow * 4 > total, "the slow pod got {to_slow} of {total}");
    assert!(
        service >= Duration::from_millis(300),
        "service p99 {service:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_slow_by_nature_completes_and_ejects_nobody() {
    let lab = Lab::start(64, &[1, 2, 3], &[]).await;
    let load = Load::start(lab.proxy.listen, TICK);
    warm_up(&load, &lab, &[1, 2, 3]).await;

    // 2 s for everyone, on a route whose neighbours answer in a few ms.
    let started = std::time::Instant::now();
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(support::get(lab.proxy.listen, "/sleep/2000")))
        .collect();
    let mut answers = Vec::new();
    for request in slow {
        answers.push(request.await.expect("request task"));
    }
    let took = started.elapsed();
    let status = lab.proxy.admin_get("/status").await.expect("status");
    let cut = lab
        .proxy
        .metric(r#"proxy_upstream_attempts_total{group="default",outcome="first_byte_timeout"}"#)
        .await
        .expect("the attempts series");
    let ejections = lab
        .proxy
        .metric_sum("proxy_endpoint_ejections_total", r#"group="default","#)
        .await
        .expect("the ejection series, one per reason");
    let samples = load.finish().await;

    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert!(took < 4 * SECOND, "the slow requests took {took:?}");
    assert!(cut <= 4.0, "each slow request is cut at most once: {cut}");
    assert_eq!(
        ejections, 0.0,
        "the pods answered others all along: {status}"
    );
    for host in 1..=3 {
        assert_eq!(
            endpoint_state(&status, &lab.addr(host)),
            "usable",
            "{status}"
        );
    }
    assert_no_failures(&samples);
}
