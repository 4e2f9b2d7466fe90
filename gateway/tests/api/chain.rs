//! The real chain behind the gateway: Better Auth (testkit) ← auth-service ← todo-service (SQLite)
//! ← gateway. A real sign-in's cookie decides the dashboard, ValidateSession and whose todos.

use proto::{
    auth::v1::{ValidateSessionRequest, ValidateSessionResponse},
    todo::v1::{CreateTodoRequest, ListTodosRequest, ListTodosResponse, Todo},
};
use reqwest::StatusCode;
use testkit::better_auth::{BetterAuth, BetterAuthOptions};
use tokio::sync::oneshot;
use tonic::Code;

use crate::helpers::{Framing, GatewayOptions, TestGateway, spawn_gateway_with};

pub(crate) struct Chain {
    pub(crate) gateway: TestGateway,
    pub(crate) services: Services,
}

/// Better Auth (trusting `http://127.0.0.1:{gateway_port}`), the auth-service and the
/// todo-service (SQLite), running until dropped.
pub(crate) struct Services {
    pub(crate) better_auth: BetterAuth,
    pub(crate) auth_url: String,
    pub(crate) todo_url: String,
    _stop: Vec<oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

pub(crate) async fn services(gateway_port: u16) -> Services {
    let better_auth = BetterAuth::start(BetterAuthOptions {
        trusted_origins: vec![format!("http://127.0.0.1:{gateway_port}")],
        ..BetterAuthOptions::default()
    })
    .await
    .unwrap();
    let mut config = auth_service::config::Config::new(better_auth.url().parse().unwrap());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let auth_service = auth_service::startup::App::build(config).await.unwrap();
    let auth_url = format!("http://{}", auth_service.local_addr());
    let (auth_tx, auth_rx) = oneshot::channel::<()>();
    tokio::spawn(auth_service.run_until(async {
        let _ = auth_rx.await;
    }));

    let data = tempfile::tempdir().unwrap();
    let todo_config = todo_service::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: todo_service::config::DatabaseUrl::Sqlite(data.path().join("todos.db")),
        database_pool_size: 4,
        database_timeout_ms: 3000,
        auth_service_url: auth_url.parse().unwrap(),
        auth_timeout_ms: 3000,
        log_format: telemetry::LogFormat::Pretty,
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
    };
    let todo_service = todo_service::startup::App::build(todo_config)
        .await
        .unwrap();
    let todo_url = format!("http://{}", todo_service.local_addr());
    let (todo_tx, todo_rx) = oneshot::channel::<()>();
    tokio::spawn(todo_service.run_until(async {
        let _ = todo_rx.await;
    }));
    Services {
        better_auth,
        auth_url,
        todo_url,
        _stop: vec![auth_tx, todo_tx],
        _data: data,
    }
}

pub(crate) async fn chain() -> Chain {
    let port = testkit::free_port();
    let services = services(port).await;
    let gateway = spawn_gateway_with(GatewayOptions {
        port,
        better_auth_url: services.better_auth.url().to_owned(),
        auth_service_url: Some(services.auth_url.clone()),
        todo_service_url: Some(services.todo_url.clone()),
        ..GatewayOptions::default()
    })
    .await;
    Chain { gateway, services }
}

async fn dashboard(gateway: &TestGateway, cookie: &str) -> reqwest::Response {
    gateway
        .http
        .get(format!("{}/dashboard", gateway.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_in_browser_gets_the_dashboard_and_after_sign_out_one_redirect_to_login() {
    let chain = chain().await;
    let (gateway, better_auth) = (&chain.gateway, &chain.services.better_auth);
    let user = better_auth.sign_up("dashboard").await.unwrap();

    let page = dashboard(gateway, &user.cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("dashboard page"));

    let sign_out = gateway
        .http
        .post(format!("{}/api/auth/sign-out", gateway.url))
        .header("origin", gateway.origin())
        .header("cookie", &user.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(sign_out.status(), StatusCode::OK);

    let redirect = dashboard(gateway, &user.cookie).await;
    assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
    assert_eq!(redirect.headers()["location"], "/login");
    let login = gateway
        .http
        .get(format!("{}/login", gateway.url))
        .header("cookie", &user.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn validate_session_over_grpc_web_text_uses_the_browser_cookie() {
    let chain = chain().await;
    let (gateway, better_auth) = (&chain.gateway, &chain.services.better_auth);
    let user = better_auth.sign_up("whoami").await.unwrap();
    let origin = gateway.origin();
    let path = "/auth.v1.AuthService/ValidateSession";
    let request = ValidateSessionRequest {
        cookie: user.cookie.clone(),
    };
    let reply = gateway
        .grpc_web(
            path,
            &request,
            Framing::Text,
            &[("cookie", &user.cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(reply.grpc_status(), Code::Ok, "{reply:?}");
    let response: ValidateSessionResponse = reply.message();
    assert_eq!(response.user.unwrap().email, user.email);

    let reply = gateway
        .grpc_web(
            path,
            &ValidateSessionRequest::default(),
            Framing::Binary,
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(reply.headers["grpc-status"], "16");
    assert_eq!(reply.grpc_status(), Code::Unauthenticated);
}

#[tokio::test]
async fn todos_through_the_gateway_belong_to_the_cookie_not_to_a_sent_x_user_id() {
    let chain = chain().await;
    let (gateway, better_auth) = (&chain.gateway, &chain.services.better_auth);
    let alice = better_auth.sign_up("alice").await.unwrap();
    let bob = better_auth.sign_up("bob").await.unwrap();
    let origin = gateway.origin();

    let created = gateway
        .grpc_web(
            "/todo.v1.TodoService/CreateTodo",
            &CreateTodoRequest {
                title: "alice's todo".into(),
                ..CreateTodoRequest::default()
            },
            Framing::Binary,
            &[
                ("cookie", &alice.cookie),
                ("origin", &origin),
                ("x-user-id", &bob.id),
            ],
        )
        .await;
    assert_eq!(created.grpc_status(), Code::Ok, "{created:?}");
    let todo: Todo = created.message();
    assert_eq!(todo.user_id, alice.id);

    for (user, expected) in [(&alice, 1), (&bob, 0)] {
        let listed = gateway
            .grpc_web(
                "/todo.v1.TodoService/ListTodos",
                &ListTodosRequest::default(),
                Framing::Text,
                &[("cookie", &user.cookie), ("origin", &origin)],
            )
            .await;
        assert_eq!(listed.grpc_status(), Code::Ok, "{listed:?}");
        let list: ListTodosResponse = listed.message();
        assert_eq!(list.todos.len(), expected, "{}", user.name);
    }

    // Without a session the todo-service's UNAUTHENTICATED comes back readable.
    let anonymous = gateway
        .grpc_web(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(anonymous.grpc_status(), Code::Unauthenticated);
}
