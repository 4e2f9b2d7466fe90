//! Limits and lifecycle: body size (declared and streamed), header size, `/healthz`, graceful
//! shutdown.

use proto::todo::v1::CreateTodoRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::helpers::{Framing, GatewayOptions, spawn_gateway, spawn_gateway_with};

const LIMIT: usize = 64 * 1024;

fn big_todo() -> CreateTodoRequest {
    CreateTodoRequest {
        title: "big".into(),
        description: "x".repeat(LIMIT + 1),
        ..CreateTodoRequest::default()
    }
}

#[tokio::test]
async fn an_oversized_grpc_web_body_is_resource_exhausted_and_not_forwarded() {
    let gateway = spawn_gateway_with(GatewayOptions {
        max_body_bytes: LIMIT,
        ..GatewayOptions::default()
    })
    .await;
    for framing in [Framing::Binary, Framing::Text] {
        let reply = gateway
            .grpc_web("/todo.v1.TodoService/CreateTodo", &big_todo(), framing, &[])
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.grpc_status(), Code::ResourceExhausted, "{reply:?}");
    }
    assert!(gateway.upstream.calls().is_empty());

    // Just under the limit still works.
    let fits = CreateTodoRequest {
        description: "x".repeat(LIMIT - 100),
        ..CreateTodoRequest::default()
    };
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/CreateTodo",
            &fits,
            Framing::Binary,
            &[],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
}

#[tokio::test]
async fn an_oversized_chunked_body_without_content_length_is_cut_off() {
    let gateway = spawn_gateway_with(GatewayOptions {
        max_body_bytes: LIMIT,
        ..GatewayOptions::default()
    })
    .await;
    let body = Framing::Binary.encode(&prost::Message::encode_to_vec(&big_todo()));
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let head = format!(
        "POST /todo.v1.TodoService/CreateTodo HTTP/1.1\r\nhost: {}\r\ncontent-type: \
         application/grpc-web\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        gateway.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(8 * 1024) {
        let _ = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = stream.write_all(chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("grpc-status: 8"), "{response}");
    // Whatever reached the fake upstream, it never completed a CreateTodo.
    assert!(gateway.upstream.calls().is_empty());
}

#[tokio::test]
async fn an_oversized_api_auth_body_is_413() {
    let gateway = spawn_gateway_with(GatewayOptions {
        max_body_bytes: LIMIT,
        ..GatewayOptions::default()
    })
    .await;
    let response = gateway
        .http
        .post(format!("{}/api/auth/sign-in/email", gateway.url))
        .header("content-type", "application/json")
        .body(vec![b'x'; LIMIT + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let gateway = spawn_gateway().await;
    let response = gateway
        .http
        .get(format!("{}/healthz", gateway.url))
        .header("cookie", "a=".to_owned() + &"x".repeat(32 * 1024))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        // hyper may also just close the connection.
        Err(error) => assert!(!error.is_timeout(), "{error}"),
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let gateway = spawn_gateway().await;
    let response = gateway
        .http
        .get(format!("{}/healthz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn run_until_returns_after_shutdown_and_the_port_closes() {
    let gateway = spawn_gateway().await;
    let addr = gateway.addr;
    gateway.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
