//! No secret in the gateway's logs: the real gateway binary runs as a child process (so exactly
//! what it would print is captured) in front of a real Better Auth, auth-service and
//! todo-service; a browser-like session signs up, signs in, uses the dashboard and the gRPC
//! API, signs out, and hits a Better Auth outage with a token in the query. Every cookie value,
//! session token and password seen on the wire is then searched for in the output, at the
//! default level and at `RUST_LOG=debug`.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use proto::{
    auth::v1::ValidateSessionRequest,
    todo::v1::{CreateTodoRequest, ListTodosRequest},
};
use serde_json::json;
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::{Child, Command},
};
use tonic::Code;

use crate::{
    chain::services,
    helpers::{Framing, browser_like_client, within, write_dashboard},
};

/// The gateway binary, its output collected as it is written.
struct GatewayProcess {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    url: String,
}

fn collect(stream: impl AsyncRead + Unpin + Send + 'static, output: Arc<Mutex<Vec<u8>>>) {
    tokio::spawn(async move {
        let mut stream = stream;
        let mut buffer = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            output.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    });
}

impl GatewayProcess {
    async fn start(envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), output.clone());
        collect(child.stderr.take().unwrap(), output.clone());
        let listen = &envs.iter().find(|(k, _)| *k == "GATEWAY_LISTEN").unwrap().1;
        let process = Self {
            child,
            output,
            url: format!("http://{listen}"),
        };
        let http = browser_like_client();
        within("gateway binary start", async {
            loop {
                if let Ok(response) = http.get(format!("{}/healthz", process.url)).send().await {
                    if response.status() == 200 {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        process
    }

    /// Stops the process (SIGKILL: output is written line by line, nothing is pending) and
    /// returns everything it printed.
    async fn stop(mut self) -> String {
        self.child.kill().await.unwrap();
        // Let the readers drain the pipes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}

/// Values of `Set-Cookie` headers (`name=value; attrs` → `value`), skipping clearing ones.
fn set_cookie_values(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| {
            let line = v.to_str().ok()?;
            let pair = line.split(';').next()?;
            let value = pair.split_once('=')?.1;
            (!value.is_empty()).then(|| value.to_owned())
        })
        .collect()
}

/// `token.signature` (URL-encoded) → every fragment that must not be logged.
fn secret_forms(value: &str) -> Vec<String> {
    let decoded = value
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    let mut forms = vec![value.to_owned(), decoded.clone()];
    if let Some((token, signature)) = decoded.split_once('.') {
        forms.push(token.to_owned());
        // The signature without its padding, in case something trims it.
        forms.push(signature.trim_end_matches('=').to_owned());
    }
    forms.retain(|f| f.len() >= 8);
    forms
}

async fn a_browser_session_leaves_no_secret_in_the_log(rust_log: &str) {
    let port = testkit::free_port();
    let services = services(port).await;
    let web_dir = tempfile::tempdir().unwrap();
    write_dashboard(web_dir.path());
    let gateway = GatewayProcess::start(&[
        ("GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        ("TODO_SERVICE_URL", services.todo_url.clone()),
        ("AUTH_SERVICE_URL", services.auth_url.clone()),
        ("BETTER_AUTH_URL", services.better_auth.url().to_owned()),
        ("WEB_DIR", web_dir.path().display().to_string()),
        ("METRICS_LISTEN", "127.0.0.1:0".to_owned()),
        ("REQUEST_TIMEOUT_MS", "3000".to_owned()),
        ("RUST_LOG", rust_log.to_owned()),
    ])
    .await;
    let url = gateway.url.clone();
    let origin = url.clone();
    let http = browser_like_client();
    let mut secrets: Vec<String> = Vec::new();

    // Sign up and sign in through the gateway's /api/auth proxy, like the dashboard does.
    let email = format!("log-scan-{port}@example.com");
    let password = format!("pw-{port}-very-secret-password");
    secrets.push(password.clone());
    let signed_up = http
        .post(format!("{url}/api/auth/sign-up/email"))
        .header("origin", &origin)
        .json(&json!({"name": "Log Scan", "email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 200);
    let mut cookie_values = set_cookie_values(&signed_up);
    let body: serde_json::Value = signed_up.json().await.unwrap();
    secrets.push(body["token"].as_str().unwrap().to_owned());

    let signed_in = http
        .post(format!("{url}/api/auth/sign-in/email"))
        .header("origin", &origin)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let session = set_cookie_values(&signed_in);
    assert!(!session.is_empty());
    let cookie = format!("better-auth.session_token={}", session[0]);
    cookie_values.extend(session);
    let body: serde_json::Value = signed_in.json().await.unwrap();
    secrets.push(body["token"].as_str().unwrap().to_owned());

    // The dashboard, the gRPC API (both framings), a refused foreign origin, a bad cookie.
    let dashboard = http
        .get(format!("{url}/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    cookie_values.extend(set_cookie_values(&dashboard));

    let grpc = crate::helpers::TestGatewayClient::new(&url);
    let created = grpc
        .call(
            "/todo.v1.TodoService/CreateTodo",
            &CreateTodoRequest {
                title: "scan me".into(),
                ..CreateTodoRequest::default()
            },
            Framing::Binary,
            &[("cookie", &cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(created.grpc_status(), Code::Ok, "{created:?}");
    let listed = grpc
        .call(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Text,
            &[("cookie", &cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(listed.grpc_status(), Code::Ok, "{listed:?}");
    let validated = grpc
        .call(
            "/auth.v1.AuthService/ValidateSession",
            &ValidateSessionRequest {
                cookie: cookie.clone(),
            },
            Framing::Binary,
            &[("cookie", &cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(validated.grpc_status(), Code::Ok, "{validated:?}");
    let refused = grpc
        .call(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[("cookie", &cookie), ("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(refused.grpc_status(), Code::PermissionDenied);
    let tampered = format!("{cookie}x");
    let invalid = grpc
        .call(
            "/todo.v1.TodoService/ListTodos",
            &ListTodosRequest::default(),
            Framing::Binary,
            &[("cookie", &tampered), ("origin", &origin)],
        )
        .await;
    assert_eq!(invalid.grpc_status(), Code::Unauthenticated);

    let signed_out = http
        .post(format!("{url}/api/auth/sign-out"))
        .header("origin", &origin)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 200);
    let after = http
        .get(format!("{url}/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);

    // Better Auth down: the proxy's error must not carry the URL's query (a reset token).
    let reset_token = format!("reset{port}secretvalue");
    secrets.push(reset_token.clone());
    services.better_auth.stop();
    let outage = http
        .get(format!(
            "{url}/api/auth/reset-password/{reset_token}?token={reset_token}&callbackURL=%2F"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(outage.status(), 502);

    let log = gateway.stop().await;
    for value in &cookie_values {
        secrets.extend(secret_forms(value));
    }
    assert!(secrets.len() >= 8, "too few secrets collected: {secrets:?}");
    // The capture works and saw this session's traffic.
    assert!(log.contains("gateway ready"), "{log}");
    assert!(log.contains("Better Auth proxy call failed"), "{log}");
    if rust_log == "debug" {
        assert!(log.contains("/todo.v1.TodoService/CreateTodo"), "{log}");
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({} chars) appears in the gateway log at RUST_LOG={rust_log}:\n{log}",
            secret.len()
        );
    }
}

#[tokio::test]
async fn the_gateway_logs_no_cookie_or_token_at_the_default_level() {
    a_browser_session_leaves_no_secret_in_the_log("info").await;
}

#[tokio::test]
async fn the_gateway_logs_no_cookie_or_token_at_debug() {
    a_browser_session_leaves_no_secret_in_the_log("debug").await;
}
