//! call-service over real gRPC, beside a real chat-service: the state
//! machine and its events, the stable codes of every refusal, signaling
//! only between participants (and to the answering session), controls,
//! call records, the three timers, and a restart that resolves an overdue
//! call from the database.
//!
//! Each scenario runs twice: over SQLite (always) and over PostgreSQL (when
//! `DATABASE_URL` is set; skipped with a note otherwise, a failure when
//! `CI=true`). Timers are short (see [`TIMERS`]) so the tests see them fire.

use std::future::Future;
use std::time::Duration;

use confab_call::CallTimers;
use confab_proto::server::ServiceHandle;
use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::{
    Actor, Call, CallActionRequest, CallEvent, CallMedia, CallState, ConversationKind,
    CreateConversationRequest, GetCallRequest, InitiateCallRequest, ListCallRecordsRequest,
    ReportSessionRequest, SignalKind, SignalRequest, SubscribeRequest, UpdateControlsRequest,
    call_event::Kind,
};
use confab_proto::{ErrorCode, ServiceError};
use confab_tests::db;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

type Calls = CallServiceClient<Channel>;
type Chat = ChatServiceClient<Channel>;

/// Timers of the scenarios: long enough for the requests of a scenario,
/// short enough to wait for.
const TIMERS: CallTimers = CallTimers {
    ring_timeout_ms: 800,
    max_duration_ms: 3000,
    disconnect_grace_ms: 500,
};

/// What a scenario gets: both services' clients, and what it needs to
/// start call-service again on the same database.
struct Env {
    chat: Chat,
    calls: Calls,
    call: ServiceHandle,
    db_url: String,
    chat_url: String,
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

scenarios!(
    a_call_from_ring_to_end,
    refusals_have_stable_codes,
    reject_cancel_and_idempotency,
    busy_and_rate_limit,
    signals_only_between_participants,
    ring_timeout_and_max_duration,
    disconnect_grace,
    room_call_with_three,
    room_call_departures_while_it_goes_on,
    renegotiation_only_within_the_ongoing_call,
    restart_resolves_overdue_calls,
    hangup_decides_by_the_calls_state,
    hangup_in_a_room_call,
);

async fn start_call(db_url: &str, chat_url: &str, timers: CallTimers) -> (ServiceHandle, Calls) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = confab_call::serve(
        listener,
        confab_call::Config {
            database_url: db_url.to_string(),
            timers,
            ..Default::default()
        },
        confab_call::chat_at(chat_url).unwrap(),
    )
    .await
    .expect("start call-service");
    let client = CallServiceClient::connect(handle.url()).await.unwrap();
    (handle, client)
}

async fn run<F, Fut>(db_url: String, scenario: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = Env>,
{
    let (chat_handle, chat) = db::spawn_chat(&db_url).await;
    let chat_url = chat_handle.url();
    let (call, calls) = start_call(&db_url, &chat_url, TIMERS).await;
    let env = scenario(Env {
        chat,
        calls,
        call,
        db_url,
        chat_url,
    })
    .await;
    env.call.shutdown().await;
    chat_handle.shutdown().await;
}

async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = Env>,
{
    let (url, _dir) = db::sqlite_url().await;
    run(url, scenario).await;
}

async fn on_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = Env>,
{
    let Some(url) = db::postgres_url().await else {
        return;
    };
    run(url.clone(), scenario).await;
    db::drop_postgres(&url).await;
}

// ---- helpers ---------------------------------------------------------------

fn user(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

fn actor(id: &str) -> Option<Actor> {
    Some(Actor {
        id: id.into(),
        name: format!("{id} name"),
        avatar: format!("https://a/{id}.png"),
        ..Default::default()
    })
}

fn code(s: Status) -> ErrorCode {
    ServiceError::from_status(&s).code
}

async fn conversation(chat: &mut Chat, owner: &str, others: &[&str], group: bool) -> String {
    chat.create_conversation(CreateConversationRequest {
        actor: actor(owner),
        kind: if group {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        } as i32,
        name: if group { "room".into() } else { String::new() },
        member_ids: others.iter().map(|s| s.to_string()).collect(),
    })
    .await
    .expect("create conversation")
    .into_inner()
    .id
}

async fn subscribe(calls: &mut Calls) -> Streaming<CallEvent> {
    calls
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner()
}

/// The next event on the stream (within 5 s).
async fn next(stream: &mut Streaming<CallEvent>) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an event within 5 s")
        .expect("stream ok")
        .expect("stream open")
}

/// Nothing arrives on the stream for `ms`.
async fn quiet(stream: &mut Streaming<CallEvent>, ms: u64) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(ms), stream.message()).await {
        panic!("expected no event, got {got:?}");
    }
}

fn call_of(e: &CallEvent) -> &Call {
    match e.kind.as_ref().expect("kind") {
        Kind::CallInitiated(c)
        | Kind::CallAnswered(c)
        | Kind::CallRejected(c)
        | Kind::CallCancelled(c)
        | Kind::CallMissed(c)
        | Kind::CallEnded(c) => c,
        other => panic!("not a call transition: {other:?}"),
    }
}

fn kind_name(e: &CallEvent) -> &'static str {
    match e.kind.as_ref().expect("kind") {
        Kind::CallInitiated(_) => "initiated",
        Kind::CallAnswered(_) => "answered",
        Kind::CallRejected(_) => "rejected",
        Kind::CallCancelled(_) => "cancelled",
        Kind::CallMissed(_) => "missed",
        Kind::CallEnded(_) => "ended",
        Kind::Signal(_) => "signal",
        Kind::ControlsChanged(_) => "controls",
        Kind::ParticipantLeft(_) => "participant_left",
    }
}

async fn initiate(calls: &mut Calls, from: &str, to: &str, session: &str) -> Result<Call, Status> {
    calls
        .initiate_call(InitiateCallRequest {
            actor: actor(from),
            callee_ids: vec![to.into()],
            media: CallMedia::Video as i32,
            session_id: session.into(),
            sdp_offer: r#"{"type":"offer","sdp":"v=0"}"#.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

fn action(by: &str, call_id: &str, session: &str) -> CallActionRequest {
    CallActionRequest {
        actor: actor(by),
        call_id: call_id.into(),
        session_id: session.into(),
        ..Default::default()
    }
}

fn signal(by: &str, call_id: &str, to: &str, kind: SignalKind, payload: &str) -> SignalRequest {
    SignalRequest {
        actor: actor(by),
        call_id: call_id.into(),
        kind: kind as i32,
        payload_json: payload.into(),
        to_user_id: to.into(),
        ..Default::default()
    }
}

fn state(c: &Call) -> CallState {
    CallState::try_from(c.state).unwrap()
}

// ---- scenarios -------------------------------------------------------------

/// Ring, answer on one device, signal both ways, toggle a control, hang up;
/// every step is one event for the right people; the record says it all.
async fn a_call_from_ring_to_end(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = conversation(&mut env.chat, &alice, &[&bob], false).await;
    let mut events = subscribe(&mut env.calls).await;

    let call = initiate(&mut env.calls, &alice, &bob, "a-1").await.unwrap();
    assert_eq!(state(&call), CallState::Ringing);
    assert_eq!(call.conversation_id, conv, "their direct conversation");
    assert_eq!(call.caller_name, format!("{alice} name"));
    assert_eq!(call.caller_avatar, format!("https://a/{alice}.png"));
    assert_eq!(call.sdp_offer, r#"{"type":"offer","sdp":"v=0"}"#);
    let e = next(&mut events).await;
    assert_eq!(kind_name(&e), "initiated");
    let aud = e.audience.clone().unwrap();
    assert_eq!(aud.user_ids, vec![alice.clone(), bob.clone()]);
    assert_eq!(aud.call_id, call.id);
    assert_eq!(e.actor_id, alice);

    let mut answer = action(&bob, &call.id, "b-2");
    answer.sdp = r#"{"type":"answer"}"#.into();
    answer.video_enabled = Some(false);
    let answered = env.calls.answer_call(answer).await.unwrap().into_inner();
    assert_eq!(state(&answered), CallState::Ongoing);
    assert_eq!(answered.sdp_answer, r#"{"type":"answer"}"#);
    let e = next(&mut events).await;
    assert_eq!(kind_name(&e), "answered");
    assert_eq!(e.actor_id, bob);
    assert_eq!(
        e.audience.unwrap().user_ids,
        vec![alice.clone(), bob.clone()],
        "every socket of both learns it was answered"
    );
    let b = answered
        .participants
        .iter()
        .find(|p| p.user_id == bob)
        .unwrap();
    assert!(b.joined && !b.video_enabled && b.session_id == "b-2");

    // Offer to bob reaches only the answering session; the answer back only
    // alice's calling session. Payloads pass through untouched.
    let offer = r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1"}"#;
    env.calls
        .signal(signal(&alice, &call.id, &bob, SignalKind::Offer, offer))
        .await
        .unwrap();
    let e = next(&mut events).await;
    let aud = e.audience.clone().unwrap();
    assert_eq!(
        (aud.user_ids, aud.session_ids),
        (vec![bob.clone()], vec!["b-2".to_string()])
    );
    match e.kind.unwrap() {
        Kind::Signal(s) => {
            assert_eq!(s.payload_json, offer);
            assert_eq!(s.from_user_id, alice);
            assert_eq!(s.kind, SignalKind::Offer as i32);
            assert_eq!(s.call_id, call.id);
            // With the call as it is now (ongoing, bob in it), without SDP.
            let c = s.call.expect("the call rides with the signal");
            assert_eq!(
                (c.id.as_str(), state(&c)),
                (call.id.as_str(), CallState::Ongoing)
            );
            assert!(c.participants.iter().all(|p| p.joined));
            assert_eq!((c.sdp_offer.as_str(), c.sdp_answer.as_str()), ("", ""));
        }
        other => panic!("{other:?}"),
    }
    env.calls
        .signal(signal(
            &bob,
            &call.id,
            "",
            SignalKind::IceCandidate,
            r#"{"candidate":"c"}"#,
        ))
        .await
        .unwrap();
    let e = next(&mut events).await;
    let aud = e.audience.unwrap();
    assert_eq!(
        (aud.user_ids, aud.session_ids),
        (vec![alice.clone()], vec!["a-1".to_string()])
    );

    let changed = env
        .calls
        .update_controls(UpdateControlsRequest {
            actor: actor(&bob),
            call_id: call.id.clone(),
            muted: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        changed
            .participants
            .iter()
            .any(|p| p.user_id == bob && p.muted)
    );
    let e = next(&mut events).await;
    match e.kind.unwrap() {
        Kind::ControlsChanged(c) => {
            assert_eq!(
                (c.user_id.as_str(), c.muted, c.video_enabled),
                (bob.as_str(), Some(true), None)
            );
        }
        other => panic!("{other:?}"),
    }

    tokio::time::sleep(Duration::from_millis(120)).await;
    let ended = env
        .calls
        .end_call(action(&alice, &call.id, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&ended), CallState::Ended);
    assert_eq!(ended.end_reason, "user_ended");
    assert!(ended.duration_ms >= 100, "duration {}", ended.duration_ms);
    let e = next(&mut events).await;
    assert_eq!(kind_name(&e), "ended");
    assert_eq!(e.actor_id, alice);

    // Records: both see it, with who joined and left when.
    for who in [&alice, &bob] {
        let records = env
            .calls
            .list_call_records(ListCallRecordsRequest {
                actor: actor(who),
                conversation_id: conv.clone(),
                limit: 10,
            })
            .await
            .unwrap()
            .into_inner()
            .calls;
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.id.as_str(), r.media),
            (call.id.as_str(), CallMedia::Video as i32)
        );
        assert_eq!(r.duration_ms, ended.duration_ms);
        for p in &r.participants {
            assert!(
                p.joined_at_ms > 0 && p.left_at_ms >= p.joined_at_ms,
                "{p:?}"
            );
        }
    }
    let elsewhere = env
        .calls
        .list_call_records(ListCallRecordsRequest {
            actor: actor(&alice),
            conversation_id: "999999".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert!(elsewhere.is_empty());
    let eve = user("eve");
    let none = env
        .calls
        .list_call_records(ListCallRecordsRequest {
            actor: actor(&eve),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert!(none.is_empty(), "a stranger sees no one's calls");
    env
}

/// Every refusal is a stable code, and the state machine refuses what its
/// state does not allow.
async fn refusals_have_stable_codes(mut env: Env) -> Env {
    let (alice, bob, eve) = (user("alice"), user("bob"), user("eve"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;

    let e = initiate(&mut env.calls, &alice, &eve, "")
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::PermissionDenied,
        "no shared conversation"
    );
    let e = initiate(&mut env.calls, &alice, &alice, "")
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument);
    let mut bad = InitiateCallRequest {
        actor: actor(&alice),
        callee_ids: vec![bob.clone()],
        ..Default::default()
    };
    let e = env.calls.initiate_call(bad.clone()).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument, "media is required");
    bad.media = CallMedia::Audio as i32;
    bad.actor = None;
    let e = env.calls.initiate_call(bad).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument);

    for id in ["424242424", "nope", ""] {
        let e = env
            .calls
            .answer_call(action(&bob, id, ""))
            .await
            .unwrap_err();
        assert!(
            matches!(
                code(e.clone()),
                ErrorCode::NotFound | ErrorCode::InvalidArgument
            ),
            "{id}: {e:?}"
        );
    }
    let e = env
        .calls
        .get_call(GetCallRequest {
            actor: actor(&bob),
            call_id: "424242424".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::NotFound);

    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    let e = env
        .calls
        .answer_call(action(&alice, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::PermissionDenied,
        "the caller cannot answer"
    );
    let e = env
        .calls
        .answer_call(action(&eve, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::PermissionDenied,
        "a stranger cannot answer"
    );
    let e = env
        .calls
        .get_call(GetCallRequest {
            actor: actor(&eve),
            call_id: call.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::PermissionDenied);
    let e = env
        .calls
        .end_call(action(&alice, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::Conflict,
        "a ringing call is cancelled, not ended"
    );
    let e = env
        .calls
        .cancel_call(action(&bob, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::PermissionDenied,
        "only the caller cancels"
    );
    let e = env
        .calls
        .update_controls(UpdateControlsRequest {
            actor: actor(&alice),
            call_id: call.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument, "no control named");

    env.calls
        .answer_call(action(&bob, &call.id, "b"))
        .await
        .unwrap();
    let e = env
        .calls
        .answer_call(action(&bob, &call.id, "b2"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict, "answered once only");
    let e = env
        .calls
        .reject_call(action(&bob, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::Conflict,
        "an ongoing call is not rejected"
    );
    let e = env
        .calls
        .cancel_call(action(&alice, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict);
    env.calls
        .end_call(action(&bob, &call.id, ""))
        .await
        .unwrap();
    let e = env
        .calls
        .end_call(action(&alice, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict, "ended once only");
    let e = env
        .calls
        .signal(signal(&alice, &call.id, &bob, SignalKind::Offer, "{}"))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::PermissionDenied,
        "an ended call relays nothing"
    );
    env
}

/// Rejecting, cancelling, and a retried start with the same client id.
async fn reject_cancel_and_idempotency(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = conversation(&mut env.chat, &alice, &[&bob], false).await;
    let mut events = subscribe(&mut env.calls).await;

    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    next(&mut events).await;
    let rejected = env
        .calls
        .reject_call(action(&bob, &call.id, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&rejected), CallState::Rejected);
    let e = next(&mut events).await;
    assert_eq!(
        (kind_name(&e), e.actor_id.as_str()),
        ("rejected", bob.as_str())
    );
    assert_eq!(call_of(&e).duration_ms, 0);

    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    next(&mut events).await;
    let cancelled = env
        .calls
        .cancel_call(action(&alice, &call.id, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&cancelled), CallState::Cancelled);
    let e = next(&mut events).await;
    assert_eq!(
        (kind_name(&e), e.actor_id.as_str()),
        ("cancelled", alice.as_str())
    );

    // The caller names the conversation; a retry with the same client id
    // is the same call, announced once.
    let req = InitiateCallRequest {
        actor: actor(&alice),
        callee_ids: vec![bob.clone()],
        conversation_id: conv.clone(),
        media: CallMedia::Audio as i32,
        client_call_id: "client-1".into(),
        ..Default::default()
    };
    let first = env
        .calls
        .initiate_call(req.clone())
        .await
        .unwrap()
        .into_inner();
    let again = env.calls.initiate_call(req).await.unwrap().into_inner();
    assert_eq!(first.id, again.id);
    assert_eq!(first.client_call_id, "client-1");
    assert_eq!(kind_name(&next(&mut events).await), "initiated");
    quiet(&mut events, 300).await;
    env
}

/// A user in an ongoing call is busy (`USER_BUSY`, whoever starts or
/// answers); the sixth start in a minute waits.
async fn busy_and_rate_limit(mut env: Env) -> Env {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;
    conversation(&mut env.chat, &carol, &[&bob], false).await;
    conversation(&mut env.chat, &carol, &[&alice], false).await;

    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    // Ringing is not busy: carol may ring bob too.
    let other = initiate(&mut env.calls, &carol, &bob, "").await.unwrap();
    env.calls
        .answer_call(action(&bob, &call.id, ""))
        .await
        .unwrap();
    let e = initiate(&mut env.calls, &carol, &bob, "")
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::UserBusy, "bob is busy");
    let e = initiate(&mut env.calls, &alice, &carol, "")
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::UserBusy, "alice is busy");
    let e = env
        .calls
        .answer_call(action(&bob, &other.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::UserBusy,
        "bob cannot take a second call"
    );
    env.calls
        .end_call(action(&alice, &call.id, ""))
        .await
        .unwrap();
    env.calls
        .cancel_call(action(&carol, &other.id, ""))
        .await
        .unwrap();

    // alice has made one start; four more pass, the sixth is refused.
    for _ in 0..4 {
        let c = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
        env.calls
            .cancel_call(action(&alice, &c.id, ""))
            .await
            .unwrap();
    }
    let e = initiate(&mut env.calls, &alice, &bob, "")
        .await
        .unwrap_err();
    let err = ServiceError::from_status(&e);
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(
        err.retry_after_ms > 0 && err.retry_after_ms <= 60_000,
        "{}",
        err.retry_after_ms
    );
    // Another user is not limited by alice's starts.
    initiate(&mut env.calls, &carol, &bob, "").await.unwrap();
    env
}

/// Only participants signal, only to participants; nothing else is relayed.
async fn signals_only_between_participants(mut env: Env) -> Env {
    let (alice, bob, eve) = (user("alice"), user("bob"), user("eve"));
    conversation(&mut env.chat, &alice, &[&bob, &eve], true).await;
    let call = initiate(&mut env.calls, &alice, &bob, "a").await.unwrap();
    let mut events = subscribe(&mut env.calls).await;

    // Before bob answers, the caller's ICE reaches every socket of bob,
    // with the call still ringing for him.
    env.calls
        .signal(signal(
            &alice,
            &call.id,
            &bob,
            SignalKind::IceCandidate,
            r#"{"c":1}"#,
        ))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert!(e.audience.unwrap().session_ids.is_empty());
    let Some(Kind::Signal(s)) = e.kind else {
        panic!("a signal")
    };
    let c = s.call.expect("the call rides with the signal");
    assert_eq!(state(&c), CallState::Ringing);
    assert_eq!(c.caller_id, alice);
    let b = c.participants.iter().find(|p| p.user_id == bob).unwrap();
    assert!(!b.joined && b.joined_at_ms == 0);
    assert!(c.sdp_offer.is_empty(), "the ring's SDP stays out");

    let e = env
        .calls
        .signal(signal(&eve, &call.id, &bob, SignalKind::Offer, "{}"))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::PermissionDenied,
        "eve is not in the call"
    );
    let e = env
        .calls
        .signal(signal(&alice, &call.id, &eve, SignalKind::Offer, "{}"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::PermissionDenied, "eve is not a target");
    let e = env
        .calls
        .signal(signal(
            &alice,
            &call.id,
            &bob,
            SignalKind::Unspecified,
            "{}",
        ))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument);
    let e = env
        .calls
        .signal(signal(&alice, &call.id, &bob, SignalKind::Offer, ""))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument);
    quiet(&mut events, 300).await;

    // Addressed by peer alone (call id ""): the live call between the two.
    env.calls
        .signal(signal(&bob, "", &alice, SignalKind::Answer, r#"{"a":1}"#))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(e.audience.unwrap().user_ids, vec![alice.clone()]);
    let e = env
        .calls
        .signal(signal(&eve, "", &alice, SignalKind::Answer, "{}"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::NotFound, "eve has no call with alice");
    env
}

/// An unanswered call is missed; an answered one ends at its maximum.
async fn ring_timeout_and_max_duration(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;
    let mut events = subscribe(&mut env.calls).await;

    let started = std::time::Instant::now();
    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    next(&mut events).await;
    let e = next(&mut events).await;
    let waited = started.elapsed();
    assert_eq!((kind_name(&e), e.actor_id.as_str()), ("missed", "system"));
    assert_eq!(call_of(&e).id, call.id);
    assert!(
        waited >= Duration::from_millis(TIMERS.ring_timeout_ms - 50),
        "missed after {waited:?}"
    );
    let e = env
        .calls
        .answer_call(action(&bob, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict, "too late to answer");

    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    next(&mut events).await;
    env.calls
        .answer_call(action(&bob, &call.id, ""))
        .await
        .unwrap();
    next(&mut events).await;
    let answered = std::time::Instant::now();
    let e = next(&mut events).await;
    assert_eq!((kind_name(&e), e.actor_id.as_str()), ("ended", "system"));
    let ended = call_of(&e);
    assert_eq!(ended.end_reason, "timeout");
    assert!(answered.elapsed() >= Duration::from_millis(TIMERS.max_duration_ms - 100));
    assert!(ended.duration_ms >= TIMERS.max_duration_ms as i64 - 50);
    env
}

/// A participant whose call socket closed is out after the grace, unless
/// a socket comes back; then signaling follows the new socket.
async fn disconnect_grace(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;
    let report = |who: &str, session: &str, open: bool| ReportSessionRequest {
        actor: actor(who),
        session_id: session.into(),
        open,
    };

    let call = initiate(&mut env.calls, &alice, &bob, "a-1").await.unwrap();
    env.calls
        .answer_call(action(&bob, &call.id, "b-1"))
        .await
        .unwrap();
    let mut events = subscribe(&mut env.calls).await;

    // Another socket of bob closing changes nothing.
    env.calls
        .report_session(report(&bob, "b-other", false))
        .await
        .unwrap();
    // bob's call socket drops and a new one opens within the grace.
    env.calls
        .report_session(report(&bob, "b-1", false))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(TIMERS.disconnect_grace_ms / 3)).await;
    env.calls
        .report_session(report(&bob, "b-2", true))
        .await
        .unwrap();
    quiet(&mut events, TIMERS.disconnect_grace_ms + 300).await;
    env.calls
        .signal(signal(&alice, &call.id, &bob, SignalKind::Offer, "{}"))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(e.audience.unwrap().session_ids, vec!["b-2".to_string()]);

    // Now alice's drops for good: the two-party call ends.
    let dropped = std::time::Instant::now();
    env.calls
        .report_session(report(&alice, "a-1", false))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert!(dropped.elapsed() >= Duration::from_millis(TIMERS.disconnect_grace_ms - 50));
    assert_eq!((kind_name(&e), e.actor_id.as_str()), ("ended", "system"));
    assert_eq!(call_of(&e).end_reason, "participant_disconnected");

    // A ringing call whose caller is gone is cancelled.
    let call = initiate(&mut env.calls, &alice, &bob, "a-2").await.unwrap();
    next(&mut events).await;
    env.calls
        .report_session(report(&alice, "a-2", false))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(kind_name(&e), "cancelled");
    assert_eq!(call_of(&e).id, call.id);
    assert_eq!(call_of(&e).end_reason, "participant_disconnected");
    env
}

/// A room call rings every other member; each who answers has a record.
async fn room_call_with_three(mut env: Env) -> Env {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let room = conversation(&mut env.chat, &alice, &[&bob, &carol], true).await;
    let mut events = subscribe(&mut env.calls).await;
    let call = env
        .calls
        .initiate_call(InitiateCallRequest {
            actor: actor(&alice),
            conversation_id: room.clone(),
            group_call: true,
            media: CallMedia::Audio as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(call.group_call);
    assert_eq!(call.participants.len(), 3);
    let e = next(&mut events).await;
    assert_eq!(e.audience.unwrap().conversation_id, room);
    env.calls
        .answer_call(action(&bob, &call.id, "b"))
        .await
        .unwrap();
    env.calls
        .answer_call(action(&carol, &call.id, "c"))
        .await
        .unwrap();
    assert_eq!(kind_name(&next(&mut events).await), "answered");
    assert_eq!(kind_name(&next(&mut events).await), "answered");
    // bob leaves; alice and carol go on. Then alice hangs up.
    let after = env
        .calls
        .end_call(action(&bob, &call.id, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&after), CallState::Ongoing);
    let e = next(&mut events).await;
    assert_eq!(e.actor_id, bob);
    match e.kind.unwrap() {
        Kind::ParticipantLeft(l) => {
            assert_eq!(
                (l.user_id.as_str(), l.reason.as_str()),
                (bob.as_str(), "left")
            );
            assert_eq!(state(l.call.as_ref().unwrap()), CallState::Ongoing);
        }
        other => panic!("{other:?}"),
    }
    env.calls
        .end_call(action(&alice, &call.id, ""))
        .await
        .unwrap();
    assert_eq!(kind_name(&next(&mut events).await), "ended");
    let got = env
        .calls
        .get_call(GetCallRequest {
            actor: actor(&carol),
            call_id: call.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&got), CallState::Ended);
    for p in &got.participants {
        assert!(
            p.joined_at_ms > 0 && p.left_at_ms >= p.joined_at_ms,
            "{p:?}"
        );
    }
    let bob_rec = got.participants.iter().find(|p| p.user_id == bob).unwrap();
    let carol_rec = got
        .participants
        .iter()
        .find(|p| p.user_id == carol)
        .unwrap();
    assert!(bob_rec.left_at_ms <= carol_rec.left_at_ms);
    env
}

/// In a room call of four that goes on: a callee who never answered
/// declines it, one who answered drops past the grace; each is one
/// `participant_left` and the call stays ongoing for the rest.
async fn room_call_departures_while_it_goes_on(mut env: Env) -> Env {
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let room = conversation(&mut env.chat, &alice, &[&bob, &carol, &dave], true).await;
    let call = env
        .calls
        .initiate_call(InitiateCallRequest {
            actor: actor(&alice),
            conversation_id: room,
            group_call: true,
            media: CallMedia::Audio as i32,
            session_id: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for (who, session) in [(&bob, "b"), (&carol, "c")] {
        env.calls
            .answer_call(action(who, &call.id, session))
            .await
            .unwrap();
    }
    let mut events = subscribe(&mut env.calls).await;

    // Dave still rings in the ongoing call, and declines it.
    let after = env
        .calls
        .reject_call(action(&dave, &call.id, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&after), CallState::Ongoing);
    let e = next(&mut events).await;
    match e.kind.unwrap() {
        Kind::ParticipantLeft(l) => {
            assert_eq!(
                (l.user_id.as_str(), l.reason.as_str()),
                (dave.as_str(), "declined")
            );
        }
        other => panic!("{other:?}"),
    }
    let e = env
        .calls
        .reject_call(action(&dave, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict, "declined once");
    let e = env
        .calls
        .reject_call(action(&bob, &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(
        code(e),
        ErrorCode::Conflict,
        "bob is in the call: he leaves"
    );

    // Carol's call socket closes and stays away: she is out, by the system.
    env.calls
        .report_session(ReportSessionRequest {
            actor: actor(&carol),
            session_id: "c".into(),
            open: false,
        })
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(e.actor_id, "system");
    match e.kind.unwrap() {
        Kind::ParticipantLeft(l) => {
            assert_eq!(
                (l.user_id.as_str(), l.reason.as_str()),
                (carol.as_str(), "participant_disconnected")
            );
            assert_eq!(state(l.call.as_ref().unwrap()), CallState::Ongoing);
        }
        other => panic!("{other:?}"),
    }
    // Alice and Bob go on until Bob hangs up: the last two end it.
    env.calls
        .end_call(action(&bob, &call.id, ""))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(kind_name(&e), "ended");
    assert_eq!(call_of(&e).end_reason, "user_ended");
    env
}

/// A renegotiation offer or answer passes only between two participants
/// in the ongoing call, from the socket each calls from.
async fn renegotiation_only_within_the_ongoing_call(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;
    let call = initiate(&mut env.calls, &alice, &bob, "a").await.unwrap();
    let reneg = |by: &str, to: &str, kind: SignalKind, session: &str| SignalRequest {
        session_id: session.into(),
        renegotiation: true,
        ..signal(by, "", to, kind, r#"{"type":"offer"}"#)
    };
    let mut events = subscribe(&mut env.calls).await;
    // Still ringing: not a renegotiation (the edge answers the call instead).
    let e = env
        .calls
        .signal(reneg(&bob, &alice, SignalKind::Answer, "b"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict);
    env.calls
        .answer_call(action(&bob, &call.id, "b"))
        .await
        .unwrap();
    assert_eq!(kind_name(&next(&mut events).await), "answered");

    // Bob turns video on: his offer reaches Alice's calling socket, and
    // her answer his.
    let r = env
        .calls
        .signal(reneg(&bob, &alice, SignalKind::Offer, "b"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.call_id, call.id);
    let e = next(&mut events).await;
    assert_eq!(e.audience.unwrap().session_ids, vec!["a".to_string()]);
    env.calls
        .signal(reneg(&alice, &bob, SignalKind::Answer, "a"))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(e.audience.unwrap().session_ids, vec!["b".to_string()]);

    // Another tab of Bob's, an ICE candidate, or a stranger: refused.
    let e = env
        .calls
        .signal(reneg(&bob, &alice, SignalKind::Answer, "b2"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Conflict, "not the socket in the call");
    let e = env
        .calls
        .signal(reneg(&bob, &alice, SignalKind::IceCandidate, "b"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidArgument);
    let eve = user("eve");
    let e = env
        .calls
        .signal(reneg(&eve, &alice, SignalKind::Offer, "e"))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::NotFound);
    quiet(&mut events, 300).await;
    env
}

/// call-service stops while a call rings and starts again after its ring
/// timeout: the call is resolved as missed at once, from the database.
async fn restart_resolves_overdue_calls(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;
    let call = initiate(&mut env.calls, &alice, &bob, "").await.unwrap();
    env.call.shutdown().await;
    tokio::time::sleep(Duration::from_millis(TIMERS.ring_timeout_ms + 200)).await;

    let (call_handle, mut calls) = start_call(&env.db_url, &env.chat_url, TIMERS).await;
    env.call = call_handle;
    env.calls = calls.clone();
    let mut state_now = CallState::Ringing;
    for _ in 0..50 {
        let got = calls
            .get_call(GetCallRequest {
                actor: actor(&bob),
                call_id: call.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        state_now = state(&got);
        if state_now != CallState::Ringing {
            assert_eq!(got.end_reason, "missed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        state_now,
        CallState::Missed,
        "resolved within 1 s of the restart"
    );
    env
}

/// `Hangup` of one call in each state: ringing by the caller cancels it,
/// by the callee rejects it, ongoing ends it; a call that is over is
/// refused with `CONFLICT` and its state as data.
async fn hangup_decides_by_the_calls_state(mut env: Env) -> Env {
    let (alice, bob) = (user("alice"), user("bob"));
    conversation(&mut env.chat, &alice, &[&bob], false).await;
    let mut events = subscribe(&mut env.calls).await;

    let call = initiate(&mut env.calls, &alice, &bob, "a").await.unwrap();
    next(&mut events).await;
    let c = env
        .calls
        .hangup(action(&alice, &call.id, "a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), CallState::Cancelled, "the caller, ringing");
    assert_eq!(c.end_reason, "cancelled");
    let e = next(&mut events).await;
    assert_eq!(
        (kind_name(&e), e.actor_id.as_str()),
        ("cancelled", alice.as_str())
    );
    let twice = ServiceError::from_status(
        &env.calls
            .hangup(action(&alice, &call.id, "a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (twice.code, twice.state.as_str()),
        (ErrorCode::Conflict, "cancelled"),
        "hung up twice"
    );

    // The callee, ringing, named by the other user as hvtsocial does.
    let call = initiate(&mut env.calls, &alice, &bob, "a").await.unwrap();
    next(&mut events).await;
    let c = env
        .calls
        .hangup(CallActionRequest {
            peer_user_id: alice.clone(),
            ..action(&bob, "", "b")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (c.id.as_str(), state(&c)),
        (call.id.as_str(), CallState::Rejected)
    );
    let e = next(&mut events).await;
    assert_eq!(
        (kind_name(&e), e.actor_id.as_str()),
        ("rejected", bob.as_str())
    );

    // Ongoing: either one ends it, once.
    let call = initiate(&mut env.calls, &alice, &bob, "a").await.unwrap();
    env.calls
        .answer_call(action(&bob, &call.id, "b"))
        .await
        .unwrap();
    next(&mut events).await;
    next(&mut events).await;
    let c = env
        .calls
        .hangup(action(&bob, &call.id, "b"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (state(&c), c.end_reason.as_str()),
        (CallState::Ended, "user_ended")
    );
    let e = next(&mut events).await;
    assert_eq!(
        (kind_name(&e), e.actor_id.as_str()),
        ("ended", bob.as_str())
    );
    for who in [&alice, &bob] {
        let e = ServiceError::from_status(
            &env.calls
                .hangup(action(who, &call.id, ""))
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.state.as_str()), (ErrorCode::Conflict, "ended"));
    }
    // Over, the call is no live call with the other user any more; a
    // stranger is refused.
    let e = env
        .calls
        .hangup(CallActionRequest {
            peer_user_id: bob.clone(),
            ..action(&alice, "", "")
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::NotFound);
    let e = env
        .calls
        .hangup(action(&user("eve"), &call.id, ""))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::PermissionDenied);

    // Missed after the ring timeout: too late to hang up.
    let call = initiate(&mut env.calls, &alice, &bob, "a").await.unwrap();
    next(&mut events).await;
    assert_eq!(kind_name(&next(&mut events).await), "missed");
    let e = ServiceError::from_status(
        &env.calls
            .hangup(action(&bob, &call.id, ""))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.state.as_str()), (ErrorCode::Conflict, "missed"));
    quiet(&mut events, 200).await;
    env
}

/// `Hangup` in a room call: a callee it still rings declines it, one of
/// three or more in it leaves it, the last two end it; while it rings, a
/// callee declines and the caller cancels it.
async fn hangup_in_a_room_call(mut env: Env) -> Env {
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let room = conversation(&mut env.chat, &alice, &[&bob, &carol, &dave], true).await;
    let start = |room: &str| InitiateCallRequest {
        actor: actor(&alice),
        conversation_id: room.into(),
        group_call: true,
        media: CallMedia::Audio as i32,
        session_id: "a".into(),
        ..Default::default()
    };
    let left = |e: &CallEvent| match e.kind.as_ref() {
        Some(Kind::ParticipantLeft(l)) => (l.user_id.clone(), l.reason.clone()),
        other => panic!("{other:?}"),
    };
    let mut events = subscribe(&mut env.calls).await;

    let call = env
        .calls
        .initiate_call(start(&room))
        .await
        .unwrap()
        .into_inner();
    next(&mut events).await;
    for (who, session) in [(&bob, "b"), (&carol, "c")] {
        env.calls
            .answer_call(action(who, &call.id, session))
            .await
            .unwrap();
        next(&mut events).await;
    }
    // Dave still rings: he declines; the call goes on.
    let c = env
        .calls
        .hangup(action(&dave, &call.id, "d"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), CallState::Ongoing);
    assert_eq!(
        left(&next(&mut events).await),
        (dave.clone(), "declined".into())
    );
    // Bob, one of three in it, leaves; it goes on.
    let c = env
        .calls
        .hangup(action(&bob, &call.id, "b"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), CallState::Ongoing);
    assert_eq!(left(&next(&mut events).await), (bob.clone(), "left".into()));
    let e = env
        .calls
        .hangup(action(&bob, &call.id, "b"))
        .await
        .unwrap_err();
    let e = ServiceError::from_status(&e);
    assert_eq!(
        (e.code, e.state.as_str()),
        (ErrorCode::Conflict, ""),
        "out already: about him, not the call's state"
    );
    // Carol and Alice are the last two: Carol's hang-up ends it.
    let c = env
        .calls
        .hangup(action(&carol, &call.id, "c"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), CallState::Ended);
    assert_eq!(kind_name(&next(&mut events).await), "ended");

    // Ringing: a callee declines and it still rings the others; the
    // caller's hang-up cancels it.
    let call = env
        .calls
        .initiate_call(start(&room))
        .await
        .unwrap()
        .into_inner();
    next(&mut events).await;
    let c = env
        .calls
        .hangup(action(&carol, &call.id, "c"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), CallState::Ringing);
    assert_eq!(
        left(&next(&mut events).await),
        (carol.clone(), "declined".into())
    );
    let c = env
        .calls
        .hangup(action(&alice, &call.id, "a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), CallState::Cancelled);
    let e = next(&mut events).await;
    assert_eq!(
        (kind_name(&e), e.actor_id.as_str()),
        ("cancelled", alice.as_str())
    );
    env
}

/// Two call-service replicas on one PostgreSQL database and one event log
/// in Redis: a subscriber of replica B hears the call replica A started,
/// and when A is gone before the call is answered, B's timers still ring
/// it out — one `missed`, heard once by subscribers of either replica.
#[tokio::test]
async fn replicas_share_the_log_and_ring_out_a_call_whose_replica_died() {
    let Some(redis) = confab_tests::skip::required_env("REDIS_URL", "call-service replicas") else {
        return;
    };
    let Some(db_url) = db::postgres_url().await else {
        return;
    };
    let (chat_handle, mut chat) = db::spawn_chat(&db_url).await;
    let chat_url = chat_handle.url();
    let prefix = confab_tests::redis_prefix();
    let replica = || async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = confab_call::serve(
            listener,
            confab_call::Config {
                database_url: db_url.clone(),
                timers: TIMERS,
                redis_url: Some(redis.clone()),
                redis_prefix: prefix.clone(),
                ..Default::default()
            },
            confab_call::chat_at(&chat_url).unwrap(),
        )
        .await
        .expect("start a call-service replica");
        let client = CallServiceClient::connect(handle.url()).await.unwrap();
        (handle, client)
    };
    let (a, mut on_a) = replica().await;
    let (b, mut on_b) = replica().await;
    let (alice, bob) = (user("alice"), user("bob"));
    conversation(&mut chat, &alice, &[&bob], false).await;
    let mut events_a = subscribe(&mut on_a).await;
    let mut events_b = subscribe(&mut on_b).await;

    let call = initiate(&mut on_a, &alice, &bob, "").await.unwrap();
    for events in [&mut events_a, &mut events_b] {
        let e = next(events).await;
        assert_eq!(kind_name(&e), "initiated", "every replica serves it");
        assert_eq!(call_of(&e).id, call.id);
    }
    // The replica that started the call goes away before it is answered.
    a.shutdown().await;
    let e = next(&mut events_b).await;
    assert_eq!((kind_name(&e), e.actor_id.as_str()), ("missed", "system"));
    assert_eq!(call_of(&e).id, call.id);
    quiet(&mut events_b, TIMERS.ring_timeout_ms).await;

    b.shutdown().await;
    chat_handle.shutdown().await;
    db::drop_postgres(&db_url).await;
}
