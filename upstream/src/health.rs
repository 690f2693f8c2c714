//! What the checks and the requests have established about one endpoint: up or down by the
//! fall/rise thresholds, ejected or not (with why), and the last check.

use std::time::{Duration, SystemTime};

use crate::check::Failure;

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
    /// `Err` says why the endpoint failed, and whether it is broken or only busy.
    pub result: Result<(), Failure>,
}

/// Why and when an endpoint was taken out of rotation: by a failed request, or by a check that
/// found it busy.
#[derive(Debug, Clone, PartialEq)]
pub struct Ejection {
    pub reason: String,
    pub at: SystemTime,
    /// Only busy (a check said so): it is back after one passing check, whatever came before.
    pub busy: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub up: bool,
    pub passes: u32,
    pub fails: u32,
    pub ejected: Option<Ejection>,
    /// Ejections since a request was last answered: each one lengthens the next probation.
    pub ejections_in_a_row: u32,
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
            ejections_in_a_row: 0,
            last: None,
            since: SystemTime::now(),
        }
    }

    /// May new traffic go here?
    pub fn usable(&self) -> bool {
        self.up && self.ejected.is_none()
    }

    /// Counts a check against the thresholds. A passing check also ends an ejection. A busy
    /// failure counts toward no threshold: it only starts the passes over (the caller decides
    /// whether it takes the endpoint out of rotation).
    pub fn record(&mut self, record: CheckRecord, t: Thresholds) -> Transition {
        let passed = record.result.is_ok();
        let busy = record.result.as_ref().is_err_and(|f| f.busy);
        let at = record.at;
        self.last = Some(record);
        if busy {
            self.passes = 0;
            return Transition::None;
        }
        if passed {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.up && self.passes >= t.rise {
                self.up = true;
                self.ejected = None;
                self.since = at;
                return Transition::Up;
            }
            if self.up && self.ejected.is_some() && self.passes >= self.probation() {
                self.ejected = None;
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

    /// Takes the endpoint out of rotation until it passes its probation; false if it already
    /// was out.
    pub fn eject(&mut self, reason: &str) -> bool {
        self.take_out(reason, false)
    }

    /// Takes a busy endpoint out of rotation until its next passing check; false if it already
    /// was out.
    pub fn set_aside(&mut self, reason: &str) -> bool {
        self.take_out(reason, true)
    }

    fn take_out(&mut self, reason: &str, busy: bool) -> bool {
        if self.ejected.is_some() {
            return false;
        }
        self.ejected = Some(Ejection {
            reason: reason.to_owned(),
            at: SystemTime::now(),
            busy,
        });
        if !busy {
            self.ejections_in_a_row = self.ejections_in_a_row.saturating_add(1);
        }
        self.passes = 0;
        true
    }

    /// Passing checks an ejected endpoint needs before it is re-admitted: 1 after its first
    /// ejection, then 2, 4 and at most 8 while it keeps failing requests between answers; 1
    /// after it was set aside for being busy.
    pub fn probation(&self) -> u32 {
        if self.ejected.as_ref().is_some_and(|e| e.busy) {
            return 1;
        }
        1 << self.ejections_in_a_row.saturating_sub(1).min(3)
    }

    /// A request was answered: the endpoint's next ejection starts a fresh probation.
    pub fn served(&mut self) {
        self.ejections_in_a_row = 0;
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
            result: if ok {
                Ok(())
            } else {
                Err(Failure::broken("down"))
            },
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
    fn probation_doubles_while_it_keeps_failing_requests_and_resets_once_it_answers() {
        let mut h = Health::new(Initial::Up);
        h.eject("stalled");
        assert_eq!(h.probation(), 1);
        assert_eq!(h.record(check(true), T), Transition::Readmitted);
        h.eject("stalled again");
        assert_eq!(h.probation(), 2);
        assert_eq!(h.record(check(true), T), Transition::None);
        assert_eq!(h.record(check(true), T), Transition::Readmitted);
        for _ in 0..5 {
            h.eject("stalled");
            while h.record(check(true), T) != Transition::Readmitted {}
        }
        h.eject("stalled");
        assert_eq!(h.probation(), 8, "capped");
        h.served();
        h.record(check(true), T);
        h.eject("once more");
        assert_eq!(h.probation(), 1, "an answer in between starts over");
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
