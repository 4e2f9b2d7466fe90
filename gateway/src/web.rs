//! The dashboard's pages and files. `GET /dashboard` asks the auth-service (one ValidateSession,
//! over the shared auth channel) and answers the page or a redirect to `/login`; `/login` is
//! always served and never redirects, so the two pages cannot loop.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use proto::auth::v1::{ValidateSessionRequest, auth_service_client::AuthServiceClient};
use telemetry::trace::{TRACEPARENT, TraceParent};
use tonic::{Code, body::Body, transport::Channel};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::grpc::joined_cookie;

const NOT_BUILT: &str =
    "The dashboard is not built: run `npm ci --prefix web && npm run build --prefix web`.\n";

/// Serves the built dashboard from `web_dir`.
#[derive(Debug, Clone)]
pub(crate) struct Web {
    web_dir: PathBuf,
    auth: Channel,
    timeout: Duration,
}

impl Web {
    pub(crate) fn new(web_dir: PathBuf, auth: Channel, timeout: Duration) -> Self {
        Self {
            web_dir,
            auth,
            timeout,
        }
    }

    /// `GET /login`: the sign-in page, whatever the session.
    pub(crate) async fn login(&self) -> Response<Body> {
        match self.page("login.html").await {
            Some(html) => html_response(StatusCode::OK, html),
            None => not_built(),
        }
    }

    /// `GET /dashboard`: the page for a valid session, `303 /login` otherwise, 503 when the
    /// session cannot be checked (fail closed, and no redirect a user could loop through).
    pub(crate) async fn dashboard(&self, headers: &HeaderMap) -> Response<Body> {
        let Some(html) = self.page("dashboard.html").await else {
            return not_built();
        };
        // No cookie at all: nothing to validate, the answer can only be "sign in".
        let Some(cookie) = joined_cookie(headers).and_then(|c| c.to_str().ok().map(String::from))
        else {
            return redirect_to_login(&[]);
        };
        let mut client = AuthServiceClient::new(self.auth.clone());
        let mut request = tonic::Request::new(ValidateSessionRequest { cookie });
        // The request's trace, already validated (or created) when the request came in.
        if let Some(trace) = TraceParent::from_headers(headers)
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(trace.to_string())
        {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
        let call = client.validate_session(request);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => {
                let mut set_cookies = set_cookies_of(response.metadata().as_ref());
                for value in &response.get_ref().set_cookie {
                    if !set_cookies.contains(value) {
                        set_cookies.push(value.clone());
                    }
                }
                if let Some(user) = &response.get_ref().user {
                    tracing::debug!(user_id = %user.id, "dashboard served");
                }
                let mut response = html_response(StatusCode::OK, html);
                append_set_cookies(response.headers_mut(), &set_cookies);
                response
            }
            Ok(Err(status)) if status.code() == Code::Unauthenticated => {
                tracing::debug!(reason = "session_invalid", "dashboard redirects to /login");
                redirect_to_login(&set_cookies_of(status.metadata().as_ref()))
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), "session check failed for /dashboard");
                auth_unavailable()
            }
            Err(_elapsed) => {
                tracing::warn!("session check timed out for /dashboard");
                auth_unavailable()
            }
        }
    }

    /// Any other GET: a file from the web dir (assets), 404 when there is none.
    pub(crate) async fn file<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: Send + 'static,
    {
        let serve = ServeDir::new(&self.web_dir).append_index_html_on_directories(false);
        match serve.oneshot(req).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        }
    }

    async fn page(&self, name: &str) -> Option<Bytes> {
        match tokio::fs::read(self.web_dir.join(name)).await {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(error) => {
                tracing::error!(page = name, web_dir = %self.web_dir.display(), %error, "dashboard page missing");
                None
            }
        }
    }
}

/// `Set-Cookie` values from gRPC metadata (the auth-service forwards Better Auth's there).
fn set_cookies_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect()
}

fn append_set_cookies(headers: &mut HeaderMap, set_cookies: &[String]) {
    for value in set_cookies {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

fn html_response(status: StatusCode, html: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect_to_login(set_cookies: &[String]) -> Response<Body> {
    let mut response = redirect(StatusCode::SEE_OTHER, "/login");
    append_set_cookies(response.headers_mut(), set_cookies);
    response
}

/// A redirect with no body that must not be cached (it depends on the session).
pub(crate) fn redirect(status: StatusCode, location: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(location));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_built() -> Response<Body> {
    text(StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT)
}

fn auth_unavailable() -> Response<Body> {
    let html = Bytes::from_static(
        b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Service \
          unavailable</title></head><body><h1>Service unavailable</h1><p>The sign-in service \
          cannot be reached right now, so your session could not be checked. Try again in a \
          moment.</p><p><a href=\"/dashboard\">Try again</a></p></body></html>\n",
    );
    let mut response = html_response(StatusCode::SERVICE_UNAVAILABLE, html);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
