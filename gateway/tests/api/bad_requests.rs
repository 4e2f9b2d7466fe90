//! Requests that are not (quite) gRPC: wrong content types, methods and paths, HTTP/1.1 without
//! grpc-web headers, NUL and non-UTF-8 bytes in headers and messages, request trailers. Each gets
//! a plain HTTP 4xx or a readable gRPC error in bounded time, and the gateway keeps serving.

use std::convert::Infallible;

use bytes::Bytes;
use http::HeaderMap;
use prost::Message;
use proto::todo::v1::{CreateTodoRequest, ListTodosRequest, Todo};
use tonic::Code;
use tower::ServiceExt;

use crate::helpers::{Framing, TestGateway, raw_http1, spawn_gateway, within};

fn list_frame() -> Vec<u8> {
    Framing::Binary.encode(&ListTodosRequest::default().encode_to_vec())
}

async fn post(gateway: &TestGateway, path: &str, content_type: Option<&str>) -> reqwest::Response {
    let mut request = gateway
        .http
        .post(format!("{}{path}", gateway.url))
        .body(list_frame());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    within(path, request.send()).await.unwrap()
}

#[tokio::test]
async fn a_post_to_a_grpc_method_with_a_non_grpc_content_type_is_415() {
    let gateway = spawn_gateway().await;
    for path in [
        "/todo.v1.TodoService/ListTodos",
        "/auth.v1.AuthService/ValidateSession",
        "/grpc.health.v1.Health/Check",
    ] {
        for content_type in [Some("text/plain"), Some("application/json"), None] {
            let response = post(&gateway, path, content_type).await;
            assert_eq!(response.status(), 415, "{path} {content_type:?}");
            assert!(response.headers().get("grpc-status").is_none());
        }
    }
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn http1_requests_without_grpc_web_framing_are_400_and_never_forwarded() {
    let gateway = spawn_gateway().await;
    // Native gRPC needs HTTP/2; grpc-web+json and look-alikes are not grpc-web.
    for content_type in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc-web+json",
        "application/grpcx",
    ] {
        let response = post(
            &gateway,
            "/todo.v1.TodoService/ListTodos",
            Some(content_type),
        )
        .await;
        assert_eq!(response.status(), 400, "{content_type}");
    }
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn a_get_to_a_grpc_method_is_a_plain_4xx() {
    let gateway = spawn_gateway().await;
    let plain = within(
        "GET",
        gateway
            .http
            .get(format!("{}/todo.v1.TodoService/ListTodos", gateway.url))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(plain.status(), 404);
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "BREW"] {
        let response = within(
            method,
            gateway
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}/todo.v1.TodoService/ListTodos", gateway.url),
                )
                .header("content-type", "application/grpc-web")
                .header("x-grpc-web", "1")
                .body(list_frame())
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 405, "{method}");
    }
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_unimplemented_and_readable() {
    let gateway = spawn_gateway().await;
    let long = format!("/todo.v2.TodoService/{}", "x".repeat(8000));
    for path in [
        "/",
        "/todo.v1.TodoService",
        "//todo.v1.TodoService/ListTodos",
        "/%74odo.v1.TodoService/ListTodos",
        "/todo.v1.TodoServiceX/ListTodos",
        "/grpc.health.v1.Health",
        long.as_str(),
    ] {
        let reply = within(
            path,
            gateway.grpc_web(path, &ListTodosRequest::default(), Framing::Binary, &[]),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["grpc-status"], "12", "{path}: {reply:?}");
    }
    assert!(gateway.upstream.calls().is_empty());

    // An unknown method of a forwarded service is the upstream's to refuse.
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/DropAllTables",
            &ListTodosRequest::default(),
            Framing::Text,
            &[],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Unimplemented);
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn a_nul_byte_in_a_header_value_is_a_400() {
    let gateway = spawn_gateway().await;
    let frame = list_frame();
    let mut request = format!(
        "POST /todo.v1.TodoService/ListTodos HTTP/1.1\r\nhost: {}\r\ncontent-type: \
         application/grpc-web\r\ncontent-length: {}\r\nconnection: close\r\ncookie: a=b",
        gateway.addr,
        frame.len()
    )
    .into_bytes();
    request.extend_from_slice(b"\0c\r\n\r\n");
    request.extend_from_slice(&frame);
    let response = raw_http1(gateway.addr, &request).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(gateway.upstream.calls().is_empty());
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn non_utf8_header_values_are_passed_opaquely_or_refused_never_a_panic() {
    let gateway = spawn_gateway().await;
    let frame = list_frame();
    let request = |extra: &[u8]| {
        let mut request = format!(
            "POST /todo.v1.TodoService/ListTodos HTTP/1.1\r\nhost: {}\r\ncontent-type: \
             application/grpc-web\r\ncontent-length: {}\r\nconnection: close\r\n",
            gateway.addr,
            frame.len()
        )
        .into_bytes();
        request.extend_from_slice(extra);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&frame);
        request
    };

    // A non-UTF-8 cookie without Origin (a script's) is forwarded byte for byte: the
    // auth-service decides about it.
    let response = raw_http1(
        gateway.addr,
        &request(b"cookie: better-auth.session_token=\xff\xfe\r\nx-note: \xc3\x28\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The trailer frame sits in the body (binary grpc-web): `grpc-status:0`.
    assert!(response.contains("grpc-status:0"), "{response}");
    let call = gateway.upstream.only_call();
    assert_eq!(
        call.metadata["cookie"].as_bytes(),
        b"better-auth.session_token=\xff\xfe"
    );
    assert!(call.metadata.get("x-note").is_none());

    // A cookie with a non-UTF-8 Origin or Host is not from an allowed origin.
    for extra in [
        &b"cookie: a=b\r\norigin: http://\xff.example\r\n"[..],
        &b"cookie: a=b\r\norigin: http://127.0.0.1\r\nx-forwarded-host: \xff\r\n"[..],
    ] {
        let response = raw_http1(gateway.addr, &request(extra)).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("grpc-status: 7"), "{response}");
    }
    assert_eq!(gateway.upstream.calls().len(), 1);

    // The dashboard cannot check a cookie it cannot read as text: sign in again.
    let mut dashboard = format!(
        "GET /dashboard HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncookie: \
         better-auth.session_token=",
        gateway.addr
    )
    .into_bytes();
    dashboard.extend_from_slice(b"\xff\xfe\r\n\r\n");
    let response = raw_http1(gateway.addr, &dashboard).await;
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn nul_and_non_utf8_bytes_in_message_strings_are_left_to_the_upstream() {
    let gateway = spawn_gateway().await;
    // NUL is valid UTF-8: the message crosses the gateway unchanged.
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/CreateTodo",
            &CreateTodoRequest {
                title: "nul\0inside \u{202e}rtl".into(),
                ..CreateTodoRequest::default()
            },
            Framing::Text,
            &[],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    let todo: Todo = reply.message();
    assert_eq!(todo.title, "nul\0inside \u{202e}rtl");

    // Invalid UTF-8 in a string field (tag 1, length 2, 0xff 0xfe) fails protobuf decoding
    // upstream, before any handler.
    let calls = gateway.upstream.calls().len();
    let reply = gateway
        .grpc_web_raw(
            "/todo.v1.TodoService/CreateTodo",
            Framing::Binary.encode(&[0x0a, 0x02, 0xff, 0xfe]),
            Framing::Binary,
            &[],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Internal, "{reply:?}");
    assert_eq!(gateway.upstream.calls().len(), calls);
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn http1_request_trailers_never_reach_the_upstream() {
    let gateway = spawn_gateway().await;
    let frame = list_frame();
    let mut request = format!(
        "POST /todo.v1.TodoService/ListTodos HTTP/1.1\r\nhost: {}\r\ncontent-type: \
         application/grpc-web\r\ntransfer-encoding: chunked\r\ntrailer: x-user-id, cookie\r\n\
         connection: close\r\n\r\n{:x}\r\n",
        gateway.addr,
        frame.len()
    )
    .into_bytes();
    request.extend_from_slice(&frame);
    request.extend_from_slice(
        b"\r\n0\r\nx-user-id: someone-else\r\ncookie: better-auth.session_token=stolen\r\n\
          grpc-status: 0\r\n\r\n",
    );
    let response = raw_http1(gateway.addr, &request).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let call = gateway.upstream.only_call();
    for name in ["x-user-id", "cookie", "grpc-status"] {
        assert!(call.metadata.get(name).is_none(), "{name} reached upstream");
    }
}

#[tokio::test]
async fn h2_request_trailers_never_reach_the_upstream() {
    let gateway = spawn_gateway().await;
    let channel = tonic::transport::Endpoint::from_shared(gateway.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-user-id", "someone-else".parse().unwrap());
    trailers.insert("x-forwarded-user", "someone-else".parse().unwrap());
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(list_frame()))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/todo.v1.TodoService/ListTodos", gateway.url))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let response = within("h2 call with trailers", channel.oneshot(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call = gateway.upstream.only_call();
    for name in ["x-user-id", "x-forwarded-user", "grpc-status"] {
        assert!(call.metadata.get(name).is_none(), "{name} reached upstream");
    }
}
