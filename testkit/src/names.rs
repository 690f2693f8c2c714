//! Names the Kubernetes lab (`k8s/`) and the local lab (`bench/`) share: namespace, Services,
//! ports, database roles and the replicas' `cluster_name`s. `k8s/manifests` spells them in YAML;
//! `testkit/tests/k8s_manifests.rs` renders the manifests and fails when the two drift apart.

/// Namespace every object of the lab lives in.
pub const NAMESPACE: &str = "highload-dns";

/// Headless Service of the backend pods: its A records are the ready pods' IPs.
pub const BACKEND_SERVICE: &str = "backend-headless";
/// Port the backend listens on and `backend-headless` exposes.
pub const BACKEND_PORT: u16 = 8000;

/// Service of the Postgres primary (the replicas clone and stream from it).
pub const POSTGRES_PRIMARY_SERVICE: &str = "postgres-primary";
/// Headless Service of the streaming replicas: one A record per ready replica.
pub const POSTGRES_REPLICAS_SERVICE: &str = "postgres-replicas";
/// Port of every Postgres server and of the balancers in front of them.
pub const POSTGRES_PORT: u16 = 5432;
/// `cluster_name` of the replicas, in the order they are handed out; the backend reports it as
/// `"db"` and the scripts print it as `db=`. HAProxy's `server-template pg` names match.
pub const REPLICA_CLUSTER_NAMES: [&str; 2] = ["pg1", "pg2"];

/// Database the backend reads, with the `users` table from `backend/schema.sql`.
pub const DATABASE: &str = "app";
/// Role the backend logs in as.
pub const APP_USER: &str = "app";
/// Role pgbalancer's health checks log in as.
pub const CHECK_USER: &str = "pgcheck";
/// Role the replicas stream with.
pub const REPLICATION_USER: &str = "replicator";

/// The proxy's Service; port 80 forwards to the proxy's listener.
pub const PROXY_SERVICE: &str = "proxy";
/// Port the proxy's Service exposes (what nginx's Service exposed in the original lab).
pub const PROXY_SERVICE_PORT: u16 = 80;
/// Port the proxy listens on inside its pod.
pub const PROXY_PORT: u16 = 8080;
/// The proxy's admin listener: `/metrics`, `/healthz`, `/status`.
pub const PROXY_ADMIN_PORT: u16 = 9091;

/// pgbalancer's Service; the backend's `DATABASE_URL` points here.
pub const PGBALANCER_SERVICE: &str = "pgbalancer";
/// pgbalancer's admin listener: `/metrics`, `/healthz`, `/status` and the HTML stats page `/`.
pub const PGBALANCER_ADMIN_PORT: u16 = 9187;
/// Environment variable pgbalancer reads the check user's password from (`--check-password-env`).
pub const CHECK_PASSWORD_ENV: &str = "PGBALANCER_CHECK_PASSWORD";

/// nginx, kept beside the proxy for the head-to-head, on its own Service, port 80.
pub const NGINX_SERVICE: &str = "nginx";
/// HAProxy, kept beside pgbalancer for the head-to-head, on its own Service.
pub const HAPROXY_SERVICE: &str = "haproxy";
/// HAProxy's stats page.
pub const HAPROXY_STATS_PORT: u16 = 8404;

/// The name a pod resolves for `service` in the lab's namespace:
/// `backend-headless.highload-dns.svc.cluster.local`.
pub fn cluster_fqdn(service: &str) -> String {
    format!("{service}.{NAMESPACE}.svc.cluster.local")
}
