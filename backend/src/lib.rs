//! The demo service of the lab: `GET /users` answers
//! `{"users":N,"pod":"<HOSTNAME>","db":"<cluster_name of the Postgres server that answered>"}`,
//! so every response shows which pod and which replica served it. Kubernetes probes `/healthz`
//! and `/readyz`; `/metrics` is for Prometheus. On SIGTERM readiness fails at once while requests
//! are still served for the shutdown delay, then in-flight requests finish and the process exits.
//!
//! A database that is down, slow or failing is a 503 with a JSON body naming the failed step,
//! never a hang: connect and query are each bounded.

mod config;
mod db;
mod http;
mod metrics;
mod serve;

pub use config::{Cli, Config, ConfigError, ConnectMode};
pub use db::{Db, DbError, Users};
pub use http::App;
pub use metrics::Metrics;
pub use serve::{run, serve, ServeError};
