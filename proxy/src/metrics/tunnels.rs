//! Upgraded connections (websocket, any `Upgrade` answered 101): open now, bytes by direction,
//! how they ended.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

/// Upgraded connections (websocket and any `Upgrade`) of one group.
#[derive(Clone)]
pub struct TunnelMetrics {
    pub open: IntGauge,
    pub bytes_from_client: IntCounter,
    pub bytes_to_client: IntCounter,
    /// By [`TunnelEnd::ALL`].
    closed: [IntCounter; 3],
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// One side closed it.
    Closed,
    /// Nothing crossed it in either direction for `tunnel_idle_timeout`.
    IdleTimeout,
    /// A read or write failed (a reset, a vanished peer).
    Error,
}

impl TunnelEnd {
    pub const ALL: [Self; 3] = [Self::Closed, Self::IdleTimeout, Self::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::IdleTimeout => "idle_timeout",
            Self::Error => "error",
        }
    }
}

impl TunnelMetrics {
    /// Group `group`'s children of the three tunnel families.
    pub fn new(
        group: &str,
        open: &IntGaugeVec,
        bytes: &IntCounterVec,
        closed: &IntCounterVec,
    ) -> Self {
        Self {
            open: open.with_label_values(&[group]),
            bytes_from_client: bytes.with_label_values(&[group, "from_client"]),
            bytes_to_client: bytes.with_label_values(&[group, "to_client"]),
            closed: TunnelEnd::ALL.map(|e| closed.with_label_values(&[group, e.as_str()])),
        }
    }

    pub fn closed(&self, end: TunnelEnd) {
        let i = TunnelEnd::ALL
            .iter()
            .position(|e| *e == end)
            .expect("listed");
        self.closed[i].inc();
    }
}
