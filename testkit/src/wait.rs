//! Waiting in tests: poll a condition until it holds, with a bound and a message that says what
//! did not happen. Tests synchronise on conditions like these, never on a fixed sleep.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is polled.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Some`, every 20 ms; panics after `limit`, naming `what`.
pub async fn poll<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Polls `cond` until it holds, every 20 ms; panics after `limit`, naming `what`.
pub async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    poll(what, limit, || std::future::ready(cond().then_some(()))).await;
}

/// Polls `probe` until it returns `Some`, every 20 ms; panics after `limit`, naming `what`.
pub async fn until_some<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    poll(what, limit, || std::future::ready(probe())).await
}
