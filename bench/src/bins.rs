//! Where the binaries under test are: next to the lab's (or bench's) own executable (one
//! `cargo build`), or in `--bin-dir`.

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
        Ok(Self {
            proxy: binary(dir, "proxy")?,
            pgbalancer: binary(dir, "pgbalancer")?,
            backend: binary(dir, "backend")?,
        })
    }
}

/// Our binary `name` in `dir`, or next to the running executable (one `cargo build` puts them
/// together).
pub fn binary(dir: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default(),
    };
    let bin = dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} is missing: build it first (cargo build --release -p {name})",
            bin.display()
        );
    }
    Ok(bin)
}

/// Whether an external program is installed.
pub fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
