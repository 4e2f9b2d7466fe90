//! Starts the real Better Auth server (`better-auth/server.mjs`, Node) for a test, and signs
//! users up, in and out through its HTTP API the way a browser would.
//!
//! Each [`BetterAuth`] is its own `node` process on a free port with its own database. The
//! process is killed when the value is dropped; it also exits by itself when the test binary
//! exits (it watches its stdin pipe), so no server outlives a test run.

use std::env;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{free_port, unique_suffix};

/// A fixed secret for test servers (random-looking so Better Auth does not warn about it).
const TEST_SECRET: &str = "qu8mXxbAGWgRmajKALj8ySkBYxY1UCKKkwVCnZRo";
/// How long a starting server may take to answer `GET /api/auth/ok`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts when the free port was taken by someone else between picking and listening.
const START_ATTEMPTS: usize = 3;
/// Every HTTP call the harness makes is bounded.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The session cookie names for http and https base URLs (cookie prefix `better-auth`).
const SESSION_COOKIE_NAMES: [&str; 2] = [
    "better-auth.session_token",
    "__Secure-better-auth.session_token",
];

/// Where a test Better Auth keeps its users and sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file in a temporary folder owned by the [`BetterAuth`] value.
    #[default]
    Sqlite,
    /// A PostgreSQL database URL (`postgres://…`), e.g. from
    /// [`fresh_database`](crate::postgres::fresh_database). Tables are created at startup.
    Postgres(String),
}

/// How to start a test Better Auth. `BetterAuthOptions::default()` is SQLite on an http base URL
/// with Better Auth's default session lifetimes.
#[derive(Debug, Clone, Default)]
pub struct BetterAuthOptions {
    /// The database the server uses.
    pub database: Database,
    /// Configure the base URL as `https://127.0.0.1:PORT` (the server itself stays plain http):
    /// cookies are then named `__Secure-better-auth.*` and marked `Secure`.
    pub https_base_url: bool,
    /// `session.expiresIn` in seconds (Better Auth's default: 7 days).
    pub session_expires_in_secs: Option<u64>,
    /// `session.updateAge` in seconds, the sliding-refresh age (Better Auth's default: 1 day).
    pub session_update_age_secs: Option<u64>,
    /// Origins trusted for POST requests besides the base URL's own origin.
    pub trusted_origins: Vec<String>,
}

/// A user signed up or signed in through Better Auth's HTTP API.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Better Auth's user id.
    pub id: String,
    /// The email address (Better Auth stores it lower-cased).
    pub email: String,
    /// The display name.
    pub name: String,
    /// The password, for [`BetterAuth::sign_in`].
    pub password: String,
    /// Ready-to-send `Cookie` header value: `better-auth.session_token=…` (or the
    /// `__Secure-` name with an https base URL).
    pub cookie: String,
    /// Every `Set-Cookie` header of the response, verbatim.
    pub set_cookies: Vec<String>,
}

/// Where a SQLite database lives: a temp file for [`BetterAuth::start`], memory for the shared
/// instance (a `static` is never dropped, so a temp folder would never be removed).
#[derive(Debug, Clone, Copy)]
enum SqliteStorage {
    TempFile,
    Memory,
}

/// A running Better Auth server (a `node` child process). Dropping it kills the process.
pub struct BetterAuth {
    url: String,
    base_url: String,
    process: Mutex<Option<NodeProcess>>,
    logs: Arc<Mutex<String>>,
    http: reqwest::Client,
    // Kept alive for as long as the server may use the SQLite file in it.
    _data_dir: Option<TempDir>,
}

/// The child with the handles that must live and die with it.
struct NodeProcess {
    child: Child,
    // The server exits when this pipe closes (EXIT_ON_STDIN_EOF), even if we are SIGKILLed.
    stdin: ChildStdin,
    readers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BetterAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BetterAuth")
            .field("url", &self.url)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl BetterAuth {
    /// Starts `node better-auth/server.mjs` on a free port and waits until it answers
    /// `GET /api/auth/ok` (at most 30 s).
    ///
    /// # Errors
    ///
    /// When `better-auth/node_modules` is missing (run `npm ci --prefix better-auth`), `node`
    /// cannot be run, or the server exits or stays silent during startup; the error then
    /// carries the server's output.
    pub async fn start(options: BetterAuthOptions) -> anyhow::Result<Self> {
        Self::start_with(options, SqliteStorage::TempFile).await
    }

    /// One default (SQLite, http) server per test binary, started on first use.
    ///
    /// Works from any tokio runtime (each `#[tokio::test]` has its own): the server is started
    /// on a dedicated thread and the harness keeps no connections between calls. Its database
    /// is in memory and the process exits with the test binary.
    ///
    /// # Panics
    ///
    /// When the server cannot be started (the message says why).
    pub fn shared() -> &'static BetterAuth {
        static SHARED: OnceLock<BetterAuth> = OnceLock::new();
        SHARED.get_or_init(|| {
            let started = std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot build a tokio runtime to start Better Auth")?;
                runtime.block_on(Self::start_with(
                    BetterAuthOptions::default(),
                    SqliteStorage::Memory,
                ))
            })
            .join();
            match started {
                Ok(Ok(better_auth)) => better_auth,
                Ok(Err(error)) => panic!("starting the shared Better Auth failed: {error:#}"),
                Err(_) => panic!("the thread starting the shared Better Auth panicked"),
            }
        })
    }

    /// The URL the server listens on, `http://127.0.0.1:PORT`: what a service's
    /// `BETTER_AUTH_URL` should be (also with `https_base_url`, since the server is plain http).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Better Auth's configured base URL: `url()`, or `https://127.0.0.1:PORT` with
    /// `https_base_url`. Its origin is trusted for POST requests.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Everything the server printed so far (stdout and stderr, interleaved by line), e.g. to
    /// check that no token leaked into logs.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Signs up a new user with a unique email (`{name_hint}-{nanos}-{counter}@example.com`) and
    /// a generated password; Better Auth signs the new user in.
    ///
    /// # Errors
    ///
    /// When the request fails, Better Auth does not answer 200, or no session cookie comes back.
    pub async fn sign_up(&self, name_hint: &str) -> anyhow::Result<TestUser> {
        let unique = unique_suffix();
        let email = format!("{}-{unique}@example.com", email_slug(name_hint));
        let password = format!("pw-{unique}-not-a-real-secret");
        let name = if name_hint.trim().is_empty() {
            "Test User"
        } else {
            name_hint
        };
        let response = self
            .post("/api/auth/sign-up/email")
            .json(&json!({ "name": name, "email": email, "password": password }))
            .send()
            .await
            .context("sign-up request to Better Auth failed")?;
        user_from_response(response, password, "sign-up").await
    }

    /// Signs an existing user in.
    ///
    /// # Errors
    ///
    /// When the request fails, Better Auth does not answer 200 (e.g. 401 for a wrong password),
    /// or no session cookie comes back.
    pub async fn sign_in(&self, email: &str, password: &str) -> anyhow::Result<TestUser> {
        let response = self
            .post("/api/auth/sign-in/email")
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .context("sign-in request to Better Auth failed")?;
        user_from_response(response, password.to_owned(), "sign-in").await
    }

    /// Signs the session in `cookie` (a `Cookie` header value) out: Better Auth deletes it.
    /// Sends `Origin: <base URL>`, which Better Auth requires on a POST that carries a cookie.
    ///
    /// # Errors
    ///
    /// When the request fails or Better Auth does not answer 200.
    pub async fn sign_out(&self, cookie: &str) -> anyhow::Result<()> {
        let response = self
            .post("/api/auth/sign-out")
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .context("sign-out request to Better Auth failed")?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("Better Auth sign-out answered {status}: {body}");
        }
        Ok(())
    }

    /// Kills the server (SIGKILL) and waits for it to exit; its port then refuses connections.
    /// Idempotent; also done on drop.
    pub fn stop(&self) {
        let process = self
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(NodeProcess {
            mut child,
            stdin,
            readers,
        }) = process
        {
            drop(stdin);
            // Errors mean the child already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
            for reader in readers {
                let _ = reader.join();
            }
        }
    }

    async fn start_with(
        options: BetterAuthOptions,
        storage: SqliteStorage,
    ) -> anyhow::Result<Self> {
        let dir = better_auth_dir();
        if !dir.join("node_modules").is_dir() {
            bail!(
                "{} is missing: run `npm ci --prefix better-auth` in the repository root \
                 (or `cargo xtask test`, which does it)",
                dir.join("node_modules").display()
            );
        }
        let http = http_client()?;
        let mut attempt = 1;
        loop {
            match Self::spawn(&options, storage, http.clone()).await {
                // Another process took the port between free_port() and listen(): pick again.
                Err(error)
                    if attempt < START_ATTEMPTS && format!("{error:#}").contains("EADDRINUSE") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn spawn(
        options: &BetterAuthOptions,
        storage: SqliteStorage,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let base_url = if options.https_base_url {
            format!("https://127.0.0.1:{port}")
        } else {
            url.clone()
        };

        let mut command = Command::new("node");
        command.arg("server.mjs").current_dir(better_auth_dir());
        // A clean environment: an inherited DATABASE_URL, NODE_ENV=test or TEST=true (which turn
        // off Better Auth's Origin checks) must not change what the tests see.
        command.env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(value) = env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("BETTER_AUTH_URL", &base_url)
            .env("BETTER_AUTH_SECRET", TEST_SECRET)
            .env("EXIT_ON_STDIN_EOF", "1");
        if !options.trusted_origins.is_empty() {
            command.env("TRUSTED_ORIGINS", options.trusted_origins.join(","));
        }
        if let Some(seconds) = options.session_expires_in_secs {
            command.env("SESSION_EXPIRES_IN", seconds.to_string());
        }
        if let Some(seconds) = options.session_update_age_secs {
            command.env("SESSION_UPDATE_AGE", seconds.to_string());
        }
        let data_dir = match (&options.database, storage) {
            (Database::Postgres(database_url), _) => {
                command.env("DATABASE_URL", database_url);
                None
            }
            (Database::Sqlite, SqliteStorage::Memory) => {
                command.env("SQLITE_PATH", ":memory:");
                None
            }
            (Database::Sqlite, SqliteStorage::TempFile) => {
                let dir = tempfile::Builder::new()
                    .prefix("better-auth-test-")
                    .tempdir()
                    .context("cannot create a temporary folder for Better Auth's SQLite file")?;
                command.env("SQLITE_PATH", dir.path().join("better-auth.db"));
                Some(dir)
            }
        };

        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run `node` (Node 20 must be on PATH)")?;
        let logs = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(capture(stdout, Arc::clone(&logs)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(capture(stderr, Arc::clone(&logs)));
        }
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("node's stdin was not piped");
        };

        let better_auth = BetterAuth {
            url,
            base_url,
            process: Mutex::new(Some(NodeProcess {
                child,
                stdin,
                readers,
            })),
            logs,
            http,
            _data_dir: data_dir,
        };
        // On error `better_auth` is dropped here, which kills the child.
        better_auth.wait_until_ready().await?;
        Ok(better_auth)
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let ok_url = format!("{}/api/auth/ok", self.url);
        loop {
            if let Some(status) = self.exit_status() {
                self.join_readers();
                bail!(
                    "Better Auth exited during startup ({status}); its output:\n{}",
                    self.logs()
                );
            }
            let answer = self
                .http
                .get(&ok_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|response| response.status() == reqwest::StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "Better Auth did not answer GET {ok_url} within {} s; its output:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `Some` once the child has exited (or was stopped).
    fn exit_status(&self) -> Option<ExitStatus> {
        let mut process = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        match process.as_mut() {
            Some(process) => process.child.try_wait().ok().flatten(),
            None => Some(ExitStatus::default()),
        }
    }

    /// Waits until the output of an exited child is fully captured.
    fn join_readers(&self) {
        let readers = self
            .process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(|process| std::mem::take(&mut process.readers))
            .unwrap_or_default();
        for reader in readers {
            let _ = reader.join();
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .header(reqwest::header::ORIGIN, &self.base_url)
    }
}

impl Drop for BetterAuth {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `better-auth/` next to this crate.
fn better_auth_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("better-auth")
}

/// No connection pool: a pooled connection belongs to the runtime that opened it, and the
/// shared instance is used from many runtimes (one per `#[tokio::test]`).
fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default crypto provider; an error means one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client for Better Auth")
}

/// Appends everything `stream` yields to `logs`, line by line, until the child closes it.
fn capture(stream: impl Read + Send + 'static, logs: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader
            .read_until(b'\n', &mut line)
            .is_ok_and(|read| read > 0)
        {
            logs.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

/// The hint as the local part of an email: lower-case ASCII letters, digits and dashes.
fn email_slug(hint: &str) -> String {
    let slug: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        "user".to_owned()
    } else {
        slug.to_owned()
    }
}

/// Reads a sign-up/sign-in answer: 200, `{"user":{…}}` and a session cookie.
async fn user_from_response(
    response: reqwest::Response,
    password: String,
    action: &str,
) -> anyhow::Result<TestUser> {
    let status = response.status();
    let set_cookies: Vec<String> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    let body = response
        .text()
        .await
        .with_context(|| format!("cannot read Better Auth's {action} answer"))?;
    if status != reqwest::StatusCode::OK {
        // Error bodies are {"message","code"}: no credentials in them.
        bail!("Better Auth {action} answered {status}: {body}");
    }
    let body: Value = serde_json::from_str(&body)
        .with_context(|| format!("Better Auth's {action} answer is not JSON"))?;
    let field = |name: &str| {
        body["user"][name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("Better Auth's {action} answer has no user.{name}"))
    };
    let cookie = session_cookie(&set_cookies)
        .with_context(|| format!("Better Auth's {action} answer set no session cookie"))?;
    Ok(TestUser {
        id: field("id")?,
        email: field("email")?,
        name: field("name")?,
        password,
        cookie,
        set_cookies,
    })
}

/// The `name=value` part of the first non-empty session-token `Set-Cookie`.
fn session_cookie(set_cookies: &[String]) -> Option<String> {
    set_cookies
        .iter()
        .filter_map(|header| header.split(';').next())
        .map(str::trim)
        .find(|pair| {
            pair.split_once('=').is_some_and(|(name, value)| {
                SESSION_COOKIE_NAMES.contains(&name) && !value.is_empty()
            })
        })
        .map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_takes_the_name_value_pair_of_either_session_cookie_name() {
        let plain = vec![
            "better-auth.dont_remember=true.x; Path=/".to_owned(),
            "better-auth.session_token=abc.d%2Fe%3D; Max-Age=604800; Path=/; HttpOnly".to_owned(),
        ];
        assert_eq!(
            session_cookie(&plain).as_deref(),
            Some("better-auth.session_token=abc.d%2Fe%3D")
        );
        let secure = vec!["__Secure-better-auth.session_token=abc.def; Secure".to_owned()];
        assert_eq!(
            session_cookie(&secure).as_deref(),
            Some("__Secure-better-auth.session_token=abc.def")
        );
    }

    #[test]
    fn session_cookie_ignores_clearing_and_unrelated_cookies() {
        let headers = vec![
            "better-auth.session_token=; Max-Age=0; Path=/".to_owned(),
            "other.session_token=abc; Path=/".to_owned(),
        ];
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn email_slug_keeps_only_lower_case_letters_digits_and_dashes() {
        assert_eq!(email_slug("Alice Smith!"), "alice-smith");
        assert_eq!(email_slug("  "), "user");
    }
}
