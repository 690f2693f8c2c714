//! Real parts for the tests and the local lab, so neither needs mocks: an in-process DNS server
//! whose records change while clients resolve against it, the way CoreDNS answers for a headless
//! Service whose pods come and go.

mod dns;

pub use dns::{DnsMode, DnsServer};
