//! CORS preflights with odd request headers: a listed origin gets exactly the configured grant
//! (never `*`, never identity headers), any other origin gets none, nothing is forwarded, and
//! the gateway keeps serving.

use crate::helpers::{GatewayOptions, TestGateway, spawn_gateway_with, within};

const LISTED: &str = "http://localhost:5173";

const ODD_REQUEST_HEADERS: [&str; 7] = [
    "x-user-id, authorization, cookie",
    "*",
    "grpc-status, grpc-message, x-forwarded-user",
    "",
    ",,,",
    "content-type,   X-GRPC-WEB ,x-user-agent",
    "\u{7f}bad",
];

async fn preflight(
    gateway: &TestGateway,
    origin: &str,
    request_headers: &str,
) -> reqwest::Response {
    let mut request = gateway
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/todo.v1.TodoService/ListTodos", gateway.url),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST");
    if let Ok(value) = reqwest::header::HeaderValue::from_str(request_headers) {
        request = request.header("access-control-request-headers", value);
    }
    within("preflight", request.send()).await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn odd_preflights_from_a_listed_origin_get_only_the_configured_grant() {
    let gateway = spawn_gateway_with(GatewayOptions {
        allowed_origins: vec![LISTED.into()],
        ..GatewayOptions::default()
    })
    .await;
    let long = "x-a,".repeat(2000);
    for request_headers in ODD_REQUEST_HEADERS.iter().copied().chain([long.as_str()]) {
        let response = preflight(&gateway, LISTED, request_headers).await;
        assert!(response.status().is_success(), "{request_headers:?}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some(LISTED)
        );
        assert_eq!(
            header(&response, "access-control-allow-credentials"),
            Some("true")
        );
        let allowed = header(&response, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        for never in [
            "*",
            "x-user-id",
            "authorization",
            "cookie",
            "grpc-status",
            "x-forwarded",
        ] {
            assert!(
                !allowed.contains(never),
                "{never} allowed for {request_headers:?}: {allowed}"
            );
        }
        let methods = header(&response, "access-control-allow-methods").unwrap();
        assert!(
            !methods.contains('*') && !methods.contains("DELETE"),
            "{methods}"
        );
    }
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn preflights_from_other_origins_get_no_grant_whatever_they_ask() {
    let gateway = spawn_gateway_with(GatewayOptions {
        allowed_origins: vec![LISTED.into()],
        ..GatewayOptions::default()
    })
    .await;
    for origin in [
        "https://evil.example",
        "null",
        "http://localhost:5173.evil.example",
        "http://localhost:5173/",
        "https://localhost:5173",
        "http://localhost:51730",
        "*",
    ] {
        for request_headers in ODD_REQUEST_HEADERS {
            let response = preflight(&gateway, origin, request_headers).await;
            assert!(
                response.status().as_u16() < 500,
                "{origin} {request_headers:?}"
            );
            for grant in [
                "access-control-allow-origin",
                "access-control-allow-credentials",
            ] {
                assert!(
                    header(&response, grant).is_none(),
                    "{grant} for {origin} {request_headers:?}"
                );
            }
        }
    }
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_is_answered_and_never_forwarded() {
    let gateway = spawn_gateway_with(GatewayOptions::default()).await;
    for path in [
        "/todo.v1.TodoService/ListTodos",
        "/dashboard",
        "/api/x",
        "*",
    ] {
        let response = within(
            "OPTIONS",
            gateway
                .http
                .request(
                    reqwest::Method::OPTIONS,
                    format!("{}/{}", gateway.url, path.trim_start_matches('/')),
                )
                .send(),
        )
        .await
        .unwrap();
        assert!(
            response.status().as_u16() < 500,
            "{path}: {}",
            response.status()
        );
        assert!(header(&response, "access-control-allow-origin").is_none());
    }
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}
