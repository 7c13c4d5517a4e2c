//! `v3` offline delivery: what a user missed while no socket of theirs was
//! reached, delivered on their next connect.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `new_message {message, chat, sender, isOfflineDelivery, deliveredAt, queuedDuration}` | s→c | each message of `ChatService.TakeOfflineMessages` (the newest `CONFAB_OFFLINE_QUEUE`, default 25), oldest first, to the connecting socket right after `authenticated` |
//! | `offline_messages_delivered {total, successful, failed, deliveredAt}` | s→c | after them, when there was at least one |
//! | `offline_delivery_error {error, details}` | s→c | the take failed (`error` = the stable code, e.g. `UNAVAILABLE`; `details` = the reason) |
//!
//! Choices where the seed is vague:
//! - The queue is chat-service's: a message is queued for a member when
//!   no socket of theirs got it (the edges record every socket a message
//!   reaches as a delivery receipt), so nothing is written per message or
//!   per recipient to keep it. A user online on any contract and edge who
//!   received a message never finds it queued; one who was online but not
//!   in the chat's room (a `v3` socket that had not joined it) does.
//! - The take records the messages delivered before they are sent, so no
//!   second connect (another tab, another edge) gets them again; each
//!   sender hears `message_delivered` with `isOfflineDelivery: true`.
//! - Only the newest win: anything older than what a take delivers is
//!   dropped from the queue, as is anything older than a message the user
//!   already received live.
//! - A message the user read meanwhile (over REST, or on another contract
//!   that did not receive it) still comes, with `messageStatus: 'read'`;
//!   the others have `messageStatus: 'delivered'`. Deleted and recalled
//!   messages are left out.
//! - An empty queue sends nothing (no `offline_messages_delivered` with
//!   `total: 0`). `failed` counts messages that could not be written to the
//!   socket (it closed meanwhile); they count as delivered in chat-service.
//! - The take and its sending hold the socket's room lock: a `join_chat`
//!   sent right after connecting waits for it, and a conversation the
//!   socket already joined is left out (its join caught it up; the rest
//!   reaches it live). A socket that resumed its session gets no offline
//!   delivery at all.
//! - Receipts are recorded in batches a few milliseconds after the
//!   delivery (`deliveries.rs`), so a user whose *other* socket got a
//!   message in the moment before this one connected may get it here too
//!   (the same `id` twice): a frontend that keys messages by id shows it
//!   once.
//! - This is the connect-time instance of the rule every contract follows
//!   when a socket that did not resume a session joins a conversation: it
//!   gets the messages there since the last one delivered to its user
//!   (`session::rooms`, `recovery::catchup`). `v3` takes every
//!   conversation's at once on connect, as its seed has it; its later
//!   `join_chat` then finds nothing left. A socket that resumed a session
//!   ([`crate::recovery`]) gets no offline delivery: it was replayed what
//!   it missed.

use confab_proto::ServiceError;
use confab_proto::v1::TakeOfflineMessagesRequest;
use serde_json::json;
use socketioxide::extract::SocketRef;

use crate::auth::Identity;
use crate::session;
use crate::state::EdgeState;
use crate::wire::iso;

/// Takes the user's offline queue and sends it to this socket (spawned
/// by the socket lifecycle after `authenticated`).
pub fn deliver(s: &SocketRef, me: &Identity, edge: &EdgeState) {
    let (s, edge) = (s.clone(), edge.clone());
    let req = TakeOfflineMessagesRequest {
        actor: Some(me.actor()),
        limit: edge.offline_queue,
        conversation_id: String::new(),
    };
    tokio::spawn(async move {
        // No room of the socket changes meanwhile: a conversation it is
        // already in had its missed messages from its join, and the rest
        // reaches it live; a join waits for this.
        let _rooms = session::rooms::exclusive(&s).await;
        let joined = session::rooms::joined(&s);
        let taken = match edge.chat.clone().take_offline_messages(req).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let e = ServiceError::from_status(&status);
                let _ = s.emit(
                    "offline_delivery_error",
                    &json!({ "error": e.code.as_str(), "details": e.message }),
                );
                return;
            }
        };
        if !taken.messages.iter().any(|q| {
            q.message
                .as_ref()
                .is_some_and(|m| !joined.contains(&m.conversation_id))
        }) {
            return;
        }
        let delivered_at = iso(taken.delivered_at_ms);
        let (mut successful, mut failed) = (0u32, 0u32);
        for queued in &taken.messages {
            let Some(m) = &queued.message else {
                continue;
            };
            if joined.contains(&m.conversation_id) {
                continue;
            }
            let mut payload = super::new_message(m, queued.conversation.as_ref());
            payload["message"]["messageStatus"] =
                json!(if queued.read { "read" } else { "delivered" });
            payload["isOfflineDelivery"] = json!(true);
            payload["deliveredAt"] = json!(delivered_at);
            payload["queuedDuration"] = json!((taken.delivered_at_ms - m.created_at_ms).max(0));
            match s.emit("new_message", &payload) {
                Ok(()) => successful += 1,
                Err(_) => failed += 1,
            }
        }
        let _ = s.emit(
            "offline_messages_delivered",
            &json!({
                "total": successful + failed,
                "successful": successful,
                "failed": failed,
                "deliveredAt": delivered_at,
            }),
        );
    });
}
