//! What sits around the TodoService: health and reflection without a session, message size
//! limits, graceful shutdown.

use std::time::Duration;

use proto::todo::v1 as pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::on_both_backends;

on_both_backends! {
    async fn health_answers_serving_without_a_session(app) {
        let mut health = HealthClient::new(app.channel.clone());
        for service in ["", "todo.v1.TodoService"] {
            let response = health
                .check(HealthCheckRequest { service: service.into() })
                .await
                .expect("health works without a cookie")
                .into_inner();
            assert_eq!(response.status(), ServingStatus::Serving, "service {service:?}");
        }
        assert_eq!(app.validate_calls(), 0, "health does not touch the auth-service");
    }

    async fn messages_over_the_size_limit_are_refused_and_store_nothing(app) {
        let alice = app.user("alice").await;
        let result = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "big".into(),
                description: "x".repeat(100 * 1024),
                ..Default::default()
            })
            .await;
        let status = result.expect_err("a 100 KiB message is refused");
        assert_ne!(status.code(), Code::Ok);
        assert!(app.list_all(&alice).await.is_empty());
    }

    async fn shutdown_stops_the_service_cleanly(app) {
        let mut app = app;
        let alice = app.user("alice").await;
        app.create(&alice, "before shutdown").await.expect("create works");
        let addr = app.addr;
        tokio::time::timeout(Duration::from_secs(10), app.stop_todo_service())
            .await
            .expect("shutdown finishes")
            .expect("the server ends without error");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the port no longer accepts connections"
        );
        // Existing client connections are closed too: calls now fail. A call the client queued
        // on the connection before it saw the close comes back unsent as CANCELLED (hyper's
        // `Canceled`, which tonic's Channel does not re-send); once the close is seen, the
        // Channel reconnects, is refused, and answers UNAVAILABLE.
        let mut codes = Vec::new();
        for _ in 0..5 {
            let status = app
                .create(&alice, "after shutdown")
                .await
                .expect_err("no call succeeds after shutdown");
            codes.push(status.code());
            if status.code() == Code::Unavailable {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(codes.last(), Some(&Code::Unavailable), "codes after shutdown: {codes:?}");
        assert!(
            codes.iter().all(|code| matches!(code, Code::Unavailable | Code::Cancelled)),
            "codes after shutdown: {codes:?}"
        );
    }
}
