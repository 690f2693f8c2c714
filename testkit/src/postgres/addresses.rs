//! Where a cluster's nodes listen: a block of loopback addresses of its own and one port free on
//! all of them.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

use super::PgError;

pub(super) fn offset_ip(ip: Ipv4Addr, n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) + u32::try_from(n).unwrap_or(u32::MAX))
}

/// A `127.x.y.1` address starting a block no other cluster of this process uses, and unlikely to
/// be used by another process (x depends on the process id).
pub(super) fn next_block() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let x = 100 + (std::process::id() % 100) as u8;
    Ipv4Addr::new(127, x, (n % 256) as u8, 1)
}

pub(super) fn port_free(ip: Ipv4Addr, port: u16) -> bool {
    TcpListener::bind((ip, port)).is_ok()
}

/// A port the system hands out on the first address and that is also free on the others.
pub(super) fn free_port(ips: &[Ipv4Addr]) -> Result<u16, PgError> {
    for _ in 0..50 {
        let port = TcpListener::bind((ips[0], 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| PgError::io(format!("binding {}:0", ips[0]), e))?
            .port();
        if ips[1..].iter().all(|ip| port_free(*ip, port)) {
            return Ok(port);
        }
    }
    Err(PgError::NoPort(ips.to_vec()))
}
