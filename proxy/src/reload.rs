//! Configuration reload on SIGHUP: re-read the `--config` file (the flags and environment given at
//! start still apply on top), validate it with the same code as `--check-config`, and apply what
//! can change while running. Groups whose settings are unchanged are kept as they are (watcher,
//! health state, pooled connections); new and changed groups are started beside the running ones
//! and swapped in once warm ([`Group::warm`]), in one atomic swap of the [`Live`] state. Requests in
//! flight finish on what they started with; a retired group stops its watcher and health checks
//! when the last of them lets go of it. A file that does not load leaves everything as it runs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::cli::Cli;
use crate::config::file::FileConfig;
use crate::config::{Config, ConfigError, GroupConfig};
use crate::live::{Live, SharedLive};
use crate::metrics::Metrics;
use crate::router::Router;
use crate::upstream::Group;

/// How long a reload waits for new groups to be warm before swapping them in anyway: a DNS
/// lookup (at most 2 s) and a first health check (1 s by default) fit with room to spare.
const WARM_LIMIT: Duration = Duration::from_secs(5);
const WARM_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("watching {target} for group {group}")]
    Start {
        group: String,
        target: String,
        #[source]
        source: Box<discovery::ResolverError>,
    },
}

/// What a reload did with each group, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Owns the running configuration and replaces it on SIGHUP.
pub struct Reloader {
    /// Flags and environment as given at start; `cli.config` is the file to re-read.
    cli: Cli,
    /// The configuration in effect, restart-only keys as at start.
    running: Config,
    live: SharedLive,
    metrics: Arc<Metrics>,
}

impl Reloader {
    pub fn new(cli: Cli, running: Config, live: SharedLive, metrics: Arc<Metrics>) -> Self {
        Self {
            cli,
            running,
            live,
            metrics,
        }
    }

    /// Installs the SIGHUP handler on the current runtime and reloads on every signal. SIGHUP's
    /// default action ends the process and Pingora 0.9 only handles SIGTERM, SIGINT and SIGQUIT,
    /// so this must run before the proxy serves. Signals that arrive during a reload coalesce into
    /// one more reload after it.
    pub fn listen(mut self) -> std::io::Result<()> {
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                self.reload().await;
            }
        });
        Ok(())
    }

    /// Re-reads the file and applies it, or logs why not and keeps the running configuration.
    pub async fn reload(&mut self) -> Option<Summary> {
        let Some(path) = self.cli.config.clone() else {
            info!("SIGHUP: the proxy was started without --config; nothing to reload");
            return None;
        };
        info!(file = %path.display(), "SIGHUP: reloading the configuration");
        match self.apply(&path).await {
            Ok(summary) => {
                self.metrics.config.reloads_ok.inc();
                Some(summary)
            }
            Err(e) => {
                self.metrics.config.reloads_failed.inc();
                let chain: Vec<String> = anyhow::Error::from(e)
                    .chain()
                    .map(|c| c.to_string())
                    .collect();
                error!(
                    file = %path.display(),
                    error = %chain.join(": "),
                    "config reload failed; the running configuration stays"
                );
                None
            }
        }
    }

    async fn apply(&mut self, path: &Path) -> Result<Summary, ReloadError> {
        let mut new = Config::build(&self.cli, FileConfig::load(path)?)?;
        for key in keep_restart_only(&self.running, &mut new) {
            warn!(
                key,
                "config reload: `{key}` changed but only takes effect after a restart; keeping the running value"
            );
        }
        let current = self.live.load_full();
        let settings_same = same_group_settings(&self.running, &new);
        let mut summary = Summary::default();
        let mut groups = Vec::with_capacity(new.groups.len());
        let mut started = Vec::new();
        for config in &new.groups {
            let old = current
                .router
                .groups()
                .iter()
                .find(|g| g.name() == config.name);
            match old {
                Some(old) if settings_same && old.config == *config => {
                    summary.unchanged.push(config.name.clone());
                    groups.push(Arc::clone(old));
                }
                _ => {
                    // On an error, the groups started so far are dropped here, which stops them.
                    let group = start_group(config, &new, &self.metrics)?;
                    let list = if old.is_some() {
                        &mut summary.changed
                    } else {
                        &mut summary.added
                    };
                    list.push(config.name.clone());
                    started.push(Arc::clone(&group));
                    groups.push(group);
                }
            }
        }
        summary.removed = current
            .router
            .groups()
            .iter()
            .filter(|g| !new.groups.iter().any(|c| c.name == g.name()))
            .map(|g| g.name().to_owned())
            .collect();
        wait_warm(&started).await;

        let live = Live {
            router: Router::new(groups),
            upstream: new.upstream.clone(),
            limits: new.limits.clone(),
            generation: current.generation + 1,
            applied_at: SystemTime::now(),
        };
        drop(current);
        observe(&self.metrics, &live);
        self.live.store(Arc::new(live));
        for name in &summary.removed {
            self.metrics.forget_group(name);
        }
        info!(
            "config reloaded: groups added {:?}, changed {:?}, removed {:?}, unchanged {:?}",
            summary.added, summary.changed, summary.removed, summary.unchanged
        );
        self.running = new;
        Ok(summary)
    }
}

/// Builds group `config` and starts its DNS watcher and health checks on the current runtime.
pub(crate) fn start_group(
    config: &GroupConfig,
    settings: &Config,
    metrics: &Metrics,
) -> Result<Arc<Group>, ReloadError> {
    let dns = discovery::Settings {
        resolve_interval: settings.resolve_interval,
        resolver: settings.resolver.clone(),
        ..discovery::Settings::default()
    };
    Group::spawn(
        config.clone(),
        settings.health.clone(),
        dns,
        metrics.group(&config.name),
    )
    .map_err(|e| ReloadError::Start {
        group: config.name.clone(),
        target: config.target.to_string(),
        source: Box::new(e),
    })
}

/// Points the metrics that describe the running configuration at `live`.
pub(crate) fn observe(metrics: &Metrics, live: &Live) {
    metrics.set_dns(
        live.router
            .groups()
            .iter()
            .filter_map(|g| Some((g.name().to_owned(), Arc::clone(g.discovery()?.stats()))))
            .collect(),
    );
    metrics.config.running(live.generation, live.applied_at);
}

/// Waits until every group in `groups` is warm, at most [`WARM_LIMIT`].
async fn wait_warm(groups: &[Arc<Group>]) {
    let all_warm = async {
        while !groups.iter().all(|g| g.warm()) {
            tokio::time::sleep(WARM_POLL).await;
        }
    };
    if tokio::time::timeout(WARM_LIMIT, all_warm).await.is_err() {
        let cold: Vec<&str> = groups
            .iter()
            .filter(|g| !g.warm())
            .map(|g| g.name())
            .collect();
        warn!(
            groups = ?cold,
            "config reload: no DNS answer or first health check within {WARM_LIMIT:?}; swapping in anyway (requests wait for an endpoint as usual)"
        );
    }
}

/// Settings every group is built with: when one differs, every group is rebuilt.
fn same_group_settings(a: &Config, b: &Config) -> bool {
    let (x, y) = (&a.health, &b.health);
    a.resolver == b.resolver
        && a.resolve_interval == b.resolve_interval
        && (x.interval, x.timeout, x.fall, x.rise) == (y.interval, y.timeout, y.fall, y.rise)
}

/// Puts the running value back into every key of `new` that only takes effect at start, and says
/// which ones differed: the listeners and threads belong to Pingora's server, the log format to
/// the subscriber, the drain bound and the attempt cap (Pingora's `max_retries`) to the server's
/// configuration, and the connection limit and header deadline wrap Pingora's app.
fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    fn keep<T: PartialEq + Clone>(
        kept: &mut Vec<&'static str>,
        key: &'static str,
        running: &T,
        new: &mut T,
    ) {
        if running != new {
            new.clone_from(running);
            kept.push(key);
        }
    }
    let mut kept = Vec::new();
    let (r, n) = (running, new);
    keep(&mut kept, "listen", &r.listen, &mut n.listen);
    keep(&mut kept, "admin", &r.admin, &mut n.admin);
    keep(&mut kept, "threads", &r.threads, &mut n.threads);
    keep(&mut kept, "log_format", &r.log_format, &mut n.log_format);
    keep(
        &mut kept,
        "shutdown_timeout",
        &r.shutdown_timeout,
        &mut n.shutdown_timeout,
    );
    keep(
        &mut kept,
        "upstream.max_attempts",
        &r.upstream.max_attempts,
        &mut n.upstream.max_attempts,
    );
    keep(
        &mut kept,
        "limits.max_connections",
        &r.limits.max_connections,
        &mut n.limits.max_connections,
    );
    keep(
        &mut kept,
        "limits.header_timeout",
        &r.limits.header_timeout,
        &mut n.limits.header_timeout,
    );
    kept
}

#[cfg(test)]
mod tests {
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
        let cli = Cli::try_parse_from(argv).unwrap();
        let config = Config::build(&cli, FileConfig::load(&path).unwrap()).unwrap();
        let metrics = Arc::new(Metrics::new());
        let groups = config
            .groups
            .iter()
            .map(|g| start_group(g, &config, &metrics).unwrap())
            .collect();
        let live = Arc::new(ArcSwap::from_pointee(Live {
            router: Router::new(groups),
            upstream: config.upstream.clone(),
            limits: config.limits.clone(),
            generation: 1,
            applied_at: SystemTime::now(),
        }));
        let reloader = Reloader::new(cli, config, Arc::clone(&live), Arc::clone(&metrics));
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
    async fn eventually(what: &str, cond: impl Fn() -> bool) {
        let wait = async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| panic!("not within 5 s: {what}"));
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
        let cli = Cli::try_parse_from(["proxy", "--upstream", "127.0.30.10:9"]).unwrap();
        let running = Config::build(&cli, FileConfig::default()).unwrap();
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
}
