//! The two choices an operator makes about servers, shared by the command line and the config
//! file: which role may take clients, and what happens to a server's sessions when it goes down.

use serde::{Deserialize, Serialize};

/// Which servers may take clients, judged by `pg_is_in_recovery()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RoleFilter {
    /// In recovery: a streaming replica.
    #[default]
    Replica,
    /// Not in recovery.
    Primary,
    /// Either.
    Any,
}

/// What happens to a server's open sessions when it is marked down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnDown {
    /// Let them run; only new connections avoid the server.
    #[default]
    Keep,
    /// Close them (HAProxy's `on-marked-down shutdown-sessions`).
    Shutdown,
}
