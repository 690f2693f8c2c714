//! The Kubernetes manifests (`k8s/manifests`, rendered by `kubectl kustomize` as `kubectl apply -k`
//! would) use exactly the names and ports in `testkit::names`, which the local lab uses too: one
//! source of truth, checked, instead of two copies drifting apart.

mod support;

use support::{any, env, flag, headless, objects, repo_root};
use testkit::names::*;

#[test]
fn every_object_lives_in_the_lab_namespace() {
    let m = objects();
    assert_eq!(
        m.get("Namespace", NAMESPACE)["kind"].as_str(),
        Some("Namespace")
    );
    for o in
        m.0.iter()
            .filter(|o| o["kind"].as_str() != Some("Namespace"))
    {
        assert_eq!(
            o["metadata"]["namespace"].as_str(),
            Some(NAMESPACE),
            "{} {}",
            o["kind"].as_str().unwrap(),
            o["metadata"]["name"].as_str().unwrap()
        );
    }
}

#[test]
fn services_expose_the_shared_ports_on_the_pods_they_select() {
    let m = objects();
    let pg = u64::from(POSTGRES_PORT);
    assert_eq!(
        m.service_ports(BACKEND_SERVICE),
        [(BACKEND_PORT.into(), BACKEND_PORT.into())]
    );
    assert!(
        headless(&m, BACKEND_SERVICE),
        "{BACKEND_SERVICE} is headless"
    );
    assert_eq!(m.service_ports(POSTGRES_PRIMARY_SERVICE), [(pg, pg)]);
    assert!(!headless(&m, POSTGRES_PRIMARY_SERVICE));
    assert_eq!(m.service_ports(POSTGRES_REPLICAS_SERVICE), [(pg, pg)]);
    assert!(
        headless(&m, POSTGRES_REPLICAS_SERVICE),
        "{POSTGRES_REPLICAS_SERVICE} is headless"
    );
    assert_eq!(
        m.service_ports(PROXY_SERVICE),
        [
            (PROXY_SERVICE_PORT.into(), PROXY_PORT.into()),
            (PROXY_ADMIN_PORT.into(), PROXY_ADMIN_PORT.into())
        ]
    );
    assert_eq!(
        m.service_ports(PGBALANCER_SERVICE),
        [
            (pg, pg),
            (PGBALANCER_ADMIN_PORT.into(), PGBALANCER_ADMIN_PORT.into())
        ]
    );
    assert_eq!(
        m.service_ports(NGINX_SERVICE),
        [(PROXY_SERVICE_PORT.into(), 80)]
    );
    assert_eq!(
        m.service_ports(HAPROXY_SERVICE),
        [
            (pg, pg),
            (HAPROXY_STATS_PORT.into(), HAPROXY_STATS_PORT.into())
        ]
    );
}

#[test]
fn the_proxy_follows_the_backends_headless_service() {
    let m = objects();
    let proxy = m.workload_of_service(PROXY_SERVICE);
    assert_eq!(flag(proxy, "--listen"), any(PROXY_PORT));
    assert_eq!(
        flag(proxy, "--upstream"),
        format!("{}:{BACKEND_PORT}", cluster_fqdn(BACKEND_SERVICE))
    );
    assert_eq!(flag(proxy, "--admin"), any(PROXY_ADMIN_PORT));
}

#[test]
fn pgbalancer_checks_the_replicas_with_the_secrets_password() {
    let m = objects();
    let pgb = m.workload_of_service(PGBALANCER_SERVICE);
    assert_eq!(flag(pgb, "--listen"), any(POSTGRES_PORT));
    assert_eq!(
        flag(pgb, "--upstream"),
        format!(
            "{}:{POSTGRES_PORT}",
            cluster_fqdn(POSTGRES_REPLICAS_SERVICE)
        )
    );
    assert_eq!(flag(pgb, "--admin"), any(PGBALANCER_ADMIN_PORT));
    assert_eq!(flag(pgb, "--check-user"), CHECK_USER);
    assert_eq!(flag(pgb, "--check-database"), DATABASE);
    assert_eq!(flag(pgb, "--check-password-env"), CHECK_PASSWORD_ENV);
    let secret = &env(pgb, CHECK_PASSWORD_ENV)["valueFrom"]["secretKeyRef"];
    let key = secret["key"].as_str().unwrap();
    let data = &m.get("Secret", secret["name"].as_str().unwrap())["stringData"];
    assert!(data[key].is_string(), "the Secret holds {key}");
}

#[test]
fn the_backend_reaches_postgres_through_pgbalancer() {
    let m = objects();
    let backend = m.workload_of_service(BACKEND_SERVICE);
    assert_eq!(flag(backend, "--listen"), any(BACKEND_PORT));
    assert_eq!(
        env(backend, "DATABASE_URL")["value"].as_str(),
        Some(
            format!(
                "postgres://{APP_USER}:$(APP_PASSWORD)@{}:{POSTGRES_PORT}/{DATABASE}",
                cluster_fqdn(PGBALANCER_SERVICE)
            )
            .as_str()
        )
    );
    assert_eq!(
        m.get("Deployment", "backend")["spec"]["replicas"].as_u64(),
        Some(2)
    );
}

#[test]
fn replicas_stream_from_the_primary_and_are_named_pg1_pg2() {
    let m = objects();
    let replicas = m.workload_of_service(POSTGRES_REPLICAS_SERVICE);
    assert_eq!(
        replicas["spec"]["replicas"].as_u64(),
        Some(REPLICA_CLUSTER_NAMES.len() as u64)
    );
    assert_eq!(
        env(replicas, "PRIMARY_HOST")["value"].as_str(),
        Some(cluster_fqdn(POSTGRES_PRIMARY_SERVICE).as_str())
    );
    // HAProxy names its servers <prefix><n>, n from 1: the same names the replicas claim.
    let haproxy = m.config_map("haproxy-config")["haproxy.cfg"]
        .as_str()
        .unwrap();
    let template = format!(
        "server-template pg {} {}:{POSTGRES_PORT}",
        REPLICA_CLUSTER_NAMES.len(),
        cluster_fqdn(POSTGRES_REPLICAS_SERVICE)
    );
    assert!(haproxy.contains(&template), "haproxy.cfg has `{template}`");
    let entrypoint =
        std::fs::read_to_string(repo_root().join("k8s/images/postgres/replica-entrypoint.sh"))
            .expect("reading the replica's entrypoint");
    for (n, name) in REPLICA_CLUSTER_NAMES.iter().enumerate() {
        assert_eq!(*name, format!("pg{}", n + 1));
    }
    assert!(
        entrypoint.contains("name_prefix=pg\n"),
        "the replica entrypoint claims pg<n> names"
    );
}

#[test]
fn nginx_proxies_to_the_backends_headless_service() {
    let m = objects();
    let conf = m.config_map("nginx-config")["default.conf"]
        .as_str()
        .unwrap();
    // nginx 1.22's resolver workaround: the name in a variable, re-resolved every `valid=`.
    let name = format!("set $backend \"{}\";", cluster_fqdn(BACKEND_SERVICE));
    assert!(conf.contains(&name), "nginx.conf has `{name}`");
    let pass = format!("proxy_pass http://$backend:{BACKEND_PORT};");
    assert!(conf.contains(&pass), "nginx.conf has `{pass}`");
    assert!(conf.contains("resolver kube-dns.kube-system.svc.cluster.local valid="));
    assert!(conf.contains(&format!("listen {PROXY_SERVICE_PORT};")));
    // The original lab's form, which the containers stack runs as the `nginx` contestant.
    let original =
        std::fs::read_to_string(repo_root().join("k8s/manifests/config/nginx-original.conf"))
            .expect("reading nginx-original.conf");
    let server = format!("server {}:{BACKEND_PORT};", cluster_fqdn(BACKEND_SERVICE));
    assert!(
        original.contains(&server),
        "nginx-original.conf has `{server}`"
    );
}

#[test]
fn prometheus_scrapes_the_metrics_ports() {
    let m = objects();
    for (service, port) in [
        (PROXY_SERVICE, PROXY_ADMIN_PORT),
        (PGBALANCER_SERVICE, PGBALANCER_ADMIN_PORT),
        (BACKEND_SERVICE, BACKEND_PORT),
    ] {
        let annotations =
            &m.workload_of_service(service)["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/scrape"].as_str(),
            Some("true"),
            "{service}"
        );
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(port.to_string().as_str()),
            "{service}"
        );
        assert_eq!(
            annotations["prometheus.io/path"].as_str(),
            Some("/metrics"),
            "{service}"
        );
    }
    let config = m.config_map("prometheus-config")["prometheus.yml"]
        .as_str()
        .unwrap();
    assert!(
        config.contains(&format!("names: [{NAMESPACE}]")),
        "Prometheus watches {NAMESPACE}"
    );
}

#[test]
fn the_scripts_default_to_the_lab_namespace() {
    let lib = std::fs::read_to_string(repo_root().join("k8s/scripts/lib.sh"))
        .expect("reading k8s/scripts/lib.sh");
    assert!(
        lib.contains(&format!("NS=\"${{NS:-{NAMESPACE}}}\"")),
        "k8s/scripts/lib.sh defaults NS to {NAMESPACE}"
    );
}
