//! Metrics and tracing: a scrape of `/metrics` after traffic shows forwarded calls by upstream
//! and status, CSRF refusals and the RPC counts; a browser's `traceparent` (or a new one) goes
//! upstream, and through the real todo-service and auth-service it reaches Better Auth.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use proto::{
    auth::v1::ValidateSessionRequest,
    todo::v1::{GetTodoRequest, ListTodosRequest, ListTodosResponse},
};
use telemetry::trace::TraceParent;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};
use tonic::Code;

use crate::helpers::{
    Framing, GatewayOptions, TestGateway, VALID_SESSION, spawn_gateway, spawn_gateway_with,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// `GET /metrics` on `addr`; asserts a 200 Prometheus text answer.
async fn scrape(addr: SocketAddr) -> String {
    let response = crate::helpers::browser_like_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the sample line `series` (name and labels exactly as exposed).
#[track_caller]
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}

async fn list(gateway: &TestGateway, headers: &[(&str, &str)]) -> crate::helpers::GrpcWebReply {
    gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            headers,
        )
        .await
}

#[tokio::test]
async fn metrics_count_forwarded_calls_by_upstream_and_code_and_csrf_refusals() {
    let gateway = spawn_gateway().await;

    assert_eq!(list(&gateway, &[]).await.grpc_status(), Code::Ok);
    assert_eq!(list(&gateway, &[]).await.grpc_status(), Code::Ok);
    let get = gateway
        .grpc_web(
            "/todo.v1.TodoService/GetTodo",
            &GetTodoRequest::default(),
            Framing::Text,
            &[],
        )
        .await;
    assert_eq!(get.grpc_status(), Code::Unauthenticated);
    let validate = gateway
        .grpc_web(
            "/auth.v1.AuthService/ValidateSession",
            &ValidateSessionRequest {
                cookie: VALID_SESSION.into(),
            },
            Framing::Binary,
            &[],
        )
        .await;
    assert_eq!(validate.grpc_status(), Code::Ok);
    let refused = list(
        &gateway,
        &[
            ("cookie", VALID_SESSION),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(refused.grpc_status(), Code::PermissionDenied);

    let text = scrape(gateway.metrics_addr).await;
    let forwarded = |upstream: &str, code: &str| {
        sample(
            &text,
            &format!(
                r#"gateway_forwarded_requests_total{{upstream="{upstream}",grpc_code="{code}"}}"#
            ),
        )
    };
    assert_eq!(forwarded("todo-service", "OK"), 2.0);
    assert_eq!(forwarded("todo-service", "UNAUTHENTICATED"), 1.0);
    assert_eq!(forwarded("auth-service", "OK"), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"gateway_csrf_refusals_total{reason="foreign_origin"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_service="todo.v1.TodoService",grpc_method="ListTodos",grpc_code="OK"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_service="todo.v1.TodoService",grpc_method="ListTodos",grpc_code="PERMISSION_DENIED"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handling_seconds_count{grpc_service="auth.v1.AuthService",grpc_method="ValidateSession"}"#
        ),
        1.0
    );
    // The refused call never reached an upstream.
    assert_eq!(gateway.upstream.calls().len(), 4);
}

#[tokio::test]
async fn metrics_count_an_unreachable_upstream_as_unavailable() {
    let gateway = spawn_gateway_with(GatewayOptions {
        todo_service_url: Some(format!("http://127.0.0.1:{}", testkit::free_port())),
        ..GatewayOptions::default()
    })
    .await;

    assert_eq!(list(&gateway, &[]).await.grpc_status(), Code::Unavailable);

    let text = scrape(gateway.metrics_addr).await;
    assert_eq!(
        sample(
            &text,
            r#"gateway_forwarded_requests_total{upstream="todo-service",grpc_code="UNAVAILABLE"}"#
        ),
        1.0
    );
}

/// The trace of the only upstream call's `traceparent`.
fn forwarded_trace(gateway: &TestGateway) -> TraceParent {
    let call = gateway.upstream.only_call();
    let value = call
        .metadata
        .get("traceparent")
        .expect("the upstream got a traceparent")
        .to_str()
        .unwrap();
    TraceParent::parse(value).expect("a valid traceparent")
}

#[tokio::test]
async fn a_valid_traceparent_is_forwarded_upstream_unchanged() {
    let gateway = spawn_gateway().await;

    let reply = list(&gateway, &[("traceparent", TRACEPARENT)]).await;
    assert_eq!(reply.grpc_status(), Code::Ok);

    assert_eq!(forwarded_trace(&gateway).to_string(), TRACEPARENT);
}

#[tokio::test]
async fn an_invalid_traceparent_is_replaced_never_forwarded() {
    for invalid in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "<script>alert(1)</script>",
    ] {
        let gateway = spawn_gateway().await;
        let reply = list(&gateway, &[("traceparent", invalid)]).await;
        assert_eq!(reply.grpc_status(), Code::Ok, "{invalid}");
        let call = gateway.upstream.only_call();
        let forwarded: Vec<_> = call.metadata.get_all("traceparent").iter().collect();
        assert_eq!(forwarded.len(), 1, "{invalid}");
        assert_ne!(forwarded[0], invalid);
        let trace = TraceParent::parse(forwarded[0].to_str().unwrap()).expect("valid");
        assert_ne!(trace.trace_id(), TRACE_ID);
        assert_eq!(trace.flags(), 1);
    }
}

#[tokio::test]
async fn an_absent_traceparent_is_created_as_a_new_sampled_trace() {
    let gateway = spawn_gateway().await;
    assert_eq!(list(&gateway, &[]).await.grpc_status(), Code::Ok);
    assert_eq!(list(&gateway, &[]).await.grpc_status(), Code::Ok);

    let traces: Vec<TraceParent> = gateway
        .upstream
        .calls()
        .iter()
        .map(|call| {
            let value = call.metadata.get("traceparent").expect("created");
            TraceParent::parse(value.to_str().unwrap()).expect("valid")
        })
        .collect();
    assert_eq!(traces.len(), 2);
    assert_ne!(traces[0].trace_id(), traces[1].trace_id());
    assert!(traces.iter().all(|t| t.flags() == 1));
}

#[tokio::test]
async fn the_dashboard_session_check_carries_the_trace() {
    let gateway = spawn_gateway().await;
    let response = gateway
        .http
        .get(format!("{}/dashboard", gateway.url))
        .header("cookie", VALID_SESSION)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(forwarded_trace(&gateway).trace_id(), TRACE_ID);
}

/// A get-session answer for a valid session, as Better Auth 1.7 sends it.
const VALID_SESSION_BODY: &str = r#"{"session":{"expiresAt":"2099-12-03T15:53:06.553Z","token":"t","createdAt":"2026-11-26T15:53:06.553Z","updatedAt":"2026-11-26T15:53:06.553Z","ipAddress":"","userAgent":"","userId":"trace-user-1","id":"trace-session-1"},"user":{"name":"Trace","email":"trace@example.com","emailVerified":false,"image":null,"createdAt":"2026-11-26T15:53:06.326Z","updatedAt":"2026-11-26T15:53:06.326Z","id":"trace-user-1"}}"#;

/// A stand-in for Better Auth that answers every GET with a valid session and records each
/// request's path and `traceparent` header. (A stub only to see the headers Better Auth got.)
#[derive(Clone, Default)]
struct RecordingBetterAuth {
    seen: Seen,
}

/// Each request's path and `traceparent`.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

impl RecordingBetterAuth {
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = self.seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, seen.clone()));
            }
        });
        url
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, seen: Seen) {
    let mut buffer = Vec::new();
    loop {
        let head = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                buffer.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_owned();
        let traceparent = lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("traceparent")
                .then(|| value.trim().to_owned())
        });
        seen.lock().unwrap().push((path, traceparent));
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            VALID_SESSION_BODY.len(),
            VALID_SESSION_BODY
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_browsers_trace_reaches_better_auth_through_todo_service_and_auth_service() {
    let better_auth = RecordingBetterAuth::default();
    let better_auth_url = better_auth.start().await;

    let mut auth_config = auth_service::config::Config::new(better_auth_url.parse().unwrap());
    auth_config.listen = "127.0.0.1:0".parse().unwrap();
    let auth = auth_service::startup::App::build(auth_config)
        .await
        .unwrap();
    let auth_url = format!("http://{}", auth.local_addr());
    let (auth_tx, auth_rx) = oneshot::channel::<()>();
    tokio::spawn(auth.run_until(async {
        let _ = auth_rx.await;
    }));

    let data = tempfile::tempdir().unwrap();
    let todo = todo_service::startup::App::build(todo_service::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: todo_service::config::DatabaseUrl::Sqlite(data.path().join("todos.db")),
        database_pool_size: 2,
        database_timeout_ms: 3000,
        auth_service_url: auth_url.parse().unwrap(),
        auth_timeout_ms: 3000,
        log_format: telemetry::LogFormat::Pretty,
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
    })
    .await
    .unwrap();
    let todo_url = format!("http://{}", todo.local_addr());
    let (todo_tx, todo_rx) = oneshot::channel::<()>();
    tokio::spawn(todo.run_until(async {
        let _ = todo_rx.await;
    }));

    let gateway = spawn_gateway_with(GatewayOptions {
        better_auth_url: better_auth_url.clone(),
        auth_service_url: Some(auth_url),
        todo_service_url: Some(todo_url),
        ..GatewayOptions::default()
    })
    .await;

    // grpc-web ListTodos: gateway → todo-service → auth-service → Better Auth.
    let reply = list(
        &gateway,
        &[
            ("cookie", "better-auth.session_token=abc.def"),
            ("traceparent", TRACEPARENT),
        ],
    )
    .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{}", reply.grpc_message());
    assert!(reply.message::<ListTodosResponse>().todos.is_empty());
    // No traceparent: the gateway starts a trace, and that one arrives.
    let reply = list(&gateway, &[("cookie", "better-auth.session_token=abc.def")]).await;
    assert_eq!(reply.grpc_status(), Code::Ok);
    // The /api/auth proxy forwards the validated trace too, never the invalid value.
    let proxied = gateway
        .http
        .get(format!("{}/api/auth/get-session", gateway.url))
        .header("traceparent", "00-nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);

    let seen = better_auth.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let trace_of = |i: usize| {
        TraceParent::parse(seen[i].1.as_deref().expect("Better Auth got a traceparent"))
            .expect("a valid traceparent")
    };
    assert!(seen[0].0.starts_with("/api/auth/get-session"));
    // Through gateway, todo-service and auth-service, unchanged.
    assert_eq!(seen[0].1.as_deref(), Some(TRACEPARENT));
    assert_eq!(trace_of(0).trace_id(), TRACE_ID);
    assert_ne!(trace_of(1).trace_id(), TRACE_ID);
    assert_ne!(trace_of(2).trace_id(), trace_of(1).trace_id());
    assert_eq!(seen[2].0, "/api/auth/get-session");

    drop(gateway);
    let _ = (auth_tx.send(()), todo_tx.send(()));
}
