//! The HTTP servers a benchmark compares, all on one loopback block `127.0.<block>.x`: the origin
//! (nginx serving a small JSON and a 64 KiB file, the same for everyone), and in front of it nginx,
//! HAProxy, our proxy and optionally an older build of ours, each with the same thread count,
//! generous connection limits and idle timeouts, and no access log.
//!
//! The origin is nginx because it is the fastest small server at hand whose cost does not depend
//! on our code: `direct` (wrk straight at it) is the ceiling every proxy is measured under.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::client;
use super::opts::Common;
use crate::bins::installed;
use crate::fronts::{spawn_haproxy, spawn_nginx, Nginx};
use crate::process::{wait_listening, Process};

/// The small body: the demo backend's answer, 37 bytes.
pub const SMALL_JSON: &str = r#"{"users":3,"pod":"origin","db":"pg1"}"#;
/// Idle keep-alive connections stay open this long everywhere (nginx closes at 75 s by default,
/// our proxy at its header timeout, 10 s).
const IDLE: &str = "300s";

/// A server under test and the process whose tree is measured.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub process: Process,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.process.pid().unwrap_or(0)
    }
}

/// The origin and the proxies in front of it.
pub struct Fleet {
    pub origin: Server,
    pub proxies: Vec<Server>,
    /// Contestants that could not run here, with why.
    pub skipped: Vec<(String, String)>,
}

/// Which block, how many threads, how many client connections each proxy must take.
pub struct Plan<'a> {
    pub block: u8,
    pub common: &'a Common,
    pub max_conns: usize,
    pub work: &'a Path,
}

impl Plan<'_> {
    fn addr(&self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, 0, self.block, host), port))
    }
}

pub async fn start(plan: &Plan<'_>) -> anyhow::Result<Fleet> {
    if !installed("nginx") {
        bail!("nginx is not installed (the origin and a contestant): apt-get install nginx-light, or scripts/setup.sh");
    }
    let threads = plan.common.threads;
    let ours_bin = crate::bins::binary(plan.common.bin_dir.as_deref(), "proxy")?;
    let origin = origin(plan).await?;
    let upstream = origin.addr;
    let mut proxies = Vec::new();
    let mut skipped = Vec::new();

    let addr = plan.addr(2, 8080);
    let http = nginx_proxy_http(addr, upstream);
    let size = Nginx {
        workers: threads,
        worker_connections: plan.max_conns + 2048,
    };
    let process = spawn_nginx("nginx", &size, &http, plan.work)?;
    proxies.push(ready("nginx", addr, process).await?);

    let addr = plan.addr(3, 8080);
    if installed("haproxy") {
        let config = haproxy_http(addr, upstream, threads, plan.max_conns);
        let process = spawn_haproxy("haproxy", &config, plan.work)?;
        proxies.push(ready("haproxy", addr, process).await?);
    } else {
        skipped.push((
            "haproxy".into(),
            "not installed: apt-get install haproxy, or scripts/setup.sh".into(),
        ));
    }

    let mut ours = vec![("ours", ours_bin, 4)];
    if let Some(path) = &plan.common.binary_baseline {
        ours.push(("baseline", path.clone(), 5));
    }
    for (name, binary, host) in ours {
        let addr = plan.addr(host, 8080);
        let process = spawn_ours(name, &binary, addr, plan.addr(host, 9091), upstream, plan)?;
        proxies.push(ready(name, addr, process).await?);
    }
    Ok(Fleet {
        origin,
        proxies,
        skipped,
    })
}

/// nginx as the proxy in front of `upstream`: a keep-alive upstream pool, buffers that hold 64 KiB
/// in memory, `X-Upstream-Addr` added, no access log.
pub(crate) fn nginx_proxy_http(addr: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        "keepalive_timeout {IDLE};\n  keepalive_requests 1000000;\n  \
upstream origin {{ server {upstream}; keepalive 1024; keepalive_requests 1000000; keepalive_timeout {IDLE}; }}\n  \
server {{ listen {addr} backlog=4096; location / {{ proxy_pass http://origin; proxy_http_version 1.1; \
proxy_set_header Connection \"\"; proxy_buffer_size 16k; proxy_buffers 8 16k; proxy_max_temp_file_size 0; \
add_header X-Upstream-Addr $upstream_addr; }} }}"
    )
}

/// nginx answering `/small` from memory and `/64k` from a file (sendfile).
pub(crate) async fn origin(plan: &Plan<'_>) -> anyhow::Result<Server> {
    let www = plan.work.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("64k"), vec![b'x'; 64 * 1024]).context("writing the 64 KiB body")?;
    let addr = plan.addr(1, 8000);
    let http = format!(
        "keepalive_timeout {IDLE};\n  keepalive_requests 1000000;\n  sendfile on;\n  tcp_nopush on;\n  \
open_file_cache max=16;\n  server {{ listen {addr} backlog=4096; \
location = /small {{ default_type application/json; return 200 '{SMALL_JSON}'; }} \
location = /64k {{ root {}; default_type application/octet-stream; }} }}",
        www.display()
    );
    let size = Nginx {
        workers: plan.common.threads,
        worker_connections: 8192,
    };
    let process = spawn_nginx("origin", &size, &http, plan.work)?;
    ready("direct", addr, process).await
}

/// `no strict-limits`: HAProxy reserves two descriptors per `maxconn` and refuses to start if it
/// cannot raise its limit that far; an idle client connection holds one, so where the hard limit
/// is below 2 × 10k it still has room.
fn haproxy_http(listen: SocketAddr, origin: SocketAddr, threads: usize, maxconn: usize) -> String {
    let maxconn = maxconn + 1024;
    format!(
        "global\n  nbthread {threads}\n  maxconn {maxconn}\n  no strict-limits\n\ndefaults\n  mode http\n  timeout connect 5s\n  \
timeout client {IDLE}\n  timeout server 30s\n  timeout http-keep-alive {IDLE}\n  timeout http-request {IDLE}\n\n\
frontend web\n  bind {listen}\n  maxconn {maxconn}\n  default_backend origin\n\n\
backend origin\n  http-response set-header X-Upstream-Addr %si:%sp\n  server origin {origin}\n"
    )
}

fn spawn_ours(
    name: &str,
    binary: &Path,
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    plan: &Plan<'_>,
) -> anyhow::Result<Process> {
    let args = ours_args(listen, admin, upstream, plan);
    let env = [
        ("RUST_LOG", "warn".to_owned()),
        ("PROXY_ACCESS_LOG", "off".to_owned()),
    ];
    Process::spawn(name, binary, &args, &env, plan.work)
}

/// The flags every run of our proxy gets here.
pub(crate) fn ours_args(
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    plan: &Plan<'_>,
) -> Vec<String> {
    vec![
        "--listen".to_owned(),
        listen.to_string(),
        "--admin".to_owned(),
        admin.to_string(),
        "--upstream".to_owned(),
        upstream.to_string(),
        "--threads".to_owned(),
        plan.common.threads.to_string(),
        "--max-connections".to_owned(),
        (plan.max_conns + 1024).to_string(),
        // Its header timeout also ends idle keep-alive connections.
        "--header-timeout".to_owned(),
        IDLE.to_owned(),
    ]
}

/// Waits until `addr` listens and answers `GET /small`.
async fn ready(name: &str, addr: SocketAddr, mut process: Process) -> anyhow::Result<Server> {
    let limit = Duration::from_secs(15);
    wait_listening(&mut process, addr, limit).await?;
    client::wait_answering(addr, "/small", limit)
        .await
        .with_context(|| format!("{name} does not answer"))?;
    Ok(Server {
        name: name.to_owned(),
        addr,
        process,
    })
}
