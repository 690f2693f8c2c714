//! What the checks and the requests have established about one endpoint: up or down by the
//! fall/rise thresholds, ejected or not (with why), and the last check.

use std::time::{Duration, SystemTime};

/// Consecutive failed checks that take an endpoint down, and passed ones that bring it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub fall: u32,
    pub rise: u32,
}

/// How a new endpoint starts: `Up` where DNS lists only ready pods and the first check runs at
/// once (the proxy), `Down` where it must pass `rise` checks before it gets clients (pgbalancer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    Up,
    Down,
}

/// What one observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// Failed `fall` checks in a row.
    Down,
    /// Passed `rise` checks in a row after being down.
    Up,
    /// Was up but ejected by a failed request; a check passed since.
    Readmitted,
}

/// The outcome of one active check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    pub at: SystemTime,
    pub duration: Duration,
    /// `Err` says why the endpoint failed.
    pub result: Result<(), String>,
}

/// Why and when a request took an endpoint out of rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Ejection {
    pub reason: String,
    pub at: SystemTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub up: bool,
    pub passes: u32,
    pub fails: u32,
    pub ejected: Option<Ejection>,
    pub last: Option<CheckRecord>,
    /// When `up` last changed (or the endpoint appeared).
    pub since: SystemTime,
}

impl Health {
    pub fn new(initial: Initial) -> Self {
        Self {
            up: initial == Initial::Up,
            passes: 0,
            fails: 0,
            ejected: None,
            last: None,
            since: SystemTime::now(),
        }
    }

    /// May new traffic go here?
    pub fn usable(&self) -> bool {
        self.up && self.ejected.is_none()
    }

    /// Counts a check against the thresholds. A passing check also ends an ejection.
    pub fn record(&mut self, record: CheckRecord, t: Thresholds) -> Transition {
        let passed = record.result.is_ok();
        let at = record.at;
        self.last = Some(record);
        if passed {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.up && self.passes >= t.rise {
                self.up = true;
                self.ejected = None;
                self.since = at;
                return Transition::Up;
            }
            if self.up && self.ejected.take().is_some() {
                return Transition::Readmitted;
            }
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            if self.up && self.fails >= t.fall {
                self.up = false;
                self.since = at;
                return Transition::Down;
            }
        }
        Transition::None
    }

    /// Takes the endpoint out of rotation until a check passes; false if it already was out.
    pub fn eject(&mut self, reason: &str) -> bool {
        if self.ejected.is_some() {
            return false;
        }
        self.ejected = Some(Ejection {
            reason: reason.to_owned(),
            at: SystemTime::now(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { fall: 2, rise: 2 };

    fn check(ok: bool) -> CheckRecord {
        CheckRecord {
            at: SystemTime::now(),
            duration: Duration::from_millis(1),
            result: if ok { Ok(()) } else { Err("down".into()) },
        }
    }

    #[test]
    fn fall_and_rise_count_consecutive_checks() {
        let mut h = Health::new(Initial::Down);
        assert!(!h.usable(), "a new endpoint starting down gets nothing");
        assert_eq!(
            h.record(check(true), T),
            Transition::None,
            "one pass of two"
        );
        assert_eq!(h.record(check(true), T), Transition::Up);
        assert_eq!(
            h.record(check(false), T),
            Transition::None,
            "one failure of two"
        );
        assert_eq!(
            h.record(check(true), T),
            Transition::None,
            "a pass resets the count"
        );
        assert_eq!(h.record(check(false), T), Transition::None);
        assert_eq!(h.record(check(false), T), Transition::Down);
        assert!(!h.usable());
    }

    #[test]
    fn an_ejection_lasts_until_a_check_passes_and_keeps_its_reason() {
        let mut h = Health::new(Initial::Up);
        assert!(h.eject("connect refused"));
        assert!(!h.eject("again"), "a second ejection is not a new one");
        assert_eq!(h.ejected.as_ref().unwrap().reason, "connect refused");
        assert!(!h.usable());
        assert_eq!(h.record(check(false), T), Transition::None);
        assert!(!h.usable());
        assert_eq!(h.record(check(true), T), Transition::Readmitted);
        assert!(h.usable());
    }

    #[test]
    fn coming_up_clears_an_ejection() {
        let mut h = Health::new(Initial::Up);
        h.eject("reset");
        h.record(check(false), T);
        assert_eq!(h.record(check(false), T), Transition::Down);
        h.record(check(true), T);
        assert_eq!(h.record(check(true), T), Transition::Up);
        assert!(h.usable());
    }
}
