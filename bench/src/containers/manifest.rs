//! The pod templates of `k8s/manifests`, read as the kubelet reads them, so the containers stack
//! runs each image with exactly the args, environment, probes, preStop hook, grace period and
//! memory limit a user's cluster gives it. Only the fields the stack acts on are read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// One workload's pod template (its first container), with the Secrets it refers to resolved.
#[derive(Debug, Clone)]
pub struct Template {
    pub workload: String,
    pub image: String,
    pub args: Vec<String>,
    env: Vec<EnvVar>,
    env_from: Vec<EnvFrom>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    ports: BTreeMap<String, u16>,
    pub readiness: Option<Probe>,
    pub pre_stop: Option<Vec<String>>,
    pub grace: Duration,
    pub memory_limit: Option<u64>,
    pub security: Security,
    /// Mount paths of the pod's emptyDir volumes.
    pub scratch: Vec<String>,
    /// Mount paths of its persistent volumes (a StatefulSet's volumeClaimTemplates).
    pub persistent: Vec<String>,
}

/// The pod's and the container's securityContext, merged (the container's wins).
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: bool,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
}

/// A readiness probe, with Kubernetes' defaults filled in.
#[derive(Debug, Clone)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

#[derive(Debug, Clone)]
pub enum ProbeAction {
    Http { path: String, port: u16 },
    Tcp { port: u16 },
    Exec { command: Vec<String> },
}

/// Every object of every file in the manifests directory.
pub struct Manifests {
    dir: PathBuf,
    objects: Vec<Object>,
}

impl Manifests {
    /// The files `kustomization.yaml` lists as its resources, as `kubectl apply -k` reads them.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let kustomization = dir.join("kustomization.yaml");
        let text = std::fs::read_to_string(&kustomization)
            .with_context(|| format!("reading {}", kustomization.display()))?;
        let k: Kustomization = serde_norway::from_str(&text)
            .with_context(|| format!("parsing {}", kustomization.display()))?;
        let mut objects = Vec::new();
        for resource in k.resources {
            let path = dir.join(&resource);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            for doc in serde_norway::Deserializer::from_str(&text) {
                let object = Object::deserialize(doc)
                    .with_context(|| format!("parsing {}", path.display()))?;
                objects.push(object);
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            objects,
        })
    }

    /// A config file of the manifests' `config/` directory (a ConfigMap's source).
    pub fn config(&self, name: &str) -> PathBuf {
        self.dir.join("config").join(name)
    }

    /// The pod template of the Deployment or StatefulSet `workload`.
    pub fn template(&self, workload: &str) -> anyhow::Result<Template> {
        let object = self
            .objects
            .iter()
            .find(|o| {
                matches!(o.kind.as_str(), "Deployment" | "StatefulSet")
                    && o.metadata.name == workload
            })
            .with_context(|| {
                format!(
                    "no Deployment or StatefulSet {workload} in {}",
                    self.dir.display()
                )
            })?;
        let pod = &object
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .with_context(|| format!("{workload} has no pod template"))?
            .spec;
        let c = pod
            .containers
            .first()
            .with_context(|| format!("{workload} has no container"))?;
        let claims: Vec<String> = object
            .spec
            .as_ref()
            .map(|s| {
                s.volume_claim_templates
                    .iter()
                    .map(|t| t.metadata.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let ports: BTreeMap<_, _> = c
            .ports
            .iter()
            .filter_map(|p| Some((p.name.clone()?, p.container_port)))
            .collect();
        let port = |p: &IntOrString| -> anyhow::Result<u16> {
            match p {
                IntOrString::Int(n) => Ok(*n),
                IntOrString::Name(name) => ports
                    .get(name)
                    .copied()
                    .with_context(|| format!("{workload}: no container port named {name}")),
            }
        };
        let readiness = match &c.readiness_probe {
            None => None,
            Some(p) => {
                let action = match (&p.http_get, &p.tcp_socket, &p.exec) {
                    (Some(h), None, None) => ProbeAction::Http {
                        path: h.path.clone(),
                        port: port(&h.port)?,
                    },
                    (None, Some(t), None) => ProbeAction::Tcp { port: port(&t.port)? },
                    (None, None, Some(e)) => ProbeAction::Exec {
                        command: e.command.clone(),
                    },
                    _ => bail!("{workload}: a readiness probe needs exactly one of httpGet, tcpSocket, exec"),
                };
                Some(Probe {
                    action,
                    initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0)),
                    period: Duration::from_secs(p.period_seconds.unwrap_or(10)),
                    timeout: Duration::from_secs(p.timeout_seconds.unwrap_or(1)),
                    failure_threshold: p.failure_threshold.unwrap_or(3),
                    success_threshold: p.success_threshold.unwrap_or(1),
                })
            }
        };
        let secrets = self
            .objects
            .iter()
            .filter(|o| o.kind == "Secret")
            .map(|o| (o.metadata.name.clone(), o.string_data.clone()))
            .collect();
        let memory_limit = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.get("memory"))
            .map(|q| quantity_bytes(q).with_context(|| format!("{workload}: memory limit {q}")))
            .transpose()?;
        Ok(Template {
            workload: workload.to_owned(),
            image: c.image.clone(),
            args: c.args.clone(),
            env: c.env.clone(),
            env_from: c.env_from.clone(),
            secrets,
            ports,
            readiness,
            pre_stop: c
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(|h| h.exec.as_ref())
                .map(|e| e.command.clone()),
            // Kubernetes' default grace period.
            grace: Duration::from_secs(pod.termination_grace_period_seconds.unwrap_or(30)),
            memory_limit,
            security: security(pod.security_context.as_ref(), c.security_context.as_ref()),
            scratch: mounts(c, pod, |v| v.empty_dir.is_some()),
            persistent: c
                .volume_mounts
                .iter()
                .filter(|m| claims.contains(&m.name))
                .map(|m| m.mount_path.clone())
                .collect(),
        })
    }
}

impl Template {
    /// The container port named `name`.
    pub fn port(&self, name: &str) -> anyhow::Result<u16> {
        self.ports
            .get(name)
            .copied()
            .with_context(|| format!("{}: no container port named {name}", self.workload))
    }

    /// The container's environment for pod `pod_name`, as the kubelet builds it: `envFrom` first,
    /// then `env` in order, `$(VAR)` expanded from what came before, Secrets and
    /// `metadata.name` resolved.
    pub fn env(&self, pod_name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for from in &self.env_from {
            let secret = self.secret(&from.secret_ref.name)?;
            out.extend(secret.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for var in &self.env {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => expand(v, &out),
                (None, Some(from)) => match (&from.secret_key_ref, &from.field_ref) {
                    (Some(r), _) => self
                        .secret(&r.name)?
                        .get(&r.key)
                        .cloned()
                        .with_context(|| format!("Secret {} has no key {}", r.name, r.key))?,
                    (None, Some(f)) if f.field_path == "metadata.name" => pod_name.to_owned(),
                    (None, Some(f)) => bail!(
                        "{}: fieldRef {} is not supported here",
                        self.workload,
                        f.field_path
                    ),
                    (None, None) => {
                        bail!("{}: env {} has an empty valueFrom", self.workload, var.name)
                    }
                },
                (None, None) => String::new(),
            };
            out.retain(|(k, _)| k != &var.name);
            out.push((var.name.clone(), value));
        }
        Ok(out)
    }

    fn secret(&self, name: &str) -> anyhow::Result<&BTreeMap<String, String>> {
        self.secrets
            .get(name)
            .with_context(|| format!("{}: no Secret {name} in the manifests", self.workload))
    }
}

fn security(pod: Option<&SecurityContext>, container: Option<&SecurityContext>) -> Security {
    let pick =
        |f: fn(&SecurityContext) -> Option<u32>| container.and_then(f).or_else(|| pod.and_then(f));
    let flag = |f: fn(&SecurityContext) -> Option<bool>| {
        container
            .and_then(f)
            .or_else(|| pod.and_then(f))
            .unwrap_or(false)
    };
    let caps = container.and_then(|c| c.capabilities.as_ref());
    Security {
        run_as_user: pick(|s| s.run_as_user),
        run_as_group: pick(|s| s.run_as_group),
        run_as_non_root: flag(|s| s.run_as_non_root),
        read_only_root: flag(|s| s.read_only_root_filesystem),
        no_new_privileges: container
            .and_then(|c| c.allow_privilege_escalation)
            .is_some_and(|allow| !allow),
        cap_drop: caps.map(|c| c.drop.clone()).unwrap_or_default(),
        cap_add: caps.map(|c| c.add.clone()).unwrap_or_default(),
    }
}

/// Mount paths of the container's volumes that `pick` selects among the pod's volumes.
fn mounts(c: &Container, pod: &PodSpec, pick: fn(&Volume) -> bool) -> Vec<String> {
    c.volume_mounts
        .iter()
        .filter(|m| pod.volumes.iter().any(|v| v.name == m.name && pick(v)))
        .map(|m| m.mount_path.clone())
        .collect()
}

/// `$(NAME)` replaced by an earlier variable's value; unknown references stay as they are.
fn expand(value: &str, vars: &[(String, String)]) -> String {
    let mut out = value.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// A Kubernetes memory quantity (`128Mi`, `1Gi`, `500M`, `1024`) in bytes.
fn quantity_bytes(q: &str) -> anyhow::Result<u64> {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let n: u64 = number.parse().context("not a number")?;
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => bail!("unit {unit} is not supported"),
    };
    Ok(n * factor)
}

#[derive(Debug, Deserialize)]
struct Kustomization {
    resources: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Object {
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: Option<WorkloadSpec>,
    #[serde(default, rename = "stringData")]
    string_data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec {
    #[serde(default)]
    template: Option<PodTemplate>,
    #[serde(default)]
    volume_claim_templates: Vec<ClaimTemplate>,
}

#[derive(Debug, Deserialize)]
struct ClaimTemplate {
    metadata: Metadata,
}

#[derive(Debug, Deserialize)]
struct PodTemplate {
    spec: PodSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    termination_grace_period_seconds: Option<u64>,
    containers: Vec<Container>,
    security_context: Option<SecurityContext>,
    #[serde(default)]
    volumes: Vec<Volume>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityContext {
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    run_as_non_root: Option<bool>,
    read_only_root_filesystem: Option<bool>,
    allow_privilege_escalation: Option<bool>,
    capabilities: Option<Capabilities>,
}

#[derive(Debug, Deserialize)]
struct Capabilities {
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    add: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume {
    name: String,
    empty_dir: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMount {
    name: String,
    mount_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    image: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(default)]
    env_from: Vec<EnvFrom>,
    #[serde(default)]
    ports: Vec<Port>,
    readiness_probe: Option<ProbeSpec>,
    lifecycle: Option<Lifecycle>,
    resources: Option<Resources>,
    security_context: Option<SecurityContext>,
    #[serde(default)]
    volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvVar {
    name: String,
    value: Option<String>,
    value_from: Option<ValueFrom>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueFrom {
    secret_key_ref: Option<KeyRef>,
    field_ref: Option<FieldRef>,
}

#[derive(Debug, Clone, Deserialize)]
struct KeyRef {
    name: String,
    key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldRef {
    field_path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvFrom {
    secret_ref: NameRef,
}

#[derive(Debug, Clone, Deserialize)]
struct NameRef {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    name: Option<String>,
    container_port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(u16),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbeSpec {
    http_get: Option<HttpGet>,
    tcp_socket: Option<TcpSocket>,
    exec: Option<Exec>,
    initial_delay_seconds: Option<u64>,
    period_seconds: Option<u64>,
    timeout_seconds: Option<u64>,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct HttpGet {
    path: String,
    port: IntOrString,
}

#[derive(Debug, Deserialize)]
struct TcpSocket {
    port: IntOrString,
}

#[derive(Debug, Clone, Deserialize)]
struct Exec {
    command: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lifecycle {
    pre_stop: Option<Handler>,
}

#[derive(Debug, Deserialize)]
struct Handler {
    exec: Option<Exec>,
}

#[derive(Debug, Deserialize)]
struct Resources {
    #[serde(default)]
    limits: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> Manifests {
        Manifests::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/manifests"))
            .expect("the repo's manifests parse")
    }

    #[test]
    fn the_backend_template_resolves_its_secret_and_expands_its_url() {
        let t = manifests().template("backend").unwrap();
        let env: BTreeMap<_, _> = t.env("backend-x").unwrap().into_iter().collect();
        let password = &env["APP_PASSWORD"];
        assert!(!password.is_empty());
        assert!(
            env["DATABASE_URL"].contains(&format!(":{password}@")),
            "{}",
            env["DATABASE_URL"]
        );
        assert!(matches!(
            t.readiness.as_ref().map(|p| &p.action),
            Some(ProbeAction::Http { path, port: 8000 }) if path == "/readyz"
        ));
    }

    #[test]
    fn replicas_get_their_pod_name_and_a_pre_stop_hook() {
        let t = manifests().template("postgres-replicas").unwrap();
        let env: BTreeMap<_, _> = t.env("replica-7").unwrap().into_iter().collect();
        assert_eq!(env["POD_NAME"], "replica-7");
        assert!(
            t.pre_stop.is_some(),
            "the replica's preStop releases its name"
        );
    }

    #[test]
    fn security_contexts_and_volumes_are_read() {
        let m = manifests();
        let proxy = m.template("proxy").unwrap();
        assert_eq!(proxy.security.run_as_user, Some(10001));
        assert!(proxy.security.run_as_non_root && proxy.security.read_only_root);
        assert_eq!(proxy.security.cap_drop, ["ALL"]);
        let primary = m.template("postgres-primary").unwrap();
        assert_eq!(primary.persistent, ["/var/lib/postgresql/data"]);
        assert!(primary.scratch.contains(&"/var/run/postgresql".to_owned()));
    }

    #[test]
    fn quantities_are_bytes() {
        assert_eq!(quantity_bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(quantity_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(quantity_bytes("500M").unwrap(), 500_000_000);
        assert!(quantity_bytes("12q").is_err());
    }
}
