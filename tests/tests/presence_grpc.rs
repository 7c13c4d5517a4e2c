//! presence-service over real gRPC: sessions and online/offline, the
//! per-user session limit, edges that stop heartbeating, last seen across a
//! restart, typing (start, refresh, stop, expiry), room presence (first
//! join and last leave, over two edges, ended with a session or an expired
//! edge) and `GetPresence`.
//!
//! Each scenario is an `async fn(Backend)` run twice: with the in-process
//! store (always) and with the Redis store (when `REDIS_URL` is set; reported
//! as skipped otherwise, a failure when `CI=true`). Every Redis run uses
//! keys under a prefix of its own, deleted when it passes. Last seen lives
//! in SQLite here; `postgres::last_seen_survives_restart` repeats that
//! scenario on PostgreSQL when `DATABASE_URL` is set. User ids carry a
//! random suffix; every wait has a deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use confab_presence::Config as PresenceConfig;
use confab_proto::server::ServiceHandle;
use confab_proto::v1::presence_event::Kind;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_proto::v1::{
    Actor, Audience, GetPresenceRequest, HeartbeatRequest, PresenceEvent, RegisterSessionRequest,
    RegisterSessionResponse, RoomPresenceChange, SetRoomPresenceRequest, SetRoomPresenceResponse,
    SetTypingRequest, StatusChange, SubscribeRequest, TypingChange, UnregisterSessionRequest,
    UnregisterSessionResponse, UserPresence,
};
use confab_proto::{ErrorCode, ServiceError};
use confab_tests::db;
use tokio::net::TcpListener;
use tonic::Streaming;
use tonic::transport::Channel;

type Client = PresenceServiceClient<Channel>;

/// Longest any scenario may run before it fails instead of hanging.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(60);
/// Longest wait for one expected event.
const EVENT_DEADLINE: Duration = Duration::from_secs(5);

/// Generates, for every scenario, `memory::<name>` and `redis::<name>`.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_memory(super::$name).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_redis(super::$name).await;
                }
            )*
        }
    };
}

scenarios!(
    online_on_first_session_only,
    second_tab_closing_keeps_user_online,
    last_session_ending_goes_offline_with_last_seen,
    session_limit_refuses_the_eleventh,
    silent_edge_expires_its_users,
    last_seen_survives_restart,
    typing_start_reaches_members_but_not_the_typist,
    repeated_typing_start_sends_one_event,
    typing_stop_sends_typing_false,
    typing_without_stop_expires_by_itself,
    room_presence_is_told_on_first_join_and_last_leave,
    room_presence_spans_edges,
    unregistering_a_session_leaves_its_rooms,
    an_expired_edge_leaves_its_rooms,
    get_presence_for_many_users,
    invalid_requests_are_refused,
);

// ---- backends --------------------------------------------------------------

/// Where one scenario's presence-service keeps its state: a store (Redis
/// prefix or in-process) and a last-seen database, both outliving restarts.
#[derive(Clone)]
struct Backend {
    redis_url: Option<String>,
    prefix: String,
    db_url: String,
    _dir: Arc<tempfile::TempDir>,
}

impl Backend {
    async fn new(redis_url: Option<String>, db_url: Option<String>) -> Self {
        let (sqlite_url, dir) = db::sqlite_url().await;
        Self {
            redis_url,
            prefix: confab_tests::redis_prefix(),
            db_url: db_url.unwrap_or(sqlite_url),
            _dir: Arc::new(dir),
        }
    }

    /// The config every scenario starts from: default limits and TTLs.
    fn config(&self) -> PresenceConfig {
        PresenceConfig {
            database_url: self.db_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_prefix: self.prefix.clone(),
            ..Default::default()
        }
    }

    /// Starts presence-service with the default config.
    async fn start(&self) -> Service {
        self.start_with(|_| {}).await
    }

    /// Starts presence-service with `adjust` applied to the default config.
    async fn start_with(&self, adjust: impl FnOnce(&mut PresenceConfig)) -> Service {
        let mut config = self.config();
        adjust(&mut config);
        Service::start(config).await
    }

    /// Deletes this run's Redis keys.
    async fn clean_up(&self) {
        let Some(url) = &self.redis_url else { return };
        let result: ::redis::RedisResult<()> = async {
            let client = ::redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{{{}}}:*", self.prefix))
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                ::redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            eprintln!("could not delete the test's Redis keys: {e}");
        }
    }
}

/// `REDIS_URL`, or `None` when unset, after reporting the calling test as
/// skipped (`confab_tests::skip`: on stderr and in the run's summary).
///
/// # Panics
///
/// When `CI=true` and `REDIS_URL` is unset: CI requires the Redis path.
fn redis_url(what: &str) -> Option<String> {
    confab_tests::skip::required_env("REDIS_URL", what)
}

async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::time::timeout(SCENARIO_DEADLINE, scenario(backend.clone()))
        .await
        .expect("the scenario ran for more than 60 s");
    // Only a passing run cleans up: a failing one leaves its keys to look at.
    backend.clean_up().await;
}

async fn on_memory<F, Fut>(scenario: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    run(Backend::new(None, None).await, scenario).await;
}

async fn on_redis<F, Fut>(scenario: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = redis_url("the Redis run") else {
        return;
    };
    run(Backend::new(Some(url), None).await, scenario).await;
}

mod postgres {
    use super::*;

    /// Last seen survives a restart on PostgreSQL too (in-process store).
    #[tokio::test]
    async fn last_seen_survives_restart() {
        let Some(url) = db::postgres_url().await else {
            return;
        };
        run(
            Backend::new(None, Some(url.clone())).await,
            super::last_seen_survives_restart,
        )
        .await;
        db::drop_postgres(&url).await;
    }
}

mod replicas {
    use super::*;

    /// Two replicas on one Redis prefix share sessions, and when an edge
    /// expires both sweep but only one publishes the offline event.
    #[tokio::test]
    async fn share_sessions_and_publish_each_expiry_once() {
        let Some(url) = redis_url("the Redis replicas run") else {
            return;
        };
        run(Backend::new(Some(url), None).await, replicas_share_state).await;
    }

    /// Two replicas on one Redis prefix share room presence: a user's
    /// sockets joining through both are announced once, leaving once.
    #[tokio::test]
    async fn share_room_presence() {
        let Some(url) = redis_url("the Redis replicas run") else {
            return;
        };
        run(
            Backend::new(Some(url), None).await,
            replicas_share_room_presence,
        )
        .await;
    }
}

/// A running presence-service.
struct Service {
    config: PresenceConfig,
    handle: Option<ServiceHandle>,
    client: Client,
}

impl Service {
    async fn start(config: PresenceConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let handle = confab_presence::serve(listener, config.clone())
            .await
            .unwrap_or_else(|e| panic!("start presence-service: {e:#}"));
        let client = Client::connect(handle.url())
            .await
            .expect("connect to presence-service");
        Self {
            config,
            handle: Some(handle),
            client,
        }
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    /// Opens a `Subscribe` stream; events published from now on arrive on it.
    async fn events(&self) -> Events {
        let stream = self
            .client()
            .subscribe(SubscribeRequest {
                subscriber: "presence_grpc".into(),
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        Events(stream)
    }

    /// Stops the service and starts it again with the same config.
    async fn restart(&mut self) {
        self.shutdown().await;
        *self = Self::start(self.config.clone()).await;
    }

    async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

// ---- scenarios -------------------------------------------------------------

/// The first session brings a user online (one event to the watchers); a
/// second one, or the same socket registered again, does not.
async fn online_on_first_session_only(backend: Backend) {
    let svc = backend.start().await;
    let mut events = svc.events().await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));

    let first = register(&svc, &alice, "edge-1", "s1", &[&bob, &carol]).await;
    assert!(first.came_online);
    assert_eq!(first.session_count, 1);
    let (audience, status) = events.next_status().await;
    assert_eq!(audience.user_ids, vec![bob.clone(), carol.clone()]);
    assert!(audience.except_user_ids.is_empty());
    assert_eq!(audience.conversation_id, "");
    assert_eq!(status.user_id, alice);
    assert_eq!(status.user_name, format!("{alice} name"));
    assert_eq!(status.login_name, format!("{alice}-login"));
    assert!(status.online);
    assert_eq!(status.socket_id, "s1");
    assert!(status.at_ms > 0);
    assert_eq!(status.last_seen_ms, status.at_ms);

    let second = register(&svc, &alice, "edge-2", "s2", &[&bob]).await;
    assert!(!second.came_online);
    assert_eq!(second.session_count, 2);
    let again = register(&svc, &alice, "edge-1", "s1", &[&bob]).await;
    assert!(!again.came_online);
    assert_eq!(
        again.session_count, 2,
        "re-registering a socket adds nothing"
    );
    events.assert_quiet(Duration::from_millis(300)).await;
    assert_eq!(presence_of(&svc, &alice).await.session_count, 2);
}

/// Closing one of two tabs leaves the user online, with no event.
async fn second_tab_closing_keeps_user_online(backend: Backend) {
    let svc = backend.start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    register(&svc, &alice, "edge-1", "s1", &[&bob]).await;
    register(&svc, &alice, "edge-2", "s2", &[&bob]).await;
    let mut events = svc.events().await;

    let closed = unregister(&svc, &alice, "edge-2", "s2").await;
    assert!(!closed.went_offline);
    assert_eq!(closed.last_seen_ms, 0);
    assert_eq!(closed.session_count, 1);
    events.assert_quiet(Duration::from_millis(300)).await;
    let p = presence_of(&svc, &alice).await;
    assert!(p.online);
    assert_eq!(p.session_count, 1);
}

/// The last session ending takes the user offline: the event carries the
/// last-seen time and goes to the watchers of the latest registration.
async fn last_session_ending_goes_offline_with_last_seen(backend: Backend) {
    let svc = backend.start().await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    register(&svc, &alice, "edge-1", "s1", &[&bob]).await;
    register(&svc, &alice, "edge-1", "s2", &[&bob, &carol]).await;
    let mut events = svc.events().await;
    let before = now_ms();

    assert!(!unregister(&svc, &alice, "edge-1", "s1").await.went_offline);
    let last = unregister(&svc, &alice, "edge-1", "s2").await;
    assert!(last.went_offline);
    assert_eq!(last.session_count, 0);
    assert!(
        last.last_seen_ms >= before,
        "{} < {before}",
        last.last_seen_ms
    );

    let (audience, status) = events.next_status().await;
    assert_eq!(audience.user_ids, vec![bob.clone(), carol.clone()]);
    assert!(audience.except_user_ids.is_empty());
    assert_eq!(status.user_id, alice);
    assert_eq!(status.user_name, format!("{alice} name"));
    assert_eq!(status.login_name, format!("{alice}-login"));
    assert!(!status.online);
    assert_eq!(status.last_seen_ms, last.last_seen_ms);
    assert_eq!(status.socket_id, "s2");

    let p = presence_of(&svc, &alice).await;
    assert!(!p.online);
    assert_eq!(p.session_count, 0);
    assert_eq!(p.last_seen_ms, last.last_seen_ms);

    // Unregistering what is gone is harmless and says nothing.
    let again = unregister(&svc, &alice, "edge-1", "s2").await;
    assert!(!again.went_offline);
    events.assert_quiet(Duration::from_millis(300)).await;
}

/// The eleventh session is refused with LIMIT_EXCEEDED and leaves nothing
/// behind; once one closes, a new one is accepted.
async fn session_limit_refuses_the_eleventh(backend: Backend) {
    let svc = backend.start().await;
    let alice = user("alice");
    for i in 0..10 {
        let r = register(&svc, &alice, "edge-1", &format!("s{i}"), &[]).await;
        assert_eq!(r.session_count, i + 1);
    }
    let refused = svc
        .client()
        .register_session(register_req(&alice, "edge-2", "s10", &[]))
        .await
        .expect_err("the 11th session must be refused");
    let err = ServiceError::from_status(&refused);
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("limit is 10"), "{}", err.message);
    assert_eq!(presence_of(&svc, &alice).await.session_count, 10);
    // Nothing was registered: there is no such session to remove, and the
    // refused edge holds no sessions.
    let gone = unregister(&svc, &alice, "edge-2", "s10").await;
    assert_eq!(gone.session_count, 10);
    assert_eq!(heartbeat(&svc, "edge-2").await, 0);

    unregister(&svc, &alice, "edge-1", "s0").await;
    let r = register(&svc, &alice, "edge-2", "s10", &[]).await;
    assert_eq!(r.session_count, 10);
}

/// An edge that stops heartbeating loses its sessions after the TTL, and
/// its users go offline; a heartbeating edge's users stay online.
async fn silent_edge_expires_its_users(backend: Backend) {
    const TTL: Duration = Duration::from_millis(500);
    let svc = backend
        .start_with(|c| c.session_ttl_ms = TTL.as_millis() as u64)
        .await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut events = svc.events().await;
    let registered_at = now_ms();
    register(&svc, &alice, "edge-silent", "a1", &[&carol]).await;
    register(&svc, &bob, "edge-live", "b1", &[&carol]).await;
    // Carol has a session on each edge: losing the silent one leaves her online.
    register(&svc, &carol, "edge-silent", "c1", &[&alice]).await;
    register(&svc, &carol, "edge-live", "c2", &[&alice]).await;
    for _ in 0..3 {
        events.next_status().await; // the three came-online events
    }

    let live = {
        let client = svc.client();
        tokio::spawn(async move {
            let mut client = client;
            loop {
                client
                    .heartbeat(HeartbeatRequest {
                        edge_id: "edge-live".into(),
                    })
                    .await
                    .expect("heartbeat");
                tokio::time::sleep(TTL / 5).await;
            }
        })
    };

    let (audience, status) = events.next_status().await;
    assert_eq!(status.user_id, alice, "only Alice loses her last session");
    assert_eq!(status.login_name, format!("{alice}-login"));
    assert!(!status.online);
    assert_eq!(audience.user_ids, vec![carol.clone()]);
    assert_eq!(status.socket_id, "a1");
    // Last seen is the silent edge's last sign of life (its registration).
    assert!(
        status.last_seen_ms >= registered_at && status.last_seen_ms < status.at_ms,
        "last seen {} not in [{registered_at}, {})",
        status.last_seen_ms,
        status.at_ms
    );
    assert!(status.at_ms - registered_at >= TTL.as_millis() as i64);

    // Three TTLs later Bob and Carol are still online; Carol through one session.
    events.assert_quiet(TTL * 3).await;
    let users = get_presence(&svc, &[&alice, &bob, &carol]).await;
    assert!(!users[0].online);
    assert_eq!(users[0].last_seen_ms, status.last_seen_ms);
    assert!(users[1].online);
    assert_eq!(users[2].session_count, 1);
    assert_eq!(heartbeat(&svc, "edge-live").await, 2);
    // The silent edge comes back: presence holds none of its sessions now.
    assert_eq!(heartbeat(&svc, "edge-silent").await, 0);
    live.abort();
}

/// Last seen is durable: a restarted service (same database) still knows it.
async fn last_seen_survives_restart(backend: Backend) {
    let mut svc = backend.start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    register(&svc, &alice, "edge-1", "s1", &[]).await;
    let offline = unregister(&svc, &alice, "edge-1", "s1").await;
    assert!(offline.went_offline);

    svc.restart().await;
    let users = get_presence(&svc, &[&alice, &bob]).await;
    assert!(!users[0].online);
    assert_eq!(users[0].last_seen_ms, offline.last_seen_ms);
    assert_eq!(users[1].last_seen_ms, 0, "never seen");

    // A later visit moves it forward.
    register(&svc, &alice, "edge-1", "s2", &[]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = unregister(&svc, &alice, "edge-1", "s2").await;
    assert!(later.last_seen_ms > offline.last_seen_ms);
    svc.restart().await;
    assert_eq!(
        presence_of(&svc, &alice).await.last_seen_ms,
        later.last_seen_ms
    );
}

/// A typing start goes to the conversation's members except the typist.
async fn typing_start_reaches_members_but_not_the_typist(backend: Backend) {
    let svc = backend.start().await;
    let mut events = svc.events().await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let before = now_ms();

    let expires_at = set_typing(&svc, &alice, "42", true, &[&alice, &bob, &carol]).await;
    let (audience, typing) = events.next_typing().await;
    assert_eq!(audience.conversation_id, "42");
    assert_eq!(audience.user_ids, vec![alice.clone(), bob, carol]);
    assert_eq!(audience.except_user_ids, vec![alice.clone()]);
    assert_eq!(typing.user_id, alice);
    assert_eq!(typing.user_name, format!("{alice} name"));
    assert_eq!(typing.login_name, format!("{alice}-login"));
    assert_eq!(typing.conversation_id, "42");
    assert!(typing.typing);
    assert!(!typing.expired);
    assert!(typing.started_at_ms >= before);
    assert_eq!(expires_at, typing.started_at_ms + 5_000);
}

/// Starting again while typing only moves the expiry: no second event, and
/// the eventual stop keeps the original start time.
async fn repeated_typing_start_sends_one_event(backend: Backend) {
    let svc = backend.start().await;
    let mut events = svc.events().await;
    let (alice, bob) = (user("alice"), user("bob"));

    let first = set_typing(&svc, &alice, "7", true, &[&alice, &bob]).await;
    let (_, started) = events.next_typing().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = set_typing(&svc, &alice, "7", true, &[&alice, &bob]).await;
    assert!(second > first, "the expiry moves: {second} <= {first}");
    events.assert_quiet(Duration::from_millis(300)).await;

    // Typing in another conversation is a state of its own.
    set_typing(&svc, &alice, "8", true, &[&alice, &bob]).await;
    let (audience, other) = events.next_typing().await;
    assert_eq!(audience.conversation_id, "8");
    assert!(other.typing);

    set_typing(&svc, &alice, "7", false, &[&alice, &bob]).await;
    let (_, stopped) = events.next_typing().await;
    assert!(!stopped.typing);
    assert_eq!(stopped.conversation_id, "7");
    assert_eq!(stopped.started_at_ms, started.started_at_ms);
}

/// A stop sends typing=false (not expired) to the same audience; a stop
/// with no typing state sends nothing.
async fn typing_stop_sends_typing_false(backend: Backend) {
    let svc = backend.start().await;
    let mut events = svc.events().await;
    let (alice, bob) = (user("alice"), user("bob"));

    set_typing(&svc, &alice, "9", true, &[&alice, &bob]).await;
    events.next_typing().await;
    let expires = set_typing(&svc, &alice, "9", false, &[&alice, &bob]).await;
    assert_eq!(expires, 0);
    let (audience, typing) = events.next_typing().await;
    assert_eq!(audience.conversation_id, "9");
    assert_eq!(audience.user_ids, vec![alice.clone(), bob.clone()]);
    assert_eq!(audience.except_user_ids, vec![alice.clone()]);
    assert_eq!(typing.user_id, alice);
    assert_eq!(typing.login_name, format!("{alice}-login"));
    assert!(!typing.typing);
    assert!(!typing.expired);

    set_typing(&svc, &alice, "9", false, &[&alice, &bob]).await;
    set_typing(&svc, &bob, "9", false, &[&alice, &bob]).await;
    events.assert_quiet(Duration::from_millis(300)).await;
}

/// A typing state nobody stops ends by itself after the typing TTL, with
/// expired=true; typing again afterwards starts afresh.
async fn typing_without_stop_expires_by_itself(backend: Backend) {
    const TTL: Duration = Duration::from_millis(300);
    let svc = backend
        .start_with(|c| c.typing_ttl_ms = TTL.as_millis() as u64)
        .await;
    let mut events = svc.events().await;
    let (alice, bob) = (user("alice"), user("bob"));

    set_typing(&svc, &alice, "5", true, &[&alice, &bob]).await;
    let (_, started) = events.next_typing().await;
    let (audience, expired) = events.next_typing().await;
    let waited = now_ms() - started.started_at_ms;
    assert!(!expired.typing);
    assert!(expired.expired);
    assert_eq!(expired.user_id, alice);
    assert_eq!(expired.login_name, format!("{alice}-login"));
    assert_eq!(expired.started_at_ms, started.started_at_ms);
    assert_eq!(audience.except_user_ids, vec![alice.clone()]);
    assert_eq!(audience.user_ids, vec![alice.clone(), bob.clone()]);
    assert!(
        waited >= TTL.as_millis() as i64,
        "expired after {waited} ms"
    );

    set_typing(&svc, &alice, "5", true, &[&alice, &bob]).await;
    let (_, again) = events.next_typing().await;
    assert!(again.typing);
    assert!(again.started_at_ms > started.started_at_ms);
}

/// A user's first socket entering a conversation is told to its members,
/// with the joiner's names and role; more sockets, joining again, leaving
/// with sockets left or leaving what one is not in say nothing; the last
/// socket out is told, to the members the join named.
async fn room_presence_is_told_on_first_join_and_last_leave(backend: Backend) {
    let svc = backend.start().await;
    let mut events = svc.events().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let members = [alice.as_str(), bob.as_str()];
    let before = now_ms();

    let first = join_room(&svc, &alice, "edge-1", "s1", "11", &members).await;
    assert!(first.changed);
    let (audience, change) = events.next_room().await;
    assert_eq!(audience.conversation_id, "11");
    assert_eq!(audience.user_ids, vec![alice.clone(), bob.clone()]);
    assert!(audience.except_user_ids.is_empty());
    assert_eq!(
        change,
        RoomPresenceChange {
            user_id: alice.clone(),
            user_name: format!("{alice} name"),
            login_name: format!("{alice}-login"),
            conversation_id: "11".into(),
            joined: true,
            at_ms: first.at_ms,
            socket_id: "s1".into(),
            role: "owner".into(),
            disconnected: false,
        }
    );
    assert!(first.at_ms >= before);

    // A second tab, the same socket again: nothing to tell.
    assert!(
        !join_room(&svc, &alice, "edge-1", "s2", "11", &members)
            .await
            .changed
    );
    assert!(
        !join_room(&svc, &alice, "edge-1", "s1", "11", &members)
            .await
            .changed
    );
    // Leaving with a socket left, or leaving what the socket is not in.
    assert!(!leave_room(&svc, &alice, "edge-1", "s1", "11").await.changed);
    assert!(!leave_room(&svc, &alice, "edge-1", "s1", "11").await.changed);
    assert!(!leave_room(&svc, &alice, "edge-1", "s9", "11").await.changed);
    assert!(!leave_room(&svc, &bob, "edge-1", "s2", "11").await.changed);
    events.assert_quiet(Duration::from_millis(300)).await;

    // Another conversation, another user: their own first joins.
    assert!(
        join_room(&svc, &alice, "edge-1", "s2", "12", &members)
            .await
            .changed
    );
    assert_eq!(events.next_room().await.1.conversation_id, "12");
    assert!(
        join_room(&svc, &bob, "edge-1", "b1", "11", &members)
            .await
            .changed
    );
    assert_eq!(events.next_room().await.1.user_id, bob);

    // The last socket out: told to the members the join named.
    let last = leave_room(&svc, &alice, "edge-1", "s2", "11").await;
    assert!(last.changed);
    let (audience, change) = events.next_room().await;
    assert_eq!(audience.conversation_id, "11");
    assert_eq!(audience.user_ids, vec![alice.clone(), bob.clone()]);
    assert_eq!(
        (change.user_id.as_str(), change.joined, change.disconnected),
        (alice.as_str(), false, false)
    );
    assert_eq!(change.socket_id, "s2");
    assert_eq!(change.role, "");
    assert_eq!(change.login_name, format!("{alice}-login"));
    assert_eq!(change.at_ms, last.at_ms);
    assert!(!leave_room(&svc, &alice, "edge-1", "s2", "11").await.changed);
    events.assert_quiet(Duration::from_millis(300)).await;

    // Joining afterwards is a first join again.
    assert!(
        join_room(&svc, &alice, "edge-1", "s1", "11", &members)
            .await
            .changed
    );
    assert!(events.next_room().await.1.joined);
}

/// Sockets are (edge, socket): the same socket id on two edges is two
/// sockets, and a user with sockets on both edges is in the room until the
/// last one leaves.
async fn room_presence_spans_edges(backend: Backend) {
    let svc = backend.start().await;
    let mut events = svc.events().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let members = [alice.as_str(), bob.as_str()];

    assert!(
        join_room(&svc, &alice, "edge-1", "s1", "21", &members)
            .await
            .changed
    );
    assert_eq!(events.next_room().await.1.socket_id, "s1");
    assert!(
        !join_room(&svc, &alice, "edge-2", "s1", "21", &members)
            .await
            .changed
    );
    assert!(
        !join_room(&svc, &alice, "edge-2", "s2", "21", &members)
            .await
            .changed
    );
    assert!(!leave_room(&svc, &alice, "edge-1", "s1", "21").await.changed);
    assert!(!leave_room(&svc, &alice, "edge-2", "s2", "21").await.changed);
    events.assert_quiet(Duration::from_millis(300)).await;
    assert!(leave_room(&svc, &alice, "edge-2", "s1", "21").await.changed);
    let (_, left) = events.next_room().await;
    assert!(!left.joined);
    assert_eq!(left.user_id, alice);
}

/// Unregistering a session ends the socket's room presences: each room it
/// was the user's last socket in is told (`disconnected`), before the
/// offline of the user's last session; a socket without a session (it
/// connected while presence-service was away) is cleaned up the same way.
async fn unregistering_a_session_leaves_its_rooms(backend: Backend) {
    let svc = backend.start().await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let members = [alice.as_str(), bob.as_str()];
    register(&svc, &alice, "edge-1", "s1", &[&bob]).await;
    register(&svc, &alice, "edge-1", "s2", &[&bob]).await;
    join_room(&svc, &alice, "edge-1", "s1", "31", &members).await;
    join_room(&svc, &alice, "edge-1", "s1", "32", &members).await;
    join_room(&svc, &alice, "edge-1", "s2", "32", &members).await;
    let mut events = svc.events().await;

    // s1 closes: Alice leaves 31 (her only socket there), stays in 32.
    assert!(!unregister(&svc, &alice, "edge-1", "s1").await.went_offline);
    let (audience, left) = events.next_room().await;
    assert_eq!(audience.conversation_id, "31");
    assert_eq!(audience.user_ids, vec![alice.clone(), bob.clone()]);
    assert_eq!(
        (left.user_id.as_str(), left.joined, left.disconnected),
        (alice.as_str(), false, true)
    );
    assert_eq!(left.socket_id, "s1");
    assert_eq!(left.user_name, format!("{alice} name"));
    assert_eq!(left.login_name, format!("{alice}-login"));
    events.assert_quiet(Duration::from_millis(300)).await;

    // s2 closes: she leaves 32, then goes offline.
    assert!(unregister(&svc, &alice, "edge-1", "s2").await.went_offline);
    let (audience, left) = events.next_room().await;
    assert_eq!(audience.conversation_id, "32");
    assert!(left.disconnected);
    assert!(!events.next_status().await.1.online);
    assert!(!leave_room(&svc, &alice, "edge-1", "s2", "32").await.changed);

    // No session, one room: unregistering still leaves it.
    join_room(&svc, &carol, "edge-1", "c1", "31", &members).await;
    assert!(events.next_room().await.1.joined);
    let gone = unregister(&svc, &carol, "edge-1", "c1").await;
    assert!(!gone.went_offline);
    let (_, left) = events.next_room().await;
    assert_eq!(
        (left.user_id.as_str(), left.disconnected),
        (carol.as_str(), true)
    );
    events.assert_quiet(Duration::from_millis(300)).await;
    assert!(
        join_room(&svc, &alice, "edge-1", "s3", "31", &members)
            .await
            .changed
    );
}

/// An edge that stops heartbeating takes its sockets out of their rooms:
/// the rooms where that was a user's last socket are told
/// (`disconnected`), with or without a session; a user who still has a
/// socket there on a live edge stays.
async fn an_expired_edge_leaves_its_rooms(backend: Backend) {
    const TTL: Duration = Duration::from_millis(500);
    let svc = backend
        .start_with(|c| c.session_ttl_ms = TTL.as_millis() as u64)
        .await;
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let members = [alice.as_str(), bob.as_str(), carol.as_str(), dave.as_str()];
    let live = {
        let client = svc.client();
        tokio::spawn(async move {
            let mut client = client;
            loop {
                client
                    .heartbeat(HeartbeatRequest {
                        edge_id: "edge-live".into(),
                    })
                    .await
                    .expect("heartbeat");
                tokio::time::sleep(TTL / 5).await;
            }
        })
    };
    register(&svc, &alice, "edge-silent", "a1", &[&bob]).await;
    join_room(&svc, &alice, "edge-silent", "a1", "41", &members).await;
    join_room(&svc, &bob, "edge-live", "b1", "41", &members).await;
    join_room(&svc, &carol, "edge-silent", "c1", "42", &members).await;
    join_room(&svc, &carol, "edge-live", "c2", "42", &members).await;
    // Dave joined without a session: his join alone keeps the edge's deadline.
    join_room(&svc, &dave, "edge-silent", "d1", "43", &members).await;
    let mut events = svc.events().await;

    let mut left = Vec::new();
    let mut offline = Vec::new();
    while left.len() < 2 || offline.is_empty() {
        let e = events.next().await;
        match e.kind {
            Some(Kind::RoomPresenceChanged(c)) => {
                assert!(offline.is_empty(), "the rooms are told before the offline");
                left.push(c);
            }
            Some(Kind::StatusChanged(c)) => offline.push(c),
            other => panic!("unexpected event {other:?}"),
        }
    }
    left.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    let who: Vec<(&str, &str, bool, bool)> = left
        .iter()
        .map(|c| {
            (
                c.user_id.as_str(),
                c.conversation_id.as_str(),
                c.joined,
                c.disconnected,
            )
        })
        .collect();
    assert_eq!(
        who,
        vec![
            (alice.as_str(), "41", false, true),
            (dave.as_str(), "43", false, true)
        ]
    );
    assert_eq!(left[0].socket_id, "a1");
    assert_eq!(offline[0].user_id, alice);
    assert!(!offline[0].online);
    events.assert_quiet(TTL * 3).await;

    // Bob and Carol are still in their rooms (through the live edge); Alice
    // and Dave are not.
    assert!(
        leave_room(&svc, &bob, "edge-live", "b1", "41")
            .await
            .changed
    );
    assert!(
        leave_room(&svc, &carol, "edge-live", "c2", "42")
            .await
            .changed
    );
    assert!(
        join_room(&svc, &alice, "edge-live", "a2", "41", &members)
            .await
            .changed
    );
    assert!(
        join_room(&svc, &dave, "edge-live", "d2", "43", &members)
            .await
            .changed
    );
    live.abort();
}

/// One call answers for many users, in the order asked: online ones with
/// their session counts, offline ones with their last seen, unknown ones 0.
async fn get_presence_for_many_users(backend: Backend) {
    let svc = backend.start().await;
    let users: Vec<String> = (0..60).map(|i| user(&format!("u{i}"))).collect();
    let mut seen = std::collections::HashMap::new();
    for (i, u) in users.iter().enumerate() {
        match i % 3 {
            // Online with 1 or 2 sessions.
            0 => {
                for s in 0..=(i % 2) {
                    register(&svc, u, "edge-1", &format!("{u}-{s}"), &[]).await;
                }
            }
            // Was online, now offline.
            1 => {
                register(&svc, u, "edge-1", "s", &[]).await;
                seen.insert(
                    u.clone(),
                    unregister(&svc, u, "edge-1", "s").await.last_seen_ms,
                );
            }
            // Never seen.
            _ => {}
        }
    }
    let mut asked: Vec<&str> = users.iter().map(String::as_str).collect();
    asked.reverse();
    asked.push(users[0].as_str()); // a repeat is answered again
    let before = now_ms();
    let answer = get_presence(&svc, &asked).await;
    assert_eq!(answer.len(), asked.len());
    for (p, want) in answer.iter().zip(&asked) {
        assert_eq!(p.user_id, *want);
        let i: usize = users.iter().position(|u| u == want).unwrap();
        match i % 3 {
            0 => {
                assert!(p.online, "{want}");
                assert_eq!(p.session_count as usize, 1 + i % 2);
                assert!(p.last_seen_ms >= before, "online users are seen now");
            }
            1 => {
                assert!(!p.online);
                assert_eq!(p.session_count, 0);
                assert_eq!(p.last_seen_ms, seen[*want]);
                assert!(p.last_seen_ms > 0);
            }
            _ => {
                assert!(!p.online);
                assert_eq!((p.session_count, p.last_seen_ms), (0, 0));
            }
        }
    }
    assert!(get_presence(&svc, &[]).await.is_empty());

    let too_many: Vec<String> = (0..1001).map(|i| format!("x{i}")).collect();
    let err = svc
        .client()
        .get_presence(GetPresenceRequest { user_ids: too_many })
        .await
        .expect_err("too many users");
    assert_eq!(
        ServiceError::from_status(&err).code,
        ErrorCode::InvalidArgument
    );
}

/// Malformed requests get INVALID_ARGUMENT and change nothing.
async fn invalid_requests_are_refused(backend: Backend) {
    let svc = backend.start().await;
    let mut c = svc.client();
    let alice = user("alice");
    let mut no_actor = register_req(&alice, "edge-1", "s1", &[]);
    no_actor.actor = None;
    let mut no_edge = register_req(&alice, "", "s1", &[]);
    no_edge.actor = actor(&alice);
    let no_socket = register_req(&alice, "edge-1", " ", &[]);
    for req in [no_actor, no_edge, no_socket] {
        let e = c.register_session(req).await.expect_err("invalid");
        assert_eq!(
            ServiceError::from_status(&e).code,
            ErrorCode::InvalidArgument
        );
    }
    let e = c
        .set_typing(SetTypingRequest {
            actor: actor(&alice),
            conversation_id: String::new(),
            typing: true,
            member_ids: vec![],
        })
        .await
        .expect_err("no conversation");
    assert_eq!(
        ServiceError::from_status(&e).code,
        ErrorCode::InvalidArgument
    );
    let e = c
        .heartbeat(HeartbeatRequest {
            edge_id: String::new(),
        })
        .await
        .expect_err("no edge");
    assert_eq!(
        ServiceError::from_status(&e).code,
        ErrorCode::InvalidArgument
    );
    let mut no_edge = room_req(&alice, "", "s1", "1", true, &[]);
    let no_socket = room_req(&alice, "edge-1", "", "1", false, &[]);
    let no_conversation = room_req(&alice, "edge-1", "s1", " ", true, &[]);
    let mut no_actor = room_req(&alice, "edge-1", "s1", "1", true, &[]);
    no_actor.actor = None;
    no_edge.role = "member".into();
    for req in [no_edge, no_socket, no_conversation, no_actor] {
        let e = c.set_room_presence(req).await.expect_err("invalid");
        assert_eq!(
            ServiceError::from_status(&e).code,
            ErrorCode::InvalidArgument
        );
    }
    assert!(!presence_of(&svc, &alice).await.online);
}

/// Redis only: two replicas share room presence; one announcement per
/// transition whichever replica a socket's request reaches.
async fn replicas_share_room_presence(backend: Backend) {
    let a = backend.start().await;
    let b = backend.start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let members = [alice.as_str(), bob.as_str()];
    assert!(
        join_room(&a, &alice, "edge-1", "s1", "51", &members)
            .await
            .changed
    );
    assert!(
        !join_room(&b, &alice, "edge-2", "s2", "51", &members)
            .await
            .changed
    );
    assert!(!leave_room(&a, &alice, "edge-1", "s1", "51").await.changed);
    assert!(leave_room(&b, &alice, "edge-2", "s2", "51").await.changed);
    assert!(
        join_room(&b, &alice, "edge-2", "s2", "51", &members)
            .await
            .changed
    );
    let gone = unregister(&a, &alice, "edge-2", "s2").await;
    assert!(!gone.went_offline);
    assert!(
        join_room(&a, &alice, "edge-1", "s3", "51", &members)
            .await
            .changed
    );
}

/// Redis only: replicas on one prefix see each other's sessions; both sweep,
/// one publishes, and — one event log in Redis — a subscriber of either
/// replica hears every event once.
async fn replicas_share_state(backend: Backend) {
    const TTL: Duration = Duration::from_millis(500);
    let short = |c: &mut PresenceConfig| c.session_ttl_ms = TTL.as_millis() as u64;
    let a = backend.start_with(short).await;
    let b = backend.start_with(short).await;
    let (mut events_a, mut events_b) = (a.events().await, b.events().await);
    let (alice, bob) = (user("alice"), user("bob"));

    assert!(
        register(&a, &alice, "edge-1", "s1", &[&bob])
            .await
            .came_online
    );
    let second = register(&b, &alice, "edge-2", "s2", &[&bob]).await;
    assert!(!second.came_online, "replica b sees a's session");
    assert_eq!(second.session_count, 2);
    assert_eq!(presence_of(&b, &alice).await.session_count, 2);
    assert!(!unregister(&a, &alice, "edge-2", "s2").await.went_offline);
    // Both replicas serve one event log: a subscriber of either hears the
    // online a published.
    events_a.next_status().await;
    events_b.next_status().await;

    // edge-1 goes silent: both replicas sweep, exactly one reports it, and
    // every subscriber hears it once, whichever replica it follows.
    for events in [&mut events_a, &mut events_b] {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        let mut offline = 0;
        while tokio::time::Instant::now() < deadline && offline == 0 {
            if let Ok(e) = tokio::time::timeout_at(deadline, events.next()).await {
                offline += is_offline(&e, &alice) as u32;
            }
        }
        assert_eq!(offline, 1, "one offline event");
    }
    events_a.assert_quiet(TTL * 2).await;
    events_b.assert_quiet(Duration::from_millis(10)).await;
    assert!(!presence_of(&a, &alice).await.online);
}

fn is_offline(e: &PresenceEvent, user: &str) -> bool {
    matches!(&e.kind, Some(Kind::StatusChanged(s)) if s.user_id == user && !s.online)
}

// ---- helpers ---------------------------------------------------------------

fn user(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

fn actor(id: &str) -> Option<Actor> {
    Some(Actor {
        id: id.to_string(),
        name: format!("{id} name"),
        avatar: String::new(),
        username: format!("{id}-login"),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn register_req(user: &str, edge: &str, socket: &str, watchers: &[&str]) -> RegisterSessionRequest {
    RegisterSessionRequest {
        actor: actor(user),
        edge_id: edge.into(),
        socket_id: socket.into(),
        contract: "raven".into(),
        watcher_ids: watchers.iter().map(|w| w.to_string()).collect(),
    }
}

async fn register(
    svc: &Service,
    user: &str,
    edge: &str,
    socket: &str,
    watchers: &[&str],
) -> RegisterSessionResponse {
    svc.client()
        .register_session(register_req(user, edge, socket, watchers))
        .await
        .unwrap_or_else(|e| panic!("register {user}/{socket}: {e}"))
        .into_inner()
}

async fn unregister(
    svc: &Service,
    user: &str,
    edge: &str,
    socket: &str,
) -> UnregisterSessionResponse {
    svc.client()
        .unregister_session(UnregisterSessionRequest {
            user_id: user.into(),
            edge_id: edge.into(),
            socket_id: socket.into(),
            watcher_ids: vec![],
        })
        .await
        .unwrap_or_else(|e| panic!("unregister {user}/{socket}: {e}"))
        .into_inner()
}

async fn heartbeat(svc: &Service, edge: &str) -> u32 {
    svc.client()
        .heartbeat(HeartbeatRequest {
            edge_id: edge.into(),
        })
        .await
        .expect("heartbeat")
        .into_inner()
        .session_count
}

async fn get_presence(svc: &Service, users: &[&str]) -> Vec<UserPresence> {
    svc.client()
        .get_presence(GetPresenceRequest {
            user_ids: users.iter().map(|u| u.to_string()).collect(),
        })
        .await
        .expect("get presence")
        .into_inner()
        .users
}

async fn presence_of(svc: &Service, user: &str) -> UserPresence {
    get_presence(svc, &[user]).await.remove(0)
}

async fn set_typing(
    svc: &Service,
    user: &str,
    conversation: &str,
    typing: bool,
    members: &[&str],
) -> i64 {
    svc.client()
        .set_typing(SetTypingRequest {
            actor: actor(user),
            conversation_id: conversation.into(),
            typing,
            member_ids: members.iter().map(|m| m.to_string()).collect(),
        })
        .await
        .expect("set typing")
        .into_inner()
        .expires_at_ms
}

fn room_req(
    user: &str,
    edge: &str,
    socket: &str,
    conversation: &str,
    joined: bool,
    members: &[&str],
) -> SetRoomPresenceRequest {
    SetRoomPresenceRequest {
        actor: actor(user),
        conversation_id: conversation.into(),
        joined,
        member_ids: members.iter().map(|m| m.to_string()).collect(),
        socket_id: socket.into(),
        edge_id: edge.into(),
        role: if joined {
            "owner".into()
        } else {
            String::new()
        },
    }
}

async fn join_room(
    svc: &Service,
    user: &str,
    edge: &str,
    socket: &str,
    conversation: &str,
    members: &[&str],
) -> SetRoomPresenceResponse {
    svc.client()
        .set_room_presence(room_req(user, edge, socket, conversation, true, members))
        .await
        .unwrap_or_else(|e| panic!("join {user}/{socket} to {conversation}: {e}"))
        .into_inner()
}

/// Leaves without naming members (presence-service keeps the join's).
async fn leave_room(
    svc: &Service,
    user: &str,
    edge: &str,
    socket: &str,
    conversation: &str,
) -> SetRoomPresenceResponse {
    svc.client()
        .set_room_presence(room_req(user, edge, socket, conversation, false, &[]))
        .await
        .unwrap_or_else(|e| panic!("leave {user}/{socket} from {conversation}: {e}"))
        .into_inner()
}

/// A `Subscribe` stream with deadlines.
struct Events(Streaming<PresenceEvent>);

impl Events {
    async fn next(&mut self) -> PresenceEvent {
        tokio::time::timeout(EVENT_DEADLINE, self.0.message())
            .await
            .expect("no event within 5 s")
            .expect("the event stream failed")
            .expect("the event stream ended")
    }

    async fn next_status(&mut self) -> (Audience, StatusChange) {
        let e = self.next().await;
        match e.kind {
            Some(Kind::StatusChanged(s)) => (e.audience.expect("audience"), s),
            other => panic!("expected status_changed, got {other:?}"),
        }
    }

    async fn next_typing(&mut self) -> (Audience, TypingChange) {
        let e = self.next().await;
        match e.kind {
            Some(Kind::TypingChanged(t)) => (e.audience.expect("audience"), t),
            other => panic!("expected typing_changed, got {other:?}"),
        }
    }

    async fn next_room(&mut self) -> (Audience, RoomPresenceChange) {
        let e = self.next().await;
        match e.kind {
            Some(Kind::RoomPresenceChanged(c)) => (e.audience.expect("audience"), c),
            other => panic!("expected room_presence_changed, got {other:?}"),
        }
    }

    /// Fails if any event arrives within `window`.
    async fn assert_quiet(&mut self, window: Duration) {
        if let Ok(event) = tokio::time::timeout(window, self.0.message()).await {
            panic!("expected no event, got {event:?}");
        }
    }
}
