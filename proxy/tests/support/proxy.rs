//! The proxy binary under test, run as a user runs it: flags, a real listener, real signals. Its
//! logs (stderr) are kept, not printed: a test that fails prints them, a passing one stays quiet
//! (the expected failures it provokes log WARN lines by design).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct ProxyProcess {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl ProxyProcess {
    /// Starts `proxy --listen <listen> --admin <admin> <args>` and waits until its admin
    /// listener answers. Its access log is off (`PROXY_ACCESS_LOG=off`) unless `args` ask.
    pub async fn start(listen: SocketAddr, admin: SocketAddr, args: &[&str]) -> Self {
        Self::spawn(listen, admin, args, false).await
    }

    /// [`Self::start`], with its stdout (the access log, at its default unless `args` say)
    /// read line by line.
    pub async fn start_logged(
        listen: SocketAddr,
        admin: SocketAddr,
        args: &[&str],
    ) -> (Self, AccessLines) {
        let mut proxy = Self::spawn(listen, admin, args, true).await;
        let stdout = proxy.child.stdout.take().expect("stdout is piped");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        each_line(stdout, move |line| tx.send(line).is_ok());
        (proxy, AccessLines(rx))
    }

    async fn spawn(listen: SocketAddr, admin: SocketAddr, args: &[&str], logged: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_proxy"));
        command
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--admin")
            .arg(admin.to_string())
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        if logged {
            command.stdout(Stdio::piped());
        } else {
            command.env("PROXY_ACCESS_LOG", "off");
        }
        let mut child = command.spawn().expect("starting the proxy binary");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        each_line(stderr, {
            let log = Arc::clone(&log);
            move |line| {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                true
            }
        });
        let proxy = Self {
            listen,
            admin,
            child,
            log,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(listen).await.is_ok()
                && proxy.admin_get("/healthz").await.is_some()
            {
                return proxy;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "proxy did not come up on {listen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET on the admin listener; None if it does not answer.
    pub async fn admin_get(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.admin).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = String::new();
        stream.read_to_string(&mut buf).await.ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// The status code of GET on the admin listener; None if it does not answer.
    pub async fn admin_status(&self, path: &str) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.admin).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = String::new();
        stream.read_to_string(&mut buf).await.ok()?;
        buf.get(9..12)?.parse().ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// Asks the proxy to reload its `--config` file.
    pub fn sighup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, flag: &str) {
        let status = Command::new("kill")
            .args([flag, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
    }

    /// The value of one series on `/metrics`, e.g. `proxy_config_reloads_total{result="ok"}`;
    /// None when the admin listener does not answer or the series is not there.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.admin_get("/metrics").await?;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The sum of every series of `family` whose labels start with `labels` (e.g. `group="a"`);
    /// None when the admin listener does not answer or no such series is there.
    pub async fn metric_sum(&self, family: &str, labels: &str) -> Option<f64> {
        let text = self.admin_get("/metrics").await?;
        let prefix = format!("{family}{{{labels}");
        let values: Vec<f64> = text
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the process to exit; None if it is still running after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Hands every line `from` yields to `take` on a thread of its own, until it ends or `take`
/// says stop.
fn each_line(
    from: impl std::io::Read + Send + 'static,
    mut take: impl FnMut(String) -> bool + Send + 'static,
) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if !take(line) {
                break;
            }
        }
    });
}

/// The lines a proxy started with [`ProxyProcess::start_logged`] wrote on stdout.
pub struct AccessLines(tokio::sync::mpsc::UnboundedReceiver<String>);

impl AccessLines {
    /// The next line, if one comes within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<String> {
        tokio::time::timeout(limit, self.0.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!(
                "---- proxy on {} logged ----\n{log}---- end of its log ----",
                self.listen
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
