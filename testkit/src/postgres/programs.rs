//! Debian's Postgres server programs: where they are, and running them as the `postgres` user when
//! we are root (the server refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use super::PgError;

/// Overrides the search for the server binaries (a directory holding `initdb`, `pg_ctl`, …).
pub const BIN_ENV: &str = "TESTKIT_PG_BIN";

/// The uid and gid of the `postgres` user, when we must switch to it.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

#[derive(Debug)]
pub(crate) struct Programs {
    bin: PathBuf,
    /// `Some` when we run as root: every program runs through `runuser -u postgres --` and every
    /// file we write is handed to that user.
    owner: Option<Owner>,
}

impl Programs {
    pub(crate) async fn find() -> Result<Self, PgError> {
        let bin = match std::env::var_os(BIN_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => find_bin_dir().ok_or(PgError::NoBinaries)?,
        };
        let owner = if effective_uid_is_root() {
            Some(Owner {
                uid: id_of("-u").await?,
                gid: id_of("-g").await?,
            })
        } else {
            None
        };
        Ok(Self { bin, owner })
    }

    fn argv(&self, program: &str) -> (PathBuf, Vec<PathBuf>) {
        let path = self.bin.join(program);
        match self.owner {
            Some(_) => (
                PathBuf::from("runuser"),
                vec!["-u".into(), "postgres".into(), "--".into(), path],
            ),
            None => (path, Vec::new()),
        }
    }

    /// `program` from the server's bin directory, as `postgres` when we are root.
    pub(crate) fn command(&self, program: &str) -> tokio::process::Command {
        let (exe, prefix) = self.argv(program);
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(prefix)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            // Messages in English whatever the machine's locale, so errors read the same.
            .env("LC_MESSAGES", "C");
        cmd
    }

    /// The blocking twin of [`Programs::command`], for `Drop`.
    pub(crate) fn blocking_command(&self, program: &str) -> std::process::Command {
        let (exe, prefix) = self.argv(program);
        let mut cmd = std::process::Command::new(exe);
        cmd.args(prefix).stdin(Stdio::null());
        cmd
    }

    /// Hands `path` to the `postgres` user when we are root; a no-op otherwise.
    pub(crate) fn own(&self, path: &Path) -> Result<(), PgError> {
        match self.owner {
            Some(o) => std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
                .map_err(|e| PgError::io(format!("chown postgres {}", path.display()), e)),
            None => Ok(()),
        }
    }

    /// Runs `cmd` to completion within `limit`; a non-zero exit is an error carrying stderr.
    pub(crate) async fn run(
        &self,
        what: &str,
        mut cmd: tokio::process::Command,
        limit: Duration,
    ) -> Result<Output, PgError> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| PgError::Timeout {
                what: what.to_owned(),
                after: limit,
            })?
            .map_err(|e| PgError::io(format!("running {what}"), e))?;
        if !output.status.success() {
            return Err(PgError::Command {
                what: what.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output)
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` that has the programs we need.
fn find_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            let complete = ["initdb", "pg_ctl", "pg_basebackup", "postgres"]
                .iter()
                .all(|p| bin.join(p).is_file());
            complete.then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Linux reports the effective uid in `/proc/self/status` (`Uid: real effective saved fs`);
/// reading it avoids `unsafe` libc calls.
fn effective_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

async fn id_of(flag: &str) -> Result<u32, PgError> {
    let what = format!("id {flag} postgres");
    let output = tokio::process::Command::new("id")
        .args([flag, "postgres"])
        .output()
        .await
        .map_err(|e| PgError::io(what.clone(), e))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| PgError::Command {
            what: format!(
                "{what} (running as root needs the `postgres` user of Debian's postgresql package)"
            ),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
}
