//! What crosses the gateway: the cookie and allowlisted headers go up, nothing else; every
//! `set-cookie` comes back.

use proto::todo::v1::{
    GetTodoRequest, ListTodosRequest, ListTodosResponse, todo_service_client::TodoServiceClient,
};
use tonic::Code;

use crate::helpers::{CLEARING_COOKIE, Framing, LIST_SET_COOKIES, spawn_gateway};

#[tokio::test]
async fn the_browser_cookie_becomes_cookie_metadata_and_other_headers_are_stripped() {
    let gateway = spawn_gateway().await;
    let origin = gateway.origin();
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[
                ("cookie", "better-auth.session_token=abc.def"),
                ("origin", &origin),
                ("x-user-id", "someone-else"),
                ("authorization", "Bearer stolen"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-grpc-web", "1"),
                ("user-agent", "test-browser"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("x-request-id", "req-42"),
                ("grpc-timeout", "5S"),
            ],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");

    let call = gateway.upstream.only_call();
    let metadata = &call.metadata;
    assert_eq!(metadata["cookie"], "better-auth.session_token=abc.def");
    assert_eq!(
        metadata["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(metadata["x-request-id"], "req-42");
    for stripped in [
        "x-user-id",
        "authorization",
        "x-forwarded-for",
        "x-grpc-web",
        "origin",
    ] {
        assert!(
            metadata.get(stripped).is_none(),
            "{stripped} reached upstream"
        );
    }
    // tonic's own client sets user-agent; the browser's value must not be it.
    assert_ne!(
        metadata.get("user-agent").map(|v| v.to_str().unwrap()),
        Some("test-browser")
    );
}

#[tokio::test]
async fn native_grpc_metadata_is_filtered_the_same_way() {
    let gateway = spawn_gateway().await;
    let mut client = TodoServiceClient::connect(gateway.url.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(ListTodosRequest::default());
    request
        .metadata_mut()
        .insert("cookie", "better-auth.session_token=xyz".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-user-id", "someone-else".parse().unwrap());
    client.list_todos(request).await.unwrap();

    let call = gateway.upstream.only_call();
    assert_eq!(call.metadata["cookie"], "better-auth.session_token=xyz");
    assert!(call.metadata.get("x-user-id").is_none());
}

#[tokio::test]
async fn every_upstream_set_cookie_reaches_the_browser() {
    let gateway = spawn_gateway().await;
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Text,
            &[],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok);
    let _: ListTodosResponse = reply.message();
    assert_eq!(reply.set_cookies(), LIST_SET_COOKIES);
}

#[tokio::test]
async fn set_cookie_on_a_trailers_only_error_reaches_the_browser() {
    let gateway = spawn_gateway().await;
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/GetTodo",
            &GetTodoRequest::default(),
            Framing::Binary,
            &[],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.messages.is_empty());
    assert_eq!(reply.headers["grpc-status"], "16");
    assert_eq!(reply.grpc_status(), Code::Unauthenticated);
    assert_eq!(reply.set_cookies(), [CLEARING_COOKIE]);
}
