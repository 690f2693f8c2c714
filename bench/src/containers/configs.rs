//! The config files the stack mounts into containers (its ConfigMaps): the manifests' own where
//! they run as they are, rewritten where Docker differs from a cluster, and written here where
//! the cluster has none (HAProxy as an HTTP proxy, Prometheus without Kubernetes discovery).

use std::path::{Path, PathBuf};

use anyhow::Context;
use testkit::names::{
    cluster_fqdn, BACKEND_PORT, BACKEND_SERVICE, HAPROXY_STATS_PORT, PGBALANCER_ADMIN_PORT,
    PGBALANCER_SERVICE, PROXY_ADMIN_PORT, PROXY_SERVICE,
};

use super::manifest::Manifests;

/// Docker's embedded DNS: what `kube-dns` is to a pod.
pub const DOCKER_DNS: &str = "127.0.0.11";

/// The port HAProxy listens on for HTTP in the `haproxy` stack (the cluster runs none).
pub const HAPROXY_HTTP_PORT: u16 = 8080;

/// The config files of one run, in its work directory.
pub struct Configs {
    pub nginx_original: PathBuf,
    pub nginx_resolver: PathBuf,
    pub haproxy_tcp: PathBuf,
    pub haproxy_http: PathBuf,
    pub prometheus: PathBuf,
}

impl Configs {
    pub fn write(manifests: &Manifests, work: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = manifests.config(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = work.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        // The cluster's resolver is kube-dns by name; here it is Docker's DNS.
        let resolver = read("nginx.conf")?;
        anyhow::ensure!(
            resolver.contains("kube-dns.kube-system.svc.cluster.local"),
            "nginx.conf no longer names kube-dns as its resolver: update the containers stack"
        );
        let resolver = resolver.replace("kube-dns.kube-system.svc.cluster.local", DOCKER_DNS);
        Ok(Self {
            nginx_original: write("nginx-original.conf", &read("nginx-original.conf")?)?,
            nginx_resolver: write("nginx-resolver.conf", &resolver)?,
            // parse-resolv-conf finds Docker's DNS in the container's resolv.conf, as it finds
            // kube-dns in a pod's: the cluster's file runs as it is.
            haproxy_tcp: write("haproxy-tcp.cfg", &read("haproxy.cfg")?)?,
            haproxy_http: write("haproxy-http.cfg", &haproxy_http())?,
            prometheus: write("prometheus.yml", &prometheus())?,
        })
    }
}

/// HAProxy as an HTTP proxy over the headless Service, tuned as the loopback lab tunes it
/// (`bench/src/fronts.rs`): DNS and checks every second, redispatch on failure.
fn haproxy_http() -> String {
    let backend = cluster_fqdn(BACKEND_SERVICE);
    format!(
        "global\n  maxconn 4000\n\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  \
option redispatch\n  retries 3\n\nresolvers docker\n  parse-resolv-conf\n  hold valid 1s\n  timeout resolve 1s\n  timeout retry 1s\n  resolve_retries 2\n\n\
frontend web\n  bind :{HAPROXY_HTTP_PORT}\n  default_backend pods\n\nbackend pods\n  balance roundrobin\n  http-response set-header X-Upstream-Addr %si:%sp\n  \
server-template pod 4 {backend}:{BACKEND_PORT} check inter 1s fall 2 rise 1 resolvers docker init-addr none\n\n\
frontend stats\n  bind :{HAPROXY_STATS_PORT}\n  stats enable\n  stats uri /\n"
    )
}

/// Prometheus scraping what the cluster's annotations name (the proxy, pgbalancer, every backend
/// pod), through DNS instead of Kubernetes discovery.
fn prometheus() -> String {
    let proxy = cluster_fqdn(PROXY_SERVICE);
    let pgbalancer = cluster_fqdn(PGBALANCER_SERVICE);
    let backend = cluster_fqdn(BACKEND_SERVICE);
    format!(
        "# Written by the lab's containers stack (bench/src/containers/configs.rs).\n\
global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n\
scrape_configs:\n  \
- job_name: proxy\n    static_configs: [{{targets: ['{proxy}:{PROXY_ADMIN_PORT}'], labels: {{app: proxy}}}}]\n  \
- job_name: pgbalancer\n    static_configs: [{{targets: ['{pgbalancer}:{PGBALANCER_ADMIN_PORT}'], labels: {{app: pgbalancer}}}}]\n  \
- job_name: backend\n    dns_sd_configs: [{{names: ['{backend}'], type: A, port: {BACKEND_PORT}, refresh_interval: 2s}}]\n    \
relabel_configs: [{{target_label: app, replacement: backend}}]\n"
    )
}
