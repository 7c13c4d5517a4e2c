//! Message notifications: a chat message to a member with no live session
//! becomes a `message` notification for them, so a user who comes back sees
//! what they missed in the badge.
//!
//! notify-service learns of messages by following chat-service's
//! `Subscribe` stream (`message_created` events carry the conversation's
//! members in their audience) and asks presence-service's `GetPresence` who
//! of them is online — one call for whatever messages have arrived together
//! (at most 256), whatever the rooms' sizes: the busier chat is, the fewer
//! lookups per message. It
//! never reads either service's tables. The clients are generic over their
//! transport, so the embedded mode can hand in in-process clients and the
//! `notify-service` binary network ones.
//!
//! Nothing is lost or doubled:
//!
//! * Events are handled one at a time, in order; a broken stream is reopened
//!   (backoff 100 ms up to 2 s) after the last event handled, like the
//!   edge's fan-out (`SubscribeRequest {epoch, after_seq}`).
//! * That position is also saved in notify-service's database (after every
//!   message that made notifications, else at most once a second), so a
//!   restarted notify-service resumes where it stopped while chat-service
//!   still holds the events.
//! * Each message's notifications are published with the idempotency key
//!   `chat-message:<id>:<created_at_ms>`, so an event handled twice (a
//!   replay after a restart) adds nothing.
//! * Replicas (one PostgreSQL database) each follow the stream; the key is
//!   unique in the database, so the replica that stores a message's
//!   notifications first is the only one that announces them, and a
//!   replica that dies leaves the others following. They save their
//!   position in one row: a restarted replica may start from another's
//!   older position, which replays only what the key makes a no-op.
//! * When presence-service cannot be asked (three tries), every member but
//!   the sender gets the notification: a badge too many beats a missed
//!   message. A storage failure is retried until it succeeds, holding the
//!   stream (chat-service's backpressure then cuts the stream off, and it
//!   resumes from the log).
//!
//! Events missed for good (chat-service restarted, or its log moved on) are
//! logged as a gap.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::FutureExt;

use anyhow::Context;
use confab_proto::bus::{EPOCH_HEADER, RESUMED_HEADER};
use confab_proto::failover::{self, Failover};
use confab_proto::v1::chat_event::Kind;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_proto::v1::{ChatEvent, GetPresenceRequest, SubscribeRequest};
use tokio::task::JoinHandle;
use tonic::codegen::{Body, Bytes, StdError};

use crate::config::Config;
use crate::notify::Notify;

/// The most events handled together (one presence lookup).
const BATCH: usize = 256;
/// The most users asked about in one `GetPresence` (presence-service's limit).
const LOOKUP: usize = 1_000;

/// The name of chat's stream in notify-service's saved positions.
const STREAM: &str = "chat";
/// How notify-service names itself to chat-service.
const SUBSCRIBER: &str = "notify-service";

/// The running follower; [`MessageNotifications::stop`] ends it.
pub struct MessageNotifications {
    task: JoinHandle<()>,
}

impl MessageNotifications {
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Where message notifications come from: chat-service's events and
/// presence-service's answers, through any tonic transport.
pub struct MessageSources<C, P> {
    pub chat: ChatServiceClient<C>,
    pub presence: PresenceServiceClient<P>,
}

impl MessageSources<Failover, Failover> {
    /// Network clients at `config`'s chat and presence URLs — each one
    /// address or its replicas comma-separated, balanced and failed over
    /// (`confab_proto::failover`) — connected lazily, so notify-service
    /// starts while they are down; `None` when message notifications are
    /// off, an error when only one URL is set.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some((chat_url, presence_url)) = config.message_sources()? else {
            return Ok(None);
        };
        let chat = Failover::lazy(&chat_url, |e| failover::endpoint(e, None))
            .map_err(anyhow::Error::msg)
            .context("--chat-url")?;
        let presence = Failover::lazy(&presence_url, |e| {
            failover::endpoint(e, Some(Duration::from_secs(5)))
        })
        .map_err(anyhow::Error::msg)
        .context("--presence-url")?;
        Ok(Some(Self {
            chat: ChatServiceClient::new(chat),
            presence: PresenceServiceClient::new(presence),
        }))
    }
}

/// Follows `chat`'s events for ever, turning each message into
/// notifications for its members `presence` says are offline.
pub fn spawn<C, P>(
    notify: Notify,
    chat: ChatServiceClient<C>,
    presence: PresenceServiceClient<P>,
) -> MessageNotifications
where
    C: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    C::Error: Into<StdError>,
    C::Future: Send,
    C::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <C::ResponseBody as Body>::Error: Into<StdError> + Send,
    P: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    P::Error: Into<StdError>,
    P::Future: Send,
    P::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <P::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let task = tokio::spawn(async move {
        let mut follower = Follower {
            notify,
            presence,
            epoch: String::new(),
            last_seq: 0,
            saved: (String::new(), 0),
            saved_at: Instant::now(),
        };
        follower.load().await;
        let mut backoff = Duration::from_millis(100);
        loop {
            let request = SubscribeRequest {
                subscriber: SUBSCRIBER.into(),
                epoch: follower.epoch.clone(),
                after_seq: follower.last_seq,
            };
            match chat.clone().subscribe(request).await {
                Ok(response) => {
                    follower.reopened(response.metadata());
                    let mut stream = response.into_inner();
                    tracing::info!("following chat-service for message notifications");
                    backoff = Duration::from_millis(100);
                    loop {
                        // Whatever has already arrived is handled together:
                        // under load, one presence lookup for many messages.
                        let mut batch = Vec::new();
                        let mut end = match stream.message().await {
                            Ok(Some(event)) => {
                                batch.push(event);
                                None
                            }
                            other => Some(other),
                        };
                        while end.is_none() && batch.len() < BATCH {
                            match stream.message().now_or_never() {
                                None => break,
                                Some(Ok(Some(event))) => batch.push(event),
                                Some(other) => end = Some(other),
                            }
                        }
                        follower.handle(batch).await;
                        match end {
                            None | Some(Ok(Some(_))) => {}
                            Some(Ok(None)) => {
                                tracing::warn!("chat-service ended its event stream");
                                break;
                            }
                            Some(Err(status)) => {
                                tracing::warn!(%status, "chat-service event stream failed");
                                break;
                            }
                        }
                    }
                    follower.save(true).await;
                }
                Err(status) => {
                    tracing::debug!(%status, "cannot open chat-service's event stream yet");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
    MessageNotifications { task }
}

struct Follower<P> {
    notify: Notify,
    presence: PresenceServiceClient<P>,
    epoch: String,
    last_seq: u64,
    saved: (String, u64),
    saved_at: Instant,
}

impl<P> Follower<P>
where
    P: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    P::Error: Into<StdError>,
    P::Future: Send,
    P::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <P::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    /// Starts from the saved position, if any.
    async fn load(&mut self) {
        match self.notify.position(STREAM).await {
            Ok(Some((epoch, seq))) => {
                self.saved = (epoch.clone(), seq);
                self.epoch = epoch;
                self.last_seq = seq;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the saved chat position"),
        }
    }

    /// Takes in a newly opened stream's headers, logging a gap when it could
    /// not resume where the last one ended.
    fn reopened(&mut self, md: &tonic::metadata::MetadataMap) {
        let epoch = md
            .get(EPOCH_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let resumed = md
            .get(RESUMED_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "true");
        if !self.epoch.is_empty() && (!resumed || epoch != self.epoch) {
            tracing::error!(
                "chat events were missed (chat-service restarted or its log moved on): \
                 messages sent meanwhile make no notifications"
            );
        }
        if epoch != self.epoch {
            self.epoch = epoch;
            self.last_seq = 0;
        }
    }

    /// Handles events in order: one presence lookup for all the messages
    /// among them, then each message's notifications.
    async fn handle(&mut self, events: Vec<ChatEvent>) {
        let mut messages = Vec::new();
        for event in &events {
            if self.last_seq != 0 && event.seq > self.last_seq + 1 {
                tracing::error!(
                    after = self.last_seq,
                    got = event.seq,
                    "a gap in chat-service's event stream"
                );
            }
            self.last_seq = event.seq;
            if let Some(Kind::MessageCreated(message)) = &event.kind {
                let members: Vec<String> = event
                    .audience
                    .as_ref()
                    .map(|a| a.user_ids.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|u| *u != message.sender_id)
                    .collect();
                if !members.is_empty() {
                    let name = event
                        .conversation
                        .as_ref()
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    messages.push((message, name, members));
                }
            }
        }
        let mut everyone: Vec<String> = messages
            .iter()
            .flat_map(|(_, _, members)| members.iter().cloned())
            .collect();
        everyone.sort_unstable();
        everyone.dedup();
        let mut offline = HashSet::new();
        for chunk in everyone.chunks(LOOKUP) {
            offline.extend(self.offline(chunk.to_vec()).await);
        }
        let mut worked = false;
        for (message, name, members) in messages {
            let missed: Vec<String> = members
                .into_iter()
                .filter(|m| offline.contains(m))
                .collect();
            if missed.is_empty() {
                continue;
            }
            let mut wait = Duration::from_millis(100);
            while let Err(e) = self
                .notify
                .notify_message(message, &name, missed.clone())
                .await
            {
                if e.code == confab_proto::ErrorCode::Conflict {
                    tracing::warn!(message_id = %message.id, error = %e,
                        "a message notification's key was used for another message");
                    break;
                }
                tracing::warn!(message_id = %message.id, error = %e,
                    "cannot store a message notification; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            worked = true;
        }
        self.save(worked).await;
    }

    /// Of `members`, those with no live session.
    async fn offline(&mut self, members: Vec<String>) -> Vec<String> {
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=3 {
            match self
                .presence
                .get_presence(GetPresenceRequest {
                    user_ids: members.clone(),
                })
                .await
            {
                Ok(r) => {
                    let online: std::collections::HashSet<String> = r
                        .into_inner()
                        .users
                        .into_iter()
                        .filter(|u| u.online)
                        .map(|u| u.user_id)
                        .collect();
                    return members
                        .into_iter()
                        .filter(|m| !online.contains(m))
                        .collect();
                }
                Err(status) => {
                    tracing::warn!(%status, attempt, "cannot ask presence-service who is online");
                    if attempt < 3 {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        }
        tracing::warn!("presence-service unavailable: notifying every member but the sender");
        members
    }

    /// Saves the position when it changed and `now` (or a second passed).
    async fn save(&mut self, now: bool) {
        if self.epoch.is_empty() || self.saved == (self.epoch.clone(), self.last_seq) {
            return;
        }
        if !now && self.saved_at.elapsed() < Duration::from_secs(1) {
            return;
        }
        match self
            .notify
            .save_position(STREAM, &self.epoch, self.last_seq)
            .await
        {
            Ok(()) => {
                self.saved = (self.epoch.clone(), self.last_seq);
                self.saved_at = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "cannot save the chat position"),
        }
    }
}
