//! Starts the stack's processes with prefixed logs, waits until they listen, and stops them in
//! reverse order with SIGTERM (then SIGKILL after a grace period). Harnesses can also signal one
//! process and start it again, and send the logs to files instead of the terminal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The running processes, in start order.
#[derive(Default)]
pub(crate) struct Stack {
    children: Vec<(String, Child)>,
    log_dir: Option<PathBuf>,
}

impl Stack {
    /// A stack whose processes' output goes to `<dir>/<name>.log` (appended) instead of stderr.
    pub(crate) fn logging_to(dir: PathBuf) -> Self {
        Self {
            children: Vec::new(),
            log_dir: Some(dir),
        }
    }

    /// Starts `cmd`, copying each line it prints to our stderr as `[name] line`.
    pub(crate) fn spawn(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<()> {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start {name}"))?;
        let log = self
            .log_dir
            .as_ref()
            .map(|dir| dir.join(format!("{name}.log")));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(prefix_lines(name.to_owned(), out, log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(prefix_lines(name.to_owned(), err, log));
        }
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Resolves when a process exits, naming it and its exit status; it is no longer tracked.
    /// Never resolves when nothing is running.
    pub(crate) async fn next_exit(&mut self) -> String {
        loop {
            let exited = self
                .children
                .iter_mut()
                .enumerate()
                .find_map(|(i, (_, child))| {
                    child.try_wait().ok().flatten().map(|status| (i, status))
                });
            if let Some((i, status)) = exited {
                let (name, _) = self.children.remove(i);
                return format!("{name} exited ({status})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every process, newest first: SIGTERM, then SIGKILL after 10 s.
    pub(crate) async fn shutdown(mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(Ok(status)) => eprintln!("[xtask] {name} stopped ({status})"),
                _ => {
                    eprintln!("[xtask] {name} did not stop within 10 s: killing it");
                    let _ = child.kill().await;
                }
            }
        }
    }
}

/// Copies `stream` line by line to stderr as `[name] line`, or to the file `log` when given.
async fn prefix_lines(name: String, stream: impl AsyncRead + Unpin, log: Option<PathBuf>) {
    let mut file = match &log {
        Some(path) => tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .ok(),
        None => None,
    };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match &mut file {
            Some(file) => {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
            None => eprintln!("[{name}] {line}"),
        }
    }
}

/// Waits until `addr` accepts TCP connections, or fails after `timeout`.
pub(crate) async fn wait_for_port(
    name: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{name} did not listen on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Stack {
    /// The process id of the process called `name`.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, child)| child.id())
    }

    /// Sends `signal` (`KILL`, `TERM`, ...) to the process called `name`; it stays in the stack.
    pub(crate) async fn signal(&self, name: &str, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .pid(name)
            .with_context(|| format!("no running process called {name}"))?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed ({status})");
        Ok(())
    }

    /// Waits up to `grace` for the process called `name` to exit (then kills it) and forgets
    /// it. Returns its exit status, or `None` when it had to be killed.
    pub(crate) async fn wait_exit(
        &mut self,
        name: &str,
        grace: Duration,
    ) -> anyhow::Result<Option<ExitStatus>> {
        let index = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .with_context(|| format!("no process called {name}"))?;
        let (_, mut child) = self.children.remove(index);
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => {
                let _ = child.kill().await;
                Ok(None)
            }
        }
    }

    /// The process id of each running process, by name, in start order.
    pub(crate) fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .filter_map(|(name, child)| Some((name.clone(), child.id()?)))
            .collect()
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
