//! What an endpoint costs to send one more request to: its requests in flight and a peak-EWMA of
//! its response time (Linkerd's and Finagle's measure). A new observation above the estimate
//! replaces it at once (a peak is believed immediately); below it, the estimate decays toward it
//! with a time constant, so one fast answer does not erase a slow streak. The cost of an endpoint
//! is `estimate × (in flight + 1)`: a frozen pod, whose requests never finish, grows more
//! expensive with every request sent to it, and the chooser stops picking it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How fast the estimate forgets: Linkerd's default.
pub const DECAY: Duration = Duration::from_secs(10);

/// Response times below this are priced as this: 0.5 ms and a 3 ms scheduling hiccup on a fast
/// network are the same thing, not one endpoint six times as good as the other (a peak is believed
/// at once, so without a floor one hiccup would send an idle group's traffic all elsewhere).
pub const FLOOR: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
pub struct Load {
    in_flight: AtomicUsize,
    state: Mutex<State>,
}

/// What changes together, under one lock.
#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Seconds, and when it was last updated; None before the first observation.
    ewma: Option<(f64, Instant)>,
    /// When the endpoint last showed it is alive: answered a request or passed a check.
    alive_at: Option<Instant>,
}

impl Load {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The response-time estimate, None before anything was observed.
    pub fn estimate(&self) -> Option<Duration> {
        self.state().ewma.map(|(s, _)| Duration::from_secs_f64(s))
    }

    /// `estimate × (in flight + 1)`, with `unknown` standing in for an endpoint never observed.
    /// The estimate is priced as it would have decayed toward zero since it was last observed (as
    /// Linkerd does): an endpoint that was slow and got no traffic since looks cheaper with time,
    /// gets a request again and is measured afresh, instead of staying shunned forever.
    pub fn cost(&self, unknown: Duration) -> f64 {
        let estimate = match self.state().ewma {
            Some((seconds, at)) => {
                let idle = Instant::now().saturating_duration_since(at).as_secs_f64();
                seconds * (-idle / DECAY.as_secs_f64()).exp()
            }
            None => unknown.as_secs_f64(),
        };
        estimate.max(FLOOR.as_secs_f64()) * (self.in_flight() + 1) as f64
    }

    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// One response time (or a lower bound of one, for a request cut off at its deadline).
    pub fn observe(&self, took: Duration) {
        let mut state = self.lock();
        state.observe(took, Instant::now());
    }

    /// A request was answered after `took`: one observation and a sign of life, under one lock.
    pub(crate) fn answered(&self, took: Duration) {
        let now = Instant::now();
        let mut state = self.lock();
        state.observe(took, now);
        state.alive_at = Some(now);
    }

    /// Forgets the response-time estimate: an endpoint back from an ejection or from down starts
    /// afresh, priced as the group is, instead of shunned for a minute by the stall that took it
    /// out.
    pub(crate) fn forget(&self) {
        self.lock().ewma = None;
    }

    /// The endpoint answered something (a check) just now.
    pub(crate) fn alive(&self) {
        self.lock().alive_at = Some(Instant::now());
    }

    /// Has it answered anything since `t`?
    pub fn alive_since(&self, t: Instant) -> bool {
        self.state().alive_at.is_some_and(|at| at >= t)
    }

    fn state(&self) -> State {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn observe(&mut self, took: Duration, now: Instant) {
        let took = took.as_secs_f64();
        let next = match self.ewma {
            Some((old, at)) if took < old => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let keep = (-elapsed / DECAY.as_secs_f64()).exp();
                old * keep + took * (1.0 - keep)
            }
            // Above the estimate, or the first: believed at once.
            _ => took,
        };
        self.ewma = Some((next, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_peak_is_believed_at_once_and_forgotten_slowly() {
        let load = Load::default();
        assert_eq!(load.estimate(), None);
        load.observe(MS * 10);
        assert_eq!(load.estimate(), Some(MS * 10));
        load.observe(MS * 300);
        assert_eq!(
            load.estimate(),
            Some(MS * 300),
            "a peak replaces the estimate"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        load.observe(MS * 10);
        let after_one = load.estimate().unwrap();
        assert!(
            after_one > MS * 250,
            "one fast answer a second later barely moves it: {after_one:?}"
        );
        tokio::time::advance(DECAY * 5).await;
        load.observe(MS * 10);
        assert!(
            load.estimate().unwrap() < MS * 15,
            "after five time constants it is forgotten"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shunned_endpoint_looks_cheaper_with_time_until_it_is_measured_again() {
        let (slow, fast) = (Load::default(), Load::default());
        slow.observe(MS * 300);
        fast.observe(MS * 5);
        assert!(slow.cost(MS) > fast.cost(MS) * 50.0);
        // The fast one keeps being measured; the slow one gets nothing.
        for _ in 0..60 {
            tokio::time::advance(Duration::from_secs(1)).await;
            fast.observe(MS * 5);
        }
        assert!(
            slow.cost(MS) <= fast.cost(MS),
            "after a minute without traffic the slow one is worth a try again"
        );
        assert_eq!(
            slow.estimate(),
            Some(MS * 300),
            "what was measured stays as it was"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_multiply_the_cost() {
        let load = Load::default();
        load.observe(MS * 10);
        let idle = load.cost(MS);
        load.start();
        load.start();
        assert!((load.cost(MS) - 3.0 * idle).abs() < 1e-9);
        load.end();
        load.end();
        load.end();
        assert_eq!(load.in_flight(), 0, "never below zero");
        assert!(
            (Load::default().cost(MS * 50) - 0.05).abs() < 1e-9,
            "unknown: the stand-in"
        );
    }
}
