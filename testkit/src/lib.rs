//! Real parts for the tests and the local lab, so neither needs mocks: an in-process DNS server
//! whose records change while clients resolve against it, the way CoreDNS answers for a headless
//! Service whose pods come and go; and the names the Kubernetes lab and the local lab share.

mod dns;
pub mod names;

pub use dns::{DnsMode, DnsServer};
