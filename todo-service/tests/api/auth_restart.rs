//! The auth-service shutting down gracefully (and a new one taking its port) under a burst of
//! todo RPCs: every RPC is served or refused with UNAVAILABLE, never CANCELLED, and the
//! todo-service keeps working without a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proto::todo::v1 as pb;
use proto::todo::v1::todo_service_client::TodoServiceClient;
use testkit::better_auth::BetterAuth;
use todo_service::config::{Config, DatabaseUrl};
use todo_service::startup::App;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::as_user;

const CALLERS: usize = 16;

/// An auth-service on `listen` (port 0 for a free one) until the sender is used or dropped.
async fn start_auth_service(
    better_auth: &BetterAuth,
    listen: SocketAddr,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
) {
    let mut config = auth_service::Config::new(better_auth.url().parse().expect("Better Auth URL"));
    config.listen = listen;
    config.metrics_listen = "127.0.0.1:0".parse().expect("address");
    let app = auth_service::App::build(config)
        .await
        .expect("the auth-service builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn rpcs_racing_an_auth_service_restart_are_served_or_unavailable_never_cancelled() {
    let better_auth = BetterAuth::shared();
    let user = better_auth.sign_up("restart").await.expect("sign-up works");
    let (auth_addr, stop_auth, auth_server) =
        start_auth_service(better_auth, "127.0.0.1:0".parse().expect("address")).await;

    let dir = tempfile::tempdir().expect("a temp folder");
    let app = App::build(Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        database_url: DatabaseUrl::Sqlite(dir.path().join("todos.db")),
        database_pool_size: 8,
        database_timeout_ms: 3000,
        auth_service_url: format!("http://{auth_addr}").parse().expect("uri"),
        auth_timeout_ms: 3000,
        log_format: telemetry::LogFormat::Pretty,
        metrics_listen: "127.0.0.1:0".parse().expect("address"),
    })
    .await
    .expect("the todo-service builds");
    let todo_addr = app.local_addr();
    let (stop_todo, todo_stopped) = oneshot::channel::<()>();
    let todo_server = tokio::spawn(app.run_until(async {
        let _ = todo_stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{todo_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("the client connects");

    let running = Arc::new(AtomicBool::new(true));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut client = TodoServiceClient::new(channel.clone());
            let cookie_user = user.clone();
            let running = running.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while running.load(Ordering::Relaxed) {
                    let request = as_user(&cookie_user, pb::ListTodosRequest::default());
                    outcomes.push(match client.list_todos(request).await {
                        Ok(_) => (Code::Ok, String::new()),
                        Err(status) => (status.code(), status.message().to_owned()),
                    });
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    // Graceful shutdown with session checks in flight; then a new auth-service on the same port.
    stop_auth.send(()).expect("the auth-service is running");
    auth_server
        .await
        .expect("the auth-service task")
        .expect("the auth-service stops cleanly");
    let (_, stop_second, second_server) = start_auth_service(better_auth, auth_addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);

    let mut outcomes = Vec::new();
    for caller in callers {
        outcomes.extend(caller.await.expect("a caller"));
    }
    let served = outcomes
        .iter()
        .filter(|(code, _)| *code == Code::Ok)
        .count();
    let refused = outcomes
        .iter()
        .filter(|(code, _)| *code == Code::Unavailable)
        .count();
    let other: Vec<_> = outcomes
        .iter()
        .filter(|(code, _)| !matches!(code, Code::Ok | Code::Unavailable))
        .collect();
    assert!(
        other.is_empty(),
        "{} of {} RPCs were neither served nor UNAVAILABLE: {other:?}",
        other.len(),
        outcomes.len()
    );
    assert!(
        served > CALLERS,
        "only {served} RPCs served ({refused} refused)"
    );

    // The same todo-service answers through the new auth-service.
    let mut client = TodoServiceClient::new(channel);
    client
        .list_todos(as_user(&user, pb::ListTodosRequest::default()))
        .await
        .expect("served after the restart");

    let _ = stop_second.send(());
    let _ = stop_todo.send(());
    second_server
        .await
        .expect("the second auth-service task")
        .expect("it stops cleanly");
    todo_server
        .await
        .expect("the todo-service task")
        .expect("it stops cleanly");
}
