//! The dashboard's pages: `/` → `/dashboard`; `/dashboard` decides on the server with one
//! ValidateSession (page, one redirect to `/login`, or 503); `/login` never redirects.

use reqwest::StatusCode;

use crate::helpers::{
    CLEARING_COOKIE, GatewayOptions, REFRESHED_COOKIE, TestGateway, VALID_SESSION, spawn_gateway,
    spawn_gateway_with,
};

async fn get(gateway: &TestGateway, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = gateway.http.get(format!("{}{path}", gateway.url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_root_redirects_to_the_dashboard() {
    let gateway = spawn_gateway().await;
    let response = get(&gateway, "/", None).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "/dashboard");
}

#[tokio::test]
async fn the_dashboard_without_a_session_takes_exactly_one_hop_to_a_login_page_that_stays() {
    let gateway = spawn_gateway().await;
    let response = get(&gateway, "/dashboard", None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");
    assert_eq!(response.headers()["cache-control"], "no-store");

    // /login answers the page itself, with or without a cookie, never a redirect.
    for cookie in [
        None,
        Some(VALID_SESSION),
        Some("better-auth.session_token=bad"),
    ] {
        let login = get(&gateway, "/login", cookie).await;
        assert_eq!(login.status(), StatusCode::OK);
        assert!(login.headers().get("location").is_none());
        assert!(login.text().await.unwrap().contains("login page"));
    }
    // No cookie means nothing to validate.
    assert!(gateway.upstream.calls().is_empty());
}

#[tokio::test]
async fn the_dashboard_with_an_invalid_session_redirects_once_and_clears_the_cookie() {
    let gateway = spawn_gateway().await;
    let response = get(
        &gateway,
        "/dashboard",
        Some("better-auth.session_token=bad"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");
    assert_eq!(set_cookies(&response), [CLEARING_COOKIE]);
    assert_eq!(gateway.upstream.only_call().method, "ValidateSession");
}

#[tokio::test]
async fn the_dashboard_with_a_valid_session_is_served_uncached_with_the_refreshed_cookie() {
    let gateway = spawn_gateway().await;
    let response = get(&gateway, "/dashboard", Some(VALID_SESSION)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(set_cookies(&response), [REFRESHED_COOKIE]);
    assert!(response.text().await.unwrap().contains("dashboard page"));
    let call = gateway.upstream.only_call();
    assert_eq!(call.method, "ValidateSession");
}

#[tokio::test]
async fn the_dashboard_file_name_gets_the_same_session_check() {
    let gateway = spawn_gateway().await;
    let response = get(&gateway, "/dashboard.html", None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");
}

#[tokio::test]
async fn the_dashboard_is_503_not_a_redirect_when_sessions_cannot_be_checked() {
    let gateway = spawn_gateway().await;
    let response = get(
        &gateway,
        "/dashboard",
        Some("better-auth.session_token=provider-down"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().contains("Try again"));

    let auth_down = spawn_gateway_with(GatewayOptions {
        auth_service_url: Some(format!("http://127.0.0.1:{}", testkit::free_port())),
        ..GatewayOptions::default()
    })
    .await;
    let response = get(&auth_down, "/dashboard", Some(VALID_SESSION)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn assets_are_served_from_the_web_dir_and_unknown_files_are_404() {
    let gateway = spawn_gateway().await;
    let asset = get(&gateway, "/assets/app-1234.js", None).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(asset.text().await.unwrap(), "console.log('app');");
    let missing = get(&gateway, "/assets/nope.js", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let escape = get(&gateway, "/assets/..%2f..%2fetc/passwd", None).await;
    assert_eq!(escape.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unbuilt_dashboard_says_how_to_build_it() {
    let gateway = spawn_gateway_with(GatewayOptions {
        dashboard_missing: true,
        ..GatewayOptions::default()
    })
    .await;
    for path in ["/login", "/dashboard"] {
        let response = get(&gateway, path, Some(VALID_SESSION)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get("location").is_none());
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("npm run build --prefix web")
        );
    }
}
