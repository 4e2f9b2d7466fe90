//! Framing and routing: grpc-web binary/text, native gRPC (h2c), unknown paths, local services.

use proto::todo::v1::{
    CreateTodoRequest, ListTodosRequest, ListTodosResponse, Todo,
    todo_service_client::TodoServiceClient,
};
use tonic::Code;

use crate::helpers::{Framing, spawn_gateway};

#[tokio::test]
async fn grpc_web_binary_list_todos_reaches_the_todo_service_and_returns_its_answer() {
    let gateway = spawn_gateway().await;
    for framing in [Framing::Binary, Framing::BinaryProto] {
        let reply = gateway
            .grpc_web(
                "/todo.v1.TodoService/ListTodos",
                &ListTodosRequest::default(),
                framing,
                &[],
            )
            .await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(framing.content_type())
        );
        assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
        let list: ListTodosResponse = reply.message();
        assert_eq!(list.todos[0].title, "from upstream");
        assert_eq!(list.total_size, 1);
    }
    assert_eq!(gateway.upstream.calls().len(), 2);
}

#[tokio::test]
async fn grpc_web_text_framing_round_trips_through_base64() {
    let gateway = spawn_gateway().await;
    let request = CreateTodoRequest {
        title: "text mode ✓".into(),
        description: "x".repeat(5000),
        ..CreateTodoRequest::default()
    };
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/CreateTodo",
            &request,
            Framing::Text,
            &[],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web-text")
    );
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    let todo: Todo = reply.message();
    assert_eq!(todo.title, "text mode ✓");
    assert_eq!(todo.description.len(), 5000);
}

#[tokio::test]
async fn native_grpc_over_h2c_is_forwarded() {
    let gateway = spawn_gateway().await;
    let mut client = TodoServiceClient::connect(gateway.url.clone())
        .await
        .unwrap();
    let response = client
        .create_todo(CreateTodoRequest {
            title: "native".into(),
            ..CreateTodoRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(response.get_ref().title, "native");
    assert_eq!(gateway.upstream.only_call().method, "CreateTodo");
}

#[tokio::test]
async fn an_unknown_service_is_unimplemented_for_grpc_web_and_native_grpc() {
    let gateway = spawn_gateway().await;
    for framing in [Framing::Binary, Framing::Text] {
        let reply = gateway
            .grpc_web(
                "/evil.v1.AdminService/DropAll",
                &ListTodosRequest::default(),
                framing,
                &[],
            )
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.grpc_status(), Code::Unimplemented);
        assert!(
            reply
                .grpc_message()
                .contains("/evil.v1.AdminService/DropAll")
        );
    }

    let channel = tonic::transport::Endpoint::from_shared(gateway.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<ListTodosRequest, ListTodosResponse, _>(
            tonic::Request::new(ListTodosRequest::default()),
            http::uri::PathAndQuery::from_static("/todo.v2.TodoService/ListTodos"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(gateway.upstream.calls().is_empty());

    // The gateway's own health service answers locally.
    let health = client
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(
        health.get_ref().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_is_unavailable() {
    let gateway = crate::helpers::spawn_gateway_with(crate::helpers::GatewayOptions {
        todo_service_url: Some(format!("http://127.0.0.1:{}", testkit::free_port())),
        ..Default::default()
    })
    .await;
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.grpc_status(), Code::Unavailable);
}

#[tokio::test]
async fn grpc_web_over_get_is_not_allowed() {
    let gateway = spawn_gateway().await;
    let response = gateway
        .http
        .get(format!("{}/todo.v1.TodoService/ListTodos", gateway.url))
        .header("content-type", "application/grpc-web")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(gateway.upstream.calls().is_empty());
}
