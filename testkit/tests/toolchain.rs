//! One Rust version for the workspace, the images and CI: the workspace's `rust-version` is at
//! least every locked package's (a `cargo update` that raises one fails here, not inside
//! `docker build`), the Rust image's builder stage uses exactly that version, the toolchain
//! running this test is not older, and the image copies every member's manifest and the sources
//! of every crate its binaries are built from.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `1.95`, `1.89.0` → comparable numbers (a missing patch is 0).
fn version(s: &str) -> (u64, u64, u64) {
    let mut parts = s.trim().split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("not a version: {s}"))
    });
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn workspace_rust_version() -> String {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("Cargo.toml's [workspace.package] has rust-version = \"…\"")
        .to_owned()
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("k8s/images/rust/Dockerfile")).unwrap()
}

#[test]
fn the_workspace_rust_version_covers_every_locked_package() {
    let ours = workspace_rust_version();
    let meta = metadata();
    let members = meta["workspace_members"].as_array().unwrap();
    let mut behind = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        if let Some(needs) = p["rust_version"].as_str() {
            if version(needs) > version(&ours) {
                behind.push(format!("{} {} needs {needs}", p["name"], p["version"]));
            }
        }
        // Every workspace member inherits the one version (the patched copies in vendor/ keep
        // their own, checked above like any other package's).
        if members.contains(&p["id"]) {
            assert_eq!(
                p["rust_version"].as_str(),
                Some(ours.as_str()),
                "{} takes rust-version from the workspace",
                p["name"]
            );
        }
    }
    assert!(
        behind.is_empty(),
        "Cargo.lock holds packages newer than the workspace's rust-version {ours}: {}; raise \
         rust-version in Cargo.toml and RUST_VERSION in k8s/images/rust/Dockerfile",
        behind.join(", ")
    );
}

#[test]
fn the_rust_image_builds_with_the_workspace_rust_version() {
    let ours = workspace_rust_version();
    let arg = dockerfile()
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION=").map(str::to_owned))
        .expect("k8s/images/rust/Dockerfile has ARG RUST_VERSION=…");
    assert_eq!(
        arg, ours,
        "k8s/images/rust/Dockerfile's RUST_VERSION is the workspace's rust-version"
    );
    assert!(dockerfile().contains("FROM rust:${RUST_VERSION}-bookworm AS build"));
}

#[test]
fn the_toolchain_running_the_suite_is_not_older_than_the_workspace() {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .expect("running rustc --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let running = text.split_whitespace().nth(1).expect("rustc X.Y.Z …");
    let ours = workspace_rust_version();
    assert!(
        version(running) >= version(&ours),
        "rustc {running} is older than the workspace's rust-version {ours}"
    );
}

#[test]
fn the_rust_image_copies_every_member_manifest_and_the_sources_the_binaries_need() {
    let meta = metadata();
    let root = std::fs::canonicalize(repo_root()).unwrap();
    let dockerfile = dockerfile();
    let packages = meta["packages"].as_array().unwrap();
    let dir_of = |p: &serde_json::Value| {
        let manifest = Path::new(p["manifest_path"].as_str().unwrap());
        manifest
            .parent()
            .unwrap()
            .strip_prefix(&root)
            .unwrap()
            .display()
            .to_string()
    };
    for member in meta["workspace_members"].as_array().unwrap() {
        let package = packages.iter().find(|p| p["id"] == *member).unwrap();
        let dir = dir_of(package);
        let line = format!("COPY {dir}/Cargo.toml {dir}/");
        assert!(
            dockerfile.contains(&line),
            "k8s/images/rust/Dockerfile has `{line}`"
        );
    }
    // The three binaries and every path dependency they build with (not dev-dependencies).
    let mut needed = vec![
        "proxy".to_owned(),
        "pgbalancer".to_owned(),
        "backend".to_owned(),
    ];
    let mut i = 0;
    while i < needed.len() {
        let package = packages
            .iter()
            .find(|p| p["name"] == needed[i].as_str())
            .unwrap();
        for dep in package["dependencies"].as_array().unwrap() {
            let name = dep["name"].as_str().unwrap().to_owned();
            if dep["path"].is_string() && dep["kind"].is_null() && !needed.contains(&name) {
                needed.push(name);
            }
        }
        i += 1;
    }
    let touch = dockerfile
        .lines()
        .find(|l| l.contains("RUN find "))
        .expect("the Dockerfile touches the copied sources");
    let remove = dockerfile
        .lines()
        .find(|l| l.contains("stub-sources.sh remove"))
        .expect("the Dockerfile removes the stubs of the real sources");
    for name in &needed {
        let package = packages
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap();
        let dir = dir_of(package);
        let line = format!("COPY {dir}/ {dir}/");
        assert!(
            dockerfile.contains(&line),
            "k8s/images/rust/Dockerfile has `{line}`"
        );
        assert!(
            touch.contains(&format!(" {dir} ")),
            "the touch line names {dir}"
        );
        assert!(
            remove.contains(&format!(" {dir}")),
            "the stub removal names {dir}"
        );
    }
}

#[test]
fn the_rust_image_copies_the_patched_crates_before_it_builds_the_dependencies() {
    // A package with no registry source that is no workspace member is a patched copy
    // (vendor/, [patch.crates-io]): cargo cannot even read the manifests without it, so the
    // dependency layer's first build needs it.
    let meta = metadata();
    let root = std::fs::canonicalize(repo_root()).unwrap();
    let dockerfile = dockerfile();
    let first_build = dockerfile
        .find("cargo build")
        .expect("the Dockerfile builds");
    let members = meta["workspace_members"].as_array().unwrap();
    let patched: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null() && !members.contains(&p["id"]))
        .map(|p| {
            Path::new(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .strip_prefix(&root)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(
        !patched.is_empty(),
        "the workspace carries patched crates (vendor/README.md)"
    );
    for dir in &patched {
        let copied = dockerfile.lines().any(|l| {
            l.strip_prefix("COPY ")
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|src| {
                    let src = src.trim_end_matches('/');
                    dir == src || dir.starts_with(&format!("{src}/"))
                })
        });
        let at = dockerfile.find(&format!("COPY {}", dir.split('/').next().unwrap()));
        assert!(copied, "k8s/images/rust/Dockerfile copies {dir}");
        assert!(
            at.is_some_and(|at| at < first_build),
            "k8s/images/rust/Dockerfile copies {dir} before its first cargo build"
        );
    }
}
