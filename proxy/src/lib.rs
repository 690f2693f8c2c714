//! An HTTP reverse proxy on Cloudflare's Pingora for a Kubernetes headless Service.
//!
//! It re-resolves the Service name continuously ([`discovery`]), balances round-robin over the
//! healthy pod IPs ([`upstream`]), retries on another pod when one vanishes, holds requests
//! briefly while no pod exists, and adds `X-Upstream-Addr` to every response ([`service`]).
//! Client limits (connections, header deadline, sizes) guard the front door ([`limits`]). An
//! admin listener serves metrics and status ([`admin`]); SIGHUP reloads the configuration
//! ([`reload`]). [`run`] wires it together.

pub mod access_log;
pub mod admin;
pub mod check_request;
pub mod cli;
pub mod config;
mod drain;
pub mod forwarding;
mod inflight;
pub mod limits;
mod live;
pub mod metrics;
pub mod reload;
pub mod router;
mod server_conf;
pub mod service;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use pingora_core::server::{RunArgs, Server};

pub use cli::Cli;
pub use config::Config;

use crate::inflight::InFlight;
use crate::live::{Live, SharedLive};
use crate::metrics::Metrics;
use crate::reload::Reloader;

/// Read buffering of client connections. Pingora's default, 64 KiB per connection, is there for
/// TLS's 16 KiB records; without TLS the HTTP/1 parser's own 4 KiB header buffer reads straight
/// from the socket. Unbuffered: 61 KiB less per idle keep-alive connection (91 -> 30 KiB) and
/// the same req/s and CPU per request (bench/results/proxy-vs-nginx.md).
const CLIENT_READ_BUFFER: usize = 0;

/// Runs the proxy until SIGTERM/SIGINT; never returns on success. `source` is where `config`
/// came from: a reload (SIGHUP) reads it again (its file, under the same overrides).
pub fn run(config: Config, source: config::Source) -> anyhow::Result<()> {
    // Fail with a clear message instead of inside Pingora when the address is taken.
    std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("binding the proxy listener {}", config.listen))?;

    let metrics = Arc::new(Metrics::new());
    let connection_metrics = limits::connections::ConnectionMetrics::register(metrics.registry())
        .context("registering the connection metrics")?;
    let inflight = InFlight::default();
    let draining = drain::Draining::default();

    // DNS watchers, health checks, reloads and the admin listener run here, never on the proxy
    // threads.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let (groups, admin) = control.block_on(async {
        let groups = config
            .groups
            .iter()
            .map(|g| reload::start_group(g, &config, &metrics))
            .collect::<Result<Vec<_>, _>>()?;
        let admin = tokio::net::TcpListener::bind(config.admin)
            .await
            .with_context(|| format!("binding the admin listener {}", config.admin))?;
        anyhow::Ok((groups, admin))
    })?;
    let started_groups: Vec<String> = groups
        .iter()
        .map(|g| format!("{}={}", g.name(), g.target()))
        .collect();
    let live = Live::new(router::Router::new(groups), &config, 1);
    reload::observe(&metrics, &live);
    let live: SharedLive = Arc::new(ArcSwap::from_pointee(live));
    control.spawn(admin::serve(
        admin,
        Arc::new(admin::AdminState {
            live: Arc::clone(&live),
            metrics: Arc::clone(&metrics),
            inflight: inflight.clone(),
            draining: draining.clone(),
            started: Instant::now(),
        }),
    ));
    // Before anything is served: SIGHUP's default action would end the process.
    let reloader = Reloader::new(
        source,
        config.clone(),
        Arc::clone(&live),
        Arc::clone(&metrics),
    );
    control
        .block_on(async { reloader.listen() })
        .context("installing the SIGHUP handler")?;

    let conf = server_conf::from_config(&config);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let proxy = service::Proxy::new(
        live,
        inflight.clone(),
        metrics.refusals.clone(),
        limits::connections::idle_keepalive_secs(config.limits.header_timeout),
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
    http.add_listener(
        pingora_core::listeners::ListenerConfig::tcp(config.listen.to_string()).l4_buffer(
            pingora_core::listeners::L4BufferSettings::default().read(CLIENT_READ_BUFFER),
        ),
    );
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
        groups = ?started_groups,
        "proxy started"
    );
    // Keep the control runtime alive for the life of the process.
    let _control = control;
    server.run(RunArgs {
        shutdown_signal: Box::new(drain::DelayedTerminate {
            delay: config.shutdown_delay,
            draining,
        }),
    });
    std::process::exit(0)
}
