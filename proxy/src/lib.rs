//! An HTTP reverse proxy on Cloudflare's Pingora for a Kubernetes headless Service.
//!
//! It re-resolves the Service name continuously ([`discovery`]), balances round-robin over the
//! healthy pod IPs ([`upstream`]), retries on another pod when one vanishes, holds requests
//! briefly while no pod exists, and adds `X-Upstream-Addr` to every response ([`service`]).
//! Client limits (connections, header deadline, sizes) guard the front door ([`limits`]). An
//! admin listener serves metrics and status ([`admin`]). [`run`] wires it together.

pub mod admin;
pub mod cli;
pub mod config;
mod drain;
mod inflight;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod router;
pub mod service;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;

pub use cli::Cli;
pub use config::Config;

use crate::inflight::InFlight;
use crate::metrics::Metrics;
use crate::upstream::Group;

/// Runs the proxy until SIGTERM/SIGINT; never returns on success.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Fail with a clear message instead of inside Pingora when the address is taken.
    std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("binding the proxy listener {}", config.listen))?;

    let metrics = Arc::new(Metrics::new());
    let connection_metrics = limits::connections::ConnectionMetrics::register(metrics.registry())
        .context("registering the connection metrics")?;
    let inflight = InFlight::default();
    let groups: Vec<Arc<Group>> = config
        .groups
        .iter()
        .map(|g| {
            Arc::new(Group::new(
                g.clone(),
                config.health.clone(),
                metrics.group(&g.name),
            ))
        })
        .collect();

    // DNS watchers, health checks and the admin listener run here, never on the proxy threads.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let admin = control.block_on(async {
        for group in &groups {
            let settings = discovery::Settings {
                resolve_interval: config.resolve_interval,
                resolver: config.resolver.clone(),
                ..discovery::Settings::default()
            };
            let watcher = discovery::Discovery::spawn(group.target().clone(), settings)
                .with_context(|| {
                    format!("watching {} for group {}", group.target(), group.name())
                })?;
            group.start(watcher);
        }
        tokio::net::TcpListener::bind(config.admin)
            .await
            .with_context(|| format!("binding the admin listener {}", config.admin))
    })?;
    metrics.register_dns(
        groups
            .iter()
            .filter_map(|g| Some((g.name().to_owned(), Arc::clone(g.discovery()?.stats()))))
            .collect(),
    );
    control.spawn(admin::serve(
        admin,
        Arc::new(admin::AdminState {
            groups: groups.clone(),
            metrics: Arc::clone(&metrics),
            inflight: inflight.clone(),
            started: Instant::now(),
        }),
    ));

    let mut conf = ServerConf {
        threads: config.threads,
        // The drain thread exits as soon as in-flight requests are done; this is the upper bound.
        grace_period_seconds: Some(config.shutdown_timeout.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // Our own attempt bound applies first; this is Pingora's fail-safe.
        max_retries: config.upstream.max_attempts as usize + 1,
        ..ServerConf::default()
    };
    conf.upstream_keepalive_pool_size = conf.upstream_keepalive_pool_size.max(128);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let proxy = service::Proxy::new(
        router::Router::new(groups.clone()),
        config.upstream.clone(),
        config.limits.clone(),
        inflight.clone(),
    );
    // Pingora's app, inside our per-request header deadline, inside our connection limit.
    let app = limits::connections::ConnectionLimit::new(
        limits::connections::HeaderDeadline::new(
            pingora_proxy::http_proxy(&server.configuration, proxy),
            config.limits.header_timeout,
            connection_metrics.clone(),
        ),
        config.limits.max_connections,
        connection_metrics,
    );
    let mut http = pingora_core::services::listening::Service::new("proxy".into(), app);
    http.add_tcp(&config.listen.to_string());
    server.add_service(http);
    drain::exit_when_drained(
        server.watch_execution_phase(),
        inflight,
        config.shutdown_timeout,
    );

    tracing::info!(
        listen = %config.listen,
        admin = %config.admin,
        threads = config.threads,
        groups = ?groups.iter().map(|g| format!("{}={}", g.name(), g.target())).collect::<Vec<_>>(),
        "proxy started"
    );
    // Keep the control runtime alive for the life of the process.
    let _control = control;
    server.run_forever()
}
