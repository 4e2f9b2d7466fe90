//! Helpers for testkit's own tests: call get-session the way the auth-service will.

use serde_json::Value;
use testkit::better_auth::BetterAuth;

/// `GET /api/auth/get-session` with an optional `Cookie` header; asserts 200 and returns the
/// JSON body (`null` or `{"session", "user"}`).
pub(crate) async fn get_session(better_auth: &BetterAuth, cookie: Option<&str>) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(format!("{}/api/auth/get-session", better_auth.url()));
    if let Some(cookie) = cookie {
        request = request.header(reqwest::header::COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.unwrap()
}

/// Signs a user up, checks the cookie works, signs out and checks it no longer does.
pub(crate) async fn assert_session_lifecycle(better_auth: &BetterAuth) {
    let user = better_auth.sign_up("Lifecycle").await.unwrap();
    assert!(
        user.cookie.starts_with("better-auth.session_token="),
        "{}",
        user.cookie
    );
    assert!(user.email.starts_with("lifecycle-") && user.email.ends_with("@example.com"));

    let session = get_session(better_auth, Some(&user.cookie)).await;
    assert_eq!(session["user"]["id"], user.id.as_str());
    assert_eq!(session["user"]["email"], user.email.as_str());
    assert_eq!(session["user"]["name"], "Lifecycle");
    assert_eq!(get_session(better_auth, None).await, Value::Null);

    better_auth.sign_out(&user.cookie).await.unwrap();
    assert_eq!(
        get_session(better_auth, Some(&user.cookie)).await,
        Value::Null
    );

    let again = better_auth
        .sign_in(&user.email, &user.password)
        .await
        .unwrap();
    assert_eq!(again.id, user.id);
    assert_ne!(again.cookie, user.cookie);
    let session = get_session(better_auth, Some(&again.cookie)).await;
    assert_eq!(session["user"]["id"], user.id.as_str());
}
