//! The watcher against a real DNS server whose records change.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use discovery::{Discovery, Endpoints, LookupResult, ResolverSpec, Settings};
use testkit::{DnsMode, DnsServer};
use tokio::sync::watch;

const NAME: &str = "backend-headless.highload-dns.svc.cluster.local";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, last)
}

fn set(ips: &[u8]) -> BTreeSet<SocketAddr> {
    ips.iter()
        .map(|last| SocketAddr::from((ip(*last), 8000)))
        .collect()
}

fn settings(dns: &DnsServer, interval_ms: u64) -> Settings {
    Settings {
        resolve_interval: Duration::from_millis(interval_ms),
        lookup_timeout: Duration::from_millis(300),
        resolver: ResolverSpec::At(dns.addr()),
    }
}

fn watch(dns: &DnsServer, interval_ms: u64) -> Discovery {
    let target = format!("{NAME}:8000").parse().unwrap();
    Discovery::spawn(target, settings(dns, interval_ms)).unwrap()
}

/// Waits until the published set satisfies `pred`, or panics after `limit`.
async fn wait_until(
    rx: &mut watch::Receiver<Endpoints>,
    limit: Duration,
    what: &str,
    pred: impl FnMut(&Endpoints) -> bool,
) {
    let reached = tokio::time::timeout(limit, rx.wait_for(pred))
        .await
        .map(|r| r.map(|_| ()));
    match reached {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => panic!("watcher stopped while waiting for {what}"),
        Err(_) => panic!("not within {limit:?}: {what}; have {:?}", *rx.borrow()),
    }
}

#[tokio::test]
async fn publishes_every_change_of_the_records() {
    let dns = DnsServer::start(Ipv4Addr::LOCALHOST).await.unwrap();
    dns.set(NAME, &[ip(1), ip(2)]);
    let discovery = watch(&dns, 200);
    let mut rx = discovery.subscribe();

    wait_until(&mut rx, Duration::from_secs(2), "both pods", |s| {
        **s == set(&[1, 2])
    })
    .await;

    dns.set(NAME, &[ip(2)]);
    wait_until(&mut rx, Duration::from_secs(2), "pod 1 gone", |s| {
        **s == set(&[2])
    })
    .await;

    dns.set(NAME, &[ip(2), ip(3)]);
    wait_until(&mut rx, Duration::from_secs(2), "pod 3 added", |s| {
        **s == set(&[2, 3])
    })
    .await;

    assert!(discovery.stats().lookups(LookupResult::Ok) >= 3);
    assert_eq!(discovery.stats().changes(), 3);
}

#[tokio::test]
async fn nxdomain_and_an_empty_answer_mean_zero_endpoints() {
    let dns = DnsServer::start(Ipv4Addr::LOCALHOST).await.unwrap();
    dns.set(NAME, &[ip(1)]);
    let discovery = watch(&dns, 150);
    let mut rx = discovery.subscribe();
    wait_until(&mut rx, Duration::from_secs(2), "one pod", |s| s.len() == 1).await;

    dns.remove(NAME);
    wait_until(
        &mut rx,
        Duration::from_secs(2),
        "NXDOMAIN empties the set",
        |s| s.is_empty(),
    )
    .await;

    dns.set(NAME, &[ip(4)]);
    wait_until(&mut rx, Duration::from_secs(2), "pod back", |s| {
        **s == set(&[4])
    })
    .await;

    dns.set(NAME, &[]);
    wait_until(
        &mut rx,
        Duration::from_secs(2),
        "empty answer empties the set",
        |s| s.is_empty(),
    )
    .await;
    assert!(discovery.stats().lookups(LookupResult::Empty) >= 2);
    assert_eq!(discovery.stats().lookups(LookupResult::Failed), 0);
}

#[tokio::test]
async fn a_failing_or_silent_resolver_keeps_the_last_good_set() {
    let dns = DnsServer::start(Ipv4Addr::LOCALHOST).await.unwrap();
    dns.set(NAME, &[ip(1), ip(2)]);
    let discovery = watch(&dns, 100);
    let mut rx = discovery.subscribe();
    wait_until(&mut rx, Duration::from_secs(2), "both pods", |s| {
        s.len() == 2
    })
    .await;

    for mode in [DnsMode::ServFail, DnsMode::Silent] {
        let failed_before = discovery.stats().lookups(LookupResult::Failed);
        dns.set_mode(mode);
        // Wait until at least two lookups failed in this mode, then check nothing was dropped.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while discovery.stats().lookups(LookupResult::Failed) < failed_before + 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{mode:?}: no failed lookups counted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            *discovery.endpoints(),
            set(&[1, 2]),
            "{mode:?} dropped endpoints"
        );
        assert!(discovery.stats().last_error().is_some());
    }

    // Back to answering: changes flow again.
    dns.set_mode(DnsMode::Answer);
    dns.set(NAME, &[ip(2)]);
    wait_until(&mut rx, Duration::from_secs(3), "recovered", |s| {
        **s == set(&[2])
    })
    .await;
}

#[tokio::test]
async fn a_ttl_shorter_than_the_interval_re_resolves_sooner() {
    let dns = DnsServer::start(Ipv4Addr::LOCALHOST).await.unwrap();
    dns.set(NAME, &[ip(1)]);
    dns.set_ttl(1);
    // The interval alone would allow one lookup a minute.
    let discovery = watch(&dns, 60_000);
    let mut rx = discovery.subscribe();
    wait_until(&mut rx, Duration::from_secs(2), "first answer", |s| {
        s.len() == 1
    })
    .await;

    dns.set(NAME, &[ip(2)]);
    wait_until(
        &mut rx,
        Duration::from_secs(3),
        "TTL 1 s drives the next lookup",
        |s| **s == set(&[2]),
    )
    .await;
}

#[tokio::test]
async fn refresh_asks_again_before_the_interval() {
    let dns = DnsServer::start(Ipv4Addr::LOCALHOST).await.unwrap();
    dns.set(NAME, &[ip(1)]);
    dns.set_ttl(300);
    let discovery = watch(&dns, 60_000);
    let mut rx = discovery.subscribe();
    wait_until(&mut rx, Duration::from_secs(2), "first answer", |s| {
        s.len() == 1
    })
    .await;

    dns.set(NAME, &[ip(3)]);
    discovery.refresh();
    wait_until(&mut rx, Duration::from_secs(2), "refreshed", |s| {
        **s == set(&[3])
    })
    .await;
}

#[tokio::test]
async fn an_ip_literal_is_a_fixed_set_of_one() {
    let target = "127.0.1.9:8000".parse().unwrap();
    let discovery = Discovery::spawn(target, Settings::default()).unwrap();
    assert_eq!(*discovery.endpoints(), set(&[9]));
    let mut rx = discovery.subscribe();
    // Nothing ever changes, and waiting for a change does not fail.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.changed())
            .await
            .is_err()
    );
}
