//! The core on paused time: checks run on their interval, thresholds, ejection, membership
//! changes, round-robin and the bounded wait, with no real waiting. The gray-failure side (choice
//! by load, sparing the last endpoint, a stall told from a slow request) is in [`gray`].

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

mod gray;

/// A check whose verdict the test sets, counting its calls per endpoint: busy for the endpoints
/// in `busy`, else healthy or broken for all.
#[derive(Default)]
struct Switch {
    healthy: AtomicBool,
    busy: Mutex<BTreeSet<SocketAddr>>,
    calls: Mutex<HashMap<SocketAddr, u32>>,
}

impl Switch {
    fn calls(&self, addr: SocketAddr) -> u32 {
        self.calls.lock().unwrap().get(&addr).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Check<()> for Switch {
    async fn check(&self, endpoint: &Endpoint<()>) -> Result<(), Failure> {
        *self.calls.lock().unwrap().entry(endpoint.addr).or_default() += 1;
        if self.busy.lock().unwrap().contains(&endpoint.addr) {
            Err(Failure::busy("too many clients"))
        } else if self.healthy.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(Failure::broken("switched off"))
        }
    }
}

/// Records what the observer hears.
#[derive(Default)]
struct Log {
    joined: AtomicU32,
    left: AtomicU32,
    ejected: AtomicU32,
    transitions: Mutex<Vec<Transition>>,
}

impl Observer<()> for Log {
    fn joined(&self, _: &Endpoint<()>) {
        self.joined.fetch_add(1, Ordering::Relaxed);
    }
    fn left(&self, _: &Endpoint<()>) {
        self.left.fetch_add(1, Ordering::Relaxed);
    }
    fn ejected(&self, _: &Endpoint<()>, _: &str) {
        self.ejected.fetch_add(1, Ordering::Relaxed);
    }
    fn checked(&self, _: &Endpoint<()>, _: &CheckRecord, t: Transition) {
        if t != Transition::None {
            self.transitions.lock().unwrap().push(t);
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 8000))
}

fn set(ns: &[u8]) -> Endpoints {
    Arc::new(ns.iter().map(|n| addr(*n)).collect::<BTreeSet<_>>())
}

struct Rig {
    members: Arc<Members<()>>,
    check: Arc<Switch>,
    log: Arc<Log>,
    dns: watch::Sender<Endpoints>,
}

fn rig(initial: Initial, fall: u32, rise: u32, healthy: bool) -> Rig {
    rig_choosing(Choice::RoundRobin, initial, fall, rise, healthy)
}

fn rig_choosing(choice: Choice, initial: Initial, fall: u32, rise: u32, healthy: bool) -> Rig {
    let check = Arc::new(Switch::default());
    check.healthy.store(healthy, Ordering::Relaxed);
    let log = Arc::new(Log::default());
    let members = Members::new(
        Settings {
            interval: SECOND,
            check_timeout: SECOND,
            thresholds: Thresholds { fall, rise },
            initial,
            choice,
        },
        check.clone(),
        log.clone(),
        |_| (),
    );
    let (dns, rx) = watch::channel(set(&[]));
    members.follow(rx);
    Rig {
        members,
        check,
        log,
        dns,
    }
}

/// Lets the spawned tasks run what is ready now (paused time does not move).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoint_is_checked_at_once_and_comes_up_after_rise_passes() {
    let r = rig(Initial::Down, 2, 2, true);
    r.dns.send_replace(set(&[1]));
    settle().await;
    assert_eq!(r.log.joined.load(Ordering::Relaxed), 1);
    assert_eq!(r.check.calls(addr(1)), 1, "checked the moment it appeared");
    assert!(r.members.pick(&[]).is_none(), "one pass of rise 2: not yet");
    tokio::time::sleep(SECOND).await;
    settle().await;
    assert_eq!(r.check.calls(addr(1)), 2);
    assert_eq!(r.members.pick(&[]).unwrap().endpoint.addr, addr(1));
    assert_eq!(*r.log.transitions.lock().unwrap(), [Transition::Up]);
}

#[tokio::test(start_paused = true)]
async fn fall_failed_checks_take_it_out_and_rise_bring_it_back_with_a_new_incarnation() {
    let r = rig(Initial::Up, 2, 1, true);
    r.dns.send_replace(set(&[1]));
    settle().await;
    let e = r.members.get(&addr(1)).unwrap();
    let first = e.incarnation();
    r.check.healthy.store(false, Ordering::Relaxed);
    tokio::time::sleep(SECOND).await;
    settle().await;
    assert!(e.usable(), "one failure of fall 2 keeps it");
    tokio::time::sleep(SECOND).await;
    settle().await;
    assert!(!e.usable());
    assert_eq!(
        e.health().last.unwrap().result,
        Err(Failure::broken("switched off"))
    );
    r.check.healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(SECOND).await;
    settle().await;
    assert!(e.usable());
    assert_ne!(
        e.incarnation(),
        first,
        "connections pooled before the outage are not reused"
    );
    assert_eq!(
        *r.log.transitions.lock().unwrap(),
        [Transition::Down, Transition::Up]
    );
}

#[tokio::test(start_paused = true)]
async fn an_ejection_lasts_until_the_next_passing_check() {
    let r = rig(Initial::Up, 2, 1, true);
    r.dns.send_replace(set(&[1, 2]));
    settle().await;
    let seen = r.members.version();
    assert!(r.members.eject(&addr(1), "connect refused"));
    assert!(!r.members.eject(&addr(1), "again"), "already out");
    assert_ne!(r.members.version(), seen, "waiters hear of it");
    assert_eq!(r.log.ejected.load(Ordering::Relaxed), 1);
    for _ in 0..4 {
        assert_eq!(r.members.pick(&[]).unwrap().endpoint.addr, addr(2));
    }
    assert_eq!(
        r.members
            .get(&addr(1))
            .unwrap()
            .health()
            .ejected
            .unwrap()
            .reason,
        "connect refused"
    );
    tokio::time::sleep(SECOND).await;
    settle().await;
    assert!(
        r.members.get(&addr(1)).unwrap().usable(),
        "re-admitted by a check"
    );
    assert_eq!(*r.log.transitions.lock().unwrap(), [Transition::Readmitted]);
}

#[tokio::test(start_paused = true)]
async fn round_robin_over_the_usable_ones_not_yet_tried() {
    let r = rig(Initial::Up, 1, 1, true);
    r.dns.send_replace(set(&[1, 2, 3]));
    settle().await;
    let picks: Vec<_> = (0..6)
        .map(|_| r.members.pick(&[]).unwrap().endpoint.addr)
        .collect();
    assert_eq!(
        picks,
        [addr(1), addr(2), addr(3), addr(1), addr(2), addr(3)]
    );
    let pick = r.members.pick(&[addr(1), addr(3)]).unwrap();
    assert_eq!(pick.endpoint.addr, addr(2));
    assert!(!pick.alternatives, "nothing left to try after this one");
    assert!(!r.members.pick(&[addr(1), addr(2)]).unwrap().alternatives);
    assert!(r.members.pick(&[addr(1), addr(2), addr(3)]).is_none());
    assert!(r.members.pick(&[addr(1)]).unwrap().alternatives);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_leaves_dns_stops_being_checked() {
    let r = rig(Initial::Up, 1, 1, true);
    r.dns.send_replace(set(&[1, 2]));
    settle().await;
    r.dns.send_replace(set(&[2]));
    settle().await;
    assert_eq!(r.log.left.load(Ordering::Relaxed), 1);
    assert!(r.members.get(&addr(1)).is_none());
    let calls = r.check.calls(addr(1));
    tokio::time::sleep(SECOND * 5).await;
    settle().await;
    assert_eq!(r.check.calls(addr(1)), calls, "its check task is gone");
    assert!(r.check.calls(addr(2)) >= 5);
    assert_eq!(*r.members.applied().unwrap(), *set(&[2]));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_members_stops_every_check() {
    let r = rig(Initial::Up, 1, 1, true);
    r.dns.send_replace(set(&[1]));
    settle().await;
    let calls = r.check.calls(addr(1));
    drop(r.members);
    r.dns.send_replace(set(&[1, 2]));
    settle().await;
    tokio::time::sleep(SECOND * 5).await;
    settle().await;
    assert_eq!(r.check.calls(addr(1)), calls);
    assert_eq!(r.check.calls(addr(2)), 0);
}

#[tokio::test(start_paused = true)]
async fn the_wait_ends_when_an_endpoint_comes_up() {
    let r = rig(Initial::Down, 1, 1, false);
    r.dns.send_replace(set(&[1]));
    settle().await;
    let members = Arc::clone(&r.members);
    let started = Instant::now();
    let nudges = AtomicU32::new(0);
    let waiting = members.wait_for(
        Instant::now() + SECOND * 10,
        Duration::from_millis(250),
        || {
            nudges.fetch_add(1, Ordering::Relaxed);
        },
        |_| std::future::ready(members.pick(&[]).map(|p| p.endpoint.addr)),
    );
    let heal = async {
        tokio::time::sleep(SECOND * 2 + Duration::from_millis(500)).await;
        r.check.healthy.store(true, Ordering::Relaxed);
    };
    let (found, ()) = tokio::join!(waiting, heal);
    assert_eq!(found, Some(addr(1)));
    assert_eq!(started.elapsed(), SECOND * 3, "at the first passing check");
    assert!(
        nudges.load(Ordering::Relaxed) >= 10,
        "asked DNS again while waiting"
    );
}

#[tokio::test(start_paused = true)]
async fn the_wait_gives_up_at_its_deadline_and_says_when_everything_deserves_a_new_try() {
    let r = rig(Initial::Up, 1, 1, true);
    settle().await; // the first (empty) set is applied
    let started = Instant::now();
    let mut calls = Vec::new();
    let found: Option<()> = r
        .members
        .wait_for(
            Instant::now() + SECOND * 3,
            SECOND,
            || {},
            |fresh| {
                calls.push(fresh);
                std::future::ready(None)
            },
        )
        .await;
    assert!(found.is_none());
    assert_eq!(started.elapsed(), SECOND * 3);
    assert_eq!(
        calls,
        [true, false, false, false],
        "the timer alone is no change"
    );

    let members = Arc::clone(&r.members);
    let dns = r.dns.clone();
    let mut fresh_calls = Vec::new();
    let waited = async {
        members
            .wait_for(
                Instant::now() + SECOND * 3,
                SECOND * 10,
                || {},
                |fresh| {
                    fresh_calls.push(fresh);
                    std::future::ready((fresh_calls.len() == 2).then_some(()))
                },
            )
            .await
    };
    let change = async {
        tokio::time::sleep(SECOND).await;
        dns.send_replace(set(&[1]));
    };
    let (found, ()) = tokio::join!(waited, change);
    assert_eq!(found, Some(()));
    assert_eq!(fresh_calls, [true, true], "a change is a fresh start");
}

#[tokio::test(start_paused = true)]
async fn sessions_end_when_their_endpoint_goes_down_or_leaves_not_when_it_is_ejected() {
    let r = rig(Initial::Up, 1, 1, true);
    r.dns.send_replace(set(&[1, 2]));
    settle().await;
    let one = r.members.get(&addr(1)).unwrap();
    let gone = |e: &Arc<Endpoint<()>>| {
        let e = Arc::clone(e);
        tokio::spawn(async move { e.wait_gone().await })
    };

    let waiting = gone(&one);
    assert!(r.members.eject(&addr(1), "stalled"));
    settle().await;
    assert!(!waiting.is_finished(), "an ejection alone ends no session");

    r.dns.send_replace(set(&[2]));
    settle().await;
    assert!(waiting.is_finished(), "out of DNS: its sessions end");

    let two = r.members.get(&addr(2)).unwrap();
    let waiting = gone(&two);
    r.check.healthy.store(false, Ordering::Relaxed);
    tokio::time::advance(SECOND).await;
    settle().await;
    assert!(
        waiting.is_finished(),
        "down by its checks: its sessions end"
    );
}
