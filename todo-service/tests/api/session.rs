//! The session middleware: every RPC is checked with exactly one ValidateSession call; no
//! cookie, a bad cookie or an unreachable auth-service ends the RPC before any handler runs;
//! nothing but the session picks the user; Better Auth's Set-Cookie values reach the caller.

use proto::todo::v1 as pb;
use proto::todo::v1::todo_service_client::TodoServiceClient;
use testkit::better_auth::{BetterAuth, BetterAuthOptions, TestUser};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::helpers::{
    Options, TestApp, as_user, assert_code, grpc_frame, on_both_backends, push_bytes_field, reason,
    spawn_app_with,
};

/// One call of each RPC, with `prepare` applied to every request; returns the five results
/// (as `Result<(), Status>`, in the order List, Get, Create, Update, Delete).
async fn call_every_rpc(
    client: &TodoServiceClient<Channel>,
    prepare: impl Fn(&mut tonic::metadata::MetadataMap),
) -> Vec<(&'static str, Result<(), Status>)> {
    let id = uuid::Uuid::now_v7().to_string();
    let mut client = client.clone();
    fn req<T>(message: T, prepare: &impl Fn(&mut tonic::metadata::MetadataMap)) -> Request<T> {
        let mut request = Request::new(message);
        prepare(request.metadata_mut());
        request
    }
    vec![
        (
            "ListTodos",
            client
                .list_todos(req(pb::ListTodosRequest::default(), &prepare))
                .await
                .map(|_| ()),
        ),
        (
            "GetTodo",
            client
                .get_todo(req(
                    pb::GetTodoRequest {
                        id: id.clone(),
                        ..Default::default()
                    },
                    &prepare,
                ))
                .await
                .map(|_| ()),
        ),
        (
            "CreateTodo",
            client
                .create_todo(req(
                    pb::CreateTodoRequest {
                        title: "x".into(),
                        ..Default::default()
                    },
                    &prepare,
                ))
                .await
                .map(|_| ()),
        ),
        (
            "UpdateTodo",
            client
                .update_todo(req(
                    pb::UpdateTodoRequest {
                        id: id.clone(),
                        completed: Some(true),
                        ..Default::default()
                    },
                    &prepare,
                ))
                .await
                .map(|_| ()),
        ),
        (
            "DeleteTodo",
            client
                .delete_todo(req(
                    pb::DeleteTodoRequest {
                        id,
                        ..Default::default()
                    },
                    &prepare,
                ))
                .await
                .map(|_| ()),
        ),
    ]
}

fn set_cookie_values(metadata: &tonic::metadata::MetadataMap) -> Vec<String> {
    metadata
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

async fn spawn_with_auth_down(app: &TestApp) -> Option<TestApp> {
    spawn_app_with(Options {
        backend: app.backend,
        auth_service_down: true,
        better_auth: None,
    })
    .await
}

on_both_backends! {
    async fn every_rpc_without_a_cookie_is_unauthenticated(app) {
        let results = call_every_rpc(&app.client, |_| {}).await;
        for (method, result) in results {
            let status = result.expect_err(method);
            assert_eq!(status.code(), Code::Unauthenticated, "{method}: {}", status.message());
            assert_eq!(reason(&status), "SESSION_MISSING", "{method}");
        }
    }

    async fn every_rpc_with_an_unknown_session_is_unauthenticated(app) {
        let results = call_every_rpc(&app.client, |metadata| {
            metadata.insert("cookie", MetadataValue::from_static("better-auth.session_token=forged.token"));
        })
        .await;
        for (method, result) in results {
            let status = result.expect_err(method);
            assert_eq!(status.code(), Code::Unauthenticated, "{method}");
            assert_eq!(reason(&status), "SESSION_INVALID", "{method}");
        }
    }

    async fn a_signed_out_session_is_unauthenticated_and_its_cookies_are_cleared(app) {
        let alice = app.user("alice").await;
        app.create(&alice, "before sign-out").await.expect("create works");
        app.better_auth.sign_out(&alice.cookie).await.expect("sign-out works");

        let status = assert_code(app.create(&alice, "after sign-out").await, Code::Unauthenticated);
        assert_eq!(reason(&status), "SESSION_INVALID");
        let cleared = set_cookie_values(status.metadata());
        assert!(
            cleared.iter().any(|c| c.starts_with("better-auth.session_token=;")),
            "Better Auth's clearing Set-Cookie reaches the caller: {cleared:?}"
        );
    }

    async fn every_rpc_is_unavailable_when_the_auth_service_is_down(app) {
        let Some(down) = spawn_with_auth_down(&app).await else { return };
        let alice = app.user("alice").await;
        let cookie = alice.cookie.clone();
        let results = call_every_rpc(&down.client, move |metadata| {
            metadata.insert("cookie", MetadataValue::try_from(cookie.as_str()).expect("ascii"));
        })
        .await;
        for (method, result) in results {
            let status = result.expect_err(method);
            assert_eq!(status.code(), Code::Unavailable, "{method}: {}", status.message());
            assert_eq!(reason(&status), "AUTH_SERVICE_UNAVAILABLE", "{method}");
        }
        // Without a cookie it is still the auth-service's call, so still UNAVAILABLE.
        for (method, result) in call_every_rpc(&down.client, |_| {}).await {
            assert_eq!(result.expect_err(method).code(), Code::Unavailable, "{method}");
        }
    }

    async fn each_rpc_makes_exactly_one_validate_session_call(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let mut calls = app.validate_calls();
        let mut expect_one_more = |what: &str, app: &TestApp| {
            calls += 1;
            assert_eq!(app.validate_calls(), calls, "{what}");
        };

        let todo = app.create(&alice, "milk").await.expect("create works");
        expect_one_more("CreateTodo", &app);
        app.get(&alice, &todo.id).await.expect("get works");
        expect_one_more("GetTodo", &app);
        app.list(&alice, pb::ListTodosRequest::default()).await.expect("list works");
        expect_one_more("ListTodos", &app);
        app.update(&alice, pb::UpdateTodoRequest { id: todo.id.clone(), completed: Some(true), ..Default::default() })
            .await
            .expect("update works");
        expect_one_more("UpdateTodo", &app);
        let _ = app.get(&bob, &todo.id).await;
        expect_one_more("GetTodo as another user (NOT_FOUND)", &app);
        let _ = app.create(&alice, "").await;
        expect_one_more("CreateTodo with bad input", &app);
        let _ = app.list(&bob, pb::ListTodosRequest { user_id: alice.id.clone(), ..Default::default() }).await;
        expect_one_more("ListTodos for another user (PERMISSION_DENIED)", &app);
        app.delete(&alice, &todo.id).await.expect("delete works");
        expect_one_more("DeleteTodo", &app);
        let without_cookie = call_every_rpc(&app.client, |_| {}).await;
        assert_eq!(app.validate_calls(), calls + without_cookie.len(), "one per RPC without a cookie");
    }

    async fn identity_headers_cannot_change_the_user(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let alices = app.create(&alice, "alice's").await.expect("create works");

        let spoof = |mut request: Request<pb::ListTodosRequest>| {
            for name in ["x-user-id", "x-forwarded-user", "x-auth-user", "user-id", "x-remote-user"] {
                request.metadata_mut().insert(name, MetadataValue::try_from(alice.id.as_str()).expect("ascii"));
            }
            request.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {}", alice.id)).expect("ascii"));
            request
        };
        let mut client = app.client.clone();
        let bobs_view = client
            .list_todos(spoof(as_user(&bob, pb::ListTodosRequest::default())))
            .await
            .expect("list works")
            .into_inner();
        assert!(bobs_view.todos.is_empty(), "bob still sees only his own (empty) list");
        assert_eq!(bobs_view.total_size, 0);

        // With the spoofing headers and no cookie at all: still no session.
        let status = assert_code(
            client.list_todos(spoof(Request::new(pb::ListTodosRequest::default()))).await,
            Code::Unauthenticated,
        );
        assert_eq!(reason(&status), "SESSION_MISSING");

        // A todo created under spoofing headers belongs to the session's user.
        let mut create = as_user(&bob, pb::CreateTodoRequest { title: "whose?".into(), ..Default::default() });
        create.metadata_mut().insert("x-user-id", MetadataValue::try_from(alice.id.as_str()).expect("ascii"));
        let created = client.create_todo(create).await.expect("create works").into_inner();
        assert_eq!(created.user_id, bob.id);
        assert_eq!(app.list_all(&alice).await, vec![alices]);
    }

    async fn another_users_bearer_token_and_forged_grpc_metadata_change_nothing(app) {
        use prost::Message as _;
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let alices = app.create(&alice, "alice's").await.expect("create works");
        // Everything alice's session gives away: the cookie value, the raw token, and the pair.
        let value = alice.cookie.split_once('=').map(|(_, v)| v.to_owned()).expect("name=value");
        let token = value.split('.').next().expect("token.signature").to_owned();
        let forged: Vec<(&str, String)> = vec![
            ("authorization", format!("Bearer {token}")),
            ("authorization", format!("Bearer {value}")),
            ("authorization", format!("Bearer {}", alice.cookie)),
            ("x-user-id", alice.id.clone()),
            ("x-forwarded-user", alice.id.clone()),
            ("x-session-token", token.clone()),
            ("x-cookie", alice.cookie.clone()),
            ("set-cookie", alice.cookie.clone()),
            ("grpc-user-id", alice.id.clone()),
            ("grpc-previous-rpc-attempts", "1".into()),
            ("grpc-status", "0".into()),
            ("grpc-message", format!("user {}", alice.id)),
            ("grpc-status-details-bin", "CAASAmlk".into()),
            ("grpc-tags-bin", "AAE".into()),
        ];
        let headers: Vec<(&str, &[u8])> = forged.iter().map(|(n, v)| (*n, v.as_bytes())).collect();

        // As bob, through a raw HTTP/2 call that keeps every header (tonic would drop the
        // reserved grpc-* ones): bob's list, bob's new todo.
        let answer = app.raw_call("/todo.v1.TodoService/ListTodos", Some(&bob), &headers, grpc_frame(&[])).await;
        assert_eq!(answer.status.code(), Code::Ok, "{}", answer.status.message());
        let page = pb::ListTodosResponse::decode(&answer.body[5..]).expect("a ListTodosResponse");
        assert!(page.todos.is_empty(), "bob sees his own (empty) list: {page:?}");
        assert_eq!(page.total_size, 0);
        let mut create = Vec::new();
        push_bytes_field(&mut create, 2, b"whose?");
        let answer = app.raw_call("/todo.v1.TodoService/CreateTodo", Some(&bob), &headers, grpc_frame(&create)).await;
        assert_eq!(answer.status.code(), Code::Ok, "{}", answer.status.message());
        let created = pb::Todo::decode(&answer.body[5..]).expect("a Todo");
        assert_eq!(created.user_id, bob.id);
        let answer = app
            .raw_call("/todo.v1.TodoService/GetTodo", Some(&bob), &headers, grpc_frame(&pb::GetTodoRequest { id: alices.id.clone(), ..Default::default() }.encode_to_vec()))
            .await;
        assert_eq!(answer.status.code(), Code::NotFound, "{}", answer.status.message());

        // Without a cookie none of it is a session: not even alice's own token as a bearer.
        let answer = app.raw_call("/todo.v1.TodoService/ListTodos", None, &headers, grpc_frame(&[])).await;
        assert_eq!(answer.status.code(), Code::Unauthenticated);
        assert_eq!(reason(&answer.status), "SESSION_MISSING");

        // The same through tonic, which keeps the non-reserved ones.
        let mut request = as_user(&bob, pb::ListTodosRequest::default());
        for (name, value) in &forged {
            if let (Ok(name), Ok(value)) = (
                name.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                MetadataValue::try_from(value.as_str()),
            ) {
                request.metadata_mut().append(name, value);
            }
        }
        let page = app.client.clone().list_todos(request).await.expect("list works").into_inner();
        assert_eq!(page.todos, vec![created.clone()], "bob's own todo only");
        assert_eq!(app.list_all(&alice).await, vec![alices], "alice's data is unchanged");
    }

    async fn a_cookie_split_over_several_metadata_values_still_authenticates(app) {
        let alice = app.user("alice").await;
        let mut request = Request::new(pb::ListTodosRequest::default());
        request.metadata_mut().append("cookie", MetadataValue::from_static("theme=dark"));
        request.metadata_mut().append("cookie", MetadataValue::try_from(alice.cookie.as_str()).expect("ascii"));
        let page = app.client.clone().list_todos(request).await.expect("authenticated");
        assert_eq!(page.into_inner().total_size, 0);
    }
}

/// With `updateAge` 1 s Better Auth refreshes a session older than a second and sends a new
/// Set-Cookie; the todo-service passes it back on a successful RPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_session_cookie_is_passed_back_to_the_caller() {
    let better_auth: &'static BetterAuth = Box::leak(Box::new(
        BetterAuth::start(BetterAuthOptions {
            session_update_age_secs: Some(1),
            ..Default::default()
        })
        .await
        .expect("Better Auth starts"),
    ));
    let app = spawn_app_with(Options {
        backend: crate::helpers::Backend::Sqlite,
        auth_service_down: false,
        better_auth: Some(better_auth),
    })
    .await
    .expect("SQLite is always available");
    let alice: TestUser = app.user("alice").await;
    // Let the session age past updateAge.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;

    let response = app
        .client
        .clone()
        .list_todos(as_user(&alice, pb::ListTodosRequest::default()))
        .await
        .expect("list works");
    let set_cookies = set_cookie_values(response.metadata());
    // The refreshed session is a secret too: the log check on drop covers it.
    app.remember_cookies(&set_cookies);
    better_auth.stop();
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with("better-auth.session_token=")),
        "the refreshed session cookie reaches the caller: {set_cookies:?}"
    );
}
