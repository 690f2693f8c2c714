//! The upstream core both balancers stand on, after DNS: [`Members`] follows the endpoint set
//! that `discovery` publishes, keeps one [`Endpoint`] per address with its [`Health`] (active
//! checks through a [`Check`], fall/rise thresholds, ejection by a failed request, with reasons),
//! runs one check task per endpoint, chooses among the usable ones round-robin ([`Members::pick`]),
//! and lets a caller wait, bounded, until one is usable ([`Members::wait_for`]).
//!
//! No HTTP and no Postgres here: the proxy's TCP and HTTP checks and pgbalancer's login check are
//! [`Check`] implementations, their logs and metrics an [`Observer`], in the binaries.

mod check;
mod endpoint;
mod health;
mod load;
mod members;

pub use check::{Check, Failure, Observer};
pub use endpoint::{Endpoint, InFlight, NoAnswer};
pub use health::{CheckRecord, Ejection, Health, Initial, Thresholds, Transition};
pub use load::Load;
pub use members::{Choice, Members, Pick, Settings, BUSY_PREFIX};
