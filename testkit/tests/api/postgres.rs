//! `fresh_database`: a new empty database per call, dropped afterwards.

#[tokio::test]
async fn fresh_database_is_usable_and_dropped_afterwards() {
    let Some(database) = testkit::postgres::fresh_database("testkit_pg")
        .await
        .unwrap()
    else {
        return;
    };
    assert!(database.url.ends_with(&format!("/{}", database.name)));
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let row = client
        .query_one("select current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), database.name);
    // The open connection must not stop the drop (WITH (FORCE)).
    let name = database.name.clone();
    drop(database);
    let _ = connection.await;

    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let count: i64 = admin
        .query_one(
            "select count(*) from pg_database where datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn two_fresh_databases_have_different_names() {
    let Some(first) = testkit::postgres::fresh_database("testkit_pg")
        .await
        .unwrap()
    else {
        return;
    };
    let second = testkit::postgres::fresh_database("testkit_pg")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first.name, second.name);
    assert_ne!(first.url, second.url);
}
