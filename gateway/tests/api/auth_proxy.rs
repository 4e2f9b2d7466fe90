//! `/api/auth/*` through the gateway to a real Better Auth: cookies set, Origin checked by
//! Better Auth against the browser's Origin, the client address stated by the gateway.

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::better_auth::{BetterAuth, BetterAuthOptions};

use crate::helpers::{GatewayOptions, TestGateway, spawn_gateway, spawn_gateway_with};

/// A gateway on a fixed port whose origin the Better Auth trusts, as in a real deployment.
async fn gateway_and_better_auth() -> (TestGateway, BetterAuth) {
    let port = testkit::free_port();
    let better_auth = BetterAuth::start(BetterAuthOptions {
        trusted_origins: vec![format!("http://127.0.0.1:{port}")],
        ..BetterAuthOptions::default()
    })
    .await
    .unwrap();
    let gateway = spawn_gateway_with(GatewayOptions {
        port,
        better_auth_url: better_auth.url().to_owned(),
        ..GatewayOptions::default()
    })
    .await;
    (gateway, better_auth)
}

fn session_cookie(response: &reqwest::Response) -> String {
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("better-auth.session_token="))
        .expect("a session cookie")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"));
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_up_and_sign_in_through_the_gateway_set_the_session_cookie() {
    let (gateway, _better_auth) = gateway_and_better_auth().await;
    let email = format!("proxy-{}@example.com", testkit::free_port());
    let origin = gateway.origin();
    let sign_up = gateway
        .http
        .post(format!("{}/api/auth/sign-up/email", gateway.url))
        .header("origin", &origin)
        .header("content-type", "application/json")
        .body(json!({"name": "Proxy", "email": email, "password": "a-long-password"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(sign_up.status(), StatusCode::OK);
    session_cookie(&sign_up);

    let sign_in = gateway
        .http
        .post(format!("{}/api/auth/sign-in/email?ignored=1", gateway.url))
        .header("origin", &origin)
        .header("content-type", "application/json")
        .header("x-forwarded-for", "203.0.113.9")
        .body(json!({"email": email, "password": "a-long-password"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), StatusCode::OK);
    let cookie = session_cookie(&sign_in);

    let session = gateway
        .http
        .get(format!("{}/api/auth/get-session", gateway.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = serde_json::from_str(&session.text().await.unwrap()).unwrap();
    assert_eq!(session["user"]["email"], email.as_str());
    // The gateway states the peer address; a client-sent X-Forwarded-For is not believed.
    assert_eq!(session["session"]["ipAddress"], "127.0.0.1", "{session}");
}

#[tokio::test]
async fn better_auth_sees_the_browsers_foreign_origin_and_refuses_it() {
    let (gateway, _better_auth) = gateway_and_better_auth().await;
    let response = gateway
        .http
        .post(format!("{}/api/auth/sign-in/email", gateway.url))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(json!({"email": "x@example.com", "password": "a-long-password"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["code"], "INVALID_ORIGIN");
}

#[tokio::test]
async fn sign_out_through_the_gateway_passes_every_clearing_cookie() {
    let (gateway, better_auth) = gateway_and_better_auth().await;
    let user = better_auth.sign_up("signout").await.unwrap();
    let response = gateway
        .http
        .post(format!("{}/api/auth/sign-out", gateway.url))
        .header("origin", gateway.origin())
        .header("cookie", &user.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cleared: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(cleared.len() >= 2, "{cleared:?}");
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

#[tokio::test]
async fn better_auth_down_is_a_502() {
    let gateway = spawn_gateway().await;
    let response = gateway
        .http
        .get(format!("{}/api/auth/get-session", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
}
