//! Where the binaries under test are: next to the lab's own executable (one `cargo build`), or
//! in `--bin-dir`.

use std::path::{Path, PathBuf};

use anyhow::bail;

#[derive(Debug, Clone)]
pub struct Bins {
    pub proxy: PathBuf,
    pub pgbalancer: PathBuf,
    pub backend: PathBuf,
}

impl Bins {
    pub fn locate(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_owned(),
            None => std::env::current_exe()?
                .parent()
                .map(Path::to_owned)
                .unwrap_or_default(),
        };
        let bins = Self {
            proxy: dir.join("proxy"),
            pgbalancer: dir.join("pgbalancer"),
            backend: dir.join("backend"),
        };
        for bin in [&bins.proxy, &bins.pgbalancer, &bins.backend] {
            if !bin.is_file() {
                bail!(
                    "{} is missing: build it first (cargo build --release -p proxy -p pgbalancer -p backend)",
                    bin.display()
                );
            }
        }
        Ok(bins)
    }
}

/// Whether an external program is installed.
pub fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
