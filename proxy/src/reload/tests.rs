//! The reload's unit tests: group diffs, retired groups stopping, bad files, restart-only keys.

use std::path::PathBuf;
use std::sync::Weak;

use arc_swap::ArcSwap;
use clap::Parser;

use super::*;

/// Endpoints on a loopback net no integration test uses, on a port nothing listens on: the
/// health checks fail at once, which is all these tests need from them.
fn upstream(host: u8) -> String {
    format!("127.0.30.{host}:9")
}

fn groups(list: &[(&str, u8)]) -> String {
    let mut yaml = String::from("groups:\n");
    for (name, host) in list {
        yaml += &format!(
            "  - name: {name}\n    upstream: {}\n    path_prefix: /{name}\n",
            upstream(*host)
        );
    }
    yaml
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    reloader: Reloader,
    live: SharedLive,
    metrics: Arc<Metrics>,
}

fn start(yaml: &str, flags: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut argv = vec!["proxy", "--config", path.to_str().unwrap()];
    argv.extend_from_slice(flags);
    let source = Source::from(&crate::Cli::try_parse_from(argv).unwrap());
    let config = source.load().unwrap();
    let metrics = Arc::new(Metrics::new());
    let groups = config
        .groups
        .iter()
        .map(|g| start_group(g, &config, &metrics).unwrap())
        .collect();
    let live = Arc::new(ArcSwap::from_pointee(Live::new(
        Router::new(groups),
        &config,
        1,
    )));
    let reloader = Reloader::new(source, config, Arc::clone(&live), Arc::clone(&metrics));
    Fixture {
        _dir: dir,
        path,
        reloader,
        live,
        metrics,
    }
}

fn group(live: &SharedLive, name: &str) -> Arc<Group> {
    let live = live.load();
    let found = live.router.groups().iter().find(|g| g.name() == name);
    Arc::clone(found.expect("group is running"))
}

/// Polls `cond` until it holds; panics after 5 s.
async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    testkit::wait::until(what, Duration::from_secs(5), cond).await;
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn unchanged_groups_are_kept_and_the_others_rebuilt_added_or_retired() {
    let mut f = start(&groups(&[("same", 1), ("moved", 2), ("gone", 3)]), &[]);
    let same = group(&f.live, "same");
    let moved: Weak<Group> = Arc::downgrade(&group(&f.live, "moved"));
    let gone: Weak<Group> = Arc::downgrade(&group(&f.live, "gone"));

    std::fs::write(&f.path, groups(&[("same", 1), ("moved", 4), ("new", 5)])).unwrap();
    let summary = f.reloader.reload().await.expect("reloaded");
    assert_eq!(
        summary,
        Summary {
            added: names(&["new"]),
            changed: names(&["moved"]),
            removed: names(&["gone"]),
            unchanged: names(&["same"]),
        }
    );
    assert!(
        Arc::ptr_eq(&same, &group(&f.live, "same")),
        "kept as it was"
    );
    assert_eq!(group(&f.live, "moved").target().to_string(), upstream(4));
    assert!(group(&f.live, "new").warm(), "swapped in once warm");
    assert_eq!(f.live.load().generation, 2);
    assert_eq!(f.metrics.config.reloads_ok.get(), 1);
    // Nothing holds the retired groups any more: they are gone, and with them their tasks.
    eventually("retired groups dropped", || {
        moved.upgrade().is_none() && gone.upgrade().is_none()
    })
    .await;
}

#[tokio::test]
async fn a_retired_group_stops_its_health_checks() {
    let mut f = start(&groups(&[("old", 6)]), &[]);
    let old = group(&f.live, "old");
    eventually("warm", || old.warm()).await;
    // The check task holds the endpoint; once it is aborted, only this handle is left.
    let endpoint = Arc::clone(&old.endpoints()[0]);
    drop(old);

    std::fs::write(&f.path, groups(&[("new", 7)])).unwrap();
    f.reloader.reload().await.expect("reloaded");
    eventually("the retired group's check task ended", || {
        Arc::strong_count(&endpoint) == 1
    })
    .await;
}

#[tokio::test]
async fn a_file_that_does_not_load_changes_nothing() {
    let mut f = start(&groups(&[("a", 8)]), &[]);
    let a = group(&f.live, "a");
    for yaml in ["groups: [", "upstream:\n  max_attempts: 0\n"] {
        std::fs::write(&f.path, format!("{yaml}\n")).unwrap();
        assert_eq!(f.reloader.reload().await, None, "{yaml}");
    }
    assert_eq!(f.metrics.config.reloads_failed.get(), 2);
    assert_eq!(f.live.load().generation, 1);
    assert!(Arc::ptr_eq(&a, &group(&f.live, "a")));
}

#[tokio::test]
async fn restart_only_keys_keep_their_running_value_and_the_rest_applies() {
    let yaml = groups(&[("a", 9)]);
    let mut f = start(&format!("listen: 127.0.30.250:8080\n{yaml}"), &[]);
    std::fs::write(
        &f.path,
        format!("listen: 127.0.30.250:8081\nupstream:\n  max_attempts: 5\n  hold_timeout: 3s\nlimits:\n  max_connections: 7\n  max_body_bytes: 10\n{yaml}"),
    )
    .unwrap();
    let summary = f.reloader.reload().await.expect("reloaded");
    assert_eq!(summary.unchanged, names(&["a"]));
    assert_eq!(
        f.reloader.running.listen,
        "127.0.30.250:8080".parse().unwrap()
    );
    let live = f.live.load();
    assert_eq!(live.upstream.max_attempts, 3, "kept");
    assert_eq!(live.limits.max_connections, 4096, "kept");
    assert_eq!(live.upstream.hold_timeout, Duration::from_secs(3));
    assert_eq!(live.limits.max_body_bytes, 10);
}

#[test]
fn keys_that_need_a_restart_are_named() {
    let source = Source::from(
        &crate::Cli::try_parse_from(["proxy", "--upstream", "127.0.30.10:9"]).unwrap(),
    );
    let running = source.load().unwrap();
    let mut new = running.clone();
    new.admin = "127.0.30.10:1".parse().unwrap();
    new.limits.header_timeout = Duration::from_secs(1);
    new.health.interval = Duration::from_secs(3);
    let kept = keep_restart_only(&running, &mut new);
    assert_eq!(kept, ["admin", "limits.header_timeout"]);
    assert_eq!(new.admin, running.admin);
    assert_eq!(new.health.interval, Duration::from_secs(3));
    assert!(
        !same_group_settings(&running, &new),
        "health changes rebuild groups"
    );
}
