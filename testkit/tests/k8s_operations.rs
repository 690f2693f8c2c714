//! What an operator of the k3d lab relies on, read from the rendered manifests: memory limits
//! that hold the connection limits (from the measured per-connection costs in `bench/results`),
//! shutdown order and grace periods that cover it, readiness that one blip does not flip, images
//! that follow the registry and are pulled again after a rebuild, and the hygiene a cluster's
//! admission policies ask for. Behaviour (the drain, the preStop hook, the probes) runs in the
//! containers stack (`bench/tests/containers.rs`) and the binaries' own tests.

mod support;

use std::time::Duration;

use serde_norway::Value;
use support::{container, objects, repo_root, Manifests};

/// The value after `flag` in the container's args, if it is there.
fn arg<'a>(workload: &'a Value, flag: &str) -> Option<&'a str> {
    let args = container(workload)["args"].as_sequence()?;
    let at = args.iter().position(|a| a.as_str() == Some(flag))?;
    args.get(at + 1)?.as_str()
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn deployment<'a>(m: &'a Manifests, name: &str) -> &'a Value {
    m.get("Deployment", name)
}

/// A memory quantity (`256Mi`) in KiB.
fn kib(quantity: &str) -> f64 {
    let (n, unit) = quantity.split_at(quantity.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: f64 = n.parse().unwrap();
    match unit {
        "Ki" => n,
        "Mi" => n * 1024.0,
        "Gi" => n * 1024.0 * 1024.0,
        other => panic!("unit {other} in {quantity}"),
    }
}

fn memory_limit_kib(workload: &Value) -> f64 {
    kib(container(workload)["resources"]["limits"]["memory"]
        .as_str()
        .expect("a memory limit"))
}

fn results(name: &str) -> serde_json::Value {
    let path = repo_root().join("bench/results").join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// Kernel memory of one open TCP socket (the socket, its inode and file, empty queues), which a
/// cgroup v2 memory limit counts and RSS does not.
const KERNEL_KIB_PER_SOCKET: f64 = 4.0;
/// Room above the estimate for what the idle measurement does not see: requests in flight,
/// allocator fragmentation, more worker threads.
const HEADROOM: f64 = 1.25;

#[test]
fn the_proxy_memory_limit_holds_its_connection_limit() {
    let m = objects();
    let proxy = deployment(&m, "proxy");
    let max_connections: f64 = arg(proxy, "--max-connections")
        .unwrap_or("4096")
        .parse()
        .unwrap();
    let idle = results("idle.json");
    let ours = idle["contestants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ours")
        .expect("bench/results/idle.json measured ours");
    let per_conn = ours["kib_per_conn"].as_f64().unwrap();
    let base = ours["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rss_before_kib"].as_f64().unwrap())
        .fold(0.0, f64::max);
    // Twice the one-thread process for the worker threads of a bigger node.
    let need = (2.0 * base + max_connections * (per_conn + KERNEL_KIB_PER_SOCKET)) * HEADROOM;
    let limit = memory_limit_kib(proxy);
    assert!(
        limit >= need,
        "the proxy's memory limit ({:.0} MiB) cannot hold --max-connections {max_connections} at \
         {per_conn:.1} KiB each (bench/results/idle.json) plus the process: it needs {:.0} MiB; \
         raise the limit or lower --max-connections",
        limit / 1024.0,
        need / 1024.0
    );
}

#[test]
fn the_pgbalancer_memory_limit_holds_its_connection_limit() {
    let m = objects();
    let pgbalancer = deployment(&m, "pgbalancer");
    let max_connections: f64 = arg(pgbalancer, "--max-connections")
        .unwrap_or("2000")
        .parse()
        .unwrap();
    let pg = results("pg-sessions/pg.json");
    let scenario = pg["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|s| s["clients"].as_u64())
        .expect("bench/results/pg-sessions/pg.json has a scenario");
    let ours = scenario["contestants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pgbalancer")
        .unwrap();
    let per_session = ours["kib_per_session"]
        .as_f64()
        .expect("measured per session");
    let base = ours["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rss_before_kib"].as_f64())
        .fold(0.0, f64::max);
    // A session holds two sockets: the client's and the server's.
    let need =
        (2.0 * base + max_connections * (per_session + 2.0 * KERNEL_KIB_PER_SOCKET)) * HEADROOM;
    let limit = memory_limit_kib(pgbalancer);
    assert!(
        limit >= need,
        "pgbalancer's memory limit ({:.0} MiB) cannot hold --max-connections {max_connections} at \
         {per_session:.1} KiB per session (bench/results/pg-sessions/pg.json): it needs {:.0} MiB",
        limit / 1024.0,
        need / 1024.0
    );
}

/// SIGTERM and the endpoint removal race: each front door keeps accepting for a shutdown delay,
/// then drains; the pod's grace period must cover both, or Kubernetes kills it mid-drain.
#[test]
fn front_doors_keep_accepting_after_sigterm_and_their_grace_covers_the_drain() {
    let m = objects();
    for (name, drain_flag) in [
        ("proxy", "--shutdown-timeout"),
        ("pgbalancer", "--shutdown-grace"),
        ("backend", ""),
    ] {
        let w = deployment(&m, name);
        let delay = duration(
            arg(w, "--shutdown-delay").unwrap_or_else(|| panic!("{name} sets --shutdown-delay")),
        );
        assert!(
            delay >= Duration::from_secs(3),
            "{name}: a shutdown delay of {delay:?} is shorter than the endpoints' propagation"
        );
        let drain = if drain_flag.is_empty() {
            Duration::ZERO
        } else {
            duration(arg(w, drain_flag).unwrap_or_else(|| panic!("{name} sets {drain_flag}")))
        };
        let grace = Duration::from_secs(
            w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        );
        assert!(
            grace >= delay + drain + Duration::from_secs(2),
            "{name}: grace {grace:?} does not cover the delay {delay:?} and the drain {drain:?}"
        );
        let probe = &container(w)["readinessProbe"]["httpGet"]["path"];
        assert_eq!(
            probe.as_str(),
            Some("/readyz"),
            "{name}: readiness turns 503 on SIGTERM at /readyz"
        );
    }
}

#[test]
fn one_failed_database_probe_does_not_empty_backend_headless() {
    let m = objects();
    let probe = &container(deployment(&m, "backend"))["readinessProbe"];
    let period = probe["periodSeconds"].as_u64().unwrap_or(10);
    let failures = probe["failureThreshold"].as_u64().unwrap_or(3);
    assert!(
        failures >= 2,
        "one failed probe takes every backend out at once"
    );
    assert!(
        period * failures >= 5,
        "a {}-second database blip empties backend-headless",
        period * failures
    );
}

#[test]
fn images_come_from_the_registry_of_the_build_and_are_pulled_again_after_a_rebuild() {
    let m = objects();
    let build = std::fs::read_to_string(repo_root().join("k8s/images/build_and_push.sh")).unwrap();
    for w in
        m.0.iter()
            .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")))
    {
        let name = w["metadata"]["name"].as_str().unwrap();
        for c in w["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap()
        {
            let image = c["image"].as_str().unwrap();
            // The kustomization's `images:` mapped hl/<name> to the default registry and tag.
            let image_name = image
                .strip_prefix("k3d-registry.localhost:5000/hl/")
                .and_then(|rest| rest.strip_suffix(":dev"))
                .unwrap_or_else(|| {
                    panic!("{name}: {image} is not mapped to the lab's registry and tag")
                });
            assert!(
                build.contains(image_name),
                "{name}: build_and_push.sh builds {image_name}"
            );
            assert_eq!(
                c["imagePullPolicy"].as_str(),
                Some("Always"),
                "{name}: a rebuilt :dev image is pulled again"
            );
        }
    }
    let raw: Vec<_> = std::fs::read_dir(repo_root().join("k8s/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    for path in raw {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("k3d-registry.localhost"),
            "{} names the registry itself; only kustomization.yaml (and apply.sh's overlay) may",
            path.display()
        );
    }
}

#[test]
fn apply_renders_the_registry_and_tag_it_is_given() {
    let out = std::process::Command::new(repo_root().join("k8s/apply.sh"))
        .arg("--render")
        .env("REGISTRY_PORT", "5111")
        .env("TAG", "t1")
        .env_remove("REGISTRY")
        .output()
        .expect("running k8s/apply.sh --render");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let images: Vec<_> = text
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image: "))
        .collect();
    assert!(images.len() >= 8, "{images:?}");
    for image in images {
        assert!(
            image.starts_with("k3d-registry.localhost:5111/hl/") && image.ends_with(":t1"),
            "{image} follows REGISTRY_PORT and TAG"
        );
    }
}

#[test]
fn the_statefulset_names_a_headless_service() {
    let m = objects();
    let sts = m.get("StatefulSet", "postgres-primary");
    let service = sts["spec"]["serviceName"].as_str().unwrap();
    assert_eq!(
        m.get("Service", service)["spec"]["clusterIP"].as_str(),
        Some("None"),
        "StatefulSet serviceName {service} must be a headless Service (it governs the pods' DNS)"
    );
}

/// `demo_failover.sh` deletes "the only backend pod" in C.drop: it must pick the pod behind the
/// ready endpoint, not a pod the earlier scale-down left terminating (still Running through its
/// shutdown delay). The selection is lib.sh's JSONPath over EndpointSlices, evaluated here by
/// kubectl itself (offline, `annotate --local`) over slices as Kubernetes writes them.
#[test]
fn the_demo_deletes_the_pod_behind_the_ready_endpoint() {
    let lib = std::fs::read_to_string(repo_root().join("k8s/scripts/lib.sh")).unwrap();
    let jsonpath = lib
        .lines()
        .find_map(|l| l.strip_prefix("READY_PODS_JSONPATH='")?.strip_suffix('\''))
        .expect("lib.sh defines READY_PODS_JSONPATH");
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "backend-headless-x7k2p", "labels": {"kubernetes.io/service-name": "backend-headless"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.42.1.7"], "conditions": {"ready": false, "serving": true, "terminating": true},
             "targetRef": {"kind": "Pod", "name": "backend-5d9f7-scaled-down"}},
            {"addresses": ["10.42.2.9"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "targetRef": {"kind": "Pod", "name": "backend-5d9f7-serving"}}
        ]
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slice.json");
    std::fs::write(&file, slice.to_string()).unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["annotate", "--local", "-f"])
        .arg(&file)
        .args(["checked=yes", "-o", &format!("jsonpath={jsonpath}")])
        .output()
        .expect("running kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "backend-5d9f7-serving\n"
    );
}
