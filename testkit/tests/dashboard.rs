//! The Grafana dashboard only queries metrics the binaries export: every metric name in its
//! expressions is documented in the README of the crate that exports it (STYLE.md asks every
//! metric to be documented there), so a renamed metric cannot leave a panel silently empty.

use std::collections::BTreeSet;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &text[i..];
        if starts_word
            && ["proxy_", "pgbalancer_", "backend_"]
                .iter()
                .any(|p| rest.starts_with(p))
        {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn every_dashboard_metric_is_documented_by_its_crate() {
    let dashboard = std::fs::read_to_string(format!(
        "{ROOT}/k8s/manifests/config/grafana-dashboard.json"
    ))
    .expect("reading the dashboard");
    let exprs: String = dashboard
        .lines()
        .filter(|l| l.contains("\"expr\""))
        .collect::<Vec<_>>()
        .join("\n");
    let names = metric_names(&exprs);
    assert!(names.len() >= 5, "the dashboard queries metrics: {names:?}");
    for name in names {
        let krate = name.split('_').next().unwrap();
        let readme =
            std::fs::read_to_string(format!("{ROOT}/{krate}/README.md")).expect("crate README");
        assert!(
            readme.contains(&format!("`{name}`")),
            "the dashboard queries {name}, which {krate}/README.md does not document"
        );
    }
}
