//! Upstream groups: endpoints from DNS, their health, and round-robin selection.

mod endpoint;
mod group;
pub mod health;
mod membership;

pub use endpoint::{CheckRecord, Endpoint};
pub use group::{Group, GroupError, GroupEvents, Pick};
