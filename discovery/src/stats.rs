//! Counters of what the watcher did, read by the binaries' metrics and status pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// How one lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupResult {
    /// Records came back.
    Ok,
    /// NXDOMAIN or no records: zero endpoints.
    Empty,
    /// Timeout, SERVFAIL, unreachable resolver: the last good set was kept.
    Failed,
}

impl LookupResult {
    /// A bounded label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Empty => "empty",
            Self::Failed => "failed",
        }
    }

    pub const ALL: [LookupResult; 3] = [Self::Ok, Self::Empty, Self::Failed];
}

/// Lookup counts and the last failure, shared between the watcher and its readers.
#[derive(Debug, Default)]
pub struct Stats {
    ok: AtomicU64,
    empty: AtomicU64,
    failed: AtomicU64,
    changes: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
}

impl Stats {
    /// Lookups that ended with `result` so far.
    pub fn lookups(&self, result: LookupResult) -> u64 {
        self.counter(result).load(Ordering::Relaxed)
    }

    /// How many times the published set changed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// When the last failed lookup happened and why.
    pub fn last_error(&self) -> Option<(SystemTime, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn record(&self, result: LookupResult) {
        self.counter(result).fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self, error: String) {
        self.record(LookupResult::Failed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((SystemTime::now(), error));
    }

    pub(crate) fn record_change(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    fn counter(&self, result: LookupResult) -> &AtomicU64 {
        match result {
            LookupResult::Ok => &self.ok,
            LookupResult::Empty => &self.empty,
            LookupResult::Failed => &self.failed,
        }
    }
}
