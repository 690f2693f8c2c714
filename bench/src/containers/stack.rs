//! The lab's stack in containers, from the images users deploy and the pod templates of
//! `k8s/manifests`: a Postgres primary, two streaming replicas (in `postgres-replicas`), pgbalancer
//! and HAProxy in front of them, backend pods (in `backend-headless`) and Prometheus, on a network
//! of the run's own whose DNS answers Services as a cluster's does. Each proxy under test runs in
//! turn in front of the backends; the load reaches it through a port published on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use testkit::names::{
    cluster_fqdn, BACKEND_PORT, BACKEND_SERVICE, HAPROXY_SERVICE, PGBALANCER_SERVICE,
    POSTGRES_PRIMARY_SERVICE, POSTGRES_REPLICAS_SERVICE, PROXY_SERVICE,
};
use tokio::task::JoinHandle;

use super::configs::{Configs, HAPROXY_HTTP_PORT};
use super::docker::{Engine, RunSpec, Subnet};
use super::endpoints::Endpoints;
use super::manifest::{Manifests, Template};
use super::pod::{Env, Pod, Role};
use crate::cluster::Readiness;
use crate::opts::{Db, Front};
use crate::scenario::Pods;

/// How long a pod may take to become ready (a replica clones the primary first).
const READY_LIMIT: Duration = Duration::from_secs(90);

/// Where the images come from: `REGISTRY/hl/NAME:TAG`, as `k8s/images/build_and_push.sh` tags them.
#[derive(Debug, Clone)]
pub struct Images {
    pub registry: String,
    pub tag: String,
}

impl Images {
    pub fn of(&self, name: &str) -> String {
        format!("{}/hl/{name}:{}", self.registry, self.tag)
    }

    /// The image a template names, with this registry and tag.
    fn for_template(&self, t: &Template) -> String {
        let base = t.image.rsplit('/').next().unwrap_or(&t.image);
        self.of(base.split(':').next().unwrap_or(base))
    }

    /// Every image the stack runs.
    pub fn all(&self) -> Vec<String> {
        [
            "postgres-primary",
            "postgres-replica",
            "pgbalancer",
            "haproxy",
            "backend",
            "proxy",
            "nginx",
            "prometheus",
        ]
        .map(|n| self.of(n))
        .to_vec()
    }
}

pub struct Stack {
    env: Env,
    pub subnet: Subnet,
    manifests: Manifests,
    images: Images,
    pub configs: Configs,
    pub ready: Arc<Readiness>,
    next_host: u8,
    next_pod: u32,
    primary: Option<Pod>,
    /// Replicas with the `cluster_name` each claimed.
    replicas: Vec<(String, Pod)>,
    backends: Vec<Pod>,
    balancers: Vec<Pod>,
    pub prometheus: Option<(Pod, SocketAddr)>,
    db: Db,
    /// Deleted pods still terminating, by the name they went by.
    terminating: Vec<(String, JoinHandle<()>)>,
    _work: tempfile::TempDir,
}

impl Stack {
    pub async fn start(
        engine: Arc<Engine>,
        manifests: Manifests,
        images: Images,
    ) -> anyhow::Result<Self> {
        let mut missing = Vec::new();
        for image in images.all() {
            if engine.image_id(&image).await.is_none() {
                missing.push(image);
            }
        }
        if !missing.is_empty() {
            bail!(
                "images missing: {} (build them: k8s/images/build_and_push.sh --no-push)",
                missing.join(", ")
            );
        }
        let network = format!("hl-lab-{}", std::process::id());
        let subnet = engine.create_network(&network).await?;
        println!("containers: network {network} ({})", subnet.cidr());
        let work = tempfile::Builder::new()
            .prefix("lab-containers-")
            .tempdir()?;
        let configs = Configs::write(&manifests, work.path())?;
        let endpoints = Arc::new(Endpoints::start(subnet.gateway()).await?);
        let tombstone = silencer(&engine).await;
        let mut stack = Self {
            env: Env {
                engine,
                network,
                endpoints,
                ready: Arc::default(),
                tombstone,
            },
            subnet,
            manifests,
            images,
            configs,
            ready: Arc::default(),
            next_host: 10,
            next_pod: 1,
            primary: None,
            replicas: Vec::new(),
            backends: Vec::new(),
            balancers: Vec::new(),
            prometheus: None,
            db: Db::Pgbalancer,
            terminating: Vec::new(),
            _work: work,
        };
        stack.ready = Arc::clone(&stack.env.ready);

        println!("containers: postgres-primary");
        let t = stack.manifests.template("postgres-primary")?;
        let cidr = stack.subnet.cidr();
        let mut primary = stack
            .pod(
                t,
                "postgres-primary-0",
                &[POSTGRES_PRIMARY_SERVICE],
                Role::Other,
                |spec| {
                    // The pod CIDR the primary's pg_hba admits: this network's.
                    spec.env.push(("POD_CIDR".into(), cidr));
                },
            )
            .await?;
        primary.wait_in_services(READY_LIMIT).await?;
        stack.primary = Some(primary);
        for _ in 0..2 {
            stack.add_replica().await?;
        }
        for (workload, service) in [
            ("pgbalancer", PGBALANCER_SERVICE),
            ("haproxy", HAPROXY_SERVICE),
        ] {
            println!("containers: {workload}");
            let t = stack.manifests.template(workload)?;
            let config = stack.configs.haproxy_tcp.clone();
            let mut pod = stack
                .pod(
                    t,
                    &format!("{workload}-0"),
                    &[service],
                    Role::Other,
                    |spec| {
                        if workload == "haproxy" {
                            spec.mounts
                                .push((config, "/usr/local/etc/haproxy/haproxy.cfg".into()));
                        }
                    },
                )
                .await?;
            pod.wait_in_services(READY_LIMIT).await?;
            stack.balancers.push(pod);
        }
        println!("containers: prometheus");
        let t = stack.manifests.template("prometheus")?;
        let config = stack.configs.prometheus.clone();
        let port = t.port("http")?;
        let mut pod = stack
            .pod(t, "prometheus-0", &["prometheus"], Role::Other, |spec| {
                spec.mounts
                    .push((config, "/etc/prometheus/prometheus.yml".into()));
                spec.publish.push(port);
            })
            .await?;
        pod.wait_in_services(READY_LIMIT).await?;
        let addr = stack.env.engine.published(&pod.container, port).await?;
        stack.prometheus = Some((pod, addr));
        Ok(stack)
    }

    /// A new pod of `template` on the next address; `adjust` changes how its container runs.
    async fn pod(
        &mut self,
        template: Template,
        name: &str,
        services: &[&str],
        role: Role,
        adjust: impl FnOnce(&mut RunSpec),
    ) -> anyhow::Result<Pod> {
        let user = self.user(&template).await?;
        let host = self.next_host;
        self.next_host = host
            .checked_add(1)
            .filter(|h| *h < 255)
            .context("out of pod addresses")?;
        let mut spec = RunSpec {
            name: format!("{}-{name}", self.env.network),
            hostname: name.to_owned(),
            image: self.images.for_template(&template),
            ip: Some(self.subnet.host(host)),
            aliases: vec![name.to_owned()],
            env: template.env(name)?,
            args: template.args.clone(),
            memory: template.memory_limit,
            dns: Some(self.env.endpoints.ip()),
            user,
            read_only: template.security.read_only_root,
            no_new_privileges: template.security.no_new_privileges,
            cap_drop: template.security.cap_drop.clone(),
            cap_add: template.security.cap_add.clone(),
            volumes: template
                .scratch
                .iter()
                .chain(&template.persistent)
                .cloned()
                .collect(),
            ..RunSpec::default()
        };
        adjust(&mut spec);
        let services = services.iter().map(|s| cluster_fqdn(s)).collect();
        Pod::start(&self.env, template, spec, services, role).await
    }

    /// The user a template's container runs as, and the kubelet's runAsNonRoot check: a pod that
    /// must not run as root does not start when the user it would get is root, or a name the
    /// kubelet cannot check.
    async fn user(&self, template: &Template) -> anyhow::Result<Option<String>> {
        let s = &template.security;
        let image = self.images.for_template(template);
        let image_user = self
            .env
            .engine
            .docker(&["image", "inspect", "--format", "{{.Config.User}}", &image])
            .await?;
        if s.run_as_non_root {
            let uid = match s.run_as_user {
                Some(uid) => Some(uid),
                None => image_user
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .parse::<u32>()
                    .ok(),
            };
            match uid {
                Some(0) => bail!("{}: runAsNonRoot, but {image} would run as root", template.workload),
                None => bail!(
                    "{}: runAsNonRoot, but {image} has a non-numeric user ({image_user:?}) and no runAsUser is set",
                    template.workload
                ),
                Some(_) => {}
            }
        }
        Ok(s.run_as_user.map(|uid| match s.run_as_group {
            Some(gid) => format!("{uid}:{gid}"),
            None => uid.to_string(),
        }))
    }

    fn next_name(&mut self, workload: &str) -> String {
        let n = self.next_pod;
        self.next_pod += 1;
        format!("{workload}-{n}")
    }

    async fn add_replica(&mut self) -> anyhow::Result<String> {
        let name = self.next_name("postgres-replicas");
        let t = self.manifests.template("postgres-replicas")?;
        let mut pod = self
            .pod(
                t,
                &name,
                &[POSTGRES_REPLICAS_SERVICE],
                Role::Replica,
                |_| {},
            )
            .await?;
        pod.wait_in_services(READY_LIMIT).await?;
        let (ok, out) = self
            .env
            .engine
            .exec(
                &pod.container,
                &[],
                &[
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-qAtX",
                    "-c",
                    "SHOW cluster_name",
                ]
                .map(str::to_owned),
            )
            .await?;
        if !ok {
            bail!("asking replica {name} for its cluster_name: {out}");
        }
        let cluster_name = out.trim().to_owned();
        println!("containers: replica {name} is {cluster_name} at {}", pod.ip);
        self.replicas.push((cluster_name.clone(), pod));
        Ok(cluster_name)
    }

    /// The backend pods' `DATABASE_URL` for `db`: the manifest's (pgbalancer), or HAProxy's
    /// Service in its place.
    fn database_url(&self, template: &Template, pod: &str) -> anyhow::Result<String> {
        let env = template.env(pod)?;
        let url = env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.clone())
            .context("the backend's manifest sets no DATABASE_URL")?;
        let pgbalancer = cluster_fqdn(PGBALANCER_SERVICE);
        anyhow::ensure!(
            url.contains(&pgbalancer),
            "the backend's DATABASE_URL does not name {pgbalancer}: {url}"
        );
        Ok(match self.db {
            Db::Pgbalancer => url,
            Db::HaproxyTcp => url.replace(&pgbalancer, &cluster_fqdn(HAPROXY_SERVICE)),
        })
    }

    /// Back to the baseline for a new run: no backend, both replicas in DNS, the backends of the
    /// next run talking to `db`, then two fresh backend pods.
    pub async fn reset(&mut self, db: Db) -> anyhow::Result<()> {
        for pod in std::mem::take(&mut self.backends) {
            pod.kill().await;
        }
        self.settle().await;
        while self.replicas.len() < 2 {
            self.add_replica().await?;
        }
        self.db = db;
        for _ in 0..2 {
            Pods::add_backend(self).await?;
        }
        Ok(())
    }

    /// Waits for every deleted pod to be gone.
    pub async fn settle(&mut self) {
        for (_, task) in self.terminating.drain(..) {
            let _ = task.await;
        }
    }

    /// Starts `front` as a pod; returns it and where the load reaches it on 127.0.0.1.
    pub async fn start_front(&mut self, front: Front) -> anyhow::Result<(Pod, SocketAddr)> {
        let (workload, config, port) = match front {
            Front::Ours => ("proxy", None, None),
            Front::Nginx => (
                "nginx",
                Some((
                    self.configs.nginx_original.clone(),
                    "/etc/nginx/conf.d/default.conf",
                )),
                None,
            ),
            Front::NginxResolver => (
                "nginx",
                Some((
                    self.configs.nginx_resolver.clone(),
                    "/etc/nginx/conf.d/default.conf",
                )),
                None,
            ),
            Front::Haproxy => (
                "haproxy",
                Some((
                    self.configs.haproxy_http.clone(),
                    "/usr/local/etc/haproxy/haproxy.cfg",
                )),
                Some(HAPROXY_HTTP_PORT),
            ),
        };
        let t = self.manifests.template(workload)?;
        let port = match port {
            Some(p) => p,
            None => t.port("http")?,
        };
        let name = format!("{}-front", front.name());
        let services: &[&str] = if front == Front::Ours {
            &[PROXY_SERVICE]
        } else {
            &[]
        };
        let mut pod = self
            .pod(t, &name, services, Role::Other, |spec| {
                if let Some((path, at)) = config {
                    spec.mounts.push((path, at.into()));
                }
                spec.publish.push(port);
            })
            .await?;
        pod.wait_in_services(READY_LIMIT).await?;
        let addr = self.env.engine.published(&pod.container, port).await?;
        // As a user would before starting the load: one request answered through it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while crate::process::http_get(addr, "/users")
            .await
            .is_none_or(|(s, _)| s != 200)
        {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} answers no GET /users with 200 on {addr} after 30 s; its last lines:\n{}",
                    front.name(),
                    self.env.engine.logs(&pod.container, 30).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok((pod, addr))
    }

    /// How a deleted pod's address behaves, for the results.
    pub fn blackhole(&self) -> &'static str {
        if self.env.tombstone.is_some() {
            "held by a container that drops every packet: connections hang, as in a cluster"
        } else {
            "free once the container is gone: connections fail at once (not root here)"
        }
    }

    /// Docker engine of the stack, for the results.
    pub fn engine(&self) -> &Engine {
        &self.env.engine
    }

    /// Removes every pod now; the engine removes the network when dropped.
    pub async fn stop(mut self) {
        self.settle().await;
        let pods = self
            .backends
            .drain(..)
            .chain(self.replicas.drain(..).map(|(_, p)| p))
            .chain(self.balancers.drain(..))
            .chain(self.prometheus.take().map(|(p, _)| p))
            .chain(self.primary.take())
            .collect::<Vec<_>>();
        for pod in pods {
            pod.kill().await;
        }
    }
}

/// The image a deleted pod's address is held silent with, if this host can do that (root, with
/// nsenter and iptables).
async fn silencer(engine: &Engine) -> Option<String> {
    const IMAGE: &str = "debian:bookworm-slim";
    let able = testkit::netfilter::is_root()
        && crate::bins::installed("nsenter")
        && crate::bins::installed("iptables")
        && engine.image_id(IMAGE).await.is_some();
    if able {
        println!("containers: a deleted pod's address goes silent (SYNs dropped), as in a cluster");
        Some(IMAGE.to_owned())
    } else {
        println!("containers: not root (or no nsenter, iptables, {IMAGE}): a deleted pod's address refuses at once instead of going silent");
        None
    }
}

impl Pods for Stack {
    async fn delete_replica(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self
            .replicas
            .iter()
            .position(|(n, _)| n == name)
            .with_context(|| format!("no replica {name} to delete"))?;
        let (name, pod) = self.replicas.remove(i);
        println!("containers: deleting replica {name} ({})", pod.name);
        let task = pod.delete().await;
        self.terminating.push((name, task));
        Ok(())
    }

    async fn restore_replica(&mut self, name: &str) -> anyhow::Result<()> {
        // The new pod claims the lowest free name: the deleted one must have given it back.
        if let Some(i) = self.terminating.iter().position(|(n, _)| n == name) {
            let (_, task) = self.terminating.remove(i);
            let _ = task.await;
        }
        let claimed = self.add_replica().await?;
        if claimed != name {
            println!("containers: the new replica claimed {claimed}, not {name}");
        }
        Ok(())
    }

    async fn delete_backend(&mut self) -> anyhow::Result<SocketAddr> {
        if self.backends.is_empty() {
            bail!("no backend pod to delete");
        }
        let pod = self.backends.remove(0);
        let addr = pod.addr(BACKEND_PORT);
        println!("containers: deleting backend {} ({addr})", pod.name);
        let name = pod.name.clone();
        let task = pod.delete().await;
        self.terminating.push((name, task));
        Ok(addr)
    }

    async fn add_backend(&mut self) -> anyhow::Result<SocketAddr> {
        let name = self.next_name("backend");
        let t = self.manifests.template("backend")?;
        let url = self.database_url(&t, &name)?;
        let mut pod = self
            .pod(t, &name, &[BACKEND_SERVICE], Role::Backend, |spec| {
                spec.env.retain(|(k, _)| k != "DATABASE_URL");
                spec.env.push(("DATABASE_URL".into(), url));
            })
            .await?;
        pod.wait_in_services(READY_LIMIT).await?;
        let addr = pod.addr(BACKEND_PORT);
        println!("containers: backend {name} at {addr}");
        self.backends.push(pod);
        Ok(addr)
    }
}
