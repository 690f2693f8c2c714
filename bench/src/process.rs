//! Child processes of the lab and the benchmarks: started with their output in a log file, killed
//! with everything they started when dropped (nginx's workers outlive a killed master otherwise).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM, as the kubelet does to a deleted pod.
    pub fn sigterm(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Sends `signal` if the process still runs.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGKILLs what the process started (found while it is still their parent), then the process.
    fn kill_tree(&mut self) {
        if let Some(pid) = self.pid() {
            for d in descendants(pid) {
                let _ = kill(Pid::from_raw(d as i32), Signal::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }

    /// Waits up to `limit` for the process to exit, then kills it.
    pub async fn wait_or_kill(&mut self, limit: Duration) {
        if tokio::time::timeout(limit, self.child.wait())
            .await
            .is_err()
        {
            self.kill_tree();
            let _ = self.child.wait().await;
        }
    }

    /// Fails with the end of its log if the process already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(15).collect();
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_tree();
    }
}

/// `pid` and every process below it, parents before children, from `/proc/<pid>/stat`.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    out.extend(descendants(pid));
    out
}

fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_fields(pid)?.get(1)?.parse().ok()?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// The fields of `/proc/<pid>/stat` after the command name, so index 0 is the state (field 3 in
/// proc(5)), 1 the parent, 11 and 12 utime and stime. The name may hold spaces and parentheses.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Raises the soft open-files limit to the hard one: 10k idle connections need 10k descriptors
/// here and as many in the proxy, which inherits the limit. Root may raise the hard limit too.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let want = hard.max(65_536);
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() && soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The open-files limit now (soft), which children inherit.
pub fn nofile_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |l| l.0)
}

/// Polls `addr` until a TCP connect succeeds, for at most `limit`.
pub async fn wait_listening(
    process: &mut Process,
    addr: std::net::SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    poll(process, limit, &format!("listening on {addr}"), || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await
}

/// Polls `GET /readyz` on `addr` until it answers 200, for at most `limit`.
pub async fn wait_ready(
    process: &mut Process,
    addr: std::net::SocketAddr,
    limit: Duration,
) -> anyhow::Result<()> {
    poll(process, limit, &format!("ready on {addr}"), || async {
        http_get(addr, "/readyz")
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await
}

/// Checks `done` every 50 ms while `process` runs, for at most `limit`.
async fn poll<F: std::future::Future<Output = bool>>(
    process: &mut Process,
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        process.check_running()?;
        if done().await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} is not {what} after {limit:?}", process.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` over a fresh connection (at most 2 s, testkit's raw client): the status code and
/// the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let answer = tokio::time::timeout(Duration::from_secs(2), testkit::http::get(addr, path))
        .await
        .ok()?
        .ok()?;
    Some((answer.status, answer.body))
}
