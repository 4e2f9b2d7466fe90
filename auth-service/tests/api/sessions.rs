//! ValidateSession against a real Better Auth (testkit), on SQLite and on PostgreSQL: valid,
//! garbage, tampered, revoked, expired and refreshed sessions, `__Secure-` cookies, and the
//! metadata cookie a grpc-web gateway forwards.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::auth::v1::ValidateSessionRequest;
use testkit::{
    better_auth::{BetterAuth, BetterAuthOptions, Database},
    postgres::{TestDatabase, fresh_database},
};
use tonic::{Code, metadata::MetadataValue};

use crate::helpers::{assert_error, set_cookie_metadata, spawn_app};

/// Where a scenario's Better Auth keeps its data.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A Better Auth for one test, and the database it must outlive.
struct Provider {
    better_auth: ProviderInstance,
    _database: Option<TestDatabase>,
}

enum ProviderInstance {
    Shared(&'static BetterAuth),
    Own(BetterAuth),
}

impl std::ops::Deref for Provider {
    type Target = BetterAuth;
    fn deref(&self) -> &BetterAuth {
        match &self.better_auth {
            ProviderInstance::Shared(shared) => shared,
            ProviderInstance::Own(own) => own,
        }
    }
}

/// Starts Better Auth on `backend` with `options` (the shared SQLite instance when the options
/// are the defaults, since those scenarios sign up their own users). `None` when PostgreSQL is
/// not reachable here (the reason is printed; `REQUIRE_POSTGRES=1` turns that into a failure).
async fn provider(backend: Backend, mut options: BetterAuthOptions) -> Option<Provider> {
    match backend {
        Backend::Sqlite => {
            let is_default = options.session_expires_in_secs.is_none()
                && options.session_update_age_secs.is_none()
                && !options.https_base_url;
            let better_auth = if is_default {
                ProviderInstance::Shared(BetterAuth::shared())
            } else {
                ProviderInstance::Own(
                    BetterAuth::start(options)
                        .await
                        .expect("Better Auth starts"),
                )
            };
            Some(Provider {
                better_auth,
                _database: None,
            })
        }
        Backend::Postgres => {
            let Some(database) = fresh_database("auth_service")
                .await
                .expect("PostgreSQL database")
            else {
                eprintln!("skipping the PostgreSQL variant: PostgreSQL is not reachable");
                return None;
            };
            options.database = Database::Postgres(database.url.clone());
            let better_auth = BetterAuth::start(options)
                .await
                .expect("Better Auth starts");
            Some(Provider {
                better_auth: ProviderInstance::Own(better_auth),
                _database: Some(database),
            })
        }
    }
}

/// Runs one scenario as two tests, `on_sqlite` and `on_postgres`.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                super::$scenario(super::Backend::Sqlite).await;
            }
            #[tokio::test]
            async fn on_postgres() {
                super::$scenario(super::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_databases!(
    a_valid_session_returns_its_user_and_session,
    a_garbage_cookie_is_session_invalid,
    a_tampered_signature_is_session_invalid,
    a_signed_out_session_is_session_invalid_with_clearing_cookies,
    an_expired_session_is_session_invalid,
);

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits")
}

async fn a_valid_session_returns_its_user_and_session(backend: Backend) {
    let Some(better_auth) = provider(backend, BetterAuthOptions::default()).await else {
        return;
    };
    let user = better_auth.sign_up("Alice").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;

    let response = app.validate(&user.cookie).await.expect("a valid session");
    let message = response.get_ref();
    let got_user = message.user.as_ref().expect("user");
    assert_eq!(got_user.id, user.id);
    assert_eq!(got_user.email, user.email);
    assert_eq!(got_user.name, user.name);
    assert!(!got_user.email_verified);
    assert_eq!(got_user.image, None);

    let session = message.session.as_ref().expect("session");
    assert_eq!(session.id.len(), 32, "a Better Auth session id");
    let created = session.created_at.expect("created_at");
    let expires = session.expires_at.expect("expires_at");
    assert!(
        (created.seconds - now_secs()).abs() < 120,
        "created just now: {created:?}"
    );
    let lifetime = expires.seconds - created.seconds;
    assert!(
        (604_790..=604_810).contains(&lifetime),
        "7 days, got {lifetime} s"
    );
    assert!(
        message.set_cookie.is_empty(),
        "no refresh due for a fresh session"
    );

    // The session token is never echoed.
    let token = user
        .cookie
        .split_once('=')
        .and_then(|(_, value)| value.split_once('.'))
        .map(|(token, _)| token)
        .expect("token.signature");
    assert!(!format!("{message:?}").contains(token));
}

async fn a_garbage_cookie_is_session_invalid(backend: Backend) {
    let Some(better_auth) = provider(backend, BetterAuthOptions::default()).await else {
        return;
    };
    let app = spawn_app(better_auth.url()).await;

    for cookie in [
        "better-auth.session_token=garbage",
        "better-auth.session_token=",
        "better-auth.session_token=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "better-auth.session_token=%%%.%%%",
    ] {
        assert_error(
            app.validate(cookie).await,
            Code::Unauthenticated,
            "SESSION_INVALID",
        );
    }
}

/// Changes one early character of the signature (the last base64 character before `=` carries
/// unused bits, so changing it may leave the signature valid: better-auth.md §2).
fn tamper_signature(cookie: &str) -> String {
    let (token_part, signature) = cookie.split_once('.').expect("token.signature");
    let bytes = signature.as_bytes();
    let index = (2..bytes.len())
        .find(|&i| bytes[i].is_ascii_alphanumeric() && bytes[i - 1] != b'%' && bytes[i - 2] != b'%')
        .expect("an alphanumeric signature character");
    let replacement = if bytes[index] == b'A' { "B" } else { "A" };
    format!(
        "{token_part}.{}{replacement}{}",
        &signature[..index],
        &signature[index + 1..]
    )
}

async fn a_tampered_signature_is_session_invalid(backend: Backend) {
    let Some(better_auth) = provider(backend, BetterAuthOptions::default()).await else {
        return;
    };
    let user = better_auth.sign_up("Mallory").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;

    let tampered = tamper_signature(&user.cookie);
    assert_ne!(tampered, user.cookie);
    assert_error(
        app.validate(&tampered).await,
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
    // The untampered cookie still works: it was the signature that failed.
    app.validate(&user.cookie)
        .await
        .expect("the real cookie is valid");
}

async fn a_signed_out_session_is_session_invalid_with_clearing_cookies(backend: Backend) {
    let Some(better_auth) = provider(backend, BetterAuthOptions::default()).await else {
        return;
    };
    let user = better_auth.sign_up("Bob").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;
    app.validate(&user.cookie)
        .await
        .expect("valid before sign-out");

    better_auth.sign_out(&user.cookie).await.expect("sign-out");

    let status = assert_error(
        app.validate(&user.cookie).await,
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
    let clearing = set_cookie_metadata(status.metadata());
    assert!(
        clearing
            .iter()
            .any(|c| c.starts_with("better-auth.session_token=;") && c.contains("Max-Age=0")),
        "clearing cookies are passed on: {clearing:?}"
    );
}

async fn an_expired_session_is_session_invalid(backend: Backend) {
    let options = BetterAuthOptions {
        session_expires_in_secs: Some(3),
        ..BetterAuthOptions::default()
    };
    let Some(better_auth) = provider(backend, options).await else {
        return;
    };
    let user = better_auth.sign_up("Carol").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;
    let session = app.validate(&user.cookie).await.expect("valid at first");
    let expires_at = session
        .get_ref()
        .session
        .as_ref()
        .and_then(|s| s.expires_at)
        .expect("expires_at");

    // Wait until just past the expiry Better Auth reported.
    let wait = (expires_at.seconds + 1 - now_secs()).clamp(0, 10);
    tokio::time::sleep(Duration::from_secs(
        u64::try_from(wait).expect("non-negative"),
    ))
    .await;

    let status = assert_error(
        app.validate(&user.cookie).await,
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
    assert!(
        !set_cookie_metadata(status.metadata()).is_empty(),
        "Better Auth clears the expired cookie"
    );
}

#[tokio::test]
async fn a_secure_prefixed_cookie_is_validated_with_an_https_base_url() {
    let better_auth = BetterAuth::start(BetterAuthOptions {
        https_base_url: true,
        ..BetterAuthOptions::default()
    })
    .await
    .expect("Better Auth starts");
    let user = better_auth.sign_up("Dana").await.expect("sign-up");
    assert!(
        user.cookie
            .starts_with("__Secure-better-auth.session_token=")
    );
    let app = spawn_app(better_auth.url()).await;

    let response = app
        .validate(&format!("theme=dark; {}", user.cookie))
        .await
        .expect("the __Secure- cookie is forwarded and valid");
    assert_eq!(response.get_ref().user.as_ref().expect("user").id, user.id);

    // The same value under the plain name is not what this Better Auth reads.
    let plain = user.cookie.trim_start_matches("__Secure-");
    assert_error(
        app.validate(plain).await,
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
}

#[tokio::test]
async fn a_refreshed_session_returns_its_set_cookie() {
    let better_auth = BetterAuth::start(BetterAuthOptions {
        session_update_age_secs: Some(1),
        ..BetterAuthOptions::default()
    })
    .await
    .expect("Better Auth starts");
    let user = better_auth.sign_up("Erin").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;
    let first = app.validate(&user.cookie).await.expect("valid");
    let first_expiry = first
        .get_ref()
        .session
        .as_ref()
        .and_then(|s| s.expires_at)
        .expect("expiry");

    tokio::time::sleep(Duration::from_millis(2100)).await;

    let refreshed = app.validate(&user.cookie).await.expect("still valid");
    let message = refreshed.get_ref();
    assert!(
        message
            .set_cookie
            .iter()
            .any(|c| c.starts_with("better-auth.session_token=") && c.contains("Max-Age=")),
        "a refreshed session cookie: {} cookies",
        message.set_cookie.len()
    );
    assert_eq!(
        set_cookie_metadata(refreshed.metadata()),
        message.set_cookie
    );
    let new_expiry = message
        .session
        .as_ref()
        .and_then(|s| s.expires_at)
        .expect("expiry");
    assert!(
        new_expiry.seconds > first_expiry.seconds,
        "the expiry moved forward"
    );
}

#[tokio::test]
async fn unrelated_cookies_around_the_session_cookie_do_not_matter() {
    let better_auth = BetterAuth::shared();
    let user = better_auth.sign_up("Frank").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;

    let response = app
        .validate(&format!(
            "theme=dark; _ga=GA1.2.3; {}; lang=en",
            user.cookie
        ))
        .await
        .expect("valid");
    assert_eq!(
        response.get_ref().user.as_ref().expect("user").email,
        user.email
    );
}

#[tokio::test]
async fn a_browser_cookie_forwarded_as_metadata_is_validated() {
    let better_auth = BetterAuth::shared();
    let user = better_auth.sign_up("Grace").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;

    let mut request = tonic::Request::new(ValidateSessionRequest::default());
    request.metadata_mut().append(
        "cookie",
        MetadataValue::try_from(format!("theme=dark; {}", user.cookie)).expect("ascii"),
    );
    let response = app
        .client
        .clone()
        .validate_session(request)
        .await
        .expect("valid through metadata");
    assert_eq!(response.get_ref().user.as_ref().expect("user").id, user.id);
}

#[tokio::test]
async fn validate_session_becomes_unavailable_when_better_auth_stops() {
    let better_auth = BetterAuth::start(BetterAuthOptions::default())
        .await
        .expect("Better Auth starts");
    let user = better_auth.sign_up("Heidi").await.expect("sign-up");
    let app = spawn_app(better_auth.url()).await;
    app.validate(&user.cookie).await.expect("valid while up");

    better_auth.stop();

    assert_error(
        app.validate(&user.cookie).await,
        Code::Unavailable,
        "AUTH_PROVIDER_UNAVAILABLE",
    );
}
