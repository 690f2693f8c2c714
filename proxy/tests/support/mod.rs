//! Real parts for the proxy's integration tests: pods (HTTP servers on their own loopback IPs, one
//! shared port, like the pods of one Service), the proxy binary itself, and a steady request load.
#![allow(dead_code)]

pub mod browser;
mod lab;
mod load;
mod pod;
mod proxy;
mod recorder;

#[allow(unused_imports)]
pub use lab::{served_by, warm_up, Lab};
#[allow(unused_imports)]
pub use load::{assert_no_failures, failures, Load, Outcome, Sample};
#[allow(unused_imports)]
pub use pod::Pod;
#[allow(unused_imports)]
pub use proxy::{AccessLines, ProxyProcess};
#[allow(unused_imports)]
pub use recorder::Recorder;

use std::net::Ipv4Addr;

pub const NAME: &str = "backend-headless.highload-dns.svc.cluster.local";
pub const POD_PORT: u16 = 8000;

/// Loopback address `127.<net>.<host>`.`: each test uses its own `net` so tests run in parallel.
pub fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host)
}

/// `GET <path>` with `Host: lab.local` on a connection of its own; the whole response as text.
pub async fn get(proxy: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: lab.local\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
