//! Fault injection with a stub Better Auth: what the auth-service does when Better Auth is down,
//! slow, failing, or answering something unexpected, and exactly what it forwards.

use std::time::{Duration, Instant};

use auth_service::cookie::MAX_COOKIE_HEADER_BYTES;
use proto::auth::v1::ValidateSessionRequest;
use tonic::{Code, metadata::MetadataValue};

use crate::helpers::{
    Behaviour, StubServer, VALID_SESSION_BODY, assert_error, closed_port_url, set_cookie_metadata,
    spawn_app, spawn_app_with,
};

const SESSION: &str = "better-auth.session_token=abc.def%2F%3D";

#[tokio::test]
async fn validate_session_without_a_better_auth_cookie_is_session_missing_and_calls_nobody() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    for cookie in [
        "",
        "theme=dark; other=1",
        "better-auth=1; xbetter-auth.session_token=2",
    ] {
        let status = assert_error(
            app.validate(cookie).await,
            Code::Unauthenticated,
            "SESSION_MISSING",
        );
        assert!(status.message().contains("sign in"), "{}", status.message());
    }
    assert_eq!(stub.requests().len(), 0, "Better Auth must not be called");
    assert_eq!(stub.connections(), 0);
}

#[tokio::test]
async fn validate_session_forwards_only_better_auth_cookies_to_get_session() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let response = app
        .validate(&format!(
            "theme=dark; {SESSION}; tracking=xyz; __Secure-better-auth.dont_remember=true.sig; other=1"
        ))
        .await
        .expect("valid session");
    assert_eq!(
        response.get_ref().user.as_ref().expect("user").id,
        "aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW"
    );

    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].target,
        "/api/auth/get-session?disableCookieCache=true"
    );
    assert_eq!(
        requests[0].cookie.as_deref(),
        Some(format!("{SESSION}; __Secure-better-auth.dont_remember=true.sig").as_str())
    );
}

#[tokio::test]
async fn validate_session_uses_cookie_metadata_when_the_field_is_empty() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    // Two `cookie` entries, as an HTTP/2 client may split one Cookie header.
    let mut request = tonic::Request::new(ValidateSessionRequest::default());
    request
        .metadata_mut()
        .append("cookie", MetadataValue::from_static("theme=dark"));
    request.metadata_mut().append(
        "cookie",
        MetadataValue::try_from(format!("{SESSION}; other=1")).expect("ascii"),
    );
    let response = app
        .client
        .clone()
        .validate_session(request)
        .await
        .expect("the metadata cookie is used");
    assert_eq!(
        response.get_ref().session.as_ref().expect("session").id,
        "OQhKwpFYKHIBMUISRk4kdIqn1yt0viLE"
    );
    assert_eq!(stub.requests()[0].cookie.as_deref(), Some(SESSION));
}

#[tokio::test]
async fn validate_session_prefers_the_cookie_field_over_metadata() {
    let stub = StubServer::start(Behaviour::status(200, "null")).await;
    let app = spawn_app(&stub.url).await;

    let mut request = tonic::Request::new(ValidateSessionRequest {
        cookie: "better-auth.session_token=from-field".into(),
    });
    request.metadata_mut().append(
        "cookie",
        MetadataValue::from_static("better-auth.session_token=from-metadata"),
    );
    let result = app.client.clone().validate_session(request).await;
    assert_error(result, Code::Unauthenticated, "SESSION_INVALID");
    assert_eq!(
        stub.requests()[0].cookie.as_deref(),
        Some("better-auth.session_token=from-field")
    );
}

#[tokio::test]
async fn validate_session_without_cookie_field_or_metadata_is_session_missing() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let result = app
        .client
        .clone()
        .validate_session(ValidateSessionRequest::default())
        .await;
    assert_error(result, Code::Unauthenticated, "SESSION_MISSING");
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn validate_session_rejects_an_oversized_cookie_before_calling_better_auth() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let cookie = format!("{SESSION}; pad={}", "x".repeat(MAX_COOKIE_HEADER_BYTES));
    let status = assert_error(
        app.validate(&cookie).await,
        Code::InvalidArgument,
        "COOKIE_TOO_LARGE",
    );
    assert!(status.message().contains("8192"), "{}", status.message());
    assert!(!status.message().contains("abc.def"));

    // Exactly at the limit is still accepted.
    let at_limit = format!("{SESSION}; p=");
    let at_limit = format!(
        "{at_limit}{}",
        "x".repeat(MAX_COOKIE_HEADER_BYTES - at_limit.len())
    );
    assert_eq!(at_limit.len(), MAX_COOKIE_HEADER_BYTES);
    app.validate(&at_limit)
        .await
        .expect("a header of exactly 8 KiB is accepted");
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn validate_session_rejects_an_oversized_cookie_in_metadata() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let mut request = tonic::Request::new(ValidateSessionRequest::default());
    for _ in 0..3 {
        request.metadata_mut().append(
            "cookie",
            MetadataValue::try_from(format!("{SESSION}{}", "x".repeat(3000))).expect("ascii"),
        );
    }
    let result = app.client.clone().validate_session(request).await;
    assert_error(result, Code::InvalidArgument, "COOKIE_TOO_LARGE");
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn validate_session_rejects_a_cookie_with_a_newline() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let status = assert_error(
        app.validate("better-auth.session_token=abc\r\nx-injected: 1")
            .await,
        Code::InvalidArgument,
        "COOKIE_MALFORMED",
    );
    assert!(
        status.message().contains("HTTP header"),
        "{}",
        status.message()
    );
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn validate_session_is_unavailable_when_better_auth_is_down() {
    let url = closed_port_url().await;
    let app = spawn_app(&url).await;

    let status = assert_error(
        app.validate(SESSION).await,
        Code::Unavailable,
        "AUTH_PROVIDER_UNAVAILABLE",
    );
    assert!(status.message().contains(&url), "{}", status.message());
    assert!(!status.message().contains("abc.def"));
}

#[tokio::test]
async fn validate_session_is_unavailable_soon_after_the_timeout_when_better_auth_is_slow() {
    let stub = StubServer::start(Behaviour::Sleep(Duration::from_secs(5))).await;
    let app = spawn_app_with(&stub.url, |config| {
        config.better_auth_timeout = Duration::from_millis(300);
    })
    .await;

    let started = Instant::now();
    let status = assert_error(
        app.validate(SESSION).await,
        Code::Unavailable,
        "AUTH_PROVIDER_UNAVAILABLE",
    );
    let elapsed = started.elapsed();
    // The stub answers after 5 s; well under that (with room for a loaded CI machine) means
    // the 300 ms timeout, not the stub, ended the call.
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    assert!(status.message().contains("300 ms"), "{}", status.message());
    assert_eq!(stub.requests().len(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn validate_session_is_unavailable_when_better_auth_fails_or_throttles() {
    for status_code in [500, 502, 503, 429] {
        let stub = StubServer::start(Behaviour::status(
            status_code,
            r#"{"message":"Failed to get session","code":"FAILED_TO_GET_SESSION"}"#,
        ))
        .await;
        let app = spawn_app(&stub.url).await;

        let status = assert_error(
            app.validate(SESSION).await,
            Code::Unavailable,
            "AUTH_PROVIDER_UNAVAILABLE",
        );
        assert!(
            status.message().contains(&status_code.to_string()),
            "{}",
            status.message()
        );
        assert_eq!(stub.requests().len(), 1, "no retry after an HTTP answer");
    }
}

#[tokio::test]
async fn validate_session_is_unauthenticated_when_better_auth_answers_401_or_403() {
    for status_code in [401, 403] {
        let stub = StubServer::start(Behaviour::Respond {
            status: status_code,
            headers: vec![(
                "set-cookie".into(),
                "better-auth.session_token=; Max-Age=0; Path=/".into(),
            )],
            body: r#"{"message":"no"}"#.into(),
        })
        .await;
        let app = spawn_app(&stub.url).await;

        let status = assert_error(
            app.validate(SESSION).await,
            Code::Unauthenticated,
            "SESSION_INVALID",
        );
        assert_eq!(
            set_cookie_metadata(status.metadata()),
            vec!["better-auth.session_token=; Max-Age=0; Path=/".to_owned()]
        );
    }
}

#[tokio::test]
async fn validate_session_is_internal_when_better_auth_answers_200_with_a_wrong_body() {
    let wrong_bodies = [
        "{}",
        r#"{"session":{"id":"s"},"user":{"id":"u"}}"#,
        r#"{"ok":true}"#,
        "[]",
        "<html><body>Welcome to nginx</body></html>",
        "",
        &VALID_SESSION_BODY.replace("2026-12-03T15:53:06.553Z", "next week"),
    ];
    for body in wrong_bodies {
        let stub = StubServer::start(Behaviour::status(200, body)).await;
        let app = spawn_app(&stub.url).await;

        let status = assert_error(
            app.validate(SESSION).await,
            Code::Internal,
            "AUTH_PROVIDER_BAD_RESPONSE",
        );
        assert!(status.message().contains("200"), "{}", status.message());
    }
}

#[tokio::test]
async fn validate_session_is_internal_when_the_body_is_larger_than_one_mebibyte() {
    let body = format!(
        "{}{}",
        VALID_SESSION_BODY,
        " ".repeat(auth_service::better_auth::MAX_BODY_BYTES)
    );
    let stub = StubServer::start(Behaviour::status(200, &body)).await;
    let app = spawn_app(&stub.url).await;

    assert_error(
        app.validate(SESSION).await,
        Code::Internal,
        "AUTH_PROVIDER_BAD_RESPONSE",
    );
}

#[tokio::test]
async fn validate_session_is_internal_and_names_the_url_setting_on_404() {
    let stub = StubServer::start(Behaviour::status(404, "")).await;
    let app = spawn_app(&stub.url).await;

    let status = assert_error(
        app.validate(SESSION).await,
        Code::Internal,
        "AUTH_PROVIDER_BAD_RESPONSE",
    );
    assert!(
        status.message().contains("BETTER_AUTH_URL"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn validate_session_is_internal_on_a_redirect() {
    let stub = StubServer::start(Behaviour::Respond {
        status: 302,
        headers: vec![("location".into(), "http://127.0.0.1:1/elsewhere".into())],
        body: String::new(),
    })
    .await;
    let app = spawn_app(&stub.url).await;

    assert_error(
        app.validate(SESSION).await,
        Code::Internal,
        "AUTH_PROVIDER_BAD_RESPONSE",
    );
    assert_eq!(stub.requests().len(), 1, "redirects are not followed");
}

#[tokio::test]
async fn validate_session_retries_once_when_the_connection_closes_without_an_answer() {
    let stub = StubServer::start(Behaviour::CloseFirst(
        1,
        Box::new(Behaviour::status(200, VALID_SESSION_BODY)),
    ))
    .await;
    let app = spawn_app(&stub.url).await;

    let response = app.validate(SESSION).await.expect("the retry succeeds");
    assert_eq!(
        response.get_ref().user.as_ref().expect("user").email,
        "alice@example.com"
    );
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].cookie.as_deref(), Some(SESSION));
}

#[tokio::test]
async fn validate_session_retries_only_once() {
    let stub = StubServer::start(Behaviour::CloseFirst(
        usize::MAX,
        Box::new(Behaviour::status(200, VALID_SESSION_BODY)),
    ))
    .await;
    let app = spawn_app(&stub.url).await;

    assert_error(
        app.validate(SESSION).await,
        Code::Unavailable,
        "AUTH_PROVIDER_UNAVAILABLE",
    );
    assert_eq!(stub.requests().len(), 2, "one attempt plus one retry");
}

#[tokio::test]
async fn validate_session_returns_set_cookie_in_the_message_and_metadata() {
    let refreshed =
        "better-auth.session_token=new.sig%3D; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax";
    let stub = StubServer::start(Behaviour::Respond {
        status: 200,
        headers: vec![("set-cookie".into(), refreshed.into())],
        body: VALID_SESSION_BODY.into(),
    })
    .await;
    let app = spawn_app(&stub.url).await;

    let response = app.validate(SESSION).await.expect("valid");
    assert_eq!(response.get_ref().set_cookie, vec![refreshed.to_owned()]);
    assert_eq!(
        set_cookie_metadata(response.metadata()),
        vec![refreshed.to_owned()]
    );
}
