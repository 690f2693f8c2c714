//! The HTTP proxies under test, started in front of the cluster: ours, nginx configured as in the
//! original lab (upstream resolved once, at start), nginx with the `resolver` + variable
//! workaround, and HAProxy with `server-template` + `resolvers` + health checks + redispatch.
//! [`spawn_nginx`] and [`spawn_haproxy`] start either with a config of the caller's (the
//! benchmarks use them too).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::bins::installed;
use crate::cluster::Cluster;
use crate::opts::Front;
use crate::process::{wait_listening, Process};

/// Our proxy's admin listener in the lab.
pub const OURS_ADMIN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(127, 0, 100, 1),
    9091,
));

/// Writes our proxy's config file (one group over the pods of the headless Service `fqdn`) and
/// returns its path. The soak rewrites it with another Service and sends SIGHUP.
pub fn write_ours_config(work: &Path, fqdn: &str) -> anyhow::Result<PathBuf> {
    let path = work.join("proxy.yaml");
    let yaml = format!(
        "# Written by the lab.\ngroups:\n  - name: backend\n    upstream: {fqdn}:{}\n",
        testkit::names::BACKEND_PORT
    );
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Why `front` cannot run here, with how to fix it.
pub fn missing(front: Front) -> Option<String> {
    let needs = |program: &str, package: &str| {
        (!installed(program)).then(|| {
            format!("{program} is not installed: apt-get install {package} (or scripts/setup.sh --demo)")
        })
    };
    match front {
        Front::Ours => None,
        Front::Nginx | Front::NginxResolver => {
            needs("nginx", "nginx-light").or_else(|| needs("haproxy", "haproxy"))
        }
        Front::Haproxy => needs("haproxy", "haproxy"),
    }
}

pub async fn start(front: Front, cluster: &Cluster) -> anyhow::Result<(Process, SocketAddr)> {
    let work = &cluster.work;
    let backend = Cluster::backend_fqdn();
    let port = testkit::names::BACKEND_PORT;
    let dns = cluster.dns_addr();
    let (mut process, addr) = match front {
        Front::Ours => {
            let addr: SocketAddr = "127.0.100.1:8080".parse().expect("valid");
            let config = write_ours_config(work, &backend)?;
            let args = [
                "--config",
                &config.display().to_string(),
                "--listen",
                &addr.to_string(),
                "--admin",
                &OURS_ADMIN.to_string(),
                "--resolver",
                &dns.to_string(),
            ]
            .map(str::to_owned);
            // As nginx and HAProxy here (`access_log off`, no `option httplog`): no access log.
            let env = [
                ("RUST_LOG", "warn".to_owned()),
                ("PROXY_ACCESS_LOG", "off".to_owned()),
            ];
            (
                Process::spawn("proxy", &cluster.bins.proxy, &args, &env, work)?,
                addr,
            )
        }
        Front::Nginx => {
            let addr: SocketAddr = "127.0.100.2:8080".parse().expect("valid");
            // Resolved once, as nginx does with a plain upstream: the IPs of the pods now.
            let servers: String = cluster
                .backends()
                .iter()
                .map(|b| format!("server {};", b.addr()))
                .collect::<Vec<_>>()
                .join(" ");
            let http = format!(
                "upstream backend {{ {servers} }}\n  server {{ listen {addr}; location / {{ proxy_pass http://backend; add_header X-Upstream-Addr $upstream_addr always; }} }}"
            );
            (nginx("nginx", &http, work)?, addr)
        }
        Front::NginxResolver => {
            let addr: SocketAddr = "127.0.100.3:8080".parse().expect("valid");
            let http = format!(
                "resolver {dns} valid=1s ipv6=off;\n  server {{ listen {addr}; location / {{ set $backend \"{backend}\"; proxy_pass http://$backend:{port}; add_header X-Upstream-Addr $upstream_addr always; }} }}"
            );
            (nginx("nginx-resolver", &http, work)?, addr)
        }
        Front::Haproxy => {
            let addr: SocketAddr = "127.0.100.4:8080".parse().expect("valid");
            let config = haproxy_http(addr, &backend, port, dns);
            (spawn_haproxy("haproxy-http", &config, work)?, addr)
        }
    };
    wait_listening(&mut process, addr, Duration::from_secs(15)).await?;
    Ok((process, addr))
}

/// nginx in the foreground, one process (`master_process off`: a killed master leaves no worker).
fn nginx(name: &str, http: &str, work: &Path) -> anyhow::Result<Process> {
    spawn_nginx(name, &Nginx::default(), http, work)
}

/// How an nginx is sized: workers and connections per worker.
#[derive(Debug, Clone, Copy)]
pub struct Nginx {
    pub workers: usize,
    pub worker_connections: usize,
}

impl Default for Nginx {
    fn default() -> Self {
        Self {
            workers: 1,
            worker_connections: 4096,
        }
    }
}

/// nginx in the foreground with `http` as its http block, config and logs in `work/<name>/`. One
/// worker runs without a master (`master_process off`); more need one, and dropping the
/// [`Process`] kills its workers too.
pub fn spawn_nginx(name: &str, size: &Nginx, http: &str, work: &Path) -> anyhow::Result<Process> {
    let args = nginx_args(name, size, http, work)?;
    Process::spawn(name, Path::new("nginx"), &args, &[], work)
}

/// Writes [`spawn_nginx`]'s config to `work/<name>/nginx.conf`; the arguments that run it.
pub fn nginx_args(
    name: &str,
    size: &Nginx,
    http: &str,
    work: &Path,
) -> anyhow::Result<Vec<String>> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let d = dir.display();
    let master = if size.workers > 1 { "on" } else { "off" };
    let (workers, conns) = (size.workers, size.worker_connections);
    let config = format!(
        "daemon off;\nmaster_process {master};\nworker_processes {workers};\nworker_rlimit_nofile {};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
events {{ worker_connections {conns}; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  {http}\n}}\n",
        // Two descriptors per connection (client and upstream), within what nginx may raise to.
        (conns as u64 * 2).min(crate::process::nofile_limit().max(1024))
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config)?;
    Ok(vec![
        "-c".to_owned(),
        path.display().to_string(),
        "-e".to_owned(),
        format!("{d}/error.log"),
    ])
}

/// HAProxy in the foreground (`-db`) with `config`, written to `work/<name>.cfg`.
pub fn spawn_haproxy(name: &str, config: &str, work: &Path) -> anyhow::Result<Process> {
    let path = work.join(format!("{name}.cfg"));
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    let args = [
        "-db".to_owned(),
        "-f".to_owned(),
        path.display().to_string(),
    ];
    Process::spawn(name, Path::new("haproxy"), &args, &[], work)
}

/// HAProxy tuned as well as it goes: DNS every second, checks every second, fall 2, connect
/// timeout 5 s, redispatch to another server on failure.
fn haproxy_http(listen: SocketAddr, backend: &str, port: u16, dns: SocketAddr) -> String {
    format!(
        "global\n  maxconn 4000\n\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
option redispatch\n  retries 3\n\nresolvers lab\n  nameserver dns {dns}\n  hold valid 1s\n  timeout resolve 1s\n  timeout retry 1s\n  resolve_retries 2\n\n\
frontend web\n  bind {listen}\n  default_backend pods\n\nbackend pods\n  balance roundrobin\n  http-response set-header X-Upstream-Addr %si:%sp\n  \
server-template pod 4 {backend}:{port} check inter 1s fall 2 rise 1 resolvers lab init-addr none\n"
    )
}
