//! What the lab's tests share: the debug binaries next to the test's `lab`, and fast pods.

use std::path::{Path, PathBuf};

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
