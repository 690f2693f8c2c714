//! The `bench` harness, tiny: every subcommand runs against the debug build with one round of
//! about a second, and produces well-formed results with every contestant present and doing work.
//! No timing is asserted; how fast anything is belongs to `make bench`.

use std::path::{Path, PathBuf};

use bench::speed::{run, Cli, Report};
use clap::Parser;

fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bench"))
        .parent()
        .expect("target dir")
        .to_owned()
}

async fn bench(out: &Path, args: &[&str]) -> Report {
    let dir = bin_dir();
    let mut argv = vec!["bench", "--rounds", "1", "--duration", "1s"];
    argv.extend([
        "--bin-dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    argv.extend(args);
    let report = run(Cli::parse_from(argv)).await.expect("bench ran");
    let headers = [
        report.http.as_ref().map(|r| &r.header),
        report.pg.as_ref().map(|r| &r.header),
        report.idle.as_ref().map(|r| &r.header),
    ];
    for header in headers.into_iter().flatten() {
        assert!(header.skipped.is_empty(), "skipped: {:?}", header.skipped);
    }
    report
}

fn assert_written(out: &Path, name: &str) -> serde_json::Value {
    for ext in ["md", "png"] {
        let path = out.join(format!("{name}.{ext}"));
        assert!(path.is_file(), "{} was written", path.display());
    }
    let md = std::fs::read_to_string(out.join(format!("{name}.md"))).unwrap();
    assert!(md.contains("Command: `"), "{name}.md names its command");
    serde_json::from_str(&std::fs::read_to_string(out.join(format!("{name}.json"))).unwrap())
        .expect("well-formed JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_measures_every_contestant_in_every_scenario() {
    let out = tempfile::tempdir().unwrap();
    let report = bench(out.path(), &["http", "--conns", "32"]).await;
    let http = report.http.expect("http results");
    let labels: Vec<_> = http.scenarios.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        [
            "keepalive small c32",
            "keepalive 64k c32",
            "close small c32",
            "close 64k c32"
        ]
    );
    for s in &http.scenarios {
        let names: Vec<_> = s.contestants.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["direct", "nginx", "haproxy", "ours"],
            "{}",
            s.label()
        );
        for c in &s.contestants {
            assert!(c.requests > 0, "{} in {}: no requests", c.name, s.label());
            assert!(
                c.cpu_s_per_100k > 0.0,
                "{} in {}: no CPU measured",
                c.name,
                s.label()
            );
            assert!(
                c.peak_rss_kib > 0,
                "{} in {}: no RSS measured",
                c.name,
                s.label()
            );
            assert!(
                c.p99_ms >= c.p50_ms,
                "{} in {}: percentiles",
                c.name,
                s.label()
            );
        }
        let ours = s.get("ours").unwrap();
        assert_eq!(ours.errors, 0, "ours in {}: {:?}", s.label(), ours.runs);
        assert!(ours.req_per_s_vs_nginx.is_some());
    }
    let json = assert_written(out.path(), "http");
    assert_eq!(json["scenarios"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_measures_direct_pgbalancer_and_haproxy() {
    let out = tempfile::tempdir().unwrap();
    let report = bench(out.path(), &["pg", "--clients", "2"]).await;
    let pg = report.pg.expect("pg results");
    let labels: Vec<_> = pg.scenarios.iter().map(|s| s.label()).collect();
    assert_eq!(labels, ["select c2", "connect c2"]);
    for s in &pg.scenarios {
        let names: Vec<_> = s.contestants.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["direct", "pgbalancer", "haproxy"], "{}", s.label());
        for c in &s.contestants {
            assert!(
                c.transactions > 0,
                "{} in {}: no transactions",
                c.name,
                s.label()
            );
            assert!(c.tps > 0.0 && c.p99_ms > 0.0, "{} in {}", c.name, s.label());
            assert_eq!(c.cpu_s_per_100k.is_some(), c.name != "direct");
            // The balancers' memory is measured (as root, where the peak can be reset).
            if c.name != "direct" {
                assert!(c.peak_rss_kib.is_some_and(|k| k > 0), "{} peak RSS", c.name);
                assert!(c.kib_per_session.is_some(), "{} KiB per session", c.name);
            }
        }
        assert_eq!(s.get("pgbalancer").unwrap().failed, 0, "{}", s.label());
    }
    assert_written(out.path(), "pg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holds_every_connection_open_through_each_proxy() {
    let out = tempfile::tempdir().unwrap();
    let report = bench(out.path(), &["idle", "--idle-conns", "300"]).await;
    let idle = report.idle.expect("idle results");
    let names: Vec<_> = idle.contestants.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["nginx", "haproxy", "ours"]);
    for c in &idle.contestants {
        let run = &c.runs[0];
        assert_eq!(
            (run.opened, run.alive),
            (300, 300),
            "{}: {:?}",
            c.name,
            run.first_error
        );
        assert!(
            run.rss_after_kib > 0 && c.kib_per_conn.is_finite(),
            "{}",
            c.name
        );
    }
    assert_written(out.path(), "idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instr_counts_nginx_and_ours_per_request_under_callgrind() {
    let out = tempfile::tempdir().unwrap();
    let report = bench(
        out.path(),
        &[
            "instr",
            "--requests",
            "200",
            "--contestants",
            "nginx,ours,ours+textlog",
            "--instr-bodies",
            "small",
            "--instr-modes",
            "keepalive",
        ],
    )
    .await;
    let instr = report.instr.expect("instr results");
    let names: Vec<_> = instr.scenarios.iter().map(|s| s.contestant).collect();
    assert_eq!(names, ["nginx", "ours", "ours+textlog"]);
    for s in &instr.scenarios {
        // A proxied request costs thousands of instructions at least, and the startup is not in
        // the count (it alone is tens of millions).
        assert!(
            (2_000.0..5_000_000.0).contains(&s.instructions_per_request),
            "{s:?}"
        );
        assert!(s.top.len() >= 5, "its costliest functions: {s:?}");
        let own: f64 = s.top.iter().map(|(ir, _)| ir).sum();
        assert!(own <= s.instructions_per_request * 1.001, "{s:?}");
    }
    // Writing the access log costs something: the same proxy with it costs more.
    assert!(
        instr.scenarios[2].instructions_per_request > instr.scenarios[1].instructions_per_request,
        "{:?}",
        instr.scenarios
    );
    let md = std::fs::read_to_string(out.path().join("instr.md")).unwrap();
    assert!(md.contains("Command: `"), "{md}");
    assert!(out.path().join("instr.json").is_file());
}
