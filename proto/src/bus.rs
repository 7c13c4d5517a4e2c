//! The event bus a service publishes on and serves `Subscribe` from.
//!
//! [`EventBus`] is the seam: the in-process [`LocalBus`] (a tokio broadcast
//! channel) serves the embedded mode and single-replica deployments; a shared
//! implementation (Redis) lets replicas of one service serve each other's
//! events. Subscribers that fall behind by more than the channel's capacity
//! lose the oldest events and are told how many (see [`subscribe_stream`]).

use std::pin::Pin;

use futures::Stream;
use tokio::sync::broadcast;
use tokio_stream::{StreamExt, wrappers::BroadcastStream};

use crate::server::Closing;

/// Publish events; open independent subscriptions to them.
pub trait EventBus<E: Clone + Send + 'static>: Send + Sync + 'static {
    fn publish(&self, event: E);
    fn subscribe(&self) -> broadcast::Receiver<E>;
}

/// An in-process bus.
#[derive(Clone)]
pub struct LocalBus<E> {
    tx: broadcast::Sender<E>,
}

impl<E: Clone + Send + 'static> LocalBus<E> {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }
}

impl<E: Clone + Send + Sync + 'static> EventBus<E> for LocalBus<E> {
    fn publish(&self, event: E) {
        // No subscriber is not an error: nobody is connected to hear it.
        let _ = self.tx.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<E> {
        self.tx.subscribe()
    }
}

/// The stream type a `Subscribe` RPC returns.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<E, tonic::Status>> + Send>>;

/// Turns a subscription into a `Subscribe` response stream that ends when the
/// service starts shutting down. A subscriber that lagged skips what it
/// missed (logged) rather than being cut off.
pub fn subscribe_stream<E: Clone + Send + 'static>(
    rx: broadcast::Receiver<E>,
    service: &'static str,
    closing: Closing,
) -> EventStream<E> {
    let stream = futures::StreamExt::take_until(BroadcastStream::new(rx), closing.closed());
    Box::pin(stream.filter_map(move |item| match item {
        Ok(event) => Some(Ok(event)),
        Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
            tracing::warn!(service, skipped = n, "subscriber lagged; events skipped");
            None
        }
    }))
}
