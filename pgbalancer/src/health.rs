//! The active health check: a real login with tokio-postgres and one query for the role and the
//! replication lag, judged against the role filter and the lag limits. The upstream core runs it
//! every interval, per backend and concurrently (one task each, so a hung server delays nobody
//! else and DNS lookups delay no check), and counts it against the fall/rise thresholds.
//!
//! A failed check says whether the server is broken or only busy. Busy is a server that said it
//! is full (SQLSTATE 53300: `max_connections` or the role's connection limit reached) or that
//! answered something but not its whole login and query in time: under a connection storm that
//! is every replica at once, and taking them all down would refuse every client. Broken is
//! everything else, a server that says nothing at all within the timeout included (a stopped
//! postmaster: its kernel still completes the TCP handshake, but no byte ever comes back).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::tls::{ServerStream, ServerTls};
use tokio::time::Instant;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use upstream::Failure;

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
    #[error("answered, but did not finish the login and query within {0:?}")]
    Slow(Duration),
    #[error("connect failed")]
    Connect(#[source] io::Error),
    #[error("login failed")]
    Login(#[source] tokio_postgres::Error),
    #[error("query failed")]
    Query(#[source] tokio_postgres::Error),
}

impl CheckError {
    /// The server is alive but full or slow, not broken.
    pub fn busy(&self) -> bool {
        match self {
            Self::Slow(_) => true,
            Self::Login(e) => e.code() == Some(&SqlState::TOO_MANY_CONNECTIONS),
            _ => false,
        }
    }
}

/// Logs in to `addr` and asks for the role and the lag.
pub async fn probe(
    addr: SocketAddr,
    check: &CheckConfig,
    tls: Option<&ServerTls>,
) -> Result<Probe, CheckError> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&check.user)
        .dbname(&check.database)
        .application_name("pgbalancer-health-check")
        .ssl_mode(SslMode::Disable);
    if let Some(password) = &check.password {
        config.password(password.expose());
    }
    let heard = Arc::new(AtomicBool::new(false));
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(CheckError::Connect)?;
        // Small messages, one round trip each: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        // With server TLS the login goes inside it, as a session's does; tokio-postgres then
        // speaks plain protocol over the encrypted stream.
        let inner = match tls {
            None => ServerStream::Plain(tcp),
            Some(tls) => tls.start(tcp).await.map_err(CheckError::Connect)?,
        };
        let stream = Heard {
            inner,
            heard: Arc::clone(&heard),
        };
        let (client, connection) = config
            .connect_raw(stream, NoTls)
            .await
            .map_err(CheckError::Login)?;
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
    match tokio::time::timeout(check.timeout, work).await {
        Ok(probed) => probed,
        Err(_) if heard.load(Ordering::Relaxed) => Err(CheckError::Slow(check.timeout)),
        Err(_) => Err(CheckError::Timeout(check.timeout)),
    }
}

/// A stream that notes whether the server sent anything at all.
struct Heard<S> {
    inner: S,
    heard: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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
pub struct LoginCheck {
    pub check: Arc<CheckConfig>,
    pub tls: Option<ServerTls>,
}

#[async_trait::async_trait]
impl upstream::Check<Server> for LoginCheck {
    async fn check(&self, backend: &Backend) -> Result<(), Failure> {
        let check = &self.check;
        let started = Instant::now();
        let probed = probe(backend.addr, check, self.tls.as_ref()).await;
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
                judge(p, check).map_err(Failure::broken)
            }
            Err(e) if e.busy() => Err(Failure::busy(ops::error_chain(e))),
            Err(e) => Err(Failure::broken(ops::error_chain(e))),
        };
        match &result {
            Ok(()) => m.checks_passed.inc(),
            Err(f) if f.busy => m.checks_busy.inc(),
            Err(_) => m.checks_failed.inc(),
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
