//! A fault-injecting HTTP/1.1 proxy for `cargo xtask chaos`: it sits between the auth-service and
//! Better Auth and, per request and switchable at run time, forwards, forwards after a delay, or
//! answers 500 or 429 itself (with Better Auth's own bodies).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the proxy does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Forward to the upstream.
    Pass,
    /// Wait, then forward.
    Delay(Duration),
    /// Answer 500 `FAILED_TO_GET_SESSION`, as Better Auth does when its database fails.
    ServerError,
    /// Answer 429, as Better Auth's rate limiter does.
    TooManyRequests,
}

impl Fault {
    /// A short name for tables.
    pub(crate) fn label(self) -> String {
        match self {
            Fault::Pass => "pass".to_owned(),
            Fault::Delay(d) => format!("delay {} ms", d.as_millis()),
            Fault::ServerError => "answer 500".to_owned(),
            Fault::TooManyRequests => "answer 429".to_owned(),
        }
    }
}

struct State {
    fault: Mutex<Fault>,
    upstream: String,
    http: reqwest::Client,
    requests: AtomicU64,
}

/// A running proxy on 127.0.0.1; stops when dropped.
pub(crate) struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub(crate) async fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            fault: Mutex::new(Fault::Pass),
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: crate::harness::http_client()?,
            requests: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The proxy's base URL (what the auth-service's `BETTER_AUTH_URL` should be).
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the behaviour for requests that arrive from now on.
    pub(crate) fn set(&self, fault: Fault) {
        if let Ok(mut current) = self.state.fault.lock() {
            *current = fault;
        }
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let fault = state.fault.lock().map(|f| *f).unwrap_or(Fault::Pass);
    Ok(match fault {
        Fault::Pass => forward(&state, request).await,
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            forward(&state, request).await
        }
        Fault::ServerError => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"Failed to get session","code":"FAILED_TO_GET_SESSION"}"#,
        ),
        Fault::TooManyRequests => {
            let mut response = json(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"message":"Too many requests. Please try again later."}"#,
            );
            response.headers_mut().insert(
                "x-retry-after",
                hyper::header::HeaderValue::from_static("10"),
            );
            response
        }
    })
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Forwards the request (method, path, headers, body) and copies the answer back; 502 when the
/// upstream cannot be reached, as a real reverse proxy would.
async fn forward(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return json(StatusCode::BAD_REQUEST, r#"{"message":"unreadable body"}"#);
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut headers = parts.headers;
    for hop in ["host", "connection", "keep-alive", "transfer-encoding"] {
        headers.remove(hop);
    }
    let upstream = state
        .http
        .request(parts.method, format!("{}{path}", state.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(upstream) = upstream else {
        return json(
            StatusCode::BAD_GATEWAY,
            r#"{"message":"upstream unreachable"}"#,
        );
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    let Ok(body) = upstream.bytes().await else {
        return json(
            StatusCode::BAD_GATEWAY,
            r#"{"message":"upstream body failed"}"#,
        );
    };
    for hop in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
    ] {
        headers.remove(hop);
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
