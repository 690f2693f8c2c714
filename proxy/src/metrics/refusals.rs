//! Requests the proxy answers itself, before any upstream sees them, counted by why.

use prometheus::{IntCounter, IntCounterVec};

/// Why the proxy answered a request itself, before any upstream saw it, by the status it sent.
const REFUSALS: [(u16, &str); 5] = [
    (400, "bad_request"),
    (404, "unrouted"),
    (413, "body_too_large"),
    (414, "uri_too_long"),
    (431, "header_too_large"),
];

/// `proxy_requests_refused_total{reason}`: requests refused before they reached an upstream.
#[derive(Clone)]
pub struct Refusals {
    counters: [IntCounter; REFUSALS.len()],
}

impl Refusals {
    /// The children of `family` (`proxy_requests_refused_total{reason}`), one per reason.
    pub fn new(family: &IntCounterVec) -> Self {
        Self {
            counters: REFUSALS.map(|(_, reason)| family.with_label_values(&[reason])),
        }
    }

    /// A request was refused with `status`; other statuses are not refusals and are not counted.
    pub fn count(&self, status: u16) {
        if let Some(i) = REFUSALS.iter().position(|(s, _)| *s == status) {
            self.counters[i].inc();
        }
    }
}
