//! Delivery receipts, batched.
//!
//! When a new message reaches recipients' sockets on this edge, chat-service
//! records a delivery per recipient and tells the sender (`v3`'s
//! `message_delivered`). Doing that with a call per recipient would turn one
//! message into a hundred RPCs in a hundred-member room; instead the fan-out
//! hands each message's recipients to [`Deliveries`], and one task sends
//! them to chat-service with `RecordDeliveries`, one call at a time: while a
//! call is in flight, the next messages queue up and go together in the
//! next one. So the number of calls falls as the load rises, and a
//! message's receipts cost one call at most.
//!
//! The queue is bounded: when chat-service cannot keep up, the fan-out
//! waits for room in it (backpressure) rather than dropping receipts.

use std::time::Duration;

use confab_proto::v1::{ChatMessage, Delivery, RecordDeliveriesRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clients::ChatClient;

/// Messages waiting for their receipts to be sent.
const QUEUE: usize = 4096;
/// The most messages in one `RecordDeliveries` call (chat-service's limit).
const BATCH: usize = 256;

/// The sending side, cloned into the fan-out.
#[derive(Clone)]
pub struct Deliveries {
    tx: mpsc::Sender<Delivery>,
}

impl Deliveries {
    /// Starts the task that sends receipts to `chat`.
    pub fn spawn(chat: ChatClient) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, tokio::spawn(send_batches(chat, rx)))
    }

    /// Notes that `messages` reached one socket of `user` (what a resumed
    /// or joining socket was sent of what it missed).
    pub async fn record_for(&self, user: &str, messages: &[ChatMessage]) {
        for m in messages {
            self.record(m, vec![user.to_string()]).await;
        }
    }

    /// Notes that `message` reached the sockets of `reached` (users, in any
    /// order, repeated once per socket; the sender is left out).
    pub async fn record(&self, message: &ChatMessage, mut reached: Vec<String>) {
        reached.retain(|u| *u != message.sender_id);
        if reached.is_empty() {
            return;
        }
        reached.sort_unstable();
        reached.dedup();
        let delivery = Delivery {
            message_id: message.id.clone(),
            recipient_ids: reached,
            offline: false,
        };
        if self.tx.send(delivery).await.is_err() {
            tracing::warn!("delivery receipts are no longer being sent");
        }
    }
}

async fn send_batches(mut chat: ChatClient, mut rx: mpsc::Receiver<Delivery>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let deliveries = std::mem::take(&mut batch);
        let messages = deliveries.len() as u64;
        let request = RecordDeliveriesRequest { deliveries };
        // One retry: a receipt lost to a blip would leave a sender's tick
        // grey for good.
        let mut tries = 0;
        loop {
            match chat.record_deliveries(request.clone()).await {
                Ok(_) => {
                    metrics::counter!("confab_delivery_batches_total").increment(1);
                    metrics::counter!("confab_delivery_messages_total").increment(messages);
                    break;
                }
                Err(status) if tries == 0 => {
                    tries += 1;
                    tracing::debug!(error = %status, "recording deliveries failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => {
                    metrics::counter!("confab_delivery_batches_failed_total").increment(1);
                    tracing::warn!(error = %status, messages, "recording deliveries failed");
                    break;
                }
            }
        }
    }
}
