//! Starting Better Auth with each option, and the sign-up/in/out helpers.

use std::net::TcpStream;

use testkit::better_auth::{BetterAuth, BetterAuthOptions, Database};

use crate::helpers::{assert_session_lifecycle, get_session};

#[tokio::test]
async fn a_session_lives_until_sign_out_on_sqlite() {
    let better_auth = BetterAuth::start(BetterAuthOptions::default())
        .await
        .unwrap();
    assert_session_lifecycle(&better_auth).await;
}

#[tokio::test]
async fn a_session_lives_until_sign_out_on_postgres() {
    let Some(database) = testkit::postgres::fresh_database("testkit_ba")
        .await
        .unwrap()
    else {
        return;
    };
    let better_auth = BetterAuth::start(BetterAuthOptions {
        database: Database::Postgres(database.url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_session_lifecycle(&better_auth).await;

    // The users really are in that database.
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(r#"select count(*) from "user""#, &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    drop(client);
    drop(better_auth);
}

#[tokio::test]
async fn url_is_loopback_http_and_logs_show_the_listening_line() {
    let better_auth = BetterAuth::start(BetterAuthOptions::default())
        .await
        .unwrap();
    assert!(better_auth.url().starts_with("http://127.0.0.1:"));
    assert_eq!(better_auth.base_url(), better_auth.url());
    let logs = better_auth.logs();
    assert!(
        logs.contains(&format!("better-auth listening on {}", better_auth.url())),
        "{logs}"
    );
}

#[tokio::test]
async fn an_https_base_url_gives_secure_prefixed_cookies_on_a_plain_http_server() {
    let better_auth = BetterAuth::start(BetterAuthOptions {
        https_base_url: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(better_auth.url().starts_with("http://127.0.0.1:"));
    assert_eq!(
        better_auth.base_url(),
        better_auth.url().replace("http://", "https://")
    );

    let user = better_auth.sign_up("secure").await.unwrap();
    assert!(
        user.cookie
            .starts_with("__Secure-better-auth.session_token="),
        "{}",
        user.cookie
    );
    assert!(user.set_cookies.iter().any(|c| c.contains("; Secure")));
    let session = get_session(&better_auth, Some(&user.cookie)).await;
    assert_eq!(session["user"]["id"], user.id.as_str());

    // sign_out sends the https Origin, which is the trusted one here.
    better_auth.sign_out(&user.cookie).await.unwrap();
    assert!(
        get_session(&better_auth, Some(&user.cookie))
            .await
            .is_null()
    );
}

#[tokio::test]
async fn session_lifetimes_are_passed_to_better_auth() {
    let better_auth = BetterAuth::start(BetterAuthOptions {
        session_expires_in_secs: Some(3600),
        session_update_age_secs: Some(60),
        ..Default::default()
    })
    .await
    .unwrap();
    let user = better_auth.sign_up("lifetime").await.unwrap();
    assert!(
        user.set_cookies.iter().any(|c| c.contains("Max-Age=3600")),
        "{:?}",
        user.set_cookies
    );
}

#[tokio::test]
async fn trusted_origins_may_post_and_others_may_not() {
    let better_auth = BetterAuth::start(BetterAuthOptions {
        trusted_origins: vec!["http://localhost:5173".to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let user = better_auth.sign_up("origin").await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let sign_in = |origin: &'static str| {
        client
            .post(format!("{}/api/auth/sign-in/email", better_auth.url()))
            .header("origin", origin)
            .json(&serde_json::json!({ "email": user.email, "password": user.password }))
            .send()
    };
    assert_eq!(
        sign_in("http://localhost:5173").await.unwrap().status(),
        200
    );
    assert_eq!(sign_in("http://evil.example").await.unwrap().status(), 403);
}

#[tokio::test]
async fn sign_in_with_a_wrong_password_is_an_error_naming_the_status() {
    let better_auth = BetterAuth::shared();
    let user = better_auth.sign_up("wrong-password").await.unwrap();
    let error = better_auth
        .sign_in(&user.email, "not-the-password")
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("401"), "{error:#}");
}

#[tokio::test]
async fn stop_kills_the_server_so_its_port_refuses_connections() {
    let better_auth = BetterAuth::start(BetterAuthOptions::default())
        .await
        .unwrap();
    let address = better_auth.url().trim_start_matches("http://").to_owned();
    assert!(TcpStream::connect(&address).is_ok());
    better_auth.stop();
    assert!(TcpStream::connect(&address).is_err());
    better_auth.stop(); // idempotent
}

#[tokio::test]
async fn a_server_that_dies_during_startup_is_reported_with_its_output() {
    // Nothing listens on port 1: creating the tables fails and the server exits.
    let error = BetterAuth::start(BetterAuthOptions {
        database: Database::Postgres("postgres://postgres@127.0.0.1:1/none".to_owned()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("exited during startup"), "{message}");
    assert!(
        message.contains("creating the database tables failed"),
        "{message}"
    );
}
