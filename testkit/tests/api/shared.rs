//! `BetterAuth::shared()`: one server per test binary, usable from every test's runtime.

use testkit::better_auth::BetterAuth;

use crate::helpers::assert_session_lifecycle;

// Two tests, so two tokio runtimes use the same instance (and whichever runs second finds it
// already started).
#[tokio::test]
async fn the_shared_instance_works_from_one_runtime() {
    assert_session_lifecycle(BetterAuth::shared()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_instance_works_from_another_runtime() {
    assert_session_lifecycle(BetterAuth::shared()).await;
}

#[test]
fn the_shared_instance_is_started_once() {
    let first = BetterAuth::shared();
    let second = std::thread::spawn(|| BetterAuth::shared().url().to_owned())
        .join()
        .unwrap();
    assert_eq!(first.url(), second);
    assert!(std::ptr::eq(first, BetterAuth::shared()));
}
