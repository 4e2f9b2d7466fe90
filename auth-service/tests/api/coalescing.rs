//! Strict request coalescing, end to end: concurrent checks of one cookie share get-session
//! calls, but a check is only ever answered by a call sent after it arrived. A gated stub holds
//! calls in flight on demand; one scenario runs against a real Better Auth behind a gated proxy.

use std::time::Duration;

use proto::auth::v1::{ValidateSessionRequest, ValidateSessionResponse};
use testkit::better_auth::BetterAuth;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use crate::{
    helpers::{
        Behaviour, Gate, StubServer, TestApp, VALID_SESSION_BODY, assert_error,
        set_cookie_metadata, spawn_app, spawn_app_with,
    },
    observability::{sample, scrape},
};

const SESSION: &str = "better-auth.session_token=abc.def%2F%3D";

/// Time for a request sent by the test to reach the auth-service's coalescer. Loopback takes
/// well under a millisecond; the margin is for a loaded 2-core machine. The assertions after
/// each wait check which path was taken, so a slow arrival fails a test instead of passing it.
const ARRIVAL: Duration = Duration::from_millis(300);

type Call = JoinHandle<Result<tonic::Response<ValidateSessionResponse>, Status>>;

/// Sends ValidateSession(`cookie`) on its own task, with an optional client deadline.
fn check(app: &TestApp, cookie: &str, deadline: Option<Duration>) -> Call {
    let mut client = app.client.clone();
    let mut request = tonic::Request::new(ValidateSessionRequest {
        cookie: cookie.to_owned(),
    });
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    tokio::spawn(async move { client.validate_session(request).await })
}

async fn answer(call: Call) -> Result<tonic::Response<ValidateSessionResponse>, Status> {
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered within 10 s")
        .expect("the task did not panic")
}

/// Which stub call (its `stub-call=<n>` Set-Cookie) answered an OK check.
fn answered_by(response: &tonic::Response<ValidateSessionResponse>) -> Vec<String> {
    response.get_ref().set_cookie.clone()
}

async fn coalesced_total(app: &TestApp) -> f64 {
    sample(
        &scrape(app.metrics_addr).await,
        "auth_validate_coalesced_total",
    )
}

async fn better_auth_lookups(app: &TestApp) -> f64 {
    sample(
        &scrape(app.metrics_addr).await,
        "auth_better_auth_request_duration_seconds_count",
    )
}

fn numbered_valid_session() -> Behaviour {
    Behaviour::Numbered(Box::new(Behaviour::status(200, VALID_SESSION_BODY)))
}

#[tokio::test]
async fn many_concurrent_checks_of_one_cookie_make_two_upstream_calls_not_one_each() {
    let gate = Gate::new();
    let stub = StubServer::start(Behaviour::Held(
        gate.clone(),
        Box::new(numbered_valid_session()),
    ))
    .await;
    let app = spawn_app(&stub.url).await;

    const CALLERS: usize = 16;
    let first = check(&app, SESSION, None);
    gate.wait_for_waiting(1).await;
    let others: Vec<Call> = (1..CALLERS).map(|_| check(&app, SESSION, None)).collect();
    tokio::time::sleep(ARRIVAL).await;
    assert_eq!(
        stub.requests().len(),
        1,
        "the others wait for the next call"
    );
    gate.open(CALLERS);

    let first = answer(first).await.expect("a valid session");
    assert_eq!(answered_by(&first), ["stub-call=1"]);
    for other in others {
        let response = answer(other).await.expect("a valid session");
        assert_eq!(
            response.get_ref().user.as_ref().expect("user").id,
            "aekHiyTA0ZktQM8NMqYir5m4ewTJuvDW"
        );
        // Set-Cookie goes to every caller that shared the answer.
        assert_eq!(answered_by(&response), ["stub-call=2"]);
        assert_eq!(set_cookie_metadata(response.metadata()), ["stub-call=2"]);
    }
    assert_eq!(stub.requests().len(), 2);
    assert_eq!(better_auth_lookups(&app).await, 2.0);
    // The first caller and the one that queued call 2 triggered calls; the rest shared.
    assert_eq!(coalesced_total(&app).await, (CALLERS - 2) as f64);
}

#[tokio::test]
async fn a_check_arriving_during_a_call_is_answered_by_the_next_call() {
    let gate = Gate::new();
    let stub = StubServer::start(Behaviour::Sequence(vec![
        Behaviour::Held(gate.clone(), Box::new(numbered_valid_session())),
        numbered_valid_session(),
    ]))
    .await;
    let app = spawn_app(&stub.url).await;

    let first = check(&app, SESSION, None);
    gate.wait_for_waiting(1).await;
    let second = check(&app, SESSION, None);
    tokio::time::sleep(ARRIVAL).await;
    assert_eq!(stub.requests().len(), 1, "not sent while the first is held");

    gate.open(1);
    let first = answer(first).await.expect("valid");
    let second = answer(second).await.expect("valid");
    assert_eq!(answered_by(&first), ["stub-call=1"]);
    assert_eq!(
        answered_by(&second),
        ["stub-call=2"],
        "the second check must not take the answer of a call sent before it arrived"
    );
    let requests = stub.requests();
    assert_eq!(
        requests.len(),
        2,
        "a second request after the first was released"
    );
    assert_eq!(requests[1].cookie.as_deref(), Some(SESSION));
    assert_eq!(
        coalesced_total(&app).await,
        0.0,
        "both triggered their own call"
    );
}

#[tokio::test]
async fn an_error_is_given_only_to_the_checks_that_joined_its_call() {
    let gate = Gate::new();
    let stub = StubServer::start(Behaviour::Sequence(vec![
        Behaviour::Held(
            gate.clone(),
            Box::new(Behaviour::status(
                503,
                r#"{"message":"Failed to get session","code":"FAILED_TO_GET_SESSION"}"#,
            )),
        ),
        numbered_valid_session(),
    ]))
    .await;
    let app = spawn_app(&stub.url).await;

    let first = check(&app, SESSION, None);
    gate.wait_for_waiting(1).await;
    let later: Vec<Call> = (0..3).map(|_| check(&app, SESSION, None)).collect();
    tokio::time::sleep(ARRIVAL).await;
    gate.open(1);

    assert_error(
        answer(first).await,
        Code::Unavailable,
        "AUTH_PROVIDER_UNAVAILABLE",
    );
    for call in later {
        let response = answer(call)
            .await
            .expect("answered by the next call, which succeeded");
        assert_eq!(answered_by(&response), ["stub-call=2"]);
    }
    assert_eq!(stub.requests().len(), 2);
    assert_eq!(coalesced_total(&app).await, 2.0);
}

#[tokio::test]
async fn a_cancelled_check_does_not_cancel_the_shared_call_for_the_others() {
    let gate = Gate::new();
    let stub = StubServer::start(Behaviour::Sequence(vec![
        Behaviour::Held(gate.clone(), Box::new(numbered_valid_session())),
        numbered_valid_session(),
    ]))
    .await;
    let app = spawn_app(&stub.url).await;

    // The caller that triggered call 1 and the one that queued call 2 both give up (client
    // deadline); a third, which joined call 2, stays.
    let first = check(&app, SESSION, Some(Duration::from_millis(500)));
    gate.wait_for_waiting(1).await;
    let queued_by = check(&app, SESSION, Some(Duration::from_millis(500)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stays = check(&app, SESSION, None);
    for call in [first, queued_by] {
        let status = answer(call).await.expect_err("gave up at its deadline");
        // The server's DEADLINE_EXCEEDED or the client's own timer, whichever fires first.
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
    }
    // Call 1 was not cancelled with its caller: had it been, call 2 would be out already.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stub.requests().len(), 1, "call 1 is still in flight");

    gate.open(1);
    let response = answer(stays)
        .await
        .expect("the remaining caller is answered");
    assert_eq!(answered_by(&response), ["stub-call=2"]);
    assert_eq!(stub.requests().len(), 2);
    assert_eq!(coalesced_total(&app).await, 1.0);
}

#[tokio::test]
async fn checks_of_different_cookies_never_share_a_call() {
    let gate = Gate::new();
    let stub = StubServer::start(Behaviour::Held(
        gate.clone(),
        Box::new(numbered_valid_session()),
    ))
    .await;
    let app = spawn_app(&stub.url).await;

    let cookies: Vec<String> = (0..4)
        .map(|i| format!("better-auth.session_token=user{i}.sig"))
        .collect();
    let calls: Vec<Call> = cookies.iter().map(|c| check(&app, c, None)).collect();
    // All four are in flight at once: none waits behind another cookie's call.
    gate.wait_for_waiting(4).await;
    gate.open(4);
    for call in calls {
        answer(call).await.expect("valid");
    }
    let mut forwarded: Vec<String> = stub
        .requests()
        .into_iter()
        .map(|r| r.cookie.expect("a cookie"))
        .collect();
    forwarded.sort();
    assert_eq!(forwarded, cookies);
    assert_eq!(coalesced_total(&app).await, 0.0);
}

#[tokio::test]
async fn with_coalescing_off_every_check_makes_its_own_call() {
    let gate = Gate::new();
    let stub = StubServer::start(Behaviour::Held(
        gate.clone(),
        Box::new(numbered_valid_session()),
    ))
    .await;
    let app = spawn_app_with(&stub.url, |config| config.coalesce = false).await;

    let calls: Vec<Call> = (0..8).map(|_| check(&app, SESSION, None)).collect();
    // Eight calls for one cookie in flight at once.
    gate.wait_for_waiting(8).await;
    gate.open(8);
    let mut numbers = Vec::new();
    for call in calls {
        numbers.extend(answered_by(&answer(call).await.expect("valid")));
    }
    numbers.sort();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        8,
        "each answered by its own call: {numbers:?}"
    );
    assert_eq!(stub.requests().len(), 8);
    assert_eq!(coalesced_total(&app).await, 0.0);
}

#[tokio::test]
async fn a_session_signed_out_during_a_call_is_refused_to_every_check_that_arrived_after() {
    let better_auth = BetterAuth::shared();
    let user = better_auth.sign_up("Revoked").await.expect("sign-up");
    // A proxy in front of the real Better Auth that holds each answer until released, so a
    // call can be in flight (its "valid" answer already given) while the session is revoked.
    let gate = Gate::new();
    let proxy = StubServer::start(Behaviour::HoldAnswer(
        gate.clone(),
        Box::new(Behaviour::Proxy(better_auth.url().to_owned())),
    ))
    .await;
    let app = spawn_app(&proxy.url).await;

    let before = check(&app, &user.cookie, None);
    gate.wait_for_waiting(1).await; // Better Auth has answered call 1: valid
    better_auth.sign_out(&user.cookie).await.expect("sign-out");
    let after: Vec<Call> = (0..5)
        .map(|_| check(&app, &format!("theme=dark; {}", user.cookie), None))
        .collect();
    tokio::time::sleep(ARRIVAL).await;
    assert_eq!(proxy.requests().len(), 1);
    gate.open(2);

    let response = answer(before).await.expect("arrived before the sign-out");
    assert_eq!(response.get_ref().user.as_ref().expect("user").id, user.id);
    for call in after {
        let status = assert_error(answer(call).await, Code::Unauthenticated, "SESSION_INVALID");
        let cleared = set_cookie_metadata(status.metadata());
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with("better-auth.session_token=;")),
            "clearing cookies are passed on: {cleared:?}"
        );
    }
    assert_eq!(proxy.requests().len(), 2);
    assert_eq!(coalesced_total(&app).await, 4.0);
}
