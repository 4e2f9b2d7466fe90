//! Identity comes only from the Better Auth session in the cookie: identity headers
//! (`x-user-id`, `x-forwarded-user`, `authorization`, …) and forged `grpc-*` metadata never reach
//! an upstream and never change whose request it is.

use proto::{
    auth::v1::{ValidateSessionRequest, ValidateSessionResponse},
    todo::v1::{
        CreateTodoRequest, GetTodoRequest, ListTodosRequest, ListTodosResponse, Todo,
        todo_service_client::TodoServiceClient,
    },
};
use tonic::Code;

use crate::{
    chain::chain,
    helpers::{Framing, spawn_gateway},
};

/// What the gateway may put on an upstream call (its allowlist plus tonic's own user-agent).
const MAY_REACH_UPSTREAM: [&str; 9] = [
    "cookie",
    "content-type",
    "te",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "traceparent",
    "x-request-id",
    "user-agent",
];

/// Headers a client might use to claim an identity or forge a gRPC outcome.
fn forged(bob: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-user-id", bob.to_owned()),
        ("x-forwarded-user", bob.to_owned()),
        ("x-remote-user", bob.to_owned()),
        ("x-authenticated-user", bob.to_owned()),
        ("authorization", format!("Bearer {bob}")),
        ("proxy-authorization", format!("Basic {bob}")),
        ("forwarded", "for=203.0.113.9;by=trusted".to_owned()),
        ("x-forwarded-for", "203.0.113.9".to_owned()),
        ("grpc-status", "0".to_owned()),
        ("grpc-message", "ok".to_owned()),
        ("grpc-status-details-bin", "AAAA".to_owned()),
        ("grpc-previous-rpc-attempts", "1".to_owned()),
        ("grpc-internal-encoding-request", "gzip".to_owned()),
    ]
}

#[tokio::test]
async fn identity_headers_and_forged_grpc_metadata_never_reach_the_upstream() {
    let gateway = spawn_gateway().await;
    let forged = forged("user-2");
    let headers: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for framing in [Framing::Binary, Framing::Text] {
        let reply = gateway
            .grpc_web(
                "/todo.v1.TodoService/ListTodos",
                &ListTodosRequest::default(),
                framing,
                &headers,
            )
            .await;
        assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    }

    let mut client = TodoServiceClient::connect(gateway.url.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(ListTodosRequest::default());
    for (name, value) in &forged {
        if name.ends_with("-bin") {
            request.metadata_mut().insert_bin(
                tonic::metadata::MetadataKey::from_static(name),
                tonic::metadata::MetadataValue::from_bytes(value.as_bytes()),
            );
        } else {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
    }
    client.list_todos(request).await.unwrap();

    let calls = gateway.upstream.calls();
    assert_eq!(calls.len(), 3);
    for call in calls {
        for name in call.metadata.keys() {
            assert!(
                MAY_REACH_UPSTREAM.contains(&name.as_str()),
                "{name} reached upstream: {:?}",
                call.metadata
            );
        }
    }
}

#[tokio::test]
async fn a_forged_grpc_status_in_the_request_does_not_change_the_answer() {
    let gateway = spawn_gateway().await;
    // The fake todo-service answers GetTodo with UNAUTHENTICATED.
    let reply = gateway
        .grpc_web(
            "/todo.v1.TodoService/GetTodo",
            &GetTodoRequest::default(),
            Framing::Binary,
            &[("grpc-status", "0"), ("grpc-message", "fine")],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Unauthenticated, "{reply:?}");
    assert_eq!(reply.headers.get_all("grpc-status").iter().count(), 1);
}

fn token_of(cookie: &str) -> &str {
    let value = cookie.split_once('=').unwrap().1;
    value.split_once('.').map_or(value, |(token, _)| token)
}

#[tokio::test]
async fn through_the_real_chain_identity_headers_change_nothing() {
    let chain = chain().await;
    let (gateway, better_auth) = (&chain.gateway, &chain.services.better_auth);
    let alice = better_auth.sign_up("alice-id").await.unwrap();
    let bob = better_auth.sign_up("bob-id").await.unwrap();
    let origin = gateway.origin();

    let mut forged = forged(&bob.id);
    forged.push(("authorization", format!("Bearer {}", token_of(&bob.cookie))));
    let mut headers: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("origin", &origin));

    // With alice's cookie, alice it is.
    let mut as_alice = headers.clone();
    as_alice.push(("cookie", &alice.cookie));
    let created = gateway
        .grpc_web(
            "/todo.v1.TodoService/CreateTodo",
            &CreateTodoRequest {
                title: "mine".into(),
                ..CreateTodoRequest::default()
            },
            Framing::Binary,
            &as_alice,
        )
        .await;
    assert_eq!(created.grpc_status(), Code::Ok, "{created:?}");
    assert_eq!(created.message::<Todo>().user_id, alice.id);

    let reply = gateway
        .grpc_web(
            "/auth.v1.AuthService/ValidateSession",
            &ValidateSessionRequest {
                cookie: alice.cookie.clone(),
            },
            Framing::Text,
            &as_alice,
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    assert_eq!(
        reply.message::<ValidateSessionResponse>().user.unwrap().id,
        alice.id
    );

    // Without a cookie, no header makes anyone of the caller.
    for path in [
        "/todo.v1.TodoService/ListTodos",
        "/todo.v1.TodoService/CreateTodo",
    ] {
        let reply = gateway
            .grpc_web(
                path,
                &ListTodosRequest::default(),
                Framing::Binary,
                &headers,
            )
            .await;
        assert_eq!(
            reply.grpc_status(),
            Code::Unauthenticated,
            "{path}: {reply:?}"
        );
    }

    // Bob still has nothing.
    let listed = gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[("cookie", &bob.cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(listed.grpc_status(), Code::Ok, "{listed:?}");
    assert!(listed.message::<ListTodosResponse>().todos.is_empty());
}

#[tokio::test]
async fn with_duplicate_session_cookies_the_first_decides_and_a_bad_first_fails_closed() {
    let chain = chain().await;
    let (gateway, better_auth) = (&chain.gateway, &chain.services.better_auth);
    let alice = better_auth.sign_up("alice-dup").await.unwrap();
    let bob = better_auth.sign_up("bob-dup").await.unwrap();
    let origin = gateway.origin();

    let create = |cookie: String| {
        let origin = origin.clone();
        async move {
            gateway
                .grpc_web(
                    "/todo.v1.TodoService/CreateTodo",
                    &CreateTodoRequest {
                        title: "dup".into(),
                        ..CreateTodoRequest::default()
                    },
                    Framing::Binary,
                    &[("cookie", &cookie), ("origin", &origin)],
                )
                .await
        }
    };
    for (first, second) in [(&alice, &bob), (&bob, &alice)] {
        let reply = create(format!("{}; {}", first.cookie, second.cookie)).await;
        assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
        assert_eq!(reply.message::<Todo>().user_id, first.id, "{}", first.name);
    }
    let reply = create(format!(
        "better-auth.session_token=forged.signature; {}",
        alice.cookie
    ))
    .await;
    assert_eq!(reply.grpc_status(), Code::Unauthenticated, "{reply:?}");
}
