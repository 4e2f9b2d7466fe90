//! Malformed grpc-web bodies: every one gets a grpc-web error a browser can read (HTTP 200,
//! `grpc-status` in the headers), in bounded time, never reaches a handler, and the gateway
//! keeps serving.

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use proto::todo::v1::CreateTodoRequest;
use tonic::Code;

use crate::helpers::{Framing, TestGateway, spawn_gateway, within};

fn message() -> Vec<u8> {
    CreateTodoRequest {
        title: "hello world".into(),
        ..CreateTodoRequest::default()
    }
    .encode_to_vec()
}

/// A frame header (flag + big-endian length) followed by `payload`, whatever the length says.
fn frame(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&declared_len.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn len(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap()
}

/// Sends `body` to CreateTodo and checks the refusal is a readable grpc-web `code`, that no
/// handler ran, and that a valid call still works afterwards.
async fn assert_refused(
    gateway: &TestGateway,
    case: &str,
    body: Vec<u8>,
    framing: Framing,
    code: Code,
) {
    let calls_before = gateway.upstream.calls().len();
    let reply = within(
        case,
        gateway.grpc_web_raw("/todo.v1.TodoService/CreateTodo", body, framing, &[]),
    )
    .await;
    assert_eq!(reply.status, 200, "{case}: {reply:?}");
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with(framing.content_type()),
        "{case}: {reply:?}"
    );
    assert_eq!(reply.grpc_status(), code, "{case}: {reply:?}");
    assert!(reply.messages.is_empty(), "{case}: {reply:?}");
    assert_eq!(
        gateway.upstream.calls().len(),
        calls_before,
        "{case}: a handler ran"
    );
    gateway.assert_still_serves().await;
}

#[tokio::test]
async fn a_length_prefix_longer_than_the_body_is_internal_and_reaches_no_handler() {
    let gateway = spawn_gateway().await;
    let message = message();
    for framing in [Framing::Binary, Framing::Text] {
        let body = frame(0, len(&message) + 100, &message);
        let body = match framing {
            Framing::Text => STANDARD.encode(body).into_bytes(),
            _ => body,
        };
        assert_refused(&gateway, "longer prefix", body, framing, Code::Internal).await;
    }
}

#[tokio::test]
async fn a_length_prefix_shorter_than_the_body_is_internal_and_reaches_no_handler() {
    let gateway = spawn_gateway().await;
    let message = message();
    assert_refused(
        &gateway,
        "shorter prefix",
        frame(0, 2, &message),
        Framing::Binary,
        Code::Internal,
    )
    .await;
    // A zero length followed by the bytes: an empty message, then garbage as the next frame.
    assert_refused(
        &gateway,
        "zero prefix",
        frame(0, 0, &[0xff; 3]),
        Framing::Binary,
        Code::Internal,
    )
    .await;
}

#[tokio::test]
async fn a_truncated_frame_is_internal_and_reaches_no_handler() {
    let gateway = spawn_gateway().await;
    let whole = frame(0, len(&message()), &message());
    for cut in [1, 3, 5, whole.len() - 1] {
        assert_refused(
            &gateway,
            &format!("cut after {cut} bytes"),
            whole[..cut].to_vec(),
            Framing::Binary,
            Code::Internal,
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_and_compressed_flag_bytes_are_internal_and_reach_no_handler() {
    let gateway = spawn_gateway().await;
    let message = message();
    // 0x01 = compressed, but no grpc-encoding was declared; the rest are not flags at all.
    for flag in [0x01, 0x02, 0x40, 0x7f, 0x81, 0xff] {
        assert_refused(
            &gateway,
            &format!("flag {flag:#04x}"),
            frame(flag, len(&message), &message),
            Framing::Binary,
            Code::Internal,
        )
        .await;
    }
}

#[tokio::test]
async fn a_trailer_frame_from_the_client_is_internal_and_reaches_no_handler() {
    let gateway = spawn_gateway().await;
    let trailer = b"grpc-status: 0\r\nx-user-id: someone-else\r\n";
    let trailer_frame = frame(0x80, len(trailer), trailer);
    let mut after_message = frame(0, len(&message()), &message());
    after_message.extend_from_slice(&trailer_frame);

    assert_refused(
        &gateway,
        "trailer frame alone",
        trailer_frame,
        Framing::Binary,
        Code::Internal,
    )
    .await;
    assert_refused(
        &gateway,
        "trailer frame after a message",
        after_message.clone(),
        Framing::Binary,
        Code::Internal,
    )
    .await;
    assert_refused(
        &gateway,
        "trailer frame after a message, text mode",
        STANDARD.encode(after_message).into_bytes(),
        Framing::Text,
        Code::Internal,
    )
    .await;
}

#[tokio::test]
async fn invalid_base64_in_text_mode_is_internal_not_an_upstream_outage() {
    let gateway = spawn_gateway().await;
    let valid = Framing::Text.encode(&message());
    let mut valid_then_garbage = valid.clone();
    valid_then_garbage.extend_from_slice(b"@@@@");
    for (case, body) in [
        ("not base64 at all", b"!!!!not base64***".to_vec()),
        (
            "binary frame sent as text",
            frame(0, len(&message()), &message()),
        ),
        ("valid base64 then garbage", valid_then_garbage),
        ("base64 cut mid-quantum", valid[..valid.len() - 1].to_vec()),
    ] {
        assert_refused(&gateway, case, body, Framing::Text, Code::Internal).await;
    }
}

#[tokio::test]
async fn the_gateway_names_a_malformed_text_body_as_the_clients_fault() {
    let gateway = spawn_gateway().await;
    let reply = within(
        "invalid base64",
        gateway.grpc_web_raw(
            "/todo.v1.TodoService/CreateTodo",
            b"****".to_vec(),
            Framing::Text,
            &[],
        ),
    )
    .await;
    assert_eq!(reply.grpc_status(), Code::Internal, "{reply:?}");
    assert_eq!(reply.grpc_message(), "malformed request body");
    assert!(gateway.upstream.calls().is_empty());
}

#[tokio::test]
async fn an_empty_body_is_internal_in_every_framing() {
    let gateway = spawn_gateway().await;
    for framing in [Framing::Binary, Framing::BinaryProto, Framing::Text] {
        assert_refused(&gateway, "empty body", Vec::new(), framing, Code::Internal).await;
    }
}
