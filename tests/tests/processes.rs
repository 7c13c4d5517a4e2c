//! The distributed shape: chat-service, presence-service, call-service,
//! notify-service and confab-edge each run as their own process (the
//! binaries a platform team deploys), configured only by flags and
//! environment. A `raven` conversation runs through them with the official
//! socket.io-client; then chat-service is killed outright and started again,
//! and messages flow through the same edge afterwards. Room presence runs
//! across edge processes (tests/js/edges.test.mjs), and a crashed edge's
//! users go offline. Then the whole distributed deployment: two replicas of
//! every service on PostgreSQL and Redis behind two edges, replicas killed
//! with SIGKILL while messages flow and calls ring.
//!
//! The binaries are the workspace's own: the test command builds them first
//! (`cargo build --workspace --bins`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use confab_tests::js::{Target, run_suite};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/processes-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (the test command does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(name: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(bin(name));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Polls `/readyz` until it answers `want` (true: 200, false: 503).
async fn readyz_becomes(url: &str, want: bool) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let ok = client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{url}/readyz did not become {} within 15 s",
        if want { "ready" } else { "not ready" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let secret = format!("processes-{}", rand::random::<u64>());

    let chat_env = vec![("CHAT_LISTEN", addr(0)), ("DATABASE_URL", db.clone())];
    let chat = Arc::new(Mutex::new(Some(spawn("chat-service", &chat_env))));
    let presence_db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("presence.db").display()
    );
    let _presence = spawn(
        "presence-service",
        &[
            ("PRESENCE_LISTEN", addr(1)),
            ("PRESENCE_DATABASE_URL", presence_db),
        ],
    );
    let _call = spawn("call-service", &[("CALL_LISTEN", addr(2))]);
    let notify_db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("notify.db").display()
    );
    let _notify = spawn(
        "notify-service",
        &[
            ("NOTIFY_LISTEN", addr(3)),
            ("NOTIFY_DATABASE_URL", notify_db),
        ],
    );
    let _edge = spawn(
        "confab-edge",
        &[
            ("CONFAB_LISTEN", addr(4)),
            ("CONFAB_JWT_SECRET", secret.clone()),
            ("CONFAB_DEFAULT_CONTRACT", "raven".into()),
            ("CONFAB_CHAT_URL", url(0)),
            ("CONFAB_PRESENCE_URL", url(1)),
            ("CONFAB_CALL_URL", url(2)),
            ("CONFAB_NOTIFY_URL", url(3)),
        ],
    );
    let edge = url(4);
    readyz_becomes(&edge, true).await;

    // The whole raven suite; its restart test stops and starts the
    // chat-service process through the control server.
    let control = spawn_control(ChatProcess {
        child: chat.clone(),
        env: chat_env.clone(),
        edge: edge.clone(),
    })
    .await;
    let target = Target {
        url: &edge,
        env: &[],
        jwt_secret: &secret,
        control_url: Some(&control),
        // presence-service's default (PRESENCE_TYPING_TTL_MS is not set).
        typing_ttl_ms: 5000,
    };
    run_suite("raven.test.mjs", target, None).await;

    // chat-service dies without warning; the edge notices and keeps serving.
    let mut dead = chat.lock().await.take().expect("chat-service running");
    dead.kill().await.unwrap();
    readyz_becomes(&edge, false).await;
    *chat.lock().await = Some(spawn("chat-service", &chat_env));
    readyz_becomes(&edge, true).await;
    run_suite("raven.test.mjs", target, Some("two clients")).await;
}

/// The chat-service process, which the suites' control server may kill and
/// start again.
#[derive(Clone)]
struct ChatProcess {
    child: Arc<Mutex<Option<Child>>>,
    env: Vec<(&'static str, String)>,
    /// The edge following it, whose `/readyz` tells when it noticed.
    edge: String,
}

/// The control server the suites reach as `CONFAB_CONTROL_URL`
/// (`POST /chat/stop`, `POST /chat/start`), here for a real process: stop
/// kills it outright and returns once the edge has noticed; start runs it
/// again and returns once the edge follows it again.
async fn spawn_control(chat: ChatProcess) -> String {
    async fn stop(State(chat): State<ChatProcess>) -> &'static str {
        if let Some(mut child) = chat.child.lock().await.take() {
            child.kill().await.expect("kill chat-service");
        }
        readyz_becomes(&chat.edge, false).await;
        "stopped"
    }
    async fn start(State(chat): State<ChatProcess>) -> &'static str {
        let mut child = chat.child.lock().await;
        if child.is_none() {
            *child = Some(spawn("chat-service", &chat.env));
        }
        drop(child);
        readyz_becomes(&chat.edge, true).await;
        "started"
    }
    let app = Router::new()
        .route("/chat/stop", post(stop))
        .route("/chat/start", post(start))
        .with_state(chat);
    confab_tests::app::serve_control(app).await
}

/// An edge that dies without closing its sockets: presence-service stops
/// hearing its heartbeats, and after the session TTL its users go offline —
/// with an offline event for their peers — instead of staying online for
/// ever. A user connected through a second, living edge stays online.
/// chat-, presence-, call- and notify-service as processes, on SQLite files
/// in `dir`, listening on `ports[0..4]` in that order; `presence_env` adds
/// to presence-service's environment.
fn spawn_services(
    dir: &std::path::Path,
    ports: &[u16],
    presence_env: &[(&'static str, String)],
) -> Vec<Child> {
    let sqlite = |name: &str| format!("sqlite://{}?mode=rwc", dir.join(name).display());
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let mut presence = vec![
        ("PRESENCE_LISTEN", addr(1)),
        ("PRESENCE_DATABASE_URL", sqlite("presence.db")),
    ];
    presence.extend_from_slice(presence_env);
    vec![
        spawn(
            "chat-service",
            &[
                ("CHAT_LISTEN", addr(0)),
                ("DATABASE_URL", sqlite("chat.db")),
            ],
        ),
        spawn("presence-service", &presence),
        spawn("call-service", &[("CALL_LISTEN", addr(2))]),
        spawn(
            "notify-service",
            &[
                ("NOTIFY_LISTEN", addr(3)),
                ("NOTIFY_DATABASE_URL", sqlite("notify.db")),
            ],
        ),
    ]
}

/// Polls `/readyz` until the edge follows presence-service's stream too.
async fn follows_presence(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
            && body["streams"]["presence"] == true
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not follow presence-service within 15 s");
}

/// The edges suite (room presence: v3, dreamstudio and raven members on
/// one edge hear users on another join and leave) against three
/// confab-edge processes on the same service processes; the third cannot
/// reach presence-service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_presence_across_edge_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let secret = format!("processes-{}", rand::random::<u64>());

    let _services = spawn_services(dir.path(), &ports, &[]);
    // Port 7 is never listened on: the third edge has no presence-service.
    let edge_env = |listen: String, presence: String| {
        vec![
            ("CONFAB_LISTEN", listen),
            ("CONFAB_JWT_SECRET", secret.clone()),
            ("CONFAB_DEFAULT_CONTRACT", "v3".to_string()),
            ("CONFAB_CHAT_URL", url(0)),
            ("CONFAB_PRESENCE_URL", presence),
            ("CONFAB_CALL_URL", url(2)),
            ("CONFAB_NOTIFY_URL", url(3)),
        ]
    };
    let _edges: Vec<Child> = [(4, url(1)), (5, url(1)), (6, url(7))]
        .into_iter()
        .map(|(i, presence)| spawn("confab-edge", &edge_env(addr(i), presence)))
        .collect();
    for i in [4, 5, 6] {
        readyz_becomes(&url(i), true).await;
    }
    follows_presence(&url(4)).await;
    follows_presence(&url(5)).await;

    let env = [("CONFAB_URL2", url(5)), ("CONFAB_URL_NO_PRESENCE", url(6))];
    let edge = url(4);
    let target = Target {
        url: &edge,
        env: &env,
        jwt_secret: &secret,
        control_url: None,
        // presence-service's default (PRESENCE_TYPING_TTL_MS is not set).
        typing_ttl_ms: 5000,
    };
    run_suite("edges.test.mjs", target, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_edges_users_go_offline_after_the_session_ttl() {
    use confab_proto::v1::presence_service_client::PresenceServiceClient;
    use confab_proto::v1::{GetPresenceRequest, SubscribeRequest, presence_event::Kind};
    use confab_tests::hold::Held;

    const TTL_MS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let secret = format!("processes-{}", rand::random::<u64>());

    let _services = spawn_services(
        dir.path(),
        &ports,
        &[("PRESENCE_SESSION_TTL_MS", TTL_MS.to_string())],
    );
    let edge_env = |listen: String| {
        vec![
            ("CONFAB_LISTEN", listen),
            ("CONFAB_JWT_SECRET", secret.clone()),
            ("CONFAB_PRESENCE_HEARTBEAT_MS", "300".to_string()),
            ("CONFAB_CHAT_URL", url(0)),
            ("CONFAB_PRESENCE_URL", url(1)),
            ("CONFAB_CALL_URL", url(2)),
            ("CONFAB_NOTIFY_URL", url(3)),
        ]
    };
    let mut doomed = spawn("confab-edge", &edge_env(addr(4)));
    let _living = spawn("confab-edge", &edge_env(addr(5)));
    readyz_becomes(&url(4), true).await;
    readyz_becomes(&url(5), true).await;

    // Alice and Bob share a conversation; Alice is on the doomed edge, Bob
    // on the living one.
    let (alice, bob) = (
        format!("a{}", rand::random::<u32>()),
        format!("b{}", rand::random::<u32>()),
    );
    let token = |sub: &str| confab_edge::auth::mint_hs256(secret.as_bytes(), sub, None, 3600);
    let created = reqwest::Client::new()
        .post(format!("{}/api/conversations", url(5)))
        .bearer_auth(token(&bob))
        .json(&serde_json::json!({ "members": [alice] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut presence = PresenceServiceClient::connect(url(1)).await.unwrap();
    let mut events = presence
        .subscribe(SubscribeRequest {
            subscriber: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let online = |presence: &mut PresenceServiceClient<tonic::transport::Channel>, user: String| {
        let mut presence = presence.clone();
        async move {
            presence
                .get_presence(GetPresenceRequest {
                    user_ids: vec![user],
                })
                .await
                .unwrap()
                .into_inner()
                .users[0]
                .clone()
        }
    };
    let mut clients = Vec::new();
    for (edge, user) in [(url(4), &alice), (url(5), &bob)] {
        let held = Held::open(&edge, "/raven", &token(user), None).await;
        assert_eq!(held.first, "connected");
        clients.push(held);
    }
    assert!(online(&mut presence, alice.clone()).await.online);

    // The edge dies; nobody tells presence-service.
    doomed.kill().await.unwrap();
    let killed_at = std::time::Instant::now();
    let offline = tokio::time::timeout(Duration::from_millis(TTL_MS * 6), async {
        loop {
            let event = events
                .message()
                .await
                .unwrap()
                .expect("presence stream open");
            if let Some(Kind::StatusChanged(change)) = &event.kind
                && change.user_id == alice
                && !change.online
            {
                return event;
            }
        }
    })
    .await
    .expect("Alice went offline within a few TTLs");
    let waited = killed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(TTL_MS / 2),
        "offline too early: {waited:?}"
    );
    let audience = offline.audience.expect("audience");
    assert!(
        audience.user_ids.contains(&bob),
        "Bob hears it: {:?}",
        audience.user_ids
    );
    let now = online(&mut presence, alice.clone()).await;
    assert!(!now.online && now.last_seen_ms > 0, "{now:?}");
    // Bob's edge kept heartbeating: he is still online.
    assert!(online(&mut presence, bob.clone()).await.online);
}

/// call-service killed with SIGKILL while a call rings, and started again
/// after the call's ring deadline passed: the call is `missed` — resolved
/// from the deadline in its database at start, not from a timer lost with
/// the process — and its record says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_call_service_resolves_an_overdue_call_when_it_starts_again() {
    use confab_proto::v1::call_service_client::CallServiceClient;
    use confab_proto::v1::chat_service_client::ChatServiceClient;
    use confab_proto::v1::{
        Actor, CallMedia, CallState, ConversationKind, CreateConversationRequest, GetCallRequest,
        InitiateCallRequest,
    };

    const RING_MS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
    let (chat_port, call_port) = (free_port(), free_port());
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let _chat = spawn(
        "chat-service",
        &[
            ("CHAT_LISTEN", format!("127.0.0.1:{chat_port}")),
            ("DATABASE_URL", sqlite("chat.db")),
        ],
    );
    let call_env = vec![
        ("CALL_LISTEN", format!("127.0.0.1:{call_port}")),
        ("CALL_DATABASE_URL", sqlite("call.db")),
        ("CALL_CHAT_URL", url(chat_port)),
        ("CONFAB_CALL_RING_TIMEOUT_MS", RING_MS.to_string()),
    ];
    let mut call_service = spawn("call-service", &call_env);

    let connect = |port: u16| async move {
        for _ in 0..100 {
            if let Ok(ch) = tonic::transport::Endpoint::from_shared(url(port))
                .unwrap()
                .connect()
                .await
            {
                return ch;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nothing listens on port {port}");
    };
    let actor = |id: &str| {
        Some(Actor {
            id: id.to_string(),
            name: id.to_string(),
            ..Default::default()
        })
    };
    let (alice, bob) = ("31", "32");
    let conversation = ChatServiceClient::new(connect(chat_port).await)
        .create_conversation(CreateConversationRequest {
            actor: actor(alice),
            kind: ConversationKind::Direct as i32,
            member_ids: vec![bob.to_string()],
            ..Default::default()
        })
        .await
        .expect("a direct conversation")
        .into_inner()
        .id;
    let mut calls = CallServiceClient::new(connect(call_port).await);
    let ringing = calls
        .initiate_call(InitiateCallRequest {
            actor: actor(alice),
            callee_ids: vec![bob.to_string()],
            conversation_id: conversation,
            media: CallMedia::Audio as i32,
            ..Default::default()
        })
        .await
        .expect("the call starts")
        .into_inner();
    assert_eq!(ringing.state, CallState::Ringing as i32);

    // No shutdown, no chance to resolve anything: the ring deadline passes
    // while nothing runs.
    call_service.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(RING_MS + 500)).await;
    let _call_service = spawn("call-service", &call_env);
    let mut calls = CallServiceClient::new(connect(call_port).await);
    let mut state = 0;
    for _ in 0..100 {
        let call = calls
            .get_call(GetCallRequest {
                actor: actor(bob),
                call_id: ringing.id.clone(),
            })
            .await
            .expect("the call is still known")
            .into_inner();
        state = call.state;
        if state != CallState::Ringing as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        state,
        CallState::Missed as i32,
        "resolved after the restart"
    );
}

/// The deployment the design promises, as processes: PostgreSQL, Redis,
/// two replicas of every service (each service's replicas on one database
/// and one event log in Redis) and two edges following different replicas
/// — edge 1 chat A then B, presence A, call A, notify A; edge 2 chat B
/// then A, presence B, call B then A, notify B. Two suites run on it:
///
/// * tests/js/replicated.test.mjs: users on different edges and contracts
///   see each other online, converse and type; call each other; get
///   message notifications exactly once however many notify replicas
///   follow chat-service, and notifications published on either replica;
///   a call whose replica is killed (SIGKILL) still rings out on time.
/// * tests/js/failover.test.mjs: numbered messages flow while each
///   chat-service replica in turn is killed with SIGKILL and started
///   again; every acknowledged message reaches every recipient socket
///   exactly once, in order — the edge's stream resumes on the other
///   replica from where it broke.
/// * tests/js/edge-restart.test.mjs: a rolling restart of both edges
///   (SIGTERM) and an edge killed with SIGKILL under a steady stream; one
///   socket of each contract resumes its session on the other edge each
///   time (sessions in Redis), and every answered message reaches each
///   exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_replicated_behind_two_edges() {
    let Some(redis) =
        confab_tests::skip::required_env("REDIS_URL", "every service replicated as processes")
    else {
        return;
    };
    let Some(db) = confab_tests::db::postgres_url().await else {
        return;
    };
    let secret = format!("processes-{}", rand::random::<u64>());
    let prefix = confab_tests::redis_prefix();
    let port = |_| free_port();
    let ports: Vec<u16> = (0..10).map(port).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    // chat A, B; presence A, B; call A, B; notify A, B; edge 1, edge 2.
    let (chat, presence, call, notify) = (0, 2, 4, 6);
    let both = |first: usize, second: usize| format!("{},{}", url(first), url(second));
    let shared = |prefix_var: &'static str, service: &str| {
        vec![
            ("REDIS_URL", redis.clone()),
            (prefix_var, format!("{prefix}:{service}")),
        ]
    };
    let replica = |i: usize| -> Replica {
        let (bin, mut env) = match i {
            0 | 1 => (
                "chat-service",
                vec![
                    ("CHAT_LISTEN", addr(i)),
                    ("DATABASE_URL", db.clone()),
                    // A steady stream, not the per-user limit, is what the
                    // failover suite measures.
                    ("CONFAB_MESSAGE_RATE_LIMIT", "1000".into()),
                ],
            ),
            2 | 3 => (
                "presence-service",
                vec![
                    ("PRESENCE_LISTEN", addr(i)),
                    ("PRESENCE_DATABASE_URL", db.clone()),
                ],
            ),
            4 | 5 => (
                "call-service",
                vec![
                    ("CALL_LISTEN", addr(i)),
                    ("CALL_DATABASE_URL", db.clone()),
                    ("CALL_CHAT_URL", both(chat, chat + 1)),
                    ("CONFAB_CALL_RING_TIMEOUT_MS", RING_MS.to_string()),
                ],
            ),
            _ => (
                "notify-service",
                vec![
                    ("NOTIFY_LISTEN", addr(i)),
                    ("NOTIFY_DATABASE_URL", db.clone()),
                    ("NOTIFY_CHAT_URL", both(chat, chat + 1)),
                    ("NOTIFY_PRESENCE_URL", both(presence, presence + 1)),
                ],
            ),
        };
        let (var, service) = match bin {
            "chat-service" => ("CHAT_REDIS_PREFIX", "chat"),
            "presence-service" => ("PRESENCE_REDIS_PREFIX", "presence"),
            "call-service" => ("CALL_REDIS_PREFIX", "call"),
            _ => ("NOTIFY_REDIS_PREFIX", "notify"),
        };
        env.extend(shared(var, service));
        let name = format!("{service}-{}", if i.is_multiple_of(2) { 'a' } else { 'b' });
        Replica {
            name,
            bin,
            listen: addr(i),
            env,
            child: None,
        }
    };
    // One after the other: the first replica of each service migrates the
    // shared database.
    let mut replicas = Vec::new();
    for i in 0..8 {
        let mut r = replica(i);
        r.child = Some(spawn(r.bin, &r.env));
        listening(&r.listen).await;
        replicas.push(r);
    }
    let edge_env =
        |listen: usize, chats: String, presence: String, calls: String, notify: String| {
            vec![
                ("CONFAB_LISTEN", addr(listen)),
                ("CONFAB_JWT_SECRET", secret.clone()),
                ("CONFAB_CHAT_URL", chats),
                ("CONFAB_PRESENCE_URL", presence),
                ("CONFAB_CALL_URL", calls),
                ("CONFAB_NOTIFY_URL", notify),
                // Recoverable sessions any edge resumes.
                ("REDIS_URL", redis.clone()),
                ("CONFAB_RECOVERY_REDIS_PREFIX", format!("{prefix}:recovery")),
            ]
        };
    for (n, env) in [
        (
            1,
            edge_env(
                8,
                both(chat, chat + 1),
                url(presence),
                url(call),
                url(notify),
            ),
        ),
        (
            2,
            edge_env(
                9,
                both(chat + 1, chat),
                url(presence + 1),
                both(call + 1, call),
                url(notify + 1),
            ),
        ),
    ] {
        replicas.push(Replica {
            name: format!("edge-{n}"),
            bin: "confab-edge",
            listen: addr(7 + n),
            child: Some(spawn("confab-edge", &env)),
            env,
        });
    }
    let (edge1, edge2) = (url(8), url(9));
    readyz_becomes(&edge1, true).await;
    readyz_becomes(&edge2, true).await;
    follows_presence(&edge1).await;
    follows_presence(&edge2).await;
    let replicas = Replicas(Arc::new(Mutex::new(replicas)));
    // The harness plays an internal service publishing to either notify
    // replica: `/a/notify/publish`, `/b/notify/publish`.
    let control = spawn_replica_control(
        replicas.clone(),
        Router::new()
            .nest("/a", confab_tests::internal::routes(&url(notify)))
            .nest("/b", confab_tests::internal::routes(&url(notify + 1))),
    )
    .await;
    let target = || Target {
        url: &edge1,
        env: &[],
        jwt_secret: &secret,
        control_url: Some(&control),
        typing_ttl_ms: 5000,
    };
    let env = [
        ("CONFAB_URL2", edge2.clone()),
        ("CONFAB_RING_MS", RING_MS.to_string()),
    ];
    run_suite(
        "replicated.test.mjs",
        Target {
            env: &env,
            ..target()
        },
        None,
    )
    .await;
    run_suite(
        "failover.test.mjs",
        Target {
            env: &env,
            ..target()
        },
        None,
    )
    .await;
    run_suite(
        "edge-restart.test.mjs",
        Target {
            env: &env,
            ..target()
        },
        None,
    )
    .await;
    drop(replicas);
    confab_tests::db::drop_postgres(&db).await;
}

/// The embedded `confab` as a process, killed with SIGKILL and started
/// again on the same data directory while messages flow
/// (tests/js/embedded-restart.test.mjs): its sessions were in its memory,
/// so every client starts afresh, joins again as its frontend does, and
/// catches up on what its user missed there — one socket per contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_confab_killed_and_started_again_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = format!("embedded-{}", rand::random::<u64>());
    let listen = format!("127.0.0.1:{}", free_port());
    let env: Env = vec![
        ("CONFAB_LISTEN", listen.clone()),
        (
            "CONFAB_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("CONFAB_JWT_SECRET", secret.clone()),
        ("CONFAB_GRPC_LISTEN", "127.0.0.1:0".into()),
        ("CONFAB_MESSAGE_RATE_LIMIT", "1000".into()),
    ];
    let replicas = Replicas(Arc::new(Mutex::new(vec![Replica {
        name: "confab".into(),
        bin: "confab",
        listen: listen.clone(),
        child: Some(spawn("confab", &env)),
        env,
    }])));
    let url = format!("http://{listen}");
    readyz_becomes(&url, true).await;
    let control = spawn_replica_control(replicas.clone(), Router::new()).await;
    run_suite(
        "embedded-restart.test.mjs",
        Target {
            url: &url,
            env: &[],
            jwt_secret: &secret,
            control_url: Some(&control),
            typing_ttl_ms: 5000,
        },
        None,
    )
    .await;
    drop(replicas);
}

/// call-service's ring timeout in the replicated deployment: long enough
/// to kill a replica while a call rings, short enough to wait for.
const RING_MS: u64 = 4000;

/// Waits until something accepts connections at `addr`.
async fn listening(addr: &str) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens at {addr} after 15 s");
}

/// A process's environment.
type Env = Vec<(&'static str, String)>;

/// The service replicas and edges, which the suites' control server kills,
/// stops and starts.
#[derive(Clone)]
struct Replicas(Arc<Mutex<Vec<Replica>>>);

/// One replica: its name (`chat-a`, `call-b`, …), binary, address and
/// environment, and its process while it runs.
struct Replica {
    name: String,
    bin: &'static str,
    listen: String,
    env: Env,
    child: Option<Child>,
}

/// `POST /replica/{name}/kill` (SIGKILL, returns once it is gone),
/// `POST /replica/{name}/term` (SIGTERM, returns once it has stopped) and
/// `POST /replica/{name}/start` (returns once it listens again; an edge,
/// once it is ready), beside `more` routes.
async fn spawn_replica_control(replicas: Replicas, more: Router) -> String {
    async fn act(
        State(replicas): State<Replicas>,
        axum::extract::Path((which, action)): axum::extract::Path<(String, String)>,
    ) -> (axum::http::StatusCode, String) {
        let mut all = replicas.0.lock().await;
        let Some(replica) = all.iter_mut().find(|r| r.name == which) else {
            return (
                axum::http::StatusCode::NOT_FOUND,
                format!("no replica {which}"),
            );
        };
        match action.as_str() {
            "kill" => {
                if let Some(mut c) = replica.child.take() {
                    c.kill().await.expect("kill a replica");
                }
                (axum::http::StatusCode::OK, "killed".into())
            }
            "term" => {
                if let Some(mut c) = replica.child.take() {
                    if let Some(pid) = c.id() {
                        let _ = std::process::Command::new("kill")
                            .args(["-TERM", &pid.to_string()])
                            .status();
                    }
                    if tokio::time::timeout(Duration::from_secs(10), c.wait())
                        .await
                        .is_err()
                    {
                        return (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            format!("{which} did not stop within 10 s of SIGTERM"),
                        );
                    }
                }
                (axum::http::StatusCode::OK, "stopped".into())
            }
            "start" => {
                if replica.child.is_none() {
                    replica.child = Some(spawn(replica.bin, &replica.env));
                }
                let addr = replica.listen.clone();
                let edge = matches!(replica.bin, "confab-edge" | "confab");
                drop(all);
                listening(&addr).await;
                if edge {
                    readyz_becomes(&format!("http://{addr}"), true).await;
                }
                (axum::http::StatusCode::OK, "started".into())
            }
            other => (
                axum::http::StatusCode::NOT_FOUND,
                format!("no action {other}"),
            ),
        }
    }
    let app = Router::new()
        .route("/replica/{which}/{action}", post(act))
        .with_state(replicas)
        .merge(more);
    confab_tests::app::serve_control(app).await
}
