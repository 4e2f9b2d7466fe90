//! A database outage answers UNAVAILABLE (and the service keeps running).

use tonic::Code;

use crate::helpers::{assert_code, reason, spawn_postgres_app};

/// A connection to the server's `postgres` database, beside the app's own database.
async fn admin_connection(database: &testkit::postgres::TestDatabase) -> tokio_postgres::Client {
    let (admin_url, _) = database.url.rsplit_once('/').expect("a database URL");
    let (admin, connection) =
        tokio_postgres::connect(&format!("{admin_url}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("admin connection");
    tokio::spawn(connection);
    admin
}

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
    let admin = admin_connection(database).await;
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

/// PostgreSQL only: after a database restart (here, every connection of the service terminated
/// by the server) the pool hands out no dead connection. The pool checks each connection's state
/// on checkout without a round trip, so this is what keeps the first RPCs after a restart from
/// failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_not_handed_out_again() {
    let Some(app) = spawn_postgres_app().await else {
        return;
    };
    let alice = app.user("alice").await;
    // Several calls at once, so the pool holds more than one connection.
    let titles: Vec<String> = (0..4).map(|n| format!("before {n}")).collect();
    let creates = titles.iter().map(|title| app.create(&alice, title));
    for result in futures::future::join_all(creates).await {
        result.expect("create works");
    }

    let database = app.postgres.as_ref().expect("a PostgreSQL app");
    let admin = admin_connection(database).await;
    let backends = |query: &'static str| {
        let admin = &admin;
        let name = database.name.clone();
        async move {
            admin
                .query_one(query, &[&name])
                .await
                .expect("pg_stat_activity answers")
                .get::<_, i64>(0)
        }
    };
    let terminated = backends(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .await;
    assert!(terminated >= 1, "the service had open connections");
    let gone = async {
        while backends("SELECT count(*) FROM pg_stat_activity WHERE datname = $1").await > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), gone)
        .await
        .expect("the terminated backends exit");

    for n in 0..6 {
        app.create(&alice, &format!("after {n}"))
            .await
            .expect("create works right after the restart");
    }
    let listed = app
        .list(
            &alice,
            proto::todo::v1::ListTodosRequest {
                page_size: 100,
                ..Default::default()
            },
        )
        .await
        .expect("list works right after the restart");
    assert_eq!(listed.todos.len(), 10);
}
