//! Test harness: a gateway on 127.0.0.1:0 in front of a recording upstream (a tonic server that
//! plays todo-service and auth-service and keeps every request's metadata), a built-dashboard
//! fixture, and a hand-written grpc-web client (binary and base64 text framing).

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::{Buf, Bytes};
use gateway::{App, Config};
use http::{HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use proto::{
    auth::v1::{
        User, ValidateSessionRequest, ValidateSessionResponse,
        auth_service_server::{AuthService, AuthServiceServer},
    },
    todo::v1::{
        CreateTodoRequest, DeleteTodoRequest, DeleteTodoResponse, GetTodoRequest, ListTodosRequest,
        ListTodosResponse, Todo, UpdateTodoRequest,
        todo_service_server::{TodoService, TodoServiceServer},
    },
};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, metadata::MetadataValue};

/// The refresh cookie the fake auth-service hands out for a valid session.
pub const REFRESHED_COOKIE: &str =
    "better-auth.session_token=valid; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax";
/// The clearing cookie the fake services send with UNAUTHENTICATED.
pub const CLEARING_COOKIE: &str = "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly";
/// The two cookies the fake todo-service puts on every ListTodos answer.
pub const LIST_SET_COOKIES: [&str; 2] = ["first=1; Path=/; HttpOnly", "second=2; Path=/"];
/// A session cookie the fake auth-service accepts.
pub const VALID_SESSION: &str = "theme=dark; better-auth.session_token=valid";

/// One call that reached the recording upstream.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub method: &'static str,
    pub metadata: HeaderMap,
}

/// A tonic server on 127.0.0.1:0 serving fake `todo.v1.TodoService` and `auth.v1.AuthService`.
#[derive(Debug, Clone)]
pub struct RecordingUpstream {
    pub url: String,
    calls: Arc<Mutex<Vec<RecordedCall>>>,
}

impl RecordingUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            calls: calls.clone(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TodoServiceServer::new(fake.clone()))
                .add_service(AuthServiceServer::new(fake))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self { url, calls }
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().unwrap().clone()
    }

    /// The metadata of the only recorded call (fails when there is not exactly one).
    pub fn only_call(&self) -> RecordedCall {
        let calls = self.calls();
        assert_eq!(
            calls.len(),
            1,
            "expected exactly one upstream call: {calls:?}"
        );
        calls.into_iter().next().unwrap()
    }
}

#[derive(Debug, Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<RecordedCall>>>,
}

impl Fake {
    fn record<T>(&self, method: &'static str, request: &Request<T>) {
        let metadata = request.metadata().clone().into_headers();
        self.calls
            .lock()
            .unwrap()
            .push(RecordedCall { method, metadata });
    }
}

fn with_set_cookies<T>(mut response: Response<T>, cookies: &[&'static str]) -> Response<T> {
    for cookie in cookies {
        response
            .metadata_mut()
            .append("set-cookie", MetadataValue::from_static(cookie));
    }
    response
}

fn unauthenticated_with_clearing_cookie() -> Status {
    let mut status = Status::unauthenticated("session invalid");
    status
        .metadata_mut()
        .insert("set-cookie", MetadataValue::from_static(CLEARING_COOKIE));
    status
}

#[tonic::async_trait]
impl TodoService for Fake {
    async fn list_todos(
        &self,
        request: Request<ListTodosRequest>,
    ) -> Result<Response<ListTodosResponse>, Status> {
        self.record("ListTodos", &request);
        let todo = Todo {
            id: "todo-1".into(),
            user_id: request.get_ref().user_id.clone(),
            title: "from upstream".into(),
            ..Todo::default()
        };
        let response = ListTodosResponse {
            todos: vec![todo],
            next_page_token: String::new(),
            total_size: 1,
        };
        Ok(with_set_cookies(Response::new(response), &LIST_SET_COOKIES))
    }

    async fn get_todo(&self, request: Request<GetTodoRequest>) -> Result<Response<Todo>, Status> {
        self.record("GetTodo", &request);
        Err(unauthenticated_with_clearing_cookie())
    }

    async fn create_todo(
        &self,
        request: Request<CreateTodoRequest>,
    ) -> Result<Response<Todo>, Status> {
        self.record("CreateTodo", &request);
        let request = request.into_inner();
        Ok(Response::new(Todo {
            id: "todo-2".into(),
            title: request.title,
            description: request.description,
            ..Todo::default()
        }))
    }

    async fn update_todo(
        &self,
        request: Request<UpdateTodoRequest>,
    ) -> Result<Response<Todo>, Status> {
        self.record("UpdateTodo", &request);
        Err(Status::unimplemented("not in the fake"))
    }

    async fn delete_todo(
        &self,
        request: Request<DeleteTodoRequest>,
    ) -> Result<Response<DeleteTodoResponse>, Status> {
        self.record("DeleteTodo", &request);
        Err(Status::unimplemented("not in the fake"))
    }
}

#[tonic::async_trait]
impl AuthService for Fake {
    async fn validate_session(
        &self,
        request: Request<ValidateSessionRequest>,
    ) -> Result<Response<ValidateSessionResponse>, Status> {
        self.record("ValidateSession", &request);
        let cookie = &request.get_ref().cookie;
        if cookie.contains("better-auth.session_token=valid") {
            Ok(Response::new(ValidateSessionResponse {
                user: Some(User {
                    id: "user-1".into(),
                    email: "user-1@example.com".into(),
                    ..User::default()
                }),
                session: None,
                set_cookie: vec![REFRESHED_COOKIE.into()],
            }))
        } else if cookie.contains("better-auth.session_token=provider-down") {
            Err(Status::unavailable("auth provider unavailable"))
        } else {
            Err(unauthenticated_with_clearing_cookie())
        }
    }
}

/// What to change from the default test gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub better_auth_url: String,
    /// `None`: the recording upstream.
    pub auth_service_url: Option<String>,
    pub todo_service_url: Option<String>,
    /// Fixed port (when another process must know the gateway's origin before it starts).
    pub port: u16,
    /// Leave the web dir empty, as if the dashboard was never built.
    pub dashboard_missing: bool,
    pub request_timeout_ms: u64,
    pub max_header_bytes: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            allowed_origins: vec![],
            max_body_bytes: 64 * 1024,
            // Nothing listens there unless a test says otherwise.
            better_auth_url: format!("http://127.0.0.1:{}", testkit::free_port()),
            auth_service_url: None,
            todo_service_url: None,
            port: 0,
            dashboard_missing: false,
            request_timeout_ms: 5_000,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// A running gateway and what it talks to.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub url: String,
    pub upstream: RecordingUpstream,
    /// HTTP/1.1 client like a browser's fetch: no redirects followed, no proxy.
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _web_dir: TempDir,
}

pub async fn spawn_gateway() -> TestGateway {
    spawn_gateway_with(GatewayOptions::default()).await
}

pub async fn spawn_gateway_with(options: GatewayOptions) -> TestGateway {
    telemetry::init(telemetry::LogFormat::Pretty);
    let upstream = RecordingUpstream::start().await;
    let web_dir = tempfile::tempdir().unwrap();
    if !options.dashboard_missing {
        write_dashboard(web_dir.path());
    }
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], options.port)),
        todo_service_url: options
            .todo_service_url
            .unwrap_or_else(|| upstream.url.clone()),
        auth_service_url: options
            .auth_service_url
            .unwrap_or_else(|| upstream.url.clone()),
        better_auth_url: options.better_auth_url,
        allowed_origins: options.allowed_origins,
        trust_forwarded_proto: false,
        web_dir: web_dir.path().to_path_buf(),
        max_body_bytes: options.max_body_bytes,
        max_header_bytes: options.max_header_bytes,
        request_timeout_ms: options.request_timeout_ms,
        max_concurrent_requests: 256,
        log_format: telemetry::LogFormat::Pretty,
        metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let app = App::build(config).await.unwrap();
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestGateway {
        addr,
        metrics_addr,
        url: format!("http://{addr}"),
        upstream,
        http: browser_like_client(),
        shutdown: Some(tx),
        server: Some(server),
        _web_dir: web_dir,
    }
}

pub fn browser_like_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn write_dashboard(dir: &Path) {
    std::fs::write(
        dir.join("login.html"),
        "<!doctype html><title>login page</title>",
    )
    .unwrap();
    std::fs::write(
        dir.join("dashboard.html"),
        "<!doctype html><title>dashboard page</title>",
    )
    .unwrap();
    std::fs::create_dir(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/app-1234.js"), "console.log('app');").unwrap();
}

impl TestGateway {
    /// Stops the gateway and waits for `run_until` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }

    /// The gateway's own origin, as a browser on it would send it.
    pub fn origin(&self) -> String {
        self.url.clone()
    }

    /// Sends one grpc-web request like a browser's grpc-web transport.
    pub async fn grpc_web(
        &self,
        path: &str,
        message: &impl Message,
        framing: Framing,
        headers: &[(&str, &str)],
    ) -> GrpcWebReply {
        let body = framing.encode(&message.encode_to_vec());
        self.grpc_web_raw(path, body, framing, headers).await
    }

    /// Sends an already framed grpc-web body.
    pub async fn grpc_web_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        framing: Framing,
        headers: &[(&str, &str)],
    ) -> GrpcWebReply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", framing.content_type())
            .header("x-grpc-web", "1")
            .header("accept", framing.content_type())
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        GrpcWebReply::read(response, framing).await
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// grpc-web wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/grpc-web`
    Binary,
    /// `application/grpc-web+proto`
    BinaryProto,
    /// `application/grpc-web-text` (base64)
    Text,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Binary => "application/grpc-web",
            Self::BinaryProto => "application/grpc-web+proto",
            Self::Text => "application/grpc-web-text",
        }
    }

    /// One uncompressed data frame, base64-encoded in text mode.
    pub fn encode(self, message: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(message.len() + 5);
        frame.push(0);
        frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(message);
        match self {
            Self::Text => STANDARD.encode(frame).into_bytes(),
            Self::Binary | Self::BinaryProto => frame,
        }
    }
}

/// A parsed grpc-web response: data frames and the `0x80` trailer frame.
#[derive(Debug)]
pub struct GrpcWebReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub messages: Vec<Bytes>,
    pub trailers: HeaderMap,
}

impl GrpcWebReply {
    async fn read(response: reqwest::Response, framing: Framing) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let raw = response.bytes().await.unwrap();
        let mut body = match framing {
            // The server base64-encodes each chunk on its own, so the text is a concatenation of
            // padded base64 strings: every 4-character quantum decodes independently.
            Framing::Text => {
                let mut out = Vec::new();
                for quantum in raw.chunks(4) {
                    out.extend(STANDARD.decode(quantum).unwrap());
                }
                Bytes::from(out)
            }
            Framing::Binary | Framing::BinaryProto => raw,
        };
        let mut messages = Vec::new();
        let mut trailers = HeaderMap::new();
        while body.has_remaining() {
            let flag = body.get_u8();
            let len = body.get_u32() as usize;
            let payload = body.split_to(len);
            if flag & 0x80 != 0 {
                for line in String::from_utf8(payload.to_vec()).unwrap().split("\r\n") {
                    if let Some((name, value)) = line.split_once(':') {
                        trailers.append(
                            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                            HeaderValue::from_str(value.trim()).unwrap(),
                        );
                    }
                }
            } else {
                assert_eq!(flag, 0, "compressed frames are not expected");
                messages.push(payload);
            }
        }
        Self {
            status,
            headers,
            messages,
            trailers,
        }
    }

    /// `grpc-status` from the trailer frame, or from the headers for a trailers-only answer.
    pub fn grpc_status(&self) -> tonic::Code {
        let value = self
            .trailers
            .get("grpc-status")
            .or_else(|| self.headers.get("grpc-status"))
            .unwrap_or_else(|| panic!("no grpc-status in {self:?}"));
        tonic::Code::from_bytes(value.as_bytes())
    }

    pub fn grpc_message(&self) -> String {
        let value = self
            .trailers
            .get("grpc-message")
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        percent_encoding::percent_decode_str(&value)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// The only message of a unary answer.
    pub fn message<M: Message + Default>(&self) -> M {
        assert_eq!(self.messages.len(), 1, "expected one message: {self:?}");
        M::decode(self.messages[0].clone()).unwrap()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// How long any single bad-input exchange may take before the test calls it a hang.
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`BOUND`].
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

/// Writes `request` on a fresh TCP connection and reads until the server closes it (send
/// `connection: close`). Returns the raw response, lossily decoded.
pub async fn raw_http1(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within("raw HTTP/1.1 exchange", async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The server may answer and close before reading everything (e.g. 431).
        let _ = stream.write_all(request).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
}

impl TestGateway {
    /// A valid grpc-web ListTodos still succeeds: the gateway kept serving.
    pub async fn assert_still_serves(&self) {
        let reply = within(
            "follow-up ListTodos",
            self.grpc_web(
                "/todo.v1.TodoService/ListTodos",
                &ListTodosRequest::default(),
                Framing::Binary,
                &[],
            ),
        )
        .await;
        assert_eq!(reply.grpc_status(), tonic::Code::Ok, "{reply:?}");
        assert_eq!(reply.messages.len(), 1);
    }
}

/// A grpc-web client for a gateway that runs elsewhere (e.g. the binary as a child process).
pub struct TestGatewayClient {
    url: String,
    http: reqwest::Client,
}

impl TestGatewayClient {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: browser_like_client(),
        }
    }

    /// One grpc-web call, framed like a browser's grpc-web transport.
    pub async fn call(
        &self,
        path: &str,
        message: &impl Message,
        framing: Framing,
        headers: &[(&str, &str)],
    ) -> GrpcWebReply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", framing.content_type())
            .header("x-grpc-web", "1")
            .header("accept", framing.content_type())
            .body(framing.encode(&message.encode_to_vec()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = within(path, request.send()).await.unwrap();
        GrpcWebReply::read(response, framing).await
    }
}
