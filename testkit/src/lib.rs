//! Real parts for the tests and the local lab, so neither needs mocks: an in-process DNS server
//! whose records change while clients resolve against it, the way CoreDNS answers for a headless
//! Service whose pods come and go; a real Postgres primary with streaming replicas on loopback
//! addresses of their own, like the replicas' pods behind their Service; and the names the
//! Kubernetes lab and the local lab share; raw-socket helpers for hostile-client tests; and the
//! two things every test needs, a bounded wait on a condition ([`wait`]) and a raw HTTP client
//! ([`http`]).

pub mod certs;
mod dns;
pub mod http;
pub mod names;
pub mod netfilter;
pub mod postgres;
pub mod sockets;
pub mod wait;

pub use dns::{DnsMode, DnsServer};
pub use postgres::{PgCluster, PgClusterBuilder, PgError, PgNode, Role};
