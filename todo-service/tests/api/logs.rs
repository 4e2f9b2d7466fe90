//! The log capture behind every test's leak check (`TestApp`'s drop): it sees the services'
//! lines, at debug for the project's crates, and the scan finds a secret in any form a cookie
//! gives it away.

use proto::todo::v1 as pb;
use tonic::Code;

use crate::helpers::{
    CAPTURE_FILTER, Secret, assert_code, captured_logs, leaks_in, on_both_backends,
    secrets_of_cookie,
};

on_both_backends! {
    async fn the_capture_holds_both_services_lines_and_no_session_secret(app) {
        let start = captured_logs().len();
        let alice = app.user("alice").await;
        app.create(&alice, "logged").await.expect("create works");
        // A revoked session goes down the auth-service's rejection path as well.
        app.better_auth.sign_out(&alice.cookie).await.expect("sign-out works");
        assert_code(app.list(&alice, pb::ListTodosRequest::default()).await, Code::Unauthenticated);

        let logs = captured_logs().since(start);
        assert!(
            logs.lines().any(|l| l.contains("todo_service") && l.contains(&alice.id) && l.contains("CreateTodo")),
            "the todo-service's RPC line is captured"
        );
        assert!(
            logs.lines().any(|l| l.contains("auth_service") && l.contains(&alice.id)),
            "the auth-service's session line is captured"
        );
        assert!(
            logs.lines().any(|l| l.contains("auth_service") && l.contains("SESSION_INVALID")),
            "the rejection is captured"
        );
        let secrets = secrets_of_cookie(&alice.cookie);
        assert!(secrets.iter().any(|s| s.kind == "session token" && s.value.len() == 32), "{secrets:?}");
        assert!(secrets.iter().any(|s| s.kind == "signature"), "{secrets:?}");
        assert_eq!(leaks_in(&logs, &secrets), Vec::<Secret>::new());
        app.assert_no_secret_was_logged();
    }
}

#[test]
fn the_capture_is_at_debug_for_the_projects_crates_only() {
    assert!(CAPTURE_FILTER.contains("todo_service=debug"));
    assert!(CAPTURE_FILTER.contains("auth_service=debug"));
    let logs = captured_logs();
    let start = logs.len();
    tracing::debug!(target: "todo_service::probe", "debug line of the todo-service");
    tracing::debug!(target: "auth_service::probe", "debug line of the auth-service");
    tracing::debug!(target: "some_dependency", "debug line of a dependency");
    tracing::info!(target: "some_dependency", "info line of a dependency");
    let text = logs.since(start);
    assert!(text.contains("debug line of the todo-service"), "{text}");
    assert!(text.contains("debug line of the auth-service"), "{text}");
    assert!(text.contains("info line of a dependency"), "{text}");
    assert!(!text.contains("debug line of a dependency"), "{text}");
}

#[test]
fn the_scan_finds_a_cookie_in_every_form_it_can_leak() {
    let token = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    let cookie = format!("better-auth.session_token={token}.c2lnbmF0dXJlK3NpZ25hdHVyZQ%3D%3D");
    let secrets = secrets_of_cookie(&cookie);
    let kinds: Vec<&str> = secrets.iter().map(|s| s.kind).collect();
    for kind in [
        "cookie pair",
        "cookie value",
        "decoded cookie value",
        "session token",
        "signature",
        "signature (as sent)",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    for line in [
        format!("cookie={cookie}"),
        format!("token {token} seen"),
        "sig=c2lnbmF0dXJlK3NpZ25hdHVyZQ==".to_owned(),
        "sig=c2lnbmF0dXJlK3NpZ25hdHVyZQ%3D%3D".to_owned(),
    ] {
        assert!(!leaks_in(&line, &secrets).is_empty(), "{line}");
    }
    assert!(leaks_in("user_id=abc method=ListTodos status=Ok", &secrets).is_empty());
    // A clearing Set-Cookie has nothing secret in it.
    assert!(secrets_of_cookie("better-auth.session_token=; Max-Age=0; Path=/").is_empty());
}
