//! A socket's presence session lives exactly as long as the socket: one
//! that goes away in the middle of its handshake — after the edge's connect
//! middleware registered its session, before the client was told it is
//! connected — must not leave its user "online" for ever.
//!
//! Driven over Engine.IO's long-polling transport with plain HTTP, so the
//! test can do what no well-behaved client does: send the namespace connect
//! and close the connection in one request, racing the middleware.

use std::time::Duration;

use confab_proto::v1::GetPresenceRequest;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_tests::app::spawn_app;

/// The `sid` of a new Engine.IO session from its open packet `0{"sid":…}`.
async fn open(http: &reqwest::Client, url: &str) -> String {
    let body = http
        .get(format!("{url}/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .expect("open")
        .text()
        .await
        .expect("open body");
    let json = body.strip_prefix('0').expect("an open packet");
    let v: serde_json::Value = serde_json::from_str(json).expect("open JSON");
    v["sid"].as_str().expect("sid").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_gone_during_its_handshake_leaves_no_session() {
    let app = spawn_app().await;
    app.wait_ready().await;
    let http = reqwest::Client::new();
    let presence_url = app
        .service_urls()
        .into_iter()
        .find(|(_, name)| *name == confab_presence::SERVICE_NAME)
        .expect("presence-service")
        .0;
    let presence = PresenceServiceClient::connect(presence_url)
        .await
        .expect("presence-service");

    // Many tries, so the race is lost at least sometimes whatever the timing.
    let users: Vec<String> = (0..30)
        .map(|i| format!("gone{i}-{:08x}", rand::random::<u32>()))
        .collect();
    for user in &users {
        let sid = open(&http, &app.url).await;
        let token = app.token(user, "Gone");
        // The namespace connect, then Engine.IO's close, in one payload
        // (packets are separated by the record separator 0x1e).
        let payload = format!("40/raven,{{\"token\":\"{token}\"}}\u{1e}1");
        let _ = http
            .post(format!(
                "{}/socket.io/?EIO=4&transport=polling&sid={sid}",
                app.url
            ))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(payload)
            .send()
            .await;
    }

    // Whatever each handshake came to, no session outlives its socket: the
    // users are offline once the edge has had a moment to finish, and stay
    // so (a handshake still running at the first look cannot pass unseen).
    let online_now = |mut presence: PresenceServiceClient<_>| {
        let users = users.clone();
        async move {
            presence
                .get_presence(GetPresenceRequest { user_ids: users })
                .await
                .expect("get presence")
                .into_inner()
                .users
                .into_iter()
                .filter(|u| u.online || u.session_count > 0)
                .map(|u| u.user_id)
                .collect::<Vec<String>>()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let online = online_now(presence.clone()).await;
        if online.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} users still online 5 s after their socket closed mid-handshake: {online:?}",
            online.len(),
            users.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let online = online_now(presence.clone()).await;
    assert!(online.is_empty(), "online again a second later: {online:?}");
    app.shutdown().await;
}
