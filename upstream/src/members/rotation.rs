//! Who may leave rotation: an endpoint taken out for a doubtful reason (a request's connect timed
//! out, it stalled, a check found it busy) must leave enough others in, decided under one lock so
//! that two endpoints that each count the other as the one that stays cannot both leave.

use super::Shared;
use crate::endpoint::Endpoint;

/// Which endpoints a doubtful failure must leave in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spare {
    /// None: the failure is certain.
    Nobody,
    /// The last usable endpoint (a request's connect timed out, or its endpoint stalled).
    TheLast,
    /// At least half of the endpoints that are up, and at least one (a check found it busy).
    TheFloor,
}

impl<X: 'static> Shared<X> {
    /// Takes `endpoint` out of rotation unless `spare` keeps it; true when this call took it out.
    pub(super) fn take_out(&self, endpoint: &Endpoint<X>, reason: &str, spare: Spare) -> bool {
        let _deciding = self.deciding.lock().unwrap_or_else(|e| e.into_inner());
        if spare != Spare::Nobody && endpoint.usable() {
            let table = self.table.load();
            let others = table
                .iter()
                .filter(|e| e.addr != endpoint.addr && e.usable())
                .count();
            let floor = match spare {
                Spare::TheFloor => table.iter().filter(|e| e.is_up()).count().div_ceil(2),
                _ => 1,
            };
            if others < floor.max(1) {
                self.observer.spared(endpoint, reason);
                return false;
            }
        }
        let out = if spare == Spare::TheFloor {
            endpoint.set_aside(reason)
        } else {
            endpoint.eject(reason)
        };
        if !out {
            return false;
        }
        self.observer.ejected(endpoint, reason);
        self.notify();
        true
    }
}
