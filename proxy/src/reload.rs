//! Configuration reload on SIGHUP: re-read the `--config` file (the flags and environment given at
//! start still apply on top), validate it with the same code as `--check-config`, and apply what
//! can change while running. Groups whose settings are unchanged are kept as they are (watcher,
//! health state, pooled connections); new and changed groups are started beside the running ones
//! and swapped in once warm ([`Group::warm`]), in one atomic swap of the [`Live`] state. Requests in
//! flight finish on what they started with; a retired group stops its watcher and health checks
//! when the last of them lets go of it. A file that does not load leaves everything as it runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError, GroupConfig, Source};
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
    #[error("starting group {group} ({target})")]
    Start {
        group: String,
        target: String,
        #[source]
        source: Box<crate::upstream::GroupError>,
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
    /// The file to re-read, under the flags and environment as given at start.
    source: Source,
    /// The configuration in effect, restart-only keys as at start.
    running: Config,
    live: SharedLive,
    metrics: Arc<Metrics>,
}

impl Reloader {
    pub fn new(source: Source, running: Config, live: SharedLive, metrics: Arc<Metrics>) -> Self {
        Self {
            source,
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
        let Some(path) = self.source.file.clone() else {
            info!("SIGHUP: the proxy was started without --config; nothing to reload");
            return None;
        };
        info!(file = %path.display(), "SIGHUP: reloading the configuration");
        match self.apply().await {
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

    async fn apply(&mut self) -> Result<Summary, ReloadError> {
        let mut new = self.source.load()?;
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

        let live = Live::new(Router::new(groups), &new, current.generation + 1);
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
    metrics.set_groups(live.router.groups().to_vec());
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
        "shutdown_delay",
        &r.shutdown_delay,
        &mut n.shutdown_delay,
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
mod tests;
