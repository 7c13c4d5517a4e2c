//! The embedded mode, as `cargo run --release` runs it: the edge calls the
//! four services in-process, and the same services answer internal callers
//! on one gRPC address (`CONFAB_GRPC_LISTEN`).
//!
//! - Health reports SERVING for all four services on that one address, and
//!   reflection lists the confab API there.
//! - A message sent over that address by an internal caller reaches a
//!   Socket.IO client, and one sent from a socket is in the history read
//!   over it: the public API and the edge see the same services; and
//!   notify-service, following chat-service in-process, turns the message
//!   into a notification for the member with no session (only for them).
//! - The cross-contract suite (`tests/js/cross.test.mjs`: one user on each
//!   of the five contracts in one conversation) passes with every call
//!   between edge and services made in-process.

use confab_edge::config::EdgeArgs;
use confab_edge::embedded::{self, EmbeddedArgs, System};
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::{
    Actor, CreateConversationRequest, GetHistoryRequest, ListNotificationsRequest,
    SendMessageRequest,
};
use confab_tests::app::Db;
use confab_tests::hold::Held;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn start(db: Db) -> (System, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(
            confab_tests::db::postgres_url()
                .await
                .expect("DATABASE_URL is required for a PostgreSQL app"),
        ),
    };
    let edge = EdgeArgs {
        listen: "127.0.0.1:0".into(),
        default_contract: "raven".into(),
        jwt_secret: None,
        jwt_public_key_file: None,
        jwt_algorithm: "RS256".into(),
        jwt_audience: Vec::new(),
        jwt_issuer: Vec::new(),
        request_timeout_ms: 3000,
        presence_heartbeat_ms: 200,
        heartbeat_ms: confab_edge::config::DEFAULT_HEARTBEAT_MS,
        max_packet_bytes: confab_edge::config::DEFAULT_MAX_PACKET_BYTES,
        offline_queue: confab_edge::config::DEFAULT_OFFLINE_QUEUE,
        presence_grace_ms: confab_edge::config::DEFAULT_PRESENCE_GRACE_MS,
        recovery_window_ms: confab_edge::config::DEFAULT_RECOVERY_WINDOW_MS,
        recovery_max_events: confab_edge::config::DEFAULT_RECOVERY_MAX_EVENTS,
        recovery_redis_prefix: "confab:recovery".into(),
    };
    let emb = EmbeddedArgs {
        data_dir: dir.path().join("data"),
        database_url,
        redis_url: None,
        message_rate_limit: confab_chat::rate::DEFAULT_LIMIT,
        grpc_listen: "127.0.0.1:0".into(),
        call_timers: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind edge");
    let system = embedded::start(&edge, &emb, listener)
        .await
        .expect("embedded confab");
    (system, dir)
}

#[tokio::test]
async fn one_grpc_address_serves_all_four_services() {
    let (system, _dir) = start(Db::Sqlite).await;
    let channel = tonic::transport::Endpoint::from_shared(system.services.url())
        .unwrap()
        .connect()
        .await
        .expect("connect to CONFAB_GRPC_LISTEN");
    let mut health = HealthClient::new(channel);
    for service in [
        confab_chat::SERVICE_NAME,
        confab_presence::SERVICE_NAME,
        confab_call::SERVICE_NAME,
        confab_notify::SERVICE_NAME,
        "",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    system.shutdown().await;
}

#[tokio::test]
async fn an_internal_caller_and_a_socket_meet_in_the_same_services() {
    let (system, _dir) = start(Db::Sqlite).await;
    let mut chat = ChatServiceClient::connect(system.services.url())
        .await
        .expect("connect to CONFAB_GRPC_LISTEN");
    let (alice, bob, carol) = (
        format!("a{}", rand::random::<u32>()),
        format!("b{}", rand::random::<u32>()),
        format!("c{}", rand::random::<u32>()),
    );
    let actor = |id: &str| {
        Some(Actor {
            id: id.to_string(),
            name: id.to_string(),
            ..Default::default()
        })
    };
    let conversation = chat
        .create_conversation(CreateConversationRequest {
            actor: actor(&alice),
            kind: 2,
            name: "embedded".into(),
            member_ids: vec![bob.clone(), carol.clone()],
        })
        .await
        .expect("create conversation over gRPC")
        .into_inner()
        .id;

    // Bob's raven socket joins through the edge (membership checked
    // in-process) and hears what an internal caller sends.
    let token = confab_edge::auth::mint_hs256(system.jwt_secret.as_bytes(), &bob, None, 3600);
    let mut held = Held::open(&system.edge.url(), "/raven", &token, Some(&conversation)).await;
    assert_eq!(held.first, "connected");
    chat.send_message(SendMessageRequest {
        actor: actor(&alice),
        conversation_id: conversation.clone(),
        text: "from an internal service".into(),
        ..Default::default()
    })
    .await
    .expect("send over gRPC");
    let line = held.next_line().await.expect("a new_message line");
    assert!(
        line.starts_with("new_message") && line.contains("from an internal service"),
        "{line}"
    );

    // And what the edge stored is what the public API reads.
    let history = chat
        .get_history(GetHistoryRequest {
            actor: actor(&bob),
            conversation_id: conversation,
            ..Default::default()
        })
        .await
        .expect("history over gRPC")
        .into_inner();
    assert_eq!(history.messages.len(), 1);

    // notify-service follows chat-service in-process too: Carol, who has no
    // session, finds a message notification; Bob, connected, does not.
    let notify = NotifyServiceClient::connect(system.services.url())
        .await
        .expect("connect to CONFAB_GRPC_LISTEN");
    let list = |user: String| {
        let mut notify = notify.clone();
        async move {
            notify
                .list_notifications(ListNotificationsRequest {
                    user_id: user,
                    ..Default::default()
                })
                .await
                .expect("list notifications over gRPC")
                .into_inner()
                .notifications
        }
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let carols = loop {
        let found = list(carol.clone()).await;
        if !found.is_empty() || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(carols.len(), 1, "{carols:?}");
    assert_eq!(carols[0].r#type, "message");
    assert!(list(bob.clone()).await.is_empty());
    drop(held);
    system.shutdown().await;
}

async fn run_cross(db: Db) {
    if matches!(db, Db::Postgres) && !confab_tests::db::postgres_url_configured() {
        return;
    }
    let (system, _dir) = start(db).await;
    let url = system.edge.url();
    let target = confab_tests::js::Target {
        url: &url,
        env: &[],
        jwt_secret: &system.jwt_secret,
        control_url: None,
        typing_ttl_ms: confab_presence::Config::default().typing_ttl_ms,
    };
    confab_tests::js::run_suite("cross.test.mjs", target, None).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_contracts_in_one_conversation_embedded_over_sqlite() {
    run_cross(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_contracts_in_one_conversation_embedded_over_postgres() {
    run_cross(Db::Postgres).await;
}
