//! A database outage answers UNAVAILABLE (and the service keeps running).

use tonic::Code;

use crate::helpers::{assert_code, reason, spawn_postgres_app};

/// PostgreSQL only: dropping the database out from under the running service is an outage we
/// can cause on demand. (SQLite runs in-process on a local file; it has no server to lose.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_postgres_database_answers_unavailable() {
    let Some(app) = spawn_postgres_app().await else {
        return;
    };
    let alice = app.user("alice").await;
    app.create(&alice, "before the outage")
        .await
        .expect("create works");

    let database = app.postgres.as_ref().expect("a PostgreSQL app");
    let (admin_url, _) = database.url.rsplit_once('/').expect("a database URL");
    let (admin, connection) =
        tokio_postgres::connect(&format!("{admin_url}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("admin connection");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", database.name))
        .await
        .expect("drop the database");

    for _ in 0..2 {
        let status = assert_code(
            app.create(&alice, "during the outage").await,
            Code::Unavailable,
        );
        assert_eq!(reason(&status), "DATABASE_UNAVAILABLE");
        assert!(
            !status.message().contains("postgres://"),
            "no connection details leak"
        );
    }
    // The service is still up: the session check and health still answer.
    let status = assert_code(
        app.list(&alice, proto::todo::v1::ListTodosRequest::default())
            .await,
        Code::Unavailable,
    );
    assert_eq!(reason(&status), "DATABASE_UNAVAILABLE");
}
