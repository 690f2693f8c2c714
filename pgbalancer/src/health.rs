//! The active health check: a real login with tokio-postgres and one query for the role and the
//! replication lag, judged against the role filter and the lag limits. The upstream core runs it
//! every interval, per backend and concurrently (one task each, so a hung server delays nobody
//! else and DNS lookups delay no check), and counts it against the fall/rise thresholds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;

use crate::config::{CheckConfig, RoleFilter};
use crate::pool::{Backend, Details, Server};

/// Role and lag in one round trip. The lag is 0 when every received WAL record is replayed (an
/// idle primary writes nothing, and `now() - pg_last_xact_replay_timestamp()` would grow forever).
/// With WAL left to replay and no transaction replayed since the server started (a replica paused
/// or stuck right after its start: the timestamp is NULL), the lag is at least its uptime.
const QUERY: &str = "SELECT pg_is_in_recovery(),
    CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
         WHEN pg_last_wal_receive_lsn() IS NOT NULL
          AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
         ELSE extract(epoch FROM now() - coalesce(pg_last_xact_replay_timestamp(),
                                                  pg_postmaster_start_time()))::float8 END,
    CASE WHEN pg_is_in_recovery()
         THEN coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::int8
         ELSE 0::int8 END";

/// What a server said about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub in_recovery: bool,
    pub lag_seconds: f64,
    pub lag_bytes: i64,
}

/// Why a check failed to get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("login failed")]
    Login(#[source] tokio_postgres::Error),
    #[error("query failed")]
    Query(#[source] tokio_postgres::Error),
}

/// Logs in to `addr` and asks for the role and the lag.
pub async fn probe(addr: SocketAddr, check: &CheckConfig) -> Result<Probe, CheckError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(&check.user)
        .dbname(&check.database)
        .application_name("pgbalancer-health-check")
        .ssl_mode(SslMode::Disable)
        .connect_timeout(check.timeout);
    if let Some(password) = &check.password {
        config.password(password.expose());
    }
    let work = async {
        let (client, connection) = config.connect(NoTls).await.map_err(CheckError::Login)?;
        let connection = tokio::spawn(connection);
        let row = client
            .query_one(QUERY, &[])
            .await
            .map_err(CheckError::Query);
        drop(client);
        // The connection task ends once the client is gone (it sends Terminate).
        let _ = connection.await;
        let row = row?;
        Ok(Probe {
            in_recovery: row.get(0),
            lag_seconds: row.get(1),
            lag_bytes: row.get(2),
        })
    };
    tokio::time::timeout(check.timeout, work)
        .await
        .unwrap_or(Err(CheckError::Timeout(check.timeout)))
}

/// Whether a server that answered may take clients.
pub fn judge(probe: &Probe, check: &CheckConfig) -> Result<(), String> {
    let role = if probe.in_recovery {
        "replica"
    } else {
        "primary"
    };
    match (check.role, probe.in_recovery) {
        (RoleFilter::Replica, false) | (RoleFilter::Primary, true) => {
            return Err(format!("wrong role: is a {role}, want {:?}", check.role).to_lowercase())
        }
        _ => {}
    }
    if let Some(max) = check.max_lag {
        if probe.lag_seconds > max.as_secs_f64() {
            return Err(format!(
                "replication lag {:.3}s over the limit of {max:?}",
                probe.lag_seconds
            ));
        }
    }
    if let Some(max) = check.max_lag_bytes {
        if probe.lag_bytes > i64::try_from(max).unwrap_or(i64::MAX) {
            return Err(format!(
                "replication lag {} bytes over the limit of {max}",
                probe.lag_bytes
            ));
        }
    }
    Ok(())
}

/// The login check as the upstream core's [`upstream::Check`]: role and lag go to the server's
/// details and metrics, the verdict to the core.
pub struct LoginCheck(pub Arc<CheckConfig>);

#[async_trait::async_trait]
impl upstream::Check<Server> for LoginCheck {
    async fn check(&self, backend: &Backend) -> Result<(), String> {
        let check = &self.0;
        let started = Instant::now();
        let probed = probe(backend.addr, check).await;
        let m = &backend.data.metrics;
        m.check_duration.observe(started.elapsed().as_secs_f64());
        let result = match &probed {
            Ok(p) => {
                m.in_recovery.set(i64::from(p.in_recovery));
                m.lag_seconds.set(p.lag_seconds);
                m.lag_bytes.set(p.lag_bytes);
                backend.data.set_details(Details {
                    in_recovery: Some(p.in_recovery),
                    lag_seconds: Some(p.lag_seconds),
                    lag_bytes: Some(p.lag_bytes),
                });
                judge(p, check)
            }
            Err(e) => Err(ops::error_chain(e)),
        };
        if result.is_ok() {
            m.checks_passed.inc();
        } else {
            m.checks_failed.inc();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(role: RoleFilter) -> CheckConfig {
        CheckConfig {
            user: "u".into(),
            database: "d".into(),
            password_env: None,
            password: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            role,
            fall: 2,
            rise: 1,
            max_lag: Some(Duration::from_secs(5)),
            max_lag_bytes: Some(1024),
        }
    }

    fn probe(in_recovery: bool, lag_seconds: f64, lag_bytes: i64) -> Probe {
        Probe {
            in_recovery,
            lag_seconds,
            lag_bytes,
        }
    }

    #[test]
    fn role_filter_and_lag_limits() {
        let replica = probe(true, 0.0, 0);
        let primary = probe(false, 0.0, 0);
        assert!(judge(&replica, &check(RoleFilter::Replica)).is_ok());
        let e = judge(&primary, &check(RoleFilter::Replica)).unwrap_err();
        assert!(e.contains("wrong role"), "{e}");
        assert!(judge(&primary, &check(RoleFilter::Primary)).is_ok());
        assert!(judge(&replica, &check(RoleFilter::Primary)).is_err());
        assert!(judge(&primary, &check(RoleFilter::Any)).is_ok());
        assert!(judge(&replica, &check(RoleFilter::Any)).is_ok());
        assert!(judge(&probe(true, 6.0, 0), &check(RoleFilter::Replica)).is_err());
        assert!(judge(&probe(true, 0.0, 4096), &check(RoleFilter::Replica)).is_err());
    }
}
