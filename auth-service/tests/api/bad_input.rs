//! Bad input over gRPC: oversized and malformed cookies, thousands of cookies, duplicates, NUL and
//! non-ASCII bytes, and messages over the decode limit. Each gets the right status, Better Auth
//! is not bothered with what cannot be a session, and the server keeps serving.

use proto::auth::v1::ValidateSessionRequest;
use testkit::better_auth::BetterAuth;
use tonic::{Code, metadata::MetadataValue};
use tonic_types::StatusExt;

use crate::helpers::{Behaviour, StubServer, TestApp, VALID_SESSION_BODY, assert_error, spawn_app};

const SESSION: &str = "better-auth.session_token=abc.def%2F%3D";

/// The server still answers a valid check after whatever came before.
async fn assert_still_serving(app: &TestApp) {
    let response = app
        .validate(SESSION)
        .await
        .expect("the server keeps serving valid checks");
    assert_eq!(
        response.get_ref().user.as_ref().expect("user").email,
        "alice@example.com"
    );
}

#[tokio::test]
async fn a_one_megabyte_cookie_is_invalid_argument_and_the_server_keeps_serving() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let huge = format!("{SESSION}; pad={}", "x".repeat(1024 * 1024));
    let status = assert_error(
        app.validate(&huge).await,
        Code::InvalidArgument,
        "COOKIE_TOO_LARGE",
    );
    let bad_request = status.get_details_bad_request().expect("a BadRequest");
    assert_eq!(bad_request.field_violations[0].field, "cookie");
    assert!(stub.requests().is_empty(), "Better Auth is not called");

    assert_still_serving(&app).await;
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn a_one_megabyte_cookie_in_metadata_is_refused_and_the_server_keeps_serving() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let mut request = tonic::Request::new(ValidateSessionRequest::default());
    request.metadata_mut().insert(
        "cookie",
        MetadataValue::try_from(format!("{SESSION}; pad={}", "x".repeat(1024 * 1024)))
            .expect("ascii"),
    );
    let status = app
        .client
        .clone()
        .validate_session(request)
        .await
        .expect_err("a 1 MB header is refused");
    // Refused before the handler (HTTP/2 header list limit) or by the cookie size check.
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::ResourceExhausted | Code::Internal | Code::Unavailable
        ),
        "{status:?}"
    );
    assert!(stub.requests().is_empty(), "Better Auth is not called");

    // A fresh connection too: the server, not only this channel, is fine.
    let fresh = crate::helpers::spawn_client(app.addr).await;
    fresh
        .clone()
        .validate_session(ValidateSessionRequest {
            cookie: SESSION.to_owned(),
        })
        .await
        .expect("a new connection is served");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn five_thousand_cookies_in_one_header_are_over_the_size_limit() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let many: Vec<String> = (0..5_000).map(|i| format!("c{i}=v")).collect();
    let header = format!("{}; {SESSION}", many.join("; "));
    assert_error(
        app.validate(&header).await,
        Code::InvalidArgument,
        "COOKIE_TOO_LARGE",
    );
    assert!(stub.requests().is_empty());
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_thousand_small_cookies_under_the_limit_forward_only_the_better_auth_one() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let many: Vec<String> = (0..1_000).map(|i| format!("c{i}=")).collect();
    let (before, after) = many.split_at(500);
    let header = format!("{}; {SESSION}; {}", before.join("; "), after.join("; "));
    assert!(header.len() < 8 * 1024, "{}", header.len());
    app.validate(&header).await.expect("valid");
    assert_eq!(stub.requests()[0].cookie.as_deref(), Some(SESSION));
}

#[tokio::test]
async fn duplicate_better_auth_cookies_are_forwarded_as_they_are() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let header = "better-auth.session_token=first; theme=dark; better-auth.session_token=second";
    app.validate(header).await.expect("the stub says valid");
    assert_eq!(
        stub.requests()[0].cookie.as_deref(),
        Some("better-auth.session_token=first; better-auth.session_token=second"),
        "both, in order: Better Auth decides which one counts"
    );
}

#[tokio::test]
async fn with_duplicate_session_cookies_better_auth_takes_the_first() {
    let better_auth = BetterAuth::shared();
    let user = better_auth.sign_up("Duplicate").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;

    let valid_first = format!("{}; better-auth.session_token=garbage", user.cookie);
    let response = app
        .validate(&valid_first)
        .await
        .expect("the first is valid");
    assert_eq!(response.get_ref().user.as_ref().expect("user").id, user.id);

    let garbage_first = format!("better-auth.session_token=garbage; {}", user.cookie);
    assert_error(
        app.validate(&garbage_first).await,
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
}

#[tokio::test]
async fn nul_or_non_ascii_in_a_better_auth_cookie_is_cookie_malformed_without_a_call() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    for cookie in [
        "better-auth.session_token=abc\0def",
        "better-auth.session_token=\0",
        "better-auth.session_token=abcé",
        "better-auth.session_token=токен",
        "better-auth.session_token=a\u{202e}b",
    ] {
        let status = assert_error(
            app.validate(cookie).await,
            Code::InvalidArgument,
            "COOKIE_MALFORMED",
        );
        assert!(!status.message().contains("abc"), "{}", status.message());
    }
    assert!(stub.requests().is_empty());
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn nul_or_non_ascii_in_other_cookies_is_dropped_with_them() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    app.validate(&format!("na\0me=va\0lue; {SESSION}; thème=été; emoji=🍪"))
        .await
        .expect("valid");
    assert_eq!(stub.requests()[0].cookie.as_deref(), Some(SESSION));
}

#[tokio::test]
async fn a_message_over_the_decode_limit_is_resource_exhausted_and_the_server_keeps_serving() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    let status = app
        .validate(&"x".repeat(auth_service::startup::MAX_MESSAGE_BYTES + 1))
        .await
        .expect_err("too large to decode");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "MESSAGE_TOO_LARGE");
    assert_eq!(info.domain, "auth.v1");
    assert!(stub.requests().is_empty());
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_cookie_field_that_is_not_utf8_is_invalid_argument() {
    let stub = StubServer::start(Behaviour::status(200, VALID_SESSION_BODY)).await;
    let app = spawn_app(&stub.url).await;

    // Field 1 (cookie), wire type 2, 3 bytes that are not UTF-8, sent as raw bytes.
    let status = crate::helpers::call_raw(app.addr, &[0x0a, 0x03, 0xff, 0xfe, 0x00]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "MALFORMED_REQUEST");
    assert!(stub.requests().is_empty());
    assert_still_serving(&app).await;
}
