//! Upstream groups over the upstream core (the `upstream` crate): endpoints from DNS, their
//! health by the proxy's TCP or HTTP checks, least-loaded or round-robin choice, the bounded wait.

mod endpoint;
mod group;
pub mod health;

pub use endpoint::{Endpoint, Pod};
pub use group::{Group, GroupError, GroupEvents, Pick};
pub use upstream::CheckRecord;
