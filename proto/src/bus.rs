//! The event bus a service publishes on and serves `Subscribe` from.
//!
//! [`EventBus`] is the seam: the in-process [`LocalBus`] serves the embedded
//! mode and single-replica deployments; a shared log (`confab-kit`'s
//! `RedisBus`, on Redis Streams) lets replicas of one service serve each
//! other's events, in one order, and a subscriber resume on any replica.
//!
//! The bus never loses an event silently:
//!
//! * **A log with positions.** Every event gets the next `seq` of the bus's
//!   *epoch* (a random name per bus instance) and goes into a replay log
//!   holding the last `capacity` events.
//! * **Backpressure.** A subscriber reads the log at its own pace. When the
//!   log is full and its oldest event is still unread by some subscriber,
//!   [`EventBus::publish`] waits for that subscriber (so the service's
//!   requests are slowed down, not its subscribers' events dropped).
//! * **Cut off, then resumed.** A subscriber that reads nothing for
//!   `stall` while publishers wait is cut off: its stream ends with an
//!   error, so it knows. Reconnecting with the epoch and the last `seq` it
//!   saw ([`Resume`]) starts the new stream right after it, from the log.
//!   Only when those events have left the log too does the new stream start
//!   live, and it says so ([`Subscription::resumed`] is false).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::server::Closing;
use crate::v1;

/// An event a bus can carry: it records its position in the bus's log.
pub trait BusEvent: Clone + Send + Sync + 'static {
    fn seq(&self) -> u64;
    fn set_seq(&mut self, seq: u64);
    /// Who the event is for: every event carries its audience.
    fn audience(&self) -> Option<&v1::Audience>;
}

macro_rules! bus_event {
    ($($t:ty),*) => {$(
        impl BusEvent for $t {
            fn seq(&self) -> u64 {
                self.seq
            }
            fn set_seq(&mut self, seq: u64) {
                self.seq = seq;
            }
            fn audience(&self) -> Option<&v1::Audience> {
                self.audience.as_ref()
            }
        }
    )*};
}
bus_event!(
    v1::ChatEvent,
    v1::PresenceEvent,
    v1::CallEvent,
    v1::NotifyEvent
);

/// Where a reconnecting subscriber left off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub epoch: String,
    pub after_seq: u64,
}

/// Publish events; open subscriptions to them.
pub trait EventBus<E: BusEvent>: Send + Sync + 'static {
    /// Appends the event to the log; waits while the log is full of events
    /// a subscriber has not read yet (see the module doc).
    fn publish(&self, event: E) -> BoxFuture<'_, ()>;
    /// A new subscription: live, or right after `resume` when the log still
    /// holds what followed it.
    fn subscribe(&self, resume: Option<Resume>) -> BoxFuture<'_, Subscription<E>>;
}

/// The stream a subscription reads; an `Err` ends it.
pub type SubscriptionStream<E> = Pin<Box<dyn Stream<Item = Result<E, Ended>> + Send>>;

/// Why a subscription ended before its subscriber left. The subscriber
/// reconnects with its position ([`Resume`]) either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// It stopped reading while publishers waited.
    #[error(transparent)]
    Lagged(#[from] Lagged),
    /// It fell further behind than the log keeps: what it missed is gone
    /// from the log (it reconnects, is told it did not resume, and
    /// resynchronises).
    #[error("the subscriber fell behind the event log's retention")]
    Behind,
    /// The shared log could not be read.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}

/// One subscriber's view of a bus.
pub struct Subscription<E> {
    /// The bus's epoch, for [`Resume`].
    pub epoch: String,
    /// False when a [`Resume`] was asked for but the events after it are
    /// gone: the subscriber missed some and should resynchronise.
    pub resumed: bool,
    pub events: SubscriptionStream<E>,
}

/// Why a subscription ended: it stopped reading while publishers waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber cut off: it read nothing for {0:?} while the event log was full")]
pub struct Lagged(pub Duration);

/// An in-process bus.
pub struct LocalBus<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for LocalBus<E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<E> {
    state: Mutex<State<E>>,
    /// The seq of the newest event (subscribers wait on it).
    published: watch::Sender<u64>,
    /// Woken whenever a subscriber reads or leaves (publishers wait on it).
    consumed: Notify,
    capacity: usize,
    stall: Duration,
    epoch: String,
}

struct State<E> {
    /// Events `first_seq ..= first_seq + log.len() - 1`.
    log: VecDeque<E>,
    first_seq: u64,
    /// Live subscribers: id → seq of the next event each will read.
    cursors: HashMap<u64, u64>,
    /// Subscribers cut off, told so on their next read.
    cut: Vec<u64>,
    next_id: u64,
}

impl<E> State<E> {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.log.len() as u64
    }
}

impl<E: BusEvent> LocalBus<E> {
    /// A bus keeping the last `capacity` events, cutting off a subscriber
    /// that holds publishers up for 10 s.
    pub fn new(capacity: usize) -> Self {
        Self::with_stall(capacity, Duration::from_secs(10))
    }

    /// A bus that cuts off a subscriber holding publishers up for `stall`.
    pub fn with_stall(capacity: usize, stall: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    log: VecDeque::with_capacity(capacity.min(1024)),
                    first_seq: 1,
                    cursors: HashMap::new(),
                    cut: Vec::new(),
                    next_id: 0,
                }),
                published: watch::Sender::new(0),
                consumed: Notify::new(),
                capacity: capacity.max(1),
                stall,
                epoch: format!("{:016x}", rand_u64()),
            }),
        }
    }
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        // A panic while holding this lock leaves the log consistent (every
        // change is a single push, pop or insert), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<E: BusEvent> LocalBus<E> {
    async fn publish_inner(&self, mut event: E) {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.stall;
        loop {
            let consumed = shared.consumed.notified();
            tokio::pin!(consumed);
            consumed.as_mut().enable();
            if self.try_append(&mut event, Instant::now() >= deadline) {
                return;
            }
            let _ = tokio::time::timeout_at(deadline, consumed).await;
        }
    }

    /// Appends `event` unless the log is full and a subscriber has yet to
    /// read its oldest event; with `cut_off`, such subscribers are cut off
    /// and the event is appended anyway. Returns whether it was appended.
    fn try_append(&self, event: &mut E, cut_off: bool) -> bool {
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.log.len() >= shared.capacity {
            let oldest = st.first_seq;
            let laggards: Vec<u64> = st
                .cursors
                .iter()
                .filter(|&(_, &next)| next <= oldest)
                .map(|(&id, _)| id)
                .collect();
            if !laggards.is_empty() {
                if !cut_off {
                    return false;
                }
                tracing::warn!(
                    subscribers = laggards.len(),
                    "event subscribers read nothing while the log was full; cutting them off"
                );
                for id in laggards {
                    st.cursors.remove(&id);
                    st.cut.push(id);
                }
            }
            st.log.pop_front();
            st.first_seq += 1;
        }
        let seq = st.next_seq();
        event.set_seq(seq);
        st.log.push_back(event.clone());
        shared.published.send_replace(seq);
        true
    }
}

impl<E: BusEvent> EventBus<E> for LocalBus<E> {
    fn publish(&self, event: E) -> BoxFuture<'_, ()> {
        Box::pin(self.publish_inner(event))
    }

    fn subscribe(&self, resume: Option<Resume>) -> BoxFuture<'_, Subscription<E>> {
        Box::pin(std::future::ready(self.subscribe_now(resume)))
    }
}

impl<E: BusEvent> LocalBus<E> {
    fn subscribe_now(&self, resume: Option<Resume>) -> Subscription<E> {
        let shared = self.shared.clone();
        let (id, resumed) = {
            let mut st = shared.lock();
            let live = st.next_seq();
            let (start, resumed) = match &resume {
                Some(r) if r.epoch == shared.epoch && r.after_seq < live => {
                    let start = r.after_seq + 1;
                    if start >= st.first_seq {
                        (start, true)
                    } else {
                        (live, false)
                    }
                }
                // Same epoch and nothing new since, or a fresh subscriber.
                Some(r) if r.epoch == shared.epoch => (live, true),
                Some(_) => (live, false),
                None => (live, true),
            };
            let id = st.next_id;
            st.next_id += 1;
            st.cursors.insert(id, start);
            (id, resumed)
        };
        let reader = Reader {
            published: shared.published.subscribe(),
            shared: shared.clone(),
            id,
        };
        let events = futures::stream::unfold(Some(reader), |reader| async move {
            let mut reader = reader?;
            match reader.next().await {
                Ok(e) => Some((Ok(e), Some(reader))),
                Err(lagged) => Some((Err(Ended::Lagged(lagged)), None)),
            }
        });
        Subscription {
            epoch: shared.epoch.clone(),
            resumed,
            events: Box::pin(events),
        }
    }
}

/// One subscriber's cursor; leaving (drop) releases the publishers it held.
struct Reader<E> {
    shared: Arc<Shared<E>>,
    published: watch::Receiver<u64>,
    id: u64,
}

impl<E: BusEvent> Reader<E> {
    async fn next(&mut self) -> Result<E, Lagged> {
        loop {
            self.published.borrow_and_update();
            {
                let mut st = self.shared.lock();
                if let Some(i) = st.cut.iter().position(|&c| c == self.id) {
                    st.cut.swap_remove(i);
                    return Err(Lagged(self.shared.stall));
                }
                let first = st.first_seq;
                let next_seq = st.next_seq();
                if let Some(cursor) = st.cursors.get_mut(&self.id)
                    && *cursor < next_seq
                {
                    let at = cursor.saturating_sub(first) as usize;
                    *cursor = first + at as u64 + 1;
                    let event = st.log[at].clone();
                    drop(st);
                    self.shared.consumed.notify_waiters();
                    return Ok(event);
                }
            }
            if self.published.changed().await.is_err() {
                // The bus is gone: nothing more will come.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl<E> Drop for Reader<E> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.cursors.remove(&self.id);
        st.cut.retain(|&c| c != self.id);
        drop(st);
        self.shared.consumed.notify_waiters();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// The stream type a `Subscribe` RPC returns.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<E, tonic::Status>> + Send>>;

/// The response header naming the bus's epoch (see [`Resume`]).
pub const EPOCH_HEADER: &str = "confab-epoch";
/// The response header saying whether the stream resumed where asked
/// (`true`) or starts live after a gap (`false`).
pub const RESUMED_HEADER: &str = "confab-resumed";

/// Serves a `Subscribe` request from `bus`: resumes where the request says,
/// names the epoch in the response headers, and ends the stream when the
/// service starts shutting down. A subscriber cut off for lagging gets
/// `RESOURCE_EXHAUSTED` and reconnects with its position.
pub async fn subscribe_response<E: BusEvent>(
    bus: &dyn EventBus<E>,
    request: &v1::SubscribeRequest,
    service: &'static str,
    closing: Closing,
) -> tonic::Response<EventStream<E>> {
    let resume = (!request.epoch.is_empty()).then(|| Resume {
        epoch: request.epoch.clone(),
        after_seq: request.after_seq,
    });
    let asked = resume.is_some();
    let sub = bus.subscribe(resume).await;
    tracing::info!(
        service,
        subscriber = %request.subscriber,
        resumed = asked && sub.resumed,
        "subscriber connected"
    );
    if asked && !sub.resumed {
        tracing::warn!(service, subscriber = %request.subscriber,
            "subscriber asked to resume after events that left the log; it starts live");
    }
    let subscriber = request.subscriber.clone();
    let stream = futures::StreamExt::take_until(sub.events, closing.closed());
    let stream = futures::StreamExt::map(stream, move |item| {
        item.map_err(|ended| {
            tracing::warn!(service, subscriber = %subscriber, "{ended}");
            match ended {
                Ended::Unavailable(_) => tonic::Status::unavailable(ended.to_string()),
                Ended::Lagged(_) | Ended::Behind => {
                    tonic::Status::resource_exhausted(ended.to_string())
                }
            }
        })
    });
    let mut response = tonic::Response::new(Box::pin(stream) as EventStream<E>);
    let md = response.metadata_mut();
    if let Ok(v) = sub.epoch.parse() {
        md.insert(EPOCH_HEADER, v);
    }
    md.insert(
        RESUMED_HEADER,
        if sub.resumed || !asked {
            tonic::metadata::MetadataValue::from_static("true")
        } else {
            tonic::metadata::MetadataValue::from_static("false")
        },
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn ev(n: &str) -> v1::ChatEvent {
        v1::ChatEvent {
            origin: n.to_string(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_slows_publishers_and_misses_nothing() {
        let bus = LocalBus::<v1::ChatEvent>::new(4);
        let mut sub = bus.subscribe(None).await;
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    bus.publish(ev(&i.to_string())).await;
                }
            })
        };
        for i in 0..100u64 {
            let e = sub.events.next().await.unwrap().unwrap();
            assert_eq!(e.origin, i.to_string());
            assert_eq!(e.seq, i + 1);
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        publisher.await.unwrap();
    }

    #[tokio::test]
    async fn a_stuck_subscriber_is_cut_off_and_resumes_from_the_log() {
        let bus = LocalBus::<v1::ChatEvent>::with_stall(4, Duration::from_millis(50));
        let mut stuck = bus.subscribe(None).await;
        bus.publish(ev("0")).await;
        let first = stuck.events.next().await.unwrap().unwrap();
        // Five more than fit: the fifth publish waits 50 ms, then cuts it off.
        for i in 1..6 {
            bus.publish(ev(&i.to_string())).await;
        }
        assert!(matches!(
            stuck.events.next().await,
            Some(Err(Ended::Lagged(_)))
        ));
        assert!(stuck.events.next().await.is_none());
        // Events 2..=5 are still in the log (1 left it); resuming after
        // event 1 loses "1" and says so, resuming later does not.
        let gap = bus
            .subscribe(Some(Resume {
                epoch: stuck.epoch.clone(),
                after_seq: first.seq,
            }))
            .await;
        assert!(!gap.resumed);
        let mut again = bus
            .subscribe(Some(Resume {
                epoch: stuck.epoch.clone(),
                after_seq: 2,
            }))
            .await;
        assert!(again.resumed);
        for want in ["2", "3", "4", "5"] {
            assert_eq!(again.events.next().await.unwrap().unwrap().origin, want);
        }
    }

    #[tokio::test]
    async fn another_epoch_starts_live_and_says_so() {
        let bus = LocalBus::<v1::ChatEvent>::new(4);
        bus.publish(ev("old")).await;
        let sub = bus
            .subscribe(Some(Resume {
                epoch: "another".into(),
                after_seq: 0,
            }))
            .await;
        assert!(!sub.resumed);
    }
}
