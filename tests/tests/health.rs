//! Every service reports SERVING through the standard gRPC health service and
//! serves reflection; the edge answers its probes, and its metrics count
//! what the test did: a socket accepted, one refused, a message delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use confab_tests::app::spawn_app;
use confab_tests::hold::Held;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The Prometheus text as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

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

    // Bob and Alice share a conversation; Alice's socket joins it, a forged
    // token is refused, Bob posts over REST and the message reaches Alice.
    let (alice, bob) = (
        format!("a{}", rand::random::<u32>()),
        format!("b{}", rand::random::<u32>()),
    );
    let created: serde_json::Value = http
        .post(format!("{}/api/conversations", app.url))
        .bearer_auth(app.token(&bob, "Bob"))
        .json(&serde_json::json!({ "members": [alice], "name": "metrics" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conversation = created["id"].as_str().expect("conversation id").to_string();
    let socket = Held::open(
        &app.url,
        "/raven",
        &app.token(&alice, "Alice"),
        Some(&conversation),
    )
    .await;
    assert_eq!(socket.first, "connected");
    let refused = Held::open(&app.url, "/raven", "abc.def", None).await;
    assert_eq!(refused.first, "refused INVALID_TOKEN");
    let posted = http
        .post(format!(
            "{}/api/conversations/{conversation}/messages",
            app.url
        ))
        .bearer_auth(app.token(&bob, "Bob"))
        .json(&serde_json::json!({ "text": "counted" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);

    // Deliveries are recorded in batches after the emit: wait for the batch.
    let expected = [
        ("confab_socket_connections_total{contract=\"raven\"}", 1.0),
        (
            "confab_socket_auth_failures_total{code=\"INVALID_TOKEN\"}",
            1.0,
        ),
        ("confab_delivery_batches_total", 1.0),
        ("confab_delivery_messages_total", 1.0),
        ("confab_event_stream_up{service=\"chat\"}", 1.0),
        ("confab_event_stream_up{service=\"presence\"}", 1.0),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (text, got) = loop {
        let text = http
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got = samples(&text);
        let done = expected.iter().all(|(k, _)| got.contains_key(*k));
        if done || tokio::time::Instant::now() > deadline {
            break (text, got);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (key, value) in expected {
        assert_eq!(got.get(key), Some(&value), "{key} in:\n{text}");
    }
    // The message (and at least its delivery receipt) came down chat's
    // event stream; Alice going online came down presence's.
    let chat_events = got
        .get("confab_service_events_total{service=\"chat\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(chat_events >= 2.0, "chat events {chat_events} in:\n{text}");
    let presence_events = got
        .get("confab_service_events_total{service=\"presence\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(
        presence_events >= 1.0,
        "presence events {presence_events} in:\n{text}"
    );
    assert!(
        !got.contains_key("confab_delivery_batches_failed_total"),
        "no delivery batch failed:\n{text}"
    );
    app.shutdown().await;
}
