//! CSRF and CORS: cookie-carrying calls only from the gateway's own or a listed origin; CORS
//! grants only listed origins, with credentials, never `*`.

use proto::todo::v1::ListTodosRequest;
use tonic::Code;

use crate::helpers::{Framing, GatewayOptions, TestGateway, spawn_gateway, spawn_gateway_with};

const LISTED: &str = "http://localhost:5173";
const EVIL: &str = "https://evil.example";

async fn gateway_with_listed_origin() -> TestGateway {
    spawn_gateway_with(GatewayOptions {
        allowed_origins: vec![LISTED.into()],
        ..GatewayOptions::default()
    })
    .await
}

async fn list_with(
    gateway: &TestGateway,
    framing: Framing,
    headers: &[(&str, &str)],
) -> crate::helpers::GrpcWebReply {
    gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            framing,
            headers,
        )
        .await
}

#[tokio::test]
async fn a_cookie_from_a_foreign_origin_is_refused_readably_and_never_forwarded() {
    let gateway = gateway_with_listed_origin().await;
    for framing in [Framing::Binary, Framing::Text] {
        let reply = list_with(
            &gateway,
            framing,
            &[
                ("cookie", "better-auth.session_token=abc"),
                ("origin", EVIL),
            ],
        )
        .await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(framing.content_type())
        );
        assert_eq!(reply.headers["grpc-status"], "7", "{reply:?}");
        assert_eq!(reply.grpc_status(), Code::PermissionDenied);
        assert!(reply.grpc_message().contains("origin not allowed"));
        assert!(reply.headers.get("access-control-allow-origin").is_none());
        assert!(
            reply
                .headers
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
    assert!(gateway.upstream.calls().is_empty());
}

#[tokio::test]
async fn a_null_origin_with_a_cookie_is_refused() {
    let gateway = spawn_gateway().await;
    let reply = list_with(
        &gateway,
        Framing::Binary,
        &[("cookie", "a=b"), ("origin", "null")],
    )
    .await;
    assert_eq!(reply.grpc_status(), Code::PermissionDenied);
    assert!(gateway.upstream.calls().is_empty());
}

#[tokio::test]
async fn a_cookie_from_the_gateways_own_origin_passes() {
    let gateway = spawn_gateway().await;
    let origin = gateway.origin();
    let reply = list_with(
        &gateway,
        Framing::Binary,
        &[("cookie", "a=b"), ("origin", &origin)],
    )
    .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    assert_eq!(gateway.upstream.only_call().metadata["cookie"], "a=b");
}

#[tokio::test]
async fn a_cookie_from_a_listed_origin_passes_with_a_credentialed_cors_grant() {
    let gateway = gateway_with_listed_origin().await;
    let reply = list_with(
        &gateway,
        Framing::Text,
        &[("cookie", "a=b"), ("origin", LISTED)],
    )
    .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    assert_eq!(reply.headers["access-control-allow-origin"], LISTED);
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    let exposed = reply.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
}

#[tokio::test]
async fn a_listed_origin_can_read_a_gateway_error() {
    let gateway = gateway_with_listed_origin().await;
    let reply = gateway
        .grpc_web(
            "/nope.v1.Nope/Nothing",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[("origin", LISTED)],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Unimplemented);
    assert_eq!(reply.headers["access-control-allow-origin"], LISTED);
}

#[tokio::test]
async fn requests_without_cookie_pass_whatever_the_origin_but_get_no_cors_grant() {
    let gateway = gateway_with_listed_origin().await;
    let reply = list_with(&gateway, Framing::Binary, &[("origin", EVIL)]).await;
    assert_eq!(reply.grpc_status(), Code::Ok);
    assert!(reply.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_cookie_without_origin_passes_like_grpcurl_but_not_when_the_browser_says_cross_site() {
    let gateway = spawn_gateway().await;
    let reply = list_with(&gateway, Framing::Binary, &[("cookie", "a=b")]).await;
    assert_eq!(reply.grpc_status(), Code::Ok);

    let reply = list_with(
        &gateway,
        Framing::Binary,
        &[("cookie", "a=b"), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(reply.grpc_status(), Code::PermissionDenied);
    assert_eq!(gateway.upstream.calls().len(), 1);
}

async fn preflight(gateway: &TestGateway, origin: &str) -> reqwest::Response {
    gateway
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/todo.v1.TodoService/ListTodos", gateway.url),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,grpc-timeout",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_preflight_from_a_listed_origin_is_granted_with_credentials() {
    let gateway = gateway_with_listed_origin().await;
    let response = preflight(&gateway, LISTED).await;
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], LISTED);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    for header in [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "traceparent",
    ] {
        assert!(allowed.contains(header), "{header} not allowed: {allowed}");
    }
    assert!(!allowed.contains('*'));
    assert!(gateway.upstream.calls().is_empty());
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_grant() {
    let gateway = gateway_with_listed_origin().await;
    let response = preflight(&gateway, EVIL).await;
    let headers = response.headers();
    assert!(headers.get("access-control-allow-origin").is_none());
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert!(gateway.upstream.calls().is_empty());
}
