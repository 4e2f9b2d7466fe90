//! The auth-service serves grpc.health.v1 and server reflection v1 and v1alpha (grpcurl 1.8
//! speaks only v1alpha), and stops cleanly when asked.

use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::{closed_port_url, spawn_app};

#[tokio::test]
async fn health_reports_the_auth_service_as_serving() {
    let app = spawn_app(&closed_port_url().await).await;
    let mut health = HealthClient::new(app.channel.clone());

    for service in ["auth.v1.AuthService", ""] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers");
        assert_eq!(
            response.get_ref().status(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    assert_eq!(unknown.expect_err("unknown").code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_lists_the_auth_service() {
    let app = spawn_app(&closed_port_url().await).await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream.next().await.expect("one answer").expect("ok");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"auth.v1.AuthService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn reflection_v1alpha_describes_validate_session() {
    let app = spawn_app(&closed_port_url().await).await;
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "auth.v1.AuthService".into(),
            ),
        ),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream.next().await.expect("one answer").expect("ok");
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        response.message_response
    else {
        panic!("unexpected reflection answer: {response:?}");
    };
    assert!(
        files
            .file_descriptor_proto
            .iter()
            .any(|file| file.windows(15).any(|w| w == b"ValidateSession")),
        "the descriptor names ValidateSession"
    );
}

#[tokio::test]
async fn the_server_stops_when_shutdown_completes() {
    let app = spawn_app(&closed_port_url().await).await;
    let addr = app.addr;
    tokio::time::timeout(std::time::Duration::from_secs(5), app.stop())
        .await
        .expect("stops within 5 s")
        .expect("stops cleanly");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
