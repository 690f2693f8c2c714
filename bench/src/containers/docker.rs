//! The Docker engine through its CLI, as a user drives it. Every network and container of a run
//! carries the labels `hl.lab=containers` and `hl.lab.pid=<this process>`; dropping the
//! [`Engine`] removes them (also when the run fails or is interrupted), and a new run first removes
//! what runs whose process is gone left behind.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

const LABEL: &str = "hl.lab=containers";
const PID_LABEL: &str = "hl.lab.pid";

/// A `/24` of the run's own network: containers get fixed addresses in it, as pods get theirs;
/// `.1` is the gateway, this host's side of the bridge.
#[derive(Debug, Clone, Copy)]
pub struct Subnet {
    pub base: Ipv4Addr,
}

impl Subnet {
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }
    pub fn host(&self, n: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.base.octets();
        Ipv4Addr::new(a, b, c, n)
    }
    pub fn cidr(&self) -> String {
        format!("{}/24", self.base)
    }
}

/// How to run one container (`docker run -d`).
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub ip: Option<Ipv4Addr>,
    /// Network aliases it carries (its own pod name; its Services' names come with readiness,
    /// from the stack's DNS).
    pub aliases: Vec<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub entrypoint: Option<String>,
    /// Container ports published on a random port of 127.0.0.1 (the lab's `kubectl port-forward`).
    pub publish: Vec<u16>,
    /// Host file, path in the container; mounted read-only (a ConfigMap).
    pub mounts: Vec<(PathBuf, String)>,
    /// The container's memory limit in bytes, swap included (a pod's `resources.limits.memory`).
    pub memory: Option<u64>,
    /// DNS server the embedded DNS forwards names it does not know to (`docker run --dns`).
    pub dns: Option<Ipv4Addr>,
    /// `uid:gid` to run as (a securityContext's runAsUser/runAsGroup).
    pub user: Option<String>,
    pub read_only: bool,
    pub no_new_privileges: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    /// Anonymous volumes, removed with the container: a pod's emptyDirs and persistent volumes.
    /// Docker fills each with the image's directory, owner included, which stands in for the
    /// fsGroup that makes a pod's volumes its own (a tmpfs would stay root's on this engine).
    pub volumes: Vec<String>,
}

pub struct Engine {
    pid: u32,
}

impl Engine {
    /// Checks that an engine answers, and removes what dead runs left.
    pub async fn open() -> anyhow::Result<Self> {
        let engine = Self {
            pid: std::process::id(),
        };
        let version = engine
            .docker(&["version", "--format", "{{.Server.Version}}"])
            .await
            .context(
                "no Docker engine answers: install docker.io and start dockerd \
                 (scripts/setup.sh --containers does both)",
            )?;
        println!("containers: Docker engine {version}");
        engine.remove_stale().await;
        Ok(engine)
    }

    /// `docker ARGS`: its standard output, trimmed, or an error with its standard error.
    pub async fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("docker")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running docker (is the docker CLI installed?)")?;
        if !output.status.success() {
            bail!(
                "docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn labels(&self) -> [String; 4] {
        [
            "--label".into(),
            LABEL.into(),
            "--label".into(),
            format!("{PID_LABEL}={}", self.pid),
        ]
    }

    pub async fn image_id(&self, image: &str) -> Option<String> {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", image])
            .await
            .ok()
    }

    /// A bridge network of the run's own, on the first free `172.30.N.0/24`.
    pub async fn create_network(&self, name: &str) -> anyhow::Result<Subnet> {
        let mut last = None;
        for n in (self.pid % 200..200).chain(0..self.pid % 200) {
            let subnet = Subnet {
                base: Ipv4Addr::new(172, 30, n as u8, 0),
            };
            let mut args = vec!["network".to_owned(), "create".to_owned()];
            args.extend(self.labels());
            args.extend(["--subnet".into(), subnet.cidr(), name.into()]);
            match self.docker(&strs(&args)).await {
                Ok(_) => return Ok(subnet),
                // Another network (or a route of the host's) has it: try the next one.
                Err(e) if e.to_string().contains("overlap") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no free subnet")))
            .context("creating the run's Docker network")
    }

    pub async fn run(&self, network: &str, spec: &RunSpec) -> anyhow::Result<()> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            spec.name.clone(),
        ];
        args.extend(self.labels());
        args.extend(["--hostname".into(), spec.hostname.clone()]);
        args.extend(["--network".into(), network.into()]);
        if let Some(ip) = spec.ip {
            args.extend(["--ip".into(), ip.to_string()]);
        }
        for alias in &spec.aliases {
            args.extend(["--network-alias".into(), alias.clone()]);
        }
        for (k, v) in &spec.env {
            args.extend(["--env".into(), format!("{k}={v}")]);
        }
        for port in &spec.publish {
            args.extend(["--publish".into(), format!("127.0.0.1::{port}")]);
        }
        for (host, path) in &spec.mounts {
            args.extend(["--volume".into(), format!("{}:{path}:ro", host.display())]);
        }
        if let Some(bytes) = spec.memory {
            args.extend([
                "--memory".into(),
                bytes.to_string(),
                "--memory-swap".into(),
                bytes.to_string(),
            ]);
        }
        if let Some(dns) = spec.dns {
            args.extend(["--dns".into(), dns.to_string()]);
        }
        if let Some(user) = &spec.user {
            args.extend(["--user".into(), user.clone()]);
        }
        if spec.read_only {
            args.push("--read-only".into());
        }
        if spec.no_new_privileges {
            args.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        for cap in &spec.cap_drop {
            args.extend(["--cap-drop".into(), cap.clone()]);
        }
        for cap in &spec.cap_add {
            args.extend(["--cap-add".into(), cap.clone()]);
        }
        for path in &spec.volumes {
            args.extend(["--volume".into(), path.clone()]);
        }
        if let Some(entrypoint) = &spec.entrypoint {
            args.extend(["--entrypoint".into(), entrypoint.clone()]);
        }
        args.push(spec.image.clone());
        args.extend(spec.args.iter().cloned());
        self.docker(&strs(&args))
            .await
            .with_context(|| format!("starting container {}", spec.name))?;
        Ok(())
    }

    /// Sends `signal` (TERM, KILL, …) to the container's main process.
    pub async fn signal(&self, container: &str, signal: &str) -> anyhow::Result<()> {
        self.docker(&["kill", "--signal", signal, container])
            .await
            .map(drop)
    }

    /// Runs `command` in the container; whether it exited 0, and its output.
    pub async fn exec(
        &self,
        container: &str,
        env: &[(&str, &str)],
        command: &[String],
    ) -> anyhow::Result<(bool, String)> {
        let mut args = vec!["exec".to_owned()];
        for (k, v) in env {
            args.extend(["--env".into(), format!("{k}={v}")]);
        }
        args.push(container.into());
        args.extend(command.iter().cloned());
        let output = Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running docker exec")?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok((output.status.success(), text))
    }

    pub async fn running(&self, container: &str) -> bool {
        self.docker(&["inspect", "--format", "{{.State.Running}}", container])
            .await
            .is_ok_and(|s| s == "true")
    }

    /// Waits up to `limit` for the container to exit; whether it did.
    pub async fn wait_exit(&self, container: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if !self.running(container).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        !self.running(container).await
    }

    pub async fn remove(&self, container: &str) {
        let _ = self
            .docker(&["rm", "--force", "--volumes", container])
            .await;
    }

    /// Where container port `port` is published on 127.0.0.1.
    pub async fn published(&self, container: &str, port: u16) -> anyhow::Result<SocketAddr> {
        let out = self
            .docker(&["port", container, &format!("{port}/tcp")])
            .await?;
        out.lines()
            .find_map(|l| {
                l.trim()
                    .parse::<SocketAddr>()
                    .ok()
                    .filter(|a| a.ip().is_loopback())
            })
            .with_context(|| format!("{container}:{port} is not published on 127.0.0.1: {out}"))
    }

    /// The last `lines` of the container's output, for error messages.
    pub async fn logs(&self, container: &str, lines: usize) -> String {
        let output = Command::new("docker")
            .args(["logs", "--tail", &lines.to_string(), container])
            .stdin(Stdio::null())
            .output()
            .await;
        match output {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("(no logs: {e})"),
        }
    }

    /// Holds `ip` on `network` with a container that drops every packet sent to it (an iptables
    /// rule in its own network namespace): connects to the address hang, as to a deleted pod's IP
    /// in a cluster, instead of failing at once for want of an ARP answer. Needs root, nsenter and
    /// iptables on this host, and `image` (any image with `sleep`).
    pub async fn tombstone(&self, network: &str, ip: Ipv4Addr, image: &str) -> anyhow::Result<()> {
        let name = format!("{network}-gone-{ip}");
        let spec = RunSpec {
            name: name.clone(),
            hostname: "gone".into(),
            image: image.into(),
            ip: Some(ip),
            entrypoint: Some("sleep".into()),
            args: vec!["infinity".into()],
            ..RunSpec::default()
        };
        self.run(network, &spec).await?;
        let pid = self
            .docker(&["inspect", "--format", "{{.State.Pid}}", &name])
            .await?;
        let status = Command::new("nsenter")
            .args([
                "--target", &pid, "--net", "iptables", "-w", "-A", "INPUT", "-j", "DROP",
            ])
            .stdin(Stdio::null())
            .status()
            .await
            .context("running nsenter … iptables")?;
        anyhow::ensure!(
            status.success(),
            "iptables in {name}'s network namespace failed"
        );
        Ok(())
    }

    /// Removes the containers and networks of runs whose process has exited.
    async fn remove_stale(&self) {
        let format = format!("{{{{.ID}}}} {{{{index .Labels \"{PID_LABEL}\"}}}}");
        let filter = format!("label={LABEL}");
        let dead = |listing: String| -> Vec<String> {
            listing
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(_, pid)| {
                    pid.parse::<u32>().map_or(true, |p| {
                        !std::path::Path::new(&format!("/proc/{p}")).exists()
                    })
                })
                .map(|(id, _)| id.to_owned())
                .collect()
        };
        if let Ok(listing) = self
            .docker(&["ps", "-a", "--filter", &filter, "--format", &format])
            .await
        {
            for id in dead(listing) {
                self.remove(&id).await;
            }
        }
        if let Ok(listing) = self
            .docker(&["network", "ls", "--filter", &filter, "--format", &format])
            .await
        {
            for id in dead(listing) {
                let _ = self.docker(&["network", "rm", &id]).await;
            }
        }
    }
}

impl Drop for Engine {
    /// Removes every container and network of this run. Blocking: it runs once, at the very end.
    fn drop(&mut self) {
        let filter = format!("label={PID_LABEL}={}", self.pid);
        let list = |args: &[&str]| -> Vec<String> {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = list(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "--force", "--volumes"])
                .args(&containers)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for network in list(&["network", "ls", "-q", "--filter", &filter]) {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", &network])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        println!(
            "containers: removed {} containers and the run's network",
            containers.len()
        );
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
