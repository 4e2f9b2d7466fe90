//! Test helpers: a real auth-service on 127.0.0.1:0 with a real tonic client, and a stub HTTP
//! server that stands in for Better Auth only to inject faults and record what it received.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use auth_service::{App, Config};
use proto::auth::v1::{
    ValidateSessionRequest, ValidateSessionResponse, auth_service_client::AuthServiceClient,
};
use reqwest::Url;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, oneshot},
    task::JoinHandle,
};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// A running auth-service and a client connected to it. Dropping it shuts the server down.
pub(crate) struct TestApp {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) metrics_addr: std::net::SocketAddr,
    pub(crate) client: AuthServiceClient<Channel>,
    pub(crate) channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Validates `cookie` (the request field) and returns the whole response.
    pub(crate) async fn validate(
        &self,
        cookie: &str,
    ) -> Result<tonic::Response<ValidateSessionResponse>, Status> {
        self.client
            .clone()
            .validate_session(ValidateSessionRequest {
                cookie: cookie.to_owned(),
            })
            .await
    }

    /// Shuts the server down and waits for it to finish.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the auth-service in front of `better_auth_url` with the default timeout.
pub(crate) async fn spawn_app(better_auth_url: &str) -> TestApp {
    spawn_app_with(better_auth_url, |_| {}).await
}

/// Starts the auth-service after letting `adjust` change its config.
pub(crate) async fn spawn_app_with(
    better_auth_url: &str,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    // Logs only on request (`RUST_LOG=info cargo test`): libtest does not capture them.
    if std::env::var_os("RUST_LOG").is_some() {
        telemetry::init(telemetry::LogFormat::Pretty);
    }
    let mut config = Config::new(Url::parse(better_auth_url).expect("a valid URL"));
    config.listen = "127.0.0.1:0".parse().expect("address");
    adjust(&mut config);
    let app = App::build(config).await.expect("the app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("the client connects");
    TestApp {
        addr,
        metrics_addr,
        client: AuthServiceClient::new(channel.clone()),
        channel,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A new client on its own connection to `addr`.
pub(crate) async fn spawn_client(addr: std::net::SocketAddr) -> AuthServiceClient<Channel> {
    AuthServiceClient::new(connect(addr).await)
}

async fn connect(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("the client connects")
}

/// Sends `message` (raw protobuf bytes, which need not be a valid `ValidateSessionRequest`) to
/// ValidateSession on a new connection and returns the error status.
pub(crate) async fn call_raw(addr: std::net::SocketAddr, message: &[u8]) -> Status {
    let mut grpc = tonic::client::Grpc::new(connect(addr).await);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/auth.v1.AuthService/ValidateSession");
    grpc.unary(tonic::Request::new(message.to_vec()), path, RawCodec)
        .await
        .expect_err("the message is refused")
}

/// Passes bytes through unchanged, to send messages a typed client would not build.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = bytes::Buf::chunk(src).to_vec();
        bytes::Buf::advance(src, bytes.len());
        Ok(Some(bytes))
    }
}

/// Asserts the status code and `ErrorInfo` reason of a failed call, and returns the status.
#[track_caller]
pub(crate) fn assert_error(
    result: Result<tonic::Response<ValidateSessionResponse>, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = match result {
        Ok(response) => panic!(
            "expected {code:?} {reason}, got OK: {:?}",
            response.get_ref()
        ),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "message: {}", status.message());
    let info = status
        .get_details_error_info()
        .expect("every error carries google.rpc.ErrorInfo");
    assert_eq!(info.reason, reason, "message: {}", status.message());
    assert_eq!(info.domain, "auth.v1");
    assert!(!status.message().is_empty());
    status
}

/// The `set-cookie` metadata values of a response or status.
pub(crate) fn set_cookie_metadata(metadata: &tonic::metadata::MetadataMap) -> Vec<String> {
    metadata
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("ascii").to_owned())
        .collect()
}

/// A URL where nothing listens: a port bound and released again.
pub(crate) async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// What the stub does with each request it reads.
#[derive(Clone)]
pub(crate) enum Behaviour {
    /// Answers with this status, extra header lines and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Sleeps, then answers 200 `null`.
    Sleep(Duration),
    /// Closes the connection without answering the first `n` requests, then answers like the
    /// inner behaviour.
    CloseFirst(usize, Box<Behaviour>),
    /// Waits at the gate before doing anything else (the request stays in flight).
    Held(Gate, Box<Behaviour>),
    /// Works out the inner answer, then waits at the gate before sending it.
    HoldAnswer(Gate, Box<Behaviour>),
    /// Adds `set-cookie: stub-call=<n>` to the answer, `n` being the request's number (from 1),
    /// so a caller can tell which upstream call answered it.
    Numbered(Box<Behaviour>),
    /// The n-th request (from 1) behaves like the n-th element; later ones like the last.
    Sequence(Vec<Behaviour>),
    /// Forwards the request (its target and `cookie` header) to a real server at this base
    /// URL and answers with its status, `set-cookie` headers and body.
    Proxy(String),
}

/// Holds stub requests until the test lets them through, and counts those waiting.
#[derive(Clone)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Gate {
    /// A closed gate.
    pub(crate) fn new() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(0)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Lets `n` more requests through.
    pub(crate) fn open(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Waits (up to 10 s) until at least `n` requests are held at the gate.
    pub(crate) async fn wait_for_waiting(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.waiting.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} requests held at the gate, have {}",
                self.waiting.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn pass(&self) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
    }
}

impl Behaviour {
    pub(crate) fn status(status: u16, body: &str) -> Self {
        Behaviour::Respond {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }
}

/// A request the stub received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) target: String,
    pub(crate) cookie: Option<String>,
    pub(crate) traceparent: Option<String>,
}

/// A minimal HTTP/1.1 server on 127.0.0.1:0 (keep-alive, GET only) that records requests.
pub(crate) struct StubServer {
    pub(crate) url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl StubServer {
    pub(crate) async fn start(behaviour: Behaviour) -> StubServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let requests = requests.clone();
            let connections = connections.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve_connection(
                        stream,
                        behaviour.clone(),
                        requests.clone(),
                    ));
                }
            }
        });
        StubServer {
            url,
            requests,
            connections,
            task,
        }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// How many TCP connections were accepted.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    behaviour: Behaviour,
    requests: Arc<Mutex<Vec<Recorded>>>,
) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buffer).await else {
            return;
        };
        let recorded = parse_head(&head);
        let index = {
            let mut requests = requests.lock().expect("lock");
            requests.push(recorded);
            requests.len()
        };
        let mut behaviour = &behaviour;
        let mut extra_headers = Vec::new();
        let mut hold_answer = Vec::new();
        let (status, mut headers, body) = loop {
            match behaviour {
                Behaviour::CloseFirst(n, inner) => {
                    if index <= *n {
                        return; // dropping the stream closes it without an answer
                    }
                    behaviour = inner;
                }
                Behaviour::Held(gate, inner) => {
                    gate.pass().await;
                    behaviour = inner;
                }
                Behaviour::HoldAnswer(gate, inner) => {
                    hold_answer.push(gate.clone());
                    behaviour = inner;
                }
                Behaviour::Numbered(inner) => {
                    extra_headers.push(("set-cookie".to_owned(), format!("stub-call={index}")));
                    behaviour = inner;
                }
                Behaviour::Sequence(list) => {
                    behaviour = &list[(index - 1).min(list.len() - 1)];
                }
                Behaviour::Respond {
                    status,
                    headers,
                    body,
                } => break (*status, headers.clone(), body.clone()),
                Behaviour::Sleep(duration) => {
                    tokio::time::sleep(*duration).await;
                    break (200, Vec::new(), "null".to_owned());
                }
                Behaviour::Proxy(base_url) => {
                    let (target, cookie) = {
                        let requests = requests.lock().expect("lock");
                        let recorded = &requests[index - 1];
                        (recorded.target.clone(), recorded.cookie.clone())
                    };
                    break proxy(base_url, &target, cookie).await;
                }
            }
        };
        for gate in hold_answer {
            gate.pass().await;
        }
        headers.extend(extra_headers);
        let mut response = format!(
            "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Asks a real server, for `Behaviour::Proxy`: status, `set-cookie` headers and body.
async fn proxy(
    base_url: &str,
    target: &str,
    cookie: Option<String>,
) -> (u16, Vec<(String, String)>, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut request = client.get(format!("{base_url}{target}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("the proxied server answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| {
            let value = value.to_str().expect("ascii").to_owned();
            ("set-cookie".to_owned(), value)
        })
        .collect();
    (status, headers, response.text().await.expect("a body"))
}

/// Reads one request head (up to the blank line); `None` when the peer closed.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            buffer.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse_head(head: &str) -> Recorded {
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers: Vec<&str> = lines.collect();
    let header = |wanted: &str| {
        headers.iter().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_owned())
        })
    };
    Recorded {
        target,
        cookie: header("cookie"),
        traceparent: header("traceparent"),
    }
}

/// A get-session body for a valid session, as Better Auth 1.7 sends it (better-auth.md §4).
pub(crate) const VALID_SESSION_BODY: &str = r#"{"session":{"expiresAt":"2026-12-03T15:53:06.553Z","token":"QjEEobE777IIASOs5uIK4uQ8o0xhohwR","createdAt":"2026-11-26T15:53:06.553Z","updatedAt":"2026-11-26T15:53:06.553Z","ipAddress":"","userAgent":"curl/7.88.1","userId":"aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW","id":"OQhKwpFYKHIBMUISRk4kdIqn1yt0viLE"},"user":{"name":"Alice","email":"alice@example.com","emailVerified":false,"image":null,"createdAt":"2026-11-26T15:53:06.326Z","updatedAt":"2026-11-26T15:53:06.326Z","id":"aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW"}}"#;
