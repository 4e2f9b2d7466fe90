//! `healthcheck grpc HOST:PORT` or `healthcheck http HOST:PORT/PATH`: exits 0 when the service
//! answers healthy within 2 s, 1 otherwise. Shipped in each service image for `HEALTHCHECK`, so
//! the slim runtime images need no shell tools.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const USAGE: &str = "usage: healthcheck grpc HOST:PORT | healthcheck http HOST:PORT[/PATH]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = async {
        match args.as_slice() {
            [kind, target] if kind == "grpc" => grpc(target).await,
            [kind, target] if kind == "http" => http(target).await,
            _ => Err(USAGE.to_owned()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(why)) => {
            eprintln!("unhealthy: {why}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: no answer within 2 s");
            ExitCode::FAILURE
        }
    }
}

async fn grpc(target: &str) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    match answer.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("status {other:?}")),
    }
}

async fn http(target: &str) -> Result<(), String> {
    let (authority, path) = match target.split_once('/') {
        Some((authority, path)) => (authority.to_owned(), format!("/{path}")),
        None => (target.to_owned(), "/".to_owned()),
    };
    let mut stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "answered {:?}",
            status_line.lines().next().unwrap_or_default()
        ))
    }
}
