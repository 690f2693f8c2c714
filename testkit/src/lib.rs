//! Real parts for the tests and the local lab, so neither needs mocks: an in-process DNS server
//! whose records change while clients resolve against it, the way CoreDNS answers for a headless
//! Service whose pods come and go; a real Postgres primary with streaming replicas on loopback
//! addresses of their own, like the replicas' pods behind their Service; and the names the
//! Kubernetes lab and the local lab share; and raw-socket helpers for hostile-client tests.

mod dns;
pub mod names;
pub mod postgres;
pub mod sockets;

pub use dns::{DnsMode, DnsServer};
pub use postgres::{PgCluster, PgClusterBuilder, PgError, PgNode, Role};
