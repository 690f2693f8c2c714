//! What the tests of `k8s/manifests` share: the objects as `kubectl kustomize` renders them (as
//! `kubectl apply -k` would), and ways to look into them.
// Each test binary uses part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_norway::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The rendered objects, or `None` when kubectl is not installed.
pub fn rendered() -> Option<&'static [Value]> {
    static RENDERED: OnceLock<Option<Vec<Value>>> = OnceLock::new();
    RENDERED
        .get_or_init(|| {
            let dir = repo_root().join("k8s/manifests");
            let out = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
                Ok(out) => out,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => panic!("running kubectl kustomize: {e}"),
            };
            assert!(
                out.status.success(),
                "kubectl kustomize {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
            let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
                .map(|doc| Value::deserialize(doc).expect("kustomize prints valid YAML"))
                .filter(|doc| !doc.is_null())
                .collect();
            Some(docs)
        })
        .as_deref()
}

/// The rendered objects. kubectl is needed (`make test` installs it): without it the test fails,
/// it is never skipped.
pub fn objects() -> Manifests {
    Manifests(
        rendered().expect("kubectl is not installed: `make test` (scripts/setup.sh) installs it"),
    )
}

pub struct Manifests(pub &'static [Value]);

impl Manifests {
    pub fn get(&self, kind: &str, name: &str) -> &'static Value {
        self.0
            .iter()
            .find(|o| {
                o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name} in k8s/manifests"))
    }

    /// The one ConfigMap generated from `name` (kustomize appends a content hash).
    pub fn config_map(&self, name: &str) -> &'static Value {
        let prefix = format!("{name}-");
        let found: Vec<_> = self
            .0
            .iter()
            .filter(|o| o["kind"].as_str() == Some("ConfigMap"))
            .filter(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        assert_eq!(found.len(), 1, "ConfigMaps generated from {name}");
        &found[0]["data"]
    }

    /// The workload (Deployment or StatefulSet) whose pods the Service `name` selects.
    pub fn workload_of_service(&self, name: &str) -> &'static Value {
        let selector = self.get("Service", name)["spec"]["selector"]
            .as_mapping()
            .unwrap_or_else(|| panic!("Service {name} has a selector"));
        let found: Vec<_> = self
            .0
            .iter()
            .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")))
            .filter(|o| {
                let labels = &o["spec"]["template"]["metadata"]["labels"];
                selector
                    .iter()
                    .all(|(k, v)| &labels[k.as_str().unwrap()] == v)
            })
            .collect();
        assert_eq!(found.len(), 1, "workloads selected by Service {name}");
        found[0]
    }

    /// `(service port, container port)` of the Service `name`, named target ports resolved
    /// through the pods it selects.
    pub fn service_ports(&self, name: &str) -> Vec<(u64, u64)> {
        let container =
            &self.workload_of_service(name)["spec"]["template"]["spec"]["containers"][0];
        let container_ports = container["ports"].as_sequence().expect("container ports");
        self.get("Service", name)["spec"]["ports"]
            .as_sequence()
            .expect("Service ports")
            .iter()
            .map(|p| {
                let target = match &p["targetPort"] {
                    Value::String(port_name) => container_ports
                        .iter()
                        .find(|c| c["name"].as_str() == Some(port_name))
                        .unwrap_or_else(|| panic!("{name}: no container port named {port_name}"))
                        ["containerPort"]
                        .as_u64(),
                    Value::Null => p["port"].as_u64(),
                    other => other.as_u64(),
                };
                (p["port"].as_u64().unwrap(), target.unwrap())
            })
            .collect()
    }
}

pub fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// The value after `flag` in a container's args.
pub fn flag<'a>(workload: &'a Value, flag: &str) -> &'a str {
    let args = container(workload)["args"]
        .as_sequence()
        .expect("container args");
    let at = args
        .iter()
        .position(|a| a.as_str() == Some(flag))
        .unwrap_or_else(|| panic!("no {flag} in {:?}", args));
    args[at + 1].as_str().unwrap()
}

pub fn env<'a>(workload: &'a Value, name: &str) -> &'a Value {
    container(workload)["env"]
        .as_sequence()
        .expect("container env")
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no env {name}"))
}

pub fn headless(m: &Manifests, service: &str) -> bool {
    m.get("Service", service)["spec"]["clusterIP"].as_str() == Some("None")
}

pub fn any(port: u16) -> String {
    format!("0.0.0.0:{port}")
}
