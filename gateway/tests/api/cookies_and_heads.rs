//! Oversized and crowded request heads: a 1 MB cookie, 5 000 cookies in one header or in 5 000
//! headers, over HTTP/1.1 and h2; duplicate Better Auth cookies. Each ends in a 431, a refused
//! stream or a readable gRPC error, in bounded time, and the gateway keeps serving.

use prost::Message;
use proto::todo::v1::{ListTodosRequest, todo_service_client::TodoServiceClient};
use tonic::Code;

use crate::helpers::{
    Framing, GatewayOptions, TestGateway, raw_http1, spawn_gateway, spawn_gateway_with, within,
};

fn many_cookies(count: usize) -> String {
    (0..count)
        .map(|i| format!("c{i}=v"))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn grpc_web_with_cookie(gateway: &TestGateway, cookie: &str) -> reqwest::Response {
    within(
        "grpc-web call with a big cookie",
        gateway
            .http
            .post(format!("{}/todo.v1.TodoService/ListTodos", gateway.url))
            .header("content-type", "application/grpc-web")
            .header("x-grpc-web", "1")
            .header("cookie", cookie)
            .body(Framing::Binary.encode(&ListTodosRequest::default().encode_to_vec()))
            .send(),
    )
    .await
    .unwrap()
}

/// Native gRPC over h2c with `cookies` as separate `cookie` metadata entries.
async fn h2_list_with_cookies(
    gateway: &TestGateway,
    cookies: &[String],
) -> Result<(), tonic::Status> {
    let mut client = TodoServiceClient::connect(gateway.url.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(ListTodosRequest::default());
    for cookie in cookies {
        request
            .metadata_mut()
            .append("cookie", cookie.parse().unwrap());
    }
    within("h2 call with big cookies", client.list_todos(request))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_one_megabyte_cookie_is_refused_over_http1_and_h2_and_the_gateway_keeps_serving() {
    let gateway = spawn_gateway().await;
    let cookie = format!("better-auth.session_token={}", "x".repeat(1 << 20));

    let response = grpc_web_with_cookie(&gateway, &cookie).await;
    assert_eq!(response.status(), 431);

    let status = h2_list_with_cookies(&gateway, &[cookie]).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn five_thousand_cookies_are_refused_over_http1_and_h2_and_the_gateway_keeps_serving() {
    let gateway = spawn_gateway().await;

    // One header.
    let response = grpc_web_with_cookie(&gateway, &many_cookies(5000)).await;
    assert_eq!(response.status(), 431);

    // 5 000 headers (hyper parses at most 100 per HTTP/1.1 head).
    let mut request = format!(
        "POST /todo.v1.TodoService/ListTodos HTTP/1.1\r\nhost: {}\r\ncontent-type: \
         application/grpc-web\r\ncontent-length: 0\r\nconnection: close\r\n",
        gateway.addr
    );
    for i in 0..5000 {
        request.push_str(&format!("cookie: c{i}=v\r\n"));
    }
    request.push_str("\r\n");
    let response = raw_http1(gateway.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");

    // 5 000 metadata entries over h2.
    let cookies: Vec<String> = (0..5000).map(|i| format!("c{i}=v")).collect();
    let status = h2_list_with_cookies(&gateway, &cookies).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);

    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn a_cookie_the_gateway_accepts_but_the_upstream_refuses_is_a_readable_resource_exhausted() {
    // The gateway's head limit raised above the upstream's (tonic's 16 KiB header list).
    let gateway = spawn_gateway_with(GatewayOptions {
        max_header_bytes: 256 * 1024,
        ..GatewayOptions::default()
    })
    .await;
    let response = grpc_web_with_cookie(&gateway, &many_cookies(5000)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "8", "{response:?}");
    let message = response.headers()["grpc-message"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("431"), "{message}");

    let cookies: Vec<String> = (0..5000).map(|i| format!("c{i}=v")).collect();
    let status = h2_list_with_cookies(&gateway, &cookies).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn a_frame_declaring_four_gigabytes_is_refused_at_once() {
    let gateway = spawn_gateway().await;
    let mut body = vec![0, 0xff, 0xff, 0xff, 0xff];
    body.extend_from_slice(b"tiny");
    let reply = within(
        "4 GB length prefix",
        gateway.grpc_web_raw(
            "/todo.v1.TodoService/CreateTodo",
            body,
            Framing::Binary,
            &[],
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_ne!(reply.grpc_status(), Code::Ok);
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn duplicate_better_auth_cookies_reach_the_upstream_as_one_header_in_order() {
    let gateway = spawn_gateway().await;
    let origin = gateway.origin();
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[
                (
                    "cookie",
                    "better-auth.session_token=first; better-auth.session_token=second",
                ),
                ("cookie", "better-auth.session_token=third"),
                ("origin", &origin),
            ],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    let call = gateway.upstream.only_call();
    let cookies: Vec<_> = call.metadata.get_all("cookie").iter().collect();
    assert_eq!(
        cookies,
        [
            "better-auth.session_token=first; better-auth.session_token=second; \
             better-auth.session_token=third"
        ]
    );
}
