//! Connection state recovery: a client whose connection dropped resumes its
//! session — same user, same rooms — and receives the chat events it
//! missed, in order, once, on this edge or any other.
//!
//! The client's part is socket.io-client's own (4.6+), with no frontend
//! code: it keeps the private session id (`pid`) of its connect packet and
//! the last string argument of the events it received (the *offset*), and
//! presents both in its next connect packet; when the server answers with
//! the same `pid`, `socket.recovered` is true.
//!
//! The edge's part:
//! - Every socket gets a `pid` ([`Recovery::begin`]); its [`Session`] —
//!   user, namespace, conversation rooms — is kept in [`Sessions`]
//!   (memory, or Redis when set, so that any edge resumes it) for the
//!   recovery window after the socket was last seen. Room changes are
//!   written through ([`Recovery::remember`]), so a killed edge's sessions
//!   are resumable too.
//! - Every chat event a socket receives carries its position in
//!   chat-service's log (`<epoch>-<seq>`, [`recent::offset`]) as its last
//!   argument. Other events carry none (the client's offset stays its last
//!   chat event's), except a string payload, which would be taken for an
//!   offset: it gets the position of the last chat event handled.
//! - [`Recent`] keeps the chat events of the last window (at most
//!   `max_events`). A socket presenting a kept `pid` of the same user and
//!   namespace, with an offset they still cover, gets the `pid` back, its
//!   rooms back (membership checked again) and the events after its offset
//!   that its rooms would have received, rendered by its contract, before
//!   any live event: the chat fan-out and a resume take the same lock
//!   ([`Recovery::log`]), so no event is both replayed and received live,
//!   and none falls between the two.
//! - Anything else — an unknown or expired `pid`, another user's, an offset
//!   older than what is kept — is a fresh session: a new `pid`,
//!   `recovered` false, the contract's usual start.
//!
//! A socket that did not resume a session (a new socket, an old client, a
//! session past the window) catches up when it joins a conversation: the
//! messages since the last one delivered to its user there ([`catchup`]).
//!
//! Presence, typing, calls and notifications are not replayed: they are
//! state, which the resumed socket's presence session and the services
//! give it afresh.

pub mod catchup;
pub mod recent;
pub mod sessions;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_proto::v1::ChatEvent;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use tokio::task::JoinHandle;

use crate::auth::Identity;
pub use recent::Recent;
pub use sessions::{Session, Sessions};

/// The recovery settings (`CONFAB_RECOVERY_*`).
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// How long after a socket was last seen its session can be resumed;
    /// zero turns recovery off.
    pub window: Duration,
    /// How many of the latest chat events are kept for replays.
    pub max_events: usize,
    /// Redis for sessions any edge can resume; memory when unset.
    pub redis_url: Option<String>,
    /// The prefix of the sessions' keys in Redis.
    pub redis_prefix: String,
}

/// What a socket resuming a session brings (in its extensions from the
/// connect middleware until its session is restored).
#[derive(Clone)]
pub struct Resuming {
    pub session: Session,
    /// The events after its offset, as far as the log had them when it
    /// connected.
    pub missed: Vec<Arc<ChatEvent>>,
    /// The offset those events end at.
    pub until: String,
}

/// How a socket's contract renders a chat event for that socket alone (in
/// its extensions, from the socket lifecycle): it emits, with the offset
/// given (if any), what of the event reaches the socket's rooms — or `also`, a
/// room the socket stands in for (its previous socket's) — and tells
/// whether anything was emitted.
#[derive(Clone)]
pub struct Replay(pub Arc<ReplayFn>);

/// [`Replay`]'s function: socket, event, offset, `also`.
pub type ReplayFn =
    dyn Fn(&SocketRef, &ChatEvent, Option<&str>, Option<&str>) -> bool + Send + Sync;

impl Replay {
    /// Renders `event` for `s` with its socket's [`Replay`]; false when it
    /// has none or nothing reached it.
    pub fn to(s: &SocketRef, event: &ChatEvent, offset: Option<&str>, also: Option<&str>) -> bool {
        s.extensions
            .get::<Replay>()
            .is_some_and(|r| (r.0)(s, event, offset, also))
    }
}

/// The socket's session as last saved (in its extensions).
#[derive(Clone)]
struct Kept {
    pid: String,
    session: Session,
}

/// An edge's recovery: its sessions and its recent chat events.
#[derive(Clone)]
pub struct Recovery(Arc<Inner>);

struct Inner {
    settings: RecoverySettings,
    log: tokio::sync::Mutex<Recent>,
    /// The offset of the last chat event handled, for events that need one
    /// without waiting for the log.
    last: Mutex<Option<Arc<str>>>,
    sessions: Sessions,
}

impl Recovery {
    /// Opens the session store the settings name.
    pub async fn open(settings: RecoverySettings) -> anyhow::Result<Self> {
        let sessions = match &settings.redis_url {
            Some(url) if !settings.window.is_zero() => {
                Sessions::redis(url, &settings.redis_prefix).await?
            }
            _ => Sessions::memory(),
        };
        Ok(Self(Arc::new(Inner {
            log: tokio::sync::Mutex::new(Recent::new(settings.window, settings.max_events)),
            settings,
            last: Mutex::new(None),
            sessions,
        })))
    }

    /// Whether sockets get private session ids and events offsets.
    pub fn enabled(&self) -> bool {
        !self.0.settings.window.is_zero()
    }

    /// The recent chat events. The chat fan-out holds it while it emits an
    /// event and takes the event in ([`Recovery::handled`]); a resume holds
    /// it while it joins its rooms and replays.
    pub async fn log(&self) -> tokio::sync::MutexGuard<'_, Recent> {
        self.0.log.lock().await
    }

    /// Takes in a chat event the fan-out has emitted (with the log held),
    /// at `offset` ([`recent::offset`] of `epoch` and its `seq`).
    pub fn handled(&self, log: &mut Recent, epoch: &str, event: Arc<ChatEvent>, offset: Arc<str>) {
        log.push(epoch, event);
        if let Ok(mut last) = self.0.last.lock() {
            *last = Some(offset);
        }
    }

    /// The offset of the last chat event handled.
    pub fn last_offset(&self) -> Option<Arc<str>> {
        self.0.last.lock().ok().and_then(|l| l.clone())
    }

    /// The offset an event sent to `s` alone must carry when its last
    /// argument is a string, which the client would otherwise take for an
    /// offset: the last chat event's position (none with recovery off).
    pub fn offset_for(s: &SocketRef) -> Option<Arc<str>> {
        s.extensions.get::<Recovery>()?.last_offset()
    }

    /// In the connect middleware, after authentication: gives the socket
    /// its private session id — the one it presented, when its session can
    /// be resumed here (returned, to be restored once connected), or a new
    /// one.
    pub async fn begin(
        &self,
        s: &SocketRef,
        me: &Identity,
        auth: Option<&Value>,
    ) -> Option<Resuming> {
        if !self.enabled() {
            return None;
        }
        let field = |k: &str| auth.and_then(|a| a.get(k)).and_then(Value::as_str);
        let resuming = match field("pid") {
            Some(pid) => self.resumable(s, me, pid, field("offset")).await,
            None => None,
        };
        let (pid, session) = match &resuming {
            Some(r) => (
                field("pid").unwrap_or_default().to_string(),
                Session {
                    sid: s.id.to_string(),
                    ..r.session.clone()
                },
            ),
            None => (
                new_pid(),
                Session {
                    user_id: me.user_id.clone(),
                    ns: s.ns().to_string(),
                    sid: s.id.to_string(),
                    conversations: Vec::new(),
                    since: self.last_offset().map(|o| o.to_string()),
                },
            ),
        };
        s.set_private_session_id(pid.clone());
        s.extensions.insert(self.clone());
        self.keep(s, pid, session).await;
        if resuming.is_some() {
            metrics::counter!("confab_sessions_recovered_total").increment(1);
        }
        resuming
    }

    /// The session `pid` if this socket may resume it: kept, the same user
    /// and namespace, and an offset the log still covers.
    async fn resumable(
        &self,
        s: &SocketRef,
        me: &Identity,
        pid: &str,
        offset: Option<&str>,
    ) -> Option<Resuming> {
        let ns = s.ns();
        let session = self
            .0
            .sessions
            .take(pid, |kept| kept.user_id == me.user_id && kept.ns == ns)
            .await?;
        let Some(offset) = offset.map(str::to_string).or_else(|| session.since.clone()) else {
            metrics::counter!("confab_sessions_not_recovered_total", "why" => "no position")
                .increment(1);
            return None;
        };
        // Another edge may be a moment ahead in the log: wait for it.
        for _ in 0..40 {
            if self.log().await.reached(&offset) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let log = self.log().await;
        let Some(missed) = log.after(&offset) else {
            metrics::counter!("confab_sessions_not_recovered_total", "why" => "offset not kept")
                .increment(1);
            tracing::info!(sid = %s.id, offset, "a session could not be resumed: its offset is not kept");
            return None;
        };
        let until = log.offset().unwrap_or(offset);
        Some(Resuming {
            session,
            missed,
            until,
        })
    }

    /// Saves the socket's session again after its rooms changed.
    pub async fn remember(&self, s: &SocketRef, conversations: Vec<String>) {
        let Some(mut kept) = s.extensions.get::<Kept>() else {
            return;
        };
        kept.session.conversations = conversations;
        self.keep(s, kept.pid, kept.session).await;
    }

    /// A socket closed: its session stays resumable for one window from
    /// now. Only the expiry is changed — the session may already have been
    /// resumed by a new socket (a connection dropped without a close is
    /// noticed here only after the client came back).
    pub async fn end(&self, s: &SocketRef) {
        if let Some(kept) = s.extensions.get::<Kept>() {
            self.0
                .sessions
                .touch(&[kept.pid], self.0.settings.window)
                .await;
        }
    }

    async fn keep(&self, s: &SocketRef, pid: String, session: Session) {
        self.0
            .sessions
            .save(&pid, &session, self.0.settings.window)
            .await;
        s.extensions.insert(Kept { pid, session });
    }

    /// Keeps the sessions of this edge's live sockets resumable: every
    /// third of the window, each is given one more window.
    pub fn spawn_keepalive(
        &self,
        io: SocketIo,
        paths: Vec<&'static str>,
    ) -> Option<JoinHandle<()>> {
        if !self.enabled() {
            return None;
        }
        let this = self.clone();
        let every = (self.0.settings.window / 3).max(Duration::from_millis(100));
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let pids: Vec<String> = paths
                    .iter()
                    .filter_map(|p| io.of(*p))
                    .flat_map(|ns| ns.sockets())
                    .filter_map(|s| s.extensions.get::<Kept>().map(|k| k.pid))
                    .collect();
                this.0.sessions.touch(&pids, this.0.settings.window).await;
            }
        }))
    }
}

/// A new private session id: 128 random bits.
fn new_pid() -> String {
    format!("{:032x}", rand::random::<u128>())
}
