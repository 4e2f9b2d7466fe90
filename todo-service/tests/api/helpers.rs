//! Test helpers: a real todo-service on 127.0.0.1:0 with its own fresh database (SQLite file or
//! PostgreSQL), in front of the real auth-service and a real Better Auth. Between the two
//! services sits a pass-through AuthService that only counts ValidateSession calls.
//!
//! Everything the services log in this test binary is captured ([`captured_logs`]); when a
//! [`TestApp`] is dropped it asserts that no session cookie or token its test created appears
//! in what was logged since it started, so every test doubles as a log-leak check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use proto::auth::v1::auth_service_client::AuthServiceClient;
use proto::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use proto::auth::v1::{ValidateSessionRequest, ValidateSessionResponse};
use proto::todo::v1 as pb;
use proto::todo::v1::todo_service_client::TodoServiceClient;
use testkit::better_auth::{BetterAuth, TestUser};
use testkit::postgres::TestDatabase;
use todo_service::config::{Config, DatabaseUrl};
use todo_service::startup::App;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Runs each test body once per backend: `<test>::on_sqlite` and `<test>::on_postgres`. The
/// PostgreSQL run is skipped (with a message) when no PostgreSQL is reachable, unless
/// `REQUIRE_POSTGRES=1`, which makes it fail.
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    let $app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    let Some($app) =
                        $crate::helpers::spawn_postgres_app().await
                    else {
                        return;
                    };
                    $body
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// Which database the todo-service under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// What `spawn_app_with` can change.
pub(crate) struct Options {
    pub(crate) backend: Backend,
    /// Point the todo-service at a port where nothing listens.
    pub(crate) auth_service_down: bool,
    /// Use this Better Auth instead of the shared one.
    pub(crate) better_auth: Option<&'static BetterAuth>,
}

/// A running todo-service, its own database, the auth-service chain and a connected client.
/// Dropping it shuts the servers down and drops the database.
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) metrics_addr: SocketAddr,
    pub(crate) backend: Backend,
    pub(crate) better_auth: &'static BetterAuth,
    pub(crate) client: TodoServiceClient<Channel>,
    pub(crate) channel: Channel,
    validate_calls: Arc<AtomicUsize>,
    pub(crate) postgres: Option<TestDatabase>,
    _sqlite_dir: Option<tempfile::TempDir>,
    shutdowns: Vec<oneshot::Sender<()>>,
    todo_server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Where this app's part of [`captured_logs`] starts.
    log_start: usize,
    /// Every cookie value and token this app's test created, checked against the logs on drop.
    secrets: Mutex<Vec<Secret>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for tx in self.shutdowns.drain(..) {
            let _ = tx.send(());
        }
        // A test that already failed has said why; a second panic would abort the binary.
        if !std::thread::panicking() {
            self.assert_no_secret_was_logged();
        }
    }
}

/// The todo-service on `backend`, with the shared Better Auth and a working auth-service.
pub(crate) async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(Options {
        backend,
        auth_service_down: false,
        better_auth: None,
    })
    .await
    .expect("PostgreSQL is available when asked for")
}

/// The todo-service on a fresh PostgreSQL database, or `None` (with a message) when PostgreSQL
/// is not reachable and not required.
pub(crate) async fn spawn_postgres_app() -> Option<TestApp> {
    spawn_app_with(Options {
        backend: Backend::Postgres,
        auth_service_down: false,
        better_auth: None,
    })
    .await
}

/// Starts the chain described by `options`. `None` only for a skipped PostgreSQL run.
pub(crate) async fn spawn_app_with(options: Options) -> Option<TestApp> {
    let log_start = captured_logs().len();
    let better_auth = options.better_auth.unwrap_or_else(BetterAuth::shared);
    let mut shutdowns = Vec::new();

    let (database_url, postgres, sqlite_dir) = match options.backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temp folder");
            let path = dir.path().join("nested").join("todos.db");
            (DatabaseUrl::Sqlite(path), None, Some(dir))
        }
        Backend::Postgres => {
            let database = testkit::postgres::fresh_database("todo_service")
                .await
                .expect("PostgreSQL is reachable (REQUIRE_POSTGRES=1)");
            let Some(database) = database else {
                eprintln!("PostgreSQL run skipped: no PostgreSQL server reachable");
                return None;
            };
            let url = DatabaseUrl::Postgres(database.url.clone());
            (url, Some(database), None)
        }
    };

    let validate_calls = Arc::new(AtomicUsize::new(0));
    let auth_service_url = if options.auth_service_down {
        format!("http://127.0.0.1:{}", closed_port().await)
    } else {
        let auth_addr = spawn_auth_service(better_auth, &mut shutdowns).await;
        let counter_addr =
            spawn_counting_proxy(auth_addr, validate_calls.clone(), &mut shutdowns).await;
        format!("http://{counter_addr}")
    };

    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        database_url,
        database_pool_size: 8,
        database_timeout_ms: 3000,
        auth_service_url: auth_service_url.parse().expect("uri"),
        auth_timeout_ms: 3000,
        log_format: telemetry::LogFormat::Pretty,
        metrics_listen: "127.0.0.1:0".parse().expect("address"),
    };
    let app = App::build(config).await.expect("the todo-service builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (tx, rx) = oneshot::channel();
    shutdowns.push(tx);
    let todo_server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));

    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .timeout(Duration::from_secs(15))
        .connect()
        .await
        .expect("the client connects");
    Some(TestApp {
        addr,
        metrics_addr,
        backend: options.backend,
        better_auth,
        client: TodoServiceClient::new(channel.clone()),
        channel,
        validate_calls,
        postgres,
        _sqlite_dir: sqlite_dir,
        shutdowns,
        todo_server: Some(todo_server),
        log_start,
        secrets: Mutex::new(Vec::new()),
    })
}

async fn spawn_auth_service(
    better_auth: &BetterAuth,
    shutdowns: &mut Vec<oneshot::Sender<()>>,
) -> SocketAddr {
    let mut config = auth_service::Config::new(better_auth.url().parse().expect("Better Auth URL"));
    config.listen = "127.0.0.1:0".parse().expect("address");
    let app = auth_service::App::build(config)
        .await
        .expect("the auth-service builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel();
    shutdowns.push(tx);
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    addr
}

/// Forwards ValidateSession to the real auth-service unchanged (message, response metadata,
/// error status) and counts the calls.
struct CountingAuth {
    upstream: AuthServiceClient<Channel>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl AuthService for CountingAuth {
    async fn validate_session(
        &self,
        request: Request<ValidateSessionRequest>,
    ) -> Result<Response<ValidateSessionResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.upstream
            .clone()
            .validate_session(Request::new(request.into_inner()))
            .await
    }
}

async fn spawn_counting_proxy(
    upstream: SocketAddr,
    calls: Arc<AtomicUsize>,
    shutdowns: &mut Vec<oneshot::Sender<()>>,
) -> SocketAddr {
    let channel = Channel::from_shared(format!("http://{upstream}"))
        .expect("uri")
        .connect_lazy();
    let proxy = CountingAuth {
        upstream: AuthServiceClient::new(channel),
        calls,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = oneshot::channel::<()>();
    shutdowns.push(tx);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthServiceServer::new(proxy))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = rx.await;
            }),
    );
    addr
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub(crate) async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

impl TestApp {
    /// A new Better Auth user, signed in. Its cookies are remembered for the log check.
    pub(crate) async fn user(&self, name: &str) -> TestUser {
        let user = self.better_auth.sign_up(name).await.expect("sign-up works");
        self.remember_cookies(&user.set_cookies);
        self.remember_cookies(std::slice::from_ref(&user.cookie));
        user
    }

    /// Adds the values of `cookies` (`Cookie` pairs or `Set-Cookie` headers) to the secrets that
    /// must never appear in the logs.
    pub(crate) fn remember_cookies(&self, cookies: &[String]) {
        let mut secrets = self.secrets.lock().expect("lock");
        for cookie in cookies {
            for secret in secrets_of_cookie(cookie) {
                if !secrets.contains(&secret) {
                    secrets.push(secret);
                }
            }
        }
    }

    /// Panics if any remembered secret appears in what the services logged since this app
    /// started. Runs on drop; callable earlier.
    pub(crate) fn assert_no_secret_was_logged(&self) {
        let secrets = self.secrets.lock().expect("lock").clone();
        let leaks = captured_logs().leaks_since(self.log_start, &secrets);
        assert!(
            leaks.is_empty(),
            "session secrets appear in the service logs: {leaks:?}"
        );
    }

    /// ValidateSession calls made so far by the todo-service.
    pub(crate) fn validate_calls(&self) -> usize {
        self.validate_calls.load(Ordering::SeqCst)
    }

    /// Stops the todo-service gracefully and waits for it.
    pub(crate) async fn stop_todo_service(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdowns.pop() {
            let _ = tx.send(());
        }
        match self.todo_server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }

    pub(crate) async fn create(&self, user: &TestUser, title: &str) -> Result<pb::Todo, Status> {
        self.create_with(
            user,
            pb::CreateTodoRequest {
                title: title.to_owned(),
                ..Default::default()
            },
        )
        .await
    }

    pub(crate) async fn create_with(
        &self,
        user: &TestUser,
        message: pb::CreateTodoRequest,
    ) -> Result<pb::Todo, Status> {
        let request = as_user(user, message);
        self.client
            .clone()
            .create_todo(request)
            .await
            .map(Response::into_inner)
    }

    pub(crate) async fn get(&self, user: &TestUser, id: &str) -> Result<pb::Todo, Status> {
        let message = pb::GetTodoRequest {
            id: id.to_owned(),
            ..Default::default()
        };
        self.client
            .clone()
            .get_todo(as_user(user, message))
            .await
            .map(Response::into_inner)
    }

    pub(crate) async fn list(
        &self,
        user: &TestUser,
        message: pb::ListTodosRequest,
    ) -> Result<pb::ListTodosResponse, Status> {
        self.client
            .clone()
            .list_todos(as_user(user, message))
            .await
            .map(Response::into_inner)
    }

    /// Every todo of `user`, following page tokens.
    pub(crate) async fn list_all(&self, user: &TestUser) -> Vec<pb::Todo> {
        let mut todos = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .list(
                    user,
                    pb::ListTodosRequest {
                        page_size: 100,
                        page_token,
                        ..Default::default()
                    },
                )
                .await
                .expect("listing works");
            todos.extend(page.todos);
            if page.next_page_token.is_empty() {
                return todos;
            }
            page_token = page.next_page_token;
        }
    }

    pub(crate) async fn update(
        &self,
        user: &TestUser,
        message: pb::UpdateTodoRequest,
    ) -> Result<pb::Todo, Status> {
        self.client
            .clone()
            .update_todo(as_user(user, message))
            .await
            .map(Response::into_inner)
    }

    pub(crate) async fn delete(&self, user: &TestUser, id: &str) -> Result<(), Status> {
        let message = pb::DeleteTodoRequest {
            id: id.to_owned(),
            ..Default::default()
        };
        self.client
            .clone()
            .delete_todo(as_user(user, message))
            .await
            .map(|_| ())
    }
}

/// `message` with `user`'s session cookie as `cookie` metadata, as a browser's gateway sends it.
pub(crate) fn as_user<T>(user: &TestUser, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "cookie",
        MetadataValue::try_from(user.cookie.as_str()).expect("cookie is ASCII"),
    );
    request
}

/// Asserts a failed call's code and returns the status.
#[track_caller]
pub(crate) fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got OK: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "message: {}", status.message());
            status
        }
    }
}

/// Asserts INVALID_ARGUMENT with a `BadRequest` violation naming `field`.
#[track_caller]
pub(crate) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let status = assert_code(result, Code::InvalidArgument);
    let violations = status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries google.rpc.BadRequest")
        .field_violations;
    assert!(
        violations.iter().any(|v| v.field == field),
        "expected a violation for {field}, got {violations:?}"
    );
}

/// The `google.rpc.ErrorInfo.reason` of a status.
pub(crate) fn reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// A proto timestamp as nanoseconds since the epoch, for ordering comparisons.
pub(crate) fn nanos(timestamp: Option<&prost_types::Timestamp>) -> i128 {
    let t = timestamp.expect("timestamp is set");
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

/// One value that must never be logged, and what it is (for the failure message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Secret {
    pub(crate) kind: &'static str,
    pub(crate) value: String,
}

/// Everything a `Cookie` pair or `Set-Cookie` header gives away: the `name=value` pair, the
/// value as sent and percent-decoded, and Better Auth's two halves of a signed value (the
/// 32-character session token before the `.` and the signature after it).
pub(crate) fn secrets_of_cookie(cookie: &str) -> Vec<Secret> {
    let pair = cookie.split(';').next().unwrap_or_default().trim();
    let Some((_, value)) = pair.split_once('=').filter(|(_, value)| !value.is_empty()) else {
        return Vec::new();
    };
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned();
    let mut secrets = vec![
        Secret {
            kind: "cookie pair",
            value: pair.to_owned(),
        },
        Secret {
            kind: "cookie value",
            value: value.to_owned(),
        },
        Secret {
            kind: "decoded cookie value",
            value: decoded.clone(),
        },
    ];
    for (raw, form) in [(value, "as sent"), (decoded.as_str(), "decoded")] {
        if let Some((token, signature)) = raw.split_once('.') {
            secrets.push(Secret {
                kind: "session token",
                value: token.to_owned(),
            });
            let kind = if form == "as sent" {
                "signature (as sent)"
            } else {
                "signature"
            };
            secrets.push(Secret {
                kind,
                value: signature.to_owned(),
            });
        }
    }
    // Empty values (a clearing Set-Cookie) and fragments too short to be secret say nothing.
    secrets.retain(|s| s.value.len() >= 16);
    secrets.dedup_by(|a, b| a.value == b.value);
    secrets
}

/// The log lines of every service started in this test binary (one global subscriber, so all
/// tests share it; each [`TestApp`] looks only at what was logged after it started).
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Bytes logged so far.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    /// The text logged from byte `start` on.
    pub(crate) fn since(&self, start: usize) -> String {
        let bytes = self.0.lock().expect("lock");
        String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned()
    }

    /// The secrets that appear in what was logged from byte `start` on.
    pub(crate) fn leaks_since(&self, start: usize, secrets: &[Secret]) -> Vec<Secret> {
        leaks_in(&self.since(start), secrets)
    }
}

/// The secrets that appear in `text`.
pub(crate) fn leaks_in(text: &str, secrets: &[Secret]) -> Vec<Secret> {
    secrets
        .iter()
        .filter(|secret| text.contains(&secret.value))
        .cloned()
        .collect()
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// The crates whose logs are captured at debug level (the services under test and what they
/// share); everything else at info.
pub(crate) const CAPTURE_FILTER: &str =
    "info,todo_service=debug,auth_service=debug,telemetry=debug";

/// The shared capture, installed as the global subscriber on first use. With `RUST_LOG` set,
/// logs also go to the test output, filtered by it, as `telemetry::init` would.
pub(crate) fn captured_logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let capture = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(true)
            .with_writer(buffer.clone())
            .with_filter(EnvFilter::new(CAPTURE_FILTER));
        let terminal = std::env::var_os("RUST_LOG").is_some().then(|| {
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::from_default_env())
        });
        tracing_subscriber::registry()
            .with(capture)
            .with(terminal)
            .try_init()
            .expect("the log capture is the first global subscriber of the test binary");
        buffer
    })
}

/// The answer to a hand-made gRPC call.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The HTTP status (200 for every gRPC answer).
    pub(crate) http: http::StatusCode,
    /// The gRPC status, from the trailers or, for a trailers-only answer, the headers.
    pub(crate) status: Status,
    /// The response messages, still framed.
    pub(crate) body: Bytes,
}

/// `message` in a gRPC frame: not compressed, big-endian length, the bytes.
pub(crate) fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).expect("a frame under 4 GiB");
    let mut frame = vec![0];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// Appends a length-delimited protobuf field (`string`, `bytes`) with these raw bytes, so a
/// test can send what no generated client would (a string that is not UTF-8).
pub(crate) fn push_bytes_field(message: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    push_varint(message, u64::from(number << 3 | 2));
    push_varint(message, bytes.len() as u64);
    message.extend_from_slice(bytes);
}

/// Appends a varint field (`int32`, `bool`); negative `int32` values take ten bytes, as prost
/// writes them.
pub(crate) fn push_varint_field(message: &mut Vec<u8>, number: u32, value: i64) {
    push_varint(message, u64::from(number << 3));
    push_varint(message, value as u64);
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl TestApp {
    /// POSTs `body` (raw, already framed or deliberately not) to `path` over HTTP/2 with the
    /// gRPC content type, `te: trailers`, `user`'s cookie if given, and `headers`.
    pub(crate) async fn raw_call(
        &self,
        path: &str,
        user: Option<&TestUser>,
        headers: &[(&str, &[u8])],
        body: Vec<u8>,
    ) -> RawAnswer {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let mut request = http::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(user) = user {
            request = request.header("cookie", user.cookie.as_str());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        let response = tokio::time::timeout(Duration::from_secs(15), client.request(request))
            .await
            .expect("the service answers in time")
            .expect("the service answers over HTTP/2");
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.expect("the response body arrives");
        let trailers = collected.trailers().cloned();
        let status = Status::from_header_map(&parts.headers)
            .or_else(|| trailers.as_ref().and_then(Status::from_header_map))
            .expect("a grpc-status in the headers or trailers");
        RawAnswer {
            http: parts.status,
            status,
            body: collected.to_bytes(),
        }
    }
}
