//! Pieces shared by the measuring harnesses (`bench`, `chaos`): the release build, the command of
//! each service, fresh PostgreSQL databases, sign-up, grpc-web framing and /proc readings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::process::Command;

use crate::run_step;

/// Builds the three Rust services in release mode; returns the folder holding the binaries.
pub(crate) fn build_release() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run_step(std::process::Command::new(&cargo).args([
        "build",
        "--release",
        "-p",
        "auth-service",
        "-p",
        "todo-service",
        "-p",
        "gateway",
    ]))?;
    Ok(crate::target_dir().join("release"))
}

/// Better Auth (`node server.mjs`) on `port`, its public URL `url`, storing in `database_url`,
/// trusting POSTs from `trusted_origin`.
pub(crate) fn better_auth_command(
    port: u16,
    url: &str,
    database_url: &str,
    trusted_origin: &str,
) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs")
        .current_dir("better-auth")
        .env("PORT", port.to_string())
        .env("BETTER_AUTH_URL", url)
        .env("DATABASE_URL", database_url)
        .env("TRUSTED_ORIGINS", trusted_origin);
    cmd
}

/// The auth-service on `port`, asking Better Auth at `better_auth_url`.
pub(crate) fn auth_command(bin_dir: &Path, port: u16, better_auth_url: &str) -> Command {
    let mut cmd = Command::new(bin_dir.join("auth-service"));
    cmd.env("AUTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("BETTER_AUTH_URL", better_auth_url)
        // Any free port: several services of one kind may run at once (and beside `dev`).
        .env("METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    cmd
}

/// The todo-service on `port`, storing in `database_url`, asking the auth-service on `auth_port`.
pub(crate) fn todo_command(
    bin_dir: &Path,
    port: u16,
    database_url: &str,
    auth_port: u16,
) -> Command {
    let mut cmd = Command::new(bin_dir.join("todo-service"));
    cmd.env("TODO_LISTEN", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("AUTH_SERVICE_URL", format!("http://127.0.0.1:{auth_port}"))
        // Any free port: several services of one kind may run at once (and beside `dev`).
        .env("METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    cmd
}

/// The gateway on `port`, in front of the auth-service, the todo-service and Better Auth.
pub(crate) fn gateway_command(
    bin_dir: &Path,
    port: u16,
    auth_port: u16,
    todo_port: u16,
    better_auth_url: &str,
) -> Command {
    let mut cmd = Command::new(bin_dir.join("gateway"));
    cmd.env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("AUTH_SERVICE_URL", format!("http://127.0.0.1:{auth_port}"))
        .env("TODO_SERVICE_URL", format!("http://127.0.0.1:{todo_port}"))
        .env("BETTER_AUTH_URL", better_auth_url)
        // Any free port: several services of one kind may run at once (and beside `dev`).
        .env("METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    cmd
}

/// The HTTP client for loopback calls (no proxy from the environment, Nagle off).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built with `rustls-no-provider`; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(4))
        .tcp_nodelay(true)
        .build()?)
}

/// The fresh PostgreSQL databases of one run: one for Better Auth (index 0), one for the todos
/// (index 1).
pub(crate) struct Databases {
    admin: String,
    names: [String; 2],
}

impl Databases {
    /// Creates `<prefix>_auth_<stamp>` and `<prefix>_todo_<stamp>` on `server`.
    pub(crate) async fn create(server: &str, prefix: &str) -> anyhow::Result<Self> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let names = [
            format!("{prefix}_auth_{stamp}"),
            format!("{prefix}_todo_{stamp}"),
        ];
        let admin = format!("{}/postgres", server.trim_end_matches('/'));
        let client = connect(&admin)
            .await
            .with_context(|| format!("the harness needs PostgreSQL at {server}"))?;
        for name in &names {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await?;
        }
        Ok(Self { admin, names })
    }

    /// The URL of database `index` on `server`.
    pub(crate) fn url(&self, index: usize, server: &str) -> String {
        format!("{}/{}", server.trim_end_matches('/'), self.names[index])
    }

    /// Drops both databases (best effort).
    pub(crate) async fn drop_all(&self) {
        if let Ok(client) = connect(&self.admin).await {
            for name in &self.names {
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

/// A tokio-postgres client whose connection runs on its own task.
pub(crate) async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Signs up user number `i`; returns the `Cookie` header value of its session.
pub(crate) async fn sign_up(
    http: &reqwest::Client,
    better_auth: &str,
    i: usize,
) -> anyhow::Result<String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let body = format!(
        r#"{{"name":"Bench {i}","email":"bench-{i}-{stamp}@example.com","password":"bench-password-{i}"}}"#
    );
    let response = http
        .post(format!("{better_auth}/api/auth/sign-up/email"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("better-auth.session_token="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    cookie.with_context(|| format!("sign-up answered {status} without a session cookie"))
}

/// One grpc-web data frame (flag 0, big-endian length, the message).
pub(crate) fn grpc_web_frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// The `grpc-status` in a grpc-web trailer frame (flag 0x80), if any.
pub(crate) fn trailer_status(body: &[u8]) -> Option<String> {
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = (&rest[1..5]).get_u32() as usize;
        let frame = rest.get(5..5 + len)?;
        if flag & 0x80 != 0 {
            let text = String::from_utf8_lossy(frame);
            return text
                .lines()
                .find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_owned()));
        }
        rest = &rest[5 + len..];
    }
    None
}

/// The first data frame's message in a grpc-web body, if any.
pub(crate) fn first_message(body: &[u8]) -> Option<&[u8]> {
    let flag = *body.first()?;
    let len = (&body.get(1..5)?[..]).get_u32() as usize;
    if flag & 0x80 != 0 {
        return None;
    }
    body.get(5..5 + len)
}

/// Resident memory of each process, in KiB (`VmRSS`; 0 when unreadable).
pub(crate) fn rss_kib(pids: &[(String, u32)]) -> Vec<(String, u64)> {
    pids.iter()
        .map(|(name, pid)| (name.clone(), rss_of(*pid).unwrap_or(0)))
        .collect()
}

/// Resident memory of one process, in KiB.
pub(crate) fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open file descriptors of one process.
pub(crate) fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}
