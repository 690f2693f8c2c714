//! What the lab's tests share: the debug binaries next to the test's `lab`, and fast pods.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A phase had load (more than `min` requests) and no failed request.
pub fn assert_served(who: &str, phase: &str, stats: &bench::report::Stats, min: usize) {
    assert!(
        stats.requests > min,
        "{who}, phase {phase} had load: {}",
        stats.requests
    );
    assert_eq!(
        stats.failed, 0,
        "{who}, phase {phase}: failed requests: {:?}",
        stats.examples
    );
}

/// Every phase of `run` had load and no failed request, and every restored pod served.
pub fn assert_every_phase_served(run: &bench::report::Run) {
    for phase in &run.phases {
        assert_served(run.proxy, phase.name, &phase.stats, 20);
        if phase.restored {
            let first = phase.first_traffic_s.unwrap_or_else(|| {
                panic!(
                    "{}, phase {}: the restored pod never served",
                    run.proxy, phase.name
                )
            });
            assert!(
                first < 5.0,
                "{}, phase {}: the restored pod served after {first:.1} s",
                run.proxy,
                phase.name
            );
        }
    }
}

/// `lab ARGS` with short pod timings, the freshly built binaries and `out` for the results.
pub fn lab_args(args: &[&str], out: &Path) -> Vec<String> {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_lab"))
        .parent()
        .expect("target dir")
        .to_owned();
    let mut all = vec!["lab".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    for (flag, value) in [
        ("--start-delay", "1s"),
        ("--shutdown-delay", "1s"),
        ("--rate", "25"),
        ("--bin-dir", bin_dir.to_str().expect("UTF-8 path")),
        ("--out", out.to_str().expect("UTF-8 path")),
    ] {
        all.extend([flag.to_owned(), value.to_owned()]);
    }
    all
}
