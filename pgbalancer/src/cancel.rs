//! CancelRequest routing. A cancel arrives on a new connection that a round-robin balancer would
//! send to any server; Postgres ignores a key it does not know, so the query would run on. We
//! remember each session's BackendKeyData (seen in the clear during startup) and send the cancel to
//! the server that runs that session. When the key is unknown (the session is TLS, so its key was
//! never visible to us, or it ended), the cancel goes to every healthy server: the one that knows
//! the key acts on it, the others ignore it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::protocol::{CancelKey, FirstPacket};

/// Session keys of the sessions running now, and their servers.
#[derive(Debug, Default)]
pub struct CancelMap {
    keys: Mutex<HashMap<CancelKey, SocketAddr>>,
}

/// Removes its key from the map when the session ends.
#[derive(Debug)]
pub struct KeyGuard {
    map: Arc<CancelMap>,
    key: CancelKey,
    addr: SocketAddr,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut keys = self.map.lock();
        // Keys are random per server; should two ever collide, keep the newer session's.
        if keys.get(&self.key) == Some(&self.addr) {
            keys.remove(&self.key);
        }
    }
}

impl CancelMap {
    pub fn register(self: &Arc<Self>, key: CancelKey, addr: SocketAddr) -> KeyGuard {
        self.lock().insert(key, addr);
        KeyGuard {
            map: self.clone(),
            key,
            addr,
        }
    }

    pub fn lookup(&self, key: &CancelKey) -> Option<SocketAddr> {
        self.lock().get(key).copied()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CancelKey, SocketAddr>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where a cancel for `key` must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Known(SocketAddr),
    Fanout(Vec<SocketAddr>),
}

impl Route {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Known(_) => "known",
            Self::Fanout(_) => "fanout",
        }
    }
}

/// Where the CancelRequest for `key` goes: the server of its session, or else every server
/// `usable` lists (a cancel for a key nobody knows does no harm).
pub fn route(map: &CancelMap, key: &CancelKey, usable: impl FnOnce() -> Vec<SocketAddr>) -> Route {
    match map.lookup(key) {
        Some(addr) => Route::Known(addr),
        None => Route::Fanout(usable()),
    }
}

/// Sends the CancelRequest for `key` where `route` says, all servers at once.
pub async fn forward(key: CancelKey, route: &Route, connect_timeout: Duration) {
    let targets = match route {
        Route::Known(addr) => std::slice::from_ref(addr),
        Route::Fanout(addrs) => addrs.as_slice(),
    };
    info!(
        pid = key.pid,
        routing = route.label(),
        servers = targets.len(),
        "forwarding cancel request"
    );
    let packet = FirstPacket::Cancel(key).encode();
    let sends = targets.iter().map(|addr| {
        let packet = packet.clone();
        async move {
            let sent = tokio::time::timeout(connect_timeout, async {
                let mut stream = TcpStream::connect(addr).await?;
                stream.write_all(&packet).await?;
                stream.shutdown().await
            })
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(backend = %addr, error = %e, "could not send cancel request"),
                Err(_) => debug!(backend = %addr, "cancel request timed out"),
            }
        }
    });
    futures::future::join_all(sends).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_known_while_its_session_runs() {
        let map = Arc::new(CancelMap::default());
        let key = CancelKey { pid: 1, secret: 2 };
        let addr = SocketAddr::from(([127, 0, 0, 1], 5432));
        let usable = || vec![SocketAddr::from(([127, 0, 0, 9], 5432))];
        {
            let _guard = map.register(key, addr);
            assert_eq!(route(&map, &key, usable), Route::Known(addr));
        }
        assert!(map.is_empty());
        assert_eq!(route(&map, &key, usable), Route::Fanout(usable()));
    }

    #[test]
    fn an_older_session_ending_keeps_a_newer_one_with_the_same_key() {
        let map = Arc::new(CancelMap::default());
        let key = CancelKey { pid: 1, secret: 2 };
        let old = map.register(key, SocketAddr::from(([127, 0, 0, 1], 1)));
        let _new = map.register(key, SocketAddr::from(([127, 0, 0, 2], 1)));
        drop(old);
        assert_eq!(
            map.lookup(&key),
            Some(SocketAddr::from(([127, 0, 0, 2], 1)))
        );
    }
}
