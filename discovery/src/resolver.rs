//! Which DNS server to ask, and the hickory resolver built for it.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

/// Where lookups go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResolverSpec {
    /// `/etc/resolv.conf`: its name servers, search list and `ndots`, exactly as a pod resolves a
    /// short Service name inside Kubernetes.
    #[default]
    System,
    /// This server (UDP, TCP on truncation). The search list and `ndots` still come from
    /// `/etc/resolv.conf` when it can be read.
    At(SocketAddr),
}

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("reading the system resolver configuration (/etc/resolv.conf)")]
    SystemConfig(#[source] hickory_resolver::net::NetError),
    #[error("building the DNS resolver")]
    Build(#[source] hickory_resolver::net::NetError),
}

pub(crate) fn build(
    spec: &ResolverSpec,
    timeout: Duration,
) -> Result<TokioResolver, ResolverError> {
    let system = hickory_resolver::system_conf::read_system_conf();
    let (config, mut opts) = match (spec, system) {
        (ResolverSpec::System, Ok(system)) => system,
        (ResolverSpec::System, Err(e)) => return Err(ResolverError::SystemConfig(e)),
        (ResolverSpec::At(addr), system) => {
            let (domain, search, opts) = match system {
                Ok((config, opts)) => {
                    let (domain, search, _) = config.into_parts();
                    (domain, search, opts)
                }
                Err(_) => (None, Vec::new(), ResolverOpts::default()),
            };
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            (
                ResolverConfig::from_parts(domain, search, vec![server]),
                opts,
            )
        }
    };
    // Every lookup must reach the server: a cached answer would hide a pod that just went away.
    opts.cache_size = 0;
    opts.timeout = timeout;
    opts.attempts = 1;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(ResolverError::Build)
}
