//! Metrics and tracing: a scrape of `/metrics` after traffic shows RPC counts by method and
//! code, session-check outcomes and the database pool; the caller's `traceparent` (or a new
//! one) reaches the auth-service's ValidateSession.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use proto::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use proto::auth::v1::{User, ValidateSessionRequest, ValidateSessionResponse};
use proto::todo::v1 as pb;
use proto::todo::v1::todo_service_client::TodoServiceClient;
use telemetry::trace::TraceParent;
use todo_service::config::{Config, DatabaseUrl};
use todo_service::startup::App;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

use crate::helpers::{assert_code, on_both_backends};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `GET /metrics` on `addr`; asserts a 200 Prometheus text answer and returns its body.
pub(crate) async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the metrics endpoint accepts");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: metrics\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a full answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the sample line `series` (name and labels exactly as exposed).
#[track_caller]
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .expect("a number")
}

fn handled(method: &str, code: &str) -> String {
    format!(
        r#"grpc_server_handled_total{{grpc_service="todo.v1.TodoService",grpc_method="{method}",grpc_code="{code}"}}"#
    )
}

on_both_backends! {
    async fn metrics_count_rpcs_session_checks_and_pool_usage_after_traffic(app) {
        let user = app.user("metrics").await;
        let todo = app.create(&user, "count me").await.expect("created");
        app.get(&user, &todo.id).await.expect("found");
        assert_code(app.get(&user, "0190f1a0-0000-7000-8000-000000000000").await, Code::NotFound);
        // No cookie: refused by the session check before the handler.
        assert_code(
            app.client.clone().list_todos(pb::ListTodosRequest::default()).await,
            Code::Unauthenticated,
        );

        let text = scrape(app.metrics_addr).await;
        assert_eq!(sample(&text, &handled("CreateTodo", "OK")), 1.0);
        assert_eq!(sample(&text, &handled("GetTodo", "OK")), 1.0);
        assert_eq!(sample(&text, &handled("GetTodo", "NOT_FOUND")), 1.0);
        assert_eq!(sample(&text, &handled("ListTodos", "UNAUTHENTICATED")), 1.0);
        assert_eq!(
            sample(
                &text,
                r#"grpc_server_handling_seconds_count{grpc_service="todo.v1.TodoService",grpc_method="GetTodo"}"#
            ),
            2.0
        );
        assert_eq!(sample(&text, r#"todo_session_checks_total{outcome="ok"}"#), 3.0);
        assert_eq!(
            sample(&text, r#"todo_session_checks_total{outcome="SESSION_MISSING"}"#),
            1.0
        );
        assert_eq!(sample(&text, "todo_db_pool_max_connections"), 8.0);
        let open = sample(&text, "todo_db_pool_connections");
        assert!(open >= 1.0, "the RPCs opened a connection: {open}");
        assert!(sample(&text, "todo_db_pool_idle_connections") <= open);
        assert_eq!(sample(&text, "todo_db_pool_waiting"), 0.0);
    }
}

/// A fake auth-service that accepts every call as one user and records each call's
/// `traceparent` metadata.
#[derive(Clone, Default)]
struct RecordingAuth {
    traceparents: Arc<Mutex<Vec<Option<String>>>>,
}

#[tonic::async_trait]
impl AuthService for RecordingAuth {
    async fn validate_session(
        &self,
        request: Request<ValidateSessionRequest>,
    ) -> Result<Response<ValidateSessionResponse>, Status> {
        let traceparent = request
            .metadata()
            .get("traceparent")
            .map(|v| v.to_str().expect("ascii").to_owned());
        self.traceparents.lock().expect("lock").push(traceparent);
        Ok(Response::new(ValidateSessionResponse {
            user: Some(User {
                id: "trace-user".into(),
                email: "trace-user@example.com".into(),
                ..User::default()
            }),
            session: None,
            set_cookie: vec![],
        }))
    }
}

/// A todo-service on SQLite in front of `RecordingAuth`; the guard stops both on drop.
async fn spawn_with_recording_auth() -> (
    TodoServiceClient<Channel>,
    RecordingAuth,
    tempfile::TempDir,
    Vec<tokio::sync::oneshot::Sender<()>>,
) {
    let auth = RecordingAuth::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let auth_addr = listener.local_addr().expect("address");
    let (auth_tx, auth_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthServiceServer::new(auth.clone()))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = auth_rx.await;
            }),
    );

    let dir = tempfile::tempdir().expect("a temp folder");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        database_url: DatabaseUrl::Sqlite(dir.path().join("todos.db")),
        database_pool_size: 2,
        database_timeout_ms: 3000,
        auth_service_url: format!("http://{auth_addr}").parse().expect("uri"),
        auth_timeout_ms: 3000,
        log_format: telemetry::LogFormat::Pretty,
        metrics_listen: "127.0.0.1:0".parse().expect("address"),
    };
    let app = App::build(config).await.expect("the todo-service builds");
    let addr = app.local_addr();
    let (todo_tx, todo_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = todo_rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("the client connects");
    (
        TodoServiceClient::new(channel),
        auth,
        dir,
        vec![auth_tx, todo_tx],
    )
}

fn list_request(traceparent: Option<&str>) -> Request<pb::ListTodosRequest> {
    let mut request = Request::new(pb::ListTodosRequest::default());
    request.metadata_mut().insert(
        "cookie",
        MetadataValue::from_static("better-auth.session_token=anything"),
    );
    if let Some(value) = traceparent {
        request.metadata_mut().insert(
            "traceparent",
            MetadataValue::try_from(value).expect("ascii"),
        );
    }
    request
}

#[tokio::test]
async fn the_session_check_forwards_the_callers_trace_to_the_auth_service() {
    let (client, auth, _dir, _stop) = spawn_with_recording_auth().await;

    client
        .clone()
        .list_todos(list_request(Some(TRACEPARENT)))
        .await
        .expect("listed");

    let recorded = auth.traceparents.lock().expect("lock").clone();
    assert_eq!(recorded.len(), 1);
    let sent = recorded[0]
        .as_deref()
        .expect("ValidateSession carried a traceparent");
    // Passed on unchanged (no hop records spans of its own yet).
    assert_eq!(sent, TRACEPARENT);
}

#[tokio::test]
async fn an_invalid_or_absent_traceparent_becomes_a_new_trace_at_the_auth_service() {
    let (client, auth, _dir, _stop) = spawn_with_recording_auth().await;

    let upper_case = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    for traceparent in [Some(upper_case), Some("not-a-trace"), None] {
        client
            .clone()
            .list_todos(list_request(traceparent))
            .await
            .expect("an invalid traceparent never fails the call");
    }

    let recorded = auth.traceparents.lock().expect("lock").clone();
    assert_eq!(recorded.len(), 3);
    let mut trace_ids = Vec::new();
    for sent in &recorded {
        let sent = sent.as_deref().expect("a traceparent was created");
        let parsed = TraceParent::parse(sent).expect("a valid traceparent");
        assert_eq!(parsed.flags(), 1);
        assert_ne!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        trace_ids.push(parsed.trace_id());
    }
    trace_ids.dedup();
    assert_eq!(trace_ids.len(), 3, "each call starts its own trace");
}
