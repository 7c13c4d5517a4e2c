//! Every service reports SERVING through the standard gRPC health service and
//! serves reflection; the edge answers its probes and metrics.

use confab_tests::app::spawn_app;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn services_report_serving_and_edge_answers_probes() {
    let app = spawn_app().await;
    for (url, name) in app.service_urls() {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel);
        for service in [name, ""] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.to_string(),
                })
                .await
                .unwrap_or_else(|e| panic!("{url} health of {service:?}: {e}"))
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "{name} at {url}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "nope.Service".into(),
            })
            .await;
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    }
    let http = reqwest::Client::new();
    let healthz = http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert!(healthz.status().is_success());
    let readyz: serde_json::Value = http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(readyz["status"], "ready");
    assert_eq!(readyz["streams"]["chat"], true);
    let metrics = http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("confab_"),
        "metrics should name confab's counters:\n{metrics}"
    );
    app.shutdown().await;
}
