//! A pod as a container, with what the kubelet and the endpoints controller do around it that
//! Docker does not: the readiness probe runs from outside (this host, as the kubelet does), the
//! pod is in its Services' DNS ([`Endpoints`]) only while it is ready, and a deletion takes it
//! out of its Services and starts its termination (preStop hook, then the image's stop signal,
//! SIGKILL after the grace period) at the same moment. Its address keeps answering until the
//! container is gone, as a terminating pod's does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::docker::{Engine, RunSpec};
use super::endpoints::Endpoints;
use super::manifest::{Probe, ProbeAction, Template};
use crate::cluster::Readiness;

/// Which of the load's readiness counters a pod counts in while it is in its Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Backend,
    Replica,
    Other,
}

/// What a pod needs from the stack around it.
#[derive(Clone)]
pub struct Env {
    pub engine: Arc<Engine>,
    pub network: String,
    pub endpoints: Arc<Endpoints>,
    pub ready: Arc<Readiness>,
    /// The image that holds a deleted pod's address silent, when this host can (root).
    pub tombstone: Option<String>,
}

pub struct Pod {
    pub name: String,
    pub container: String,
    pub ip: Ipv4Addr,
    pub template: Template,
    kubelet: Option<Kubelet>,
    env: Env,
    role: Role,
    services: Vec<String>,
}

struct Kubelet {
    stop: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Pod {
    /// Starts the container (`spec` says how; the template gives probe, hooks and grace) and its
    /// readiness loop. It enters `services` (full DNS names) once ready: see
    /// [`Pod::wait_in_services`].
    pub async fn start(
        env: &Env,
        template: Template,
        spec: RunSpec,
        services: Vec<String>,
        role: Role,
    ) -> anyhow::Result<Self> {
        let ip = spec.ip.context("a pod needs its own address")?;
        env.engine.run(&env.network, &spec).await?;
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready) = watch::channel(false);
        let loop_ = ReadinessLoop {
            env: env.clone(),
            container: spec.name.clone(),
            own_alias: spec.hostname.clone(),
            ip,
            services: services.clone(),
            probe: template.readiness.clone(),
            role,
        };
        let task = tokio::spawn(loop_.run(ready_tx, stop_rx));
        Ok(Self {
            name: spec.hostname,
            container: spec.name,
            ip,
            template,
            kubelet: Some(Kubelet { stop, ready, task }),
            env: env.clone(),
            role,
            services,
        })
    }

    /// Waits until the pod passed its readiness probe and is in its Services' DNS.
    pub async fn wait_in_services(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        let kubelet = self.kubelet.as_mut().context("the pod is being deleted")?;
        loop {
            if *kubelet.ready.borrow() {
                return Ok(());
            }
            if !self.env.engine.running(&self.container).await {
                bail!(
                    "pod {} exited before it was ready; its last lines:\n{}",
                    self.name,
                    self.env.engine.logs(&self.container, 30).await
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "pod {} is not ready after {limit:?}; its last lines:\n{}",
                    self.name,
                    self.env.engine.logs(&self.container, 30).await
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), kubelet.ready.changed()).await;
        }
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        (self.ip, port).into()
    }

    /// `kubectl delete pod`: out of its Services and into termination at once; returns the task
    /// that ends when the container is gone (preStop, stop signal, grace, removal).
    pub async fn delete(mut self) -> JoinHandle<()> {
        let was_ready = self.stop_kubelet().await;
        let env = self.env.clone();
        let (container, pre_stop, grace) = (
            self.container.clone(),
            self.template.pre_stop.clone(),
            self.template.grace,
        );
        let termination = tokio::spawn(terminate(env.clone(), container, self.ip, pre_stop, grace));
        if was_ready {
            for service in &self.services {
                env.endpoints.set(service, &self.name, self.ip, false);
            }
            count(&env.ready, self.role, -1);
        }
        self.services.clear();
        termination
    }

    /// Removes the container at once (SIGKILL), as at the end of a run.
    pub async fn kill(mut self) {
        if self.stop_kubelet().await {
            for service in &self.services {
                self.env.endpoints.set(service, &self.name, self.ip, false);
            }
            count(&self.env.ready, self.role, -1);
        }
        self.env.engine.remove(&self.container).await;
    }

    /// Stops the readiness loop; whether the pod was in its Services.
    async fn stop_kubelet(&mut self) -> bool {
        let Some(kubelet) = self.kubelet.take() else {
            return false;
        };
        let _ = kubelet.stop.send(true);
        let _ = kubelet.task.await;
        let ready = *kubelet.ready.borrow();
        ready
    }
}

/// The readiness loop of one pod: probe every period, enter or leave the Services on the
/// thresholds' transitions.
struct ReadinessLoop {
    env: Env,
    container: String,
    own_alias: String,
    ip: Ipv4Addr,
    services: Vec<String>,
    probe: Option<Probe>,
    role: Role,
}

impl ReadinessLoop {
    async fn run(self, ready_tx: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let Some(probe) = self.probe.clone() else {
            // No probe: ready as soon as it runs, as in Kubernetes.
            self.enter(true, &ready_tx).await;
            let _ = stop.changed().await;
            return;
        };
        if pause(probe.initial_delay, &mut stop).await {
            return;
        }
        let (mut successes, mut failures) = (0u32, 0u32);
        loop {
            let ok = self.check(&probe).await;
            if ok {
                successes += 1;
                failures = 0;
            } else {
                failures += 1;
                successes = 0;
            }
            let is_ready = *ready_tx.borrow();
            if !is_ready && ok && successes >= probe.success_threshold {
                self.enter(true, &ready_tx).await;
            } else if is_ready && !ok && failures >= probe.failure_threshold {
                println!(
                    "containers: pod {} failed its readiness probe: out of its Services",
                    self.own_alias
                );
                self.enter(false, &ready_tx).await;
            }
            // Before the first success the kubelet probes at the period too; a short first wait
            // would only flatter start-up times.
            if pause(probe.period, &mut stop).await {
                return;
            }
        }
    }

    async fn enter(&self, ready: bool, ready_tx: &watch::Sender<bool>) {
        for service in &self.services {
            self.env
                .endpoints
                .set(service, &self.own_alias, self.ip, ready);
        }
        count(&self.env.ready, self.role, if ready { 1 } else { -1 });
        let _ = ready_tx.send(ready);
    }

    async fn check(&self, probe: &Probe) -> bool {
        let attempt = async {
            match &probe.action {
                ProbeAction::Http { path, port } => {
                    crate::process::http_get((self.ip, *port).into(), path)
                        .await
                        .is_some_and(|(status, _)| (200..400).contains(&status))
                }
                ProbeAction::Tcp { port } => tokio::net::TcpStream::connect((self.ip, *port))
                    .await
                    .is_ok(),
                ProbeAction::Exec { command } => self
                    .env
                    .engine
                    .exec(&self.container, &[], command)
                    .await
                    .is_ok_and(|(ok, _)| ok),
            }
        };
        tokio::time::timeout(probe.timeout, attempt)
            .await
            .unwrap_or(false)
    }
}

/// Sleeps `d`; true when told to stop meanwhile.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

fn count(ready: &Readiness, role: Role, delta: isize) {
    let counter = match role {
        Role::Backend => &ready.backends,
        Role::Replica => &ready.replicas,
        Role::Other => return,
    };
    if delta > 0 {
        counter.fetch_add(1, Ordering::Relaxed);
    } else {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The kubelet's termination: the preStop hook, then the image's stop signal (what containerd
/// sends: SIGTERM unless the image says otherwise), SIGKILL once the grace period is over (counted
/// from the start, hook included); then the container is removed and its address goes silent.
async fn terminate(
    env: Env,
    container: String,
    ip: Ipv4Addr,
    pre_stop: Option<Vec<String>>,
    grace: Duration,
) {
    let deadline = tokio::time::Instant::now() + grace;
    if let Some(hook) = pre_stop {
        match tokio::time::timeout_at(deadline, env.engine.exec(&container, &[], &hook)).await {
            Ok(Ok((true, _))) => {}
            Ok(Ok((false, out))) => {
                println!("containers: preStop of {container} failed: {}", out.trim())
            }
            Ok(Err(e)) => println!("containers: preStop of {container}: {e:#}"),
            Err(_) => println!("containers: preStop of {container} outlasted its grace period"),
        }
    }
    let signal = env
        .engine
        .docker(&["inspect", "--format", "{{.Config.StopSignal}}", &container])
        .await
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "SIGTERM".to_owned());
    let _ = env.engine.signal(&container, &signal).await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !env.engine.wait_exit(&container, left).await {
        println!("containers: {container} outlived its grace period of {grace:?}: SIGKILL");
        let _ = env.engine.signal(&container, "KILL").await;
    }
    env.engine.remove(&container).await;
    if let Some(image) = &env.tombstone {
        if let Err(e) = env.engine.tombstone(&env.network, ip, image).await {
            println!("containers: {ip} could not be made silent: {e:#}");
        }
    }
}
