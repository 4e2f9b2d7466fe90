//! Metrics and tracing: a scrape of `/metrics` after traffic shows the RPC counts, the
//! ValidateSession outcomes and the Better Auth latency; the caller's `traceparent` (or a new
//! one) reaches Better Auth.

use std::net::SocketAddr;

use proto::auth::v1::ValidateSessionRequest;
use tonic::{Code, metadata::MetadataValue};

use crate::helpers::{
    Behaviour, StubServer, TestApp, VALID_SESSION_BODY, assert_error, closed_port_url, spawn_app,
};

const SESSION: &str = "better-auth.session_token=abc.def%2F%3D";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `GET /metrics` on `addr`, asserting a 200 Prometheus text answer.
pub(crate) async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("the metrics endpoint answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("a text body")
}

/// The value of the sample line `series` (name and labels exactly as exposed).
#[track_caller]
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .expect("a number")
}

async fn validate_with_traceparent(app: &TestApp, traceparent: Option<&str>) {
    let mut request = tonic::Request::new(ValidateSessionRequest {
        cookie: SESSION.to_owned(),
    });
    if let Some(value) = traceparent {
        request.metadata_mut().insert(
            "traceparent",
            MetadataValue::try_from(value).expect("ascii"),
        );
    }
    app.client
        .clone()
        .validate_session(request)
        .await
        .expect("the stub's session is valid");
}

#[tokio::test]
async fn metrics_count_rpcs_outcomes_and_better_auth_latency_after_traffic() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    app.validate(SESSION).await.expect("valid session");
    app.validate(SESSION).await.expect("valid session");
    assert_error(
        app.validate("theme=dark").await,
        Code::Unauthenticated,
        "SESSION_MISSING",
    );

    let text = scrape(app.metrics_addr).await;
    assert_eq!(
        sample(&text, r#"auth_validate_session_total{outcome="ok"}"#),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"auth_validate_session_total{outcome="SESSION_MISSING"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_service="auth.v1.AuthService",grpc_method="ValidateSession",grpc_code="OK"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_service="auth.v1.AuthService",grpc_method="ValidateSession",grpc_code="UNAUTHENTICATED"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handling_seconds_count{grpc_service="auth.v1.AuthService",grpc_method="ValidateSession"}"#
        ),
        3.0
    );
    // Only the two calls with a Better Auth cookie reached Better Auth.
    assert_eq!(
        sample(&text, "auth_better_auth_request_duration_seconds_count"),
        2.0
    );
    assert!(sample(&text, "auth_better_auth_request_duration_seconds_sum") > 0.0);
    // Sequential calls never share a lookup (each is sent after its caller arrived).
    assert_eq!(sample(&text, "auth_validate_coalesced_total"), 0.0);
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn metrics_label_an_unreachable_better_auth_as_provider_unavailable() {
    let app = spawn_app(&closed_port_url().await).await;

    assert_error(
        app.validate(SESSION).await,
        Code::Unavailable,
        "AUTH_PROVIDER_UNAVAILABLE",
    );

    let text = scrape(app.metrics_addr).await;
    assert_eq!(
        sample(
            &text,
            r#"auth_validate_session_total{outcome="AUTH_PROVIDER_UNAVAILABLE"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_service="auth.v1.AuthService",grpc_method="ValidateSession",grpc_code="UNAVAILABLE"}"#
        ),
        1.0
    );
    assert!(!text.contains(r#"outcome="ok""#), "{text}");
}

#[tokio::test]
async fn two_apps_in_one_process_keep_their_metrics_apart() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let busy = spawn_app(&stub.url).await;
    let idle = spawn_app(&stub.url).await;
    assert_ne!(busy.metrics_addr, idle.metrics_addr);

    busy.validate(SESSION).await.expect("valid session");

    let busy_text = scrape(busy.metrics_addr).await;
    let idle_text = scrape(idle.metrics_addr).await;
    assert_eq!(
        sample(&busy_text, r#"auth_validate_session_total{outcome="ok"}"#),
        1.0
    );
    assert!(
        !idle_text.contains("auth_validate_session_total{"),
        "{idle_text}"
    );
}

#[tokio::test]
async fn validate_session_forwards_the_callers_trace_to_better_auth() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    validate_with_traceparent(&app, Some(TRACEPARENT)).await;

    let requests = stub.requests();
    let sent = requests[0]
        .traceparent
        .as_deref()
        .expect("Better Auth received a traceparent");
    // Passed on unchanged (no hop records spans of its own yet).
    assert_eq!(sent, TRACEPARENT);
}

#[tokio::test]
async fn an_invalid_or_absent_traceparent_becomes_a_new_trace_at_better_auth() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let invalid = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    validate_with_traceparent(&app, Some(invalid)).await;
    validate_with_traceparent(&app, Some("garbage; rm -rf /")).await;
    validate_with_traceparent(&app, None).await;

    let trace_ids: Vec<String> = stub
        .requests()
        .iter()
        .map(|request| {
            let sent = request.traceparent.as_deref().expect("a traceparent");
            assert_ne!(sent, invalid);
            let parsed = telemetry::trace::TraceParent::parse(sent).expect("valid");
            assert_eq!(parsed.flags(), 1);
            parsed.trace_id()
        })
        .collect();
    assert_eq!(trace_ids.len(), 3);
    assert!(
        trace_ids
            .iter()
            .all(|id| id != "4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_ne!(trace_ids[0], trace_ids[1]);
    assert_ne!(trace_ids[1], trace_ids[2]);
}
