//! A service's event log shared by its replicas: [`RedisBus`], an
//! [`EventBus`] on a Redis stream.
//!
//! Every replica appends to one stream, so every replica's `Subscribe`
//! serves every replica's events, in one order:
//!
//! * **Positions.** An event's `seq` is the next value of one counter,
//!   taken and appended in one Lua script (`INCR` + `XADD` with the ID
//!   `<seq>-1`), so the stream's order is the order of `seq`, whichever
//!   replica published.
//! * **Epoch.** The log's name for itself, set once by the first replica
//!   (`SET NX`) and kept in Redis: a restarted replica keeps it, so an edge
//!   resumes across restarts and replicas; a log that was lost (Redis
//!   emptied) gets a new one, and subscribers are told they did not resume.
//! * **Retention.** The stream keeps about `retention` events (`XADD
//!   MAXLEN ~`). A subscriber resuming after an event that left it is told
//!   it did not resume; one reading so slowly that the log moved past it is
//!   ended with [`Ended::Behind`] and reconnects — never a silent skip.
//! * **Reading.** A replica reads the log's tail once, whatever its number
//!   of subscribers: one task ([`Tail`]) follows it with `XREAD BLOCK` on a
//!   connection of its own and hands each event, decoded once, to every
//!   subscription (a broadcast channel of [`TAIL_BUFFER`] events). A
//!   subscription that starts behind the tail (resuming), or falls behind
//!   it (the channel overflowed), reads what it misses from Redis itself
//!   until the tail's next event follows its last one: so Redis serves
//!   each event about once per replica, not once per subscriber.
//!
//! Unlike [`LocalBus`](confab_proto::bus::LocalBus) it never holds
//! publishers back for a slow subscriber: the retention is the bound.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use confab_proto::bus::{BusEvent, Ended, EventBus, Resume, Subscription};
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::StreamReadReply;
use tokio::sync::broadcast;

/// How many events the log keeps by default (`CONFAB_EVENT_LOG_RETENTION`).
pub const DEFAULT_RETENTION: u64 = 100_000;

/// How long one blocking read waits before it asks again.
const BLOCK: Duration = Duration::from_secs(5);

/// How many events one read takes at most.
const BATCH: usize = 512;

/// How many decoded events the tail keeps for subscriptions that have not
/// taken them yet; one further behind reads from Redis.
pub const TAIL_BUFFER: usize = 1024;

/// How long a publish keeps trying while Redis is unreachable before the
/// event is given up (logged and counted).
const PUBLISH_PATIENCE: Duration = Duration::from_secs(10);

/// The field an entry keeps its event in (protobuf bytes, `seq` unset).
const FIELD: &str = "e";

/// Takes the next `seq` and appends the event under it, atomically.
const APPEND: &str = r"
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-1', 'e', ARGV[1])
return seq
";

/// The Redis keys of one service's log.
#[derive(Debug, Clone)]
struct Keys {
    stream: String,
    seq: String,
    epoch: String,
}

impl Keys {
    /// Under `{prefix}` (one hash slot, for Redis Cluster).
    fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{{{prefix}}}:events"),
            seq: format!("{{{prefix}}}:events:seq"),
            epoch: format!("{{{prefix}}}:events:epoch"),
        }
    }
}

/// A service's event log on a Redis stream, shared by its replicas.
pub struct RedisBus<E> {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    epoch: String,
    retention: u64,
    append: redis::Script,
    /// The tail reader, started with the first subscription.
    tail: OnceLock<broadcast::Sender<Arc<E>>>,
    _events: PhantomData<fn() -> E>,
}

impl<E> RedisBus<E> {
    /// Opens the log at `url` under the key prefix `prefix` (e.g.
    /// `confab:chat`), keeping about `retention` events.
    pub async fn open(url: &str, prefix: &str, retention: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(retention >= 1, "the event log must keep at least one event");
        let client = redis::Client::open(url)?;
        let mut conn = ConnectionManager::new(client.clone()).await?;
        let keys = Keys::new(prefix);
        let candidate = format!("{:016x}", rand::random::<u64>());
        let _: Option<String> = redis::cmd("SET")
            .arg(&keys.epoch)
            .arg(&candidate)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let epoch: String = conn.get(&keys.epoch).await?;
        Ok(Self {
            client,
            conn,
            keys,
            epoch,
            retention,
            append: redis::Script::new(APPEND),
            tail: OnceLock::new(),
            _events: PhantomData,
        })
    }

    /// The log's epoch (the same for every replica).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The `seq` of the newest event (0 when none was ever published).
    async fn last_seq(&self) -> redis::RedisResult<u64> {
        let seq: Option<u64> = self.conn.clone().get(&self.keys.seq).await?;
        Ok(seq.unwrap_or(0))
    }

    /// The `seq` of the oldest event the stream still holds.
    async fn first_seq(&self) -> redis::RedisResult<Option<u64>> {
        let first: redis::streams::StreamRangeReply = self
            .conn
            .clone()
            .xrange_count(&self.keys.stream, "-", "+", 1)
            .await?;
        Ok(first.ids.first().and_then(|e| seq_of(&e.id)))
    }

    /// Where a subscription starts (it reads what follows this `seq`) and
    /// whether that is where it asked to resume.
    async fn start(&self, resume: Option<Resume>) -> redis::RedisResult<(u64, bool)> {
        let live = self.last_seq().await?;
        let Some(r) = resume else {
            return Ok((live, true));
        };
        if r.epoch != self.epoch {
            return Ok((live, false));
        }
        if r.after_seq >= live {
            return Ok((live, true));
        }
        match self.first_seq().await? {
            Some(first) if first <= r.after_seq + 1 => Ok((r.after_seq, true)),
            _ => Ok((live, false)),
        }
    }
}

/// A connection for blocking reads: it waits longer than `BLOCK` for a
/// reply.
async fn reading_connection(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

impl<E: BusEvent + prost::Message + Default> RedisBus<E> {
    /// The tail's channel, its task started on first use (from the log's
    /// newest event on).
    fn tail(&self) -> broadcast::Receiver<Arc<E>> {
        self.tail
            .get_or_init(|| {
                let (tx, _) = broadcast::channel(TAIL_BUFFER);
                let tail = Tail {
                    client: self.client.clone(),
                    conn: self.conn.clone(),
                    keys: self.keys.clone(),
                    tx: tx.clone(),
                };
                tokio::spawn(tail.run());
                tx
            })
            .subscribe()
    }

    async fn publish_inner(&self, mut event: E) {
        event.set_seq(0);
        let bytes = event.encode_to_vec();
        let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
        let mut backoff = Duration::from_millis(50);
        loop {
            let appended: redis::RedisResult<u64> = self
                .append
                .key(&self.keys.stream)
                .key(&self.keys.seq)
                .arg(bytes.as_slice())
                .arg(self.retention)
                .invoke_async(&mut self.conn.clone())
                .await;
            match appended {
                Ok(_) => return,
                Err(e) if tokio::time::Instant::now() + backoff < deadline => {
                    tracing::warn!(error = %e, stream = %self.keys.stream, "event log unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    metrics::counter!("confab_event_log_publish_failures_total").increment(1);
                    tracing::error!(error = %e, stream = %self.keys.stream,
                        "event log unavailable: an event was not published (it is in the service's store)");
                    return;
                }
            }
        }
    }
}

impl<E: BusEvent + prost::Message + Default> EventBus<E> for RedisBus<E> {
    fn publish(&self, event: E) -> BoxFuture<'_, ()> {
        Box::pin(self.publish_inner(event))
    }

    fn subscribe(&self, resume: Option<Resume>) -> BoxFuture<'_, Subscription<E>> {
        Box::pin(async move {
            let epoch = self.epoch.clone();
            // The tail first: what it hands out from now on, the
            // subscription either takes from it or has already read.
            let tail = self.tail();
            let opened = async {
                let (after, resumed) = self.start(resume).await?;
                Ok::<_, redis::RedisError>((after, resumed))
            }
            .await;
            let (after, resumed) = match opened {
                Ok(opened) => opened,
                Err(e) => {
                    let ended = Ended::Unavailable(e.to_string());
                    return Subscription {
                        epoch,
                        resumed: false,
                        events: Box::pin(futures::stream::once(async move { Err(ended) })),
                    };
                }
            };
            let reader = Reader::<E> {
                client: self.client.clone(),
                conn: None,
                stream: self.keys.stream.clone(),
                after,
                pending: VecDeque::new(),
                tail,
                parked: None,
                catching_up: true,
            };
            let events = futures::stream::unfold(Some(reader), |reader| async move {
                let mut reader = reader?;
                match reader.next().await {
                    Ok(e) => Some((Ok(e), Some(reader))),
                    Err(ended) => Some((Err(ended), None)),
                }
            });
            Subscription {
                epoch,
                resumed,
                events: Box::pin(events),
            }
        })
    }
}

/// The replica's one reader of the log's tail (see the module doc).
struct Tail<E> {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    tx: broadcast::Sender<Arc<E>>,
}

impl<E: BusEvent + prost::Message + Default> Tail<E> {
    /// Follows the log for as long as a subscription may come: a Redis
    /// failure is retried (subscriptions wait meanwhile, then take what
    /// they missed from Redis, as after any gap).
    async fn run(mut self) {
        let mut after: Option<u64> = None;
        let mut conn: Option<MultiplexedConnection> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            let read = async {
                let from = match after {
                    Some(a) => a,
                    None => {
                        let seq: Option<u64> = self.conn.get(&self.keys.seq).await?;
                        seq.unwrap_or(0)
                    }
                };
                after = Some(from);
                if conn.is_none() {
                    conn = Some(reading_connection(&self.client).await?);
                }
                let c = conn.as_mut().expect("just connected");
                read_after(c, &self.keys.stream, from, true).await
            }
            .await;
            match read {
                Ok(entries) => {
                    backoff = Duration::from_millis(100);
                    for (seq, event) in entries {
                        after = Some(seq);
                        // No subscription is no error: nobody listens yet.
                        let _ = self.tx.send(Arc::new(event));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream = %self.keys.stream, "cannot read the event log; retrying");
                    conn = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Reads the events after `after` (blocking up to `BLOCK` for the first
/// when `block`), decoded, with their `seq` set. An entry that does not
/// decode is an error.
async fn read_after<E: BusEvent + prost::Message + Default>(
    conn: &mut MultiplexedConnection,
    stream: &str,
    after: u64,
    block: bool,
) -> redis::RedisResult<Vec<(u64, E)>> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(BATCH);
    if block {
        cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
    }
    let reply: Option<StreamReadReply> = cmd
        .arg("STREAMS")
        .arg(stream)
        .arg(format!("{after}-1"))
        .query_async(conn)
        .await?;
    let mut events = Vec::new();
    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
        let Some(seq) = seq_of(&entry.id) else {
            continue;
        };
        let bytes: Vec<u8> = match entry.map.get(FIELD) {
            Some(v) => redis::from_redis_value_ref(v)?,
            None => Vec::new(),
        };
        let mut event = E::decode(bytes.as_slice()).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "an event could not be read",
                e.to_string(),
            ))
        })?;
        event.set_seq(seq);
        events.push((seq, event));
    }
    Ok(events)
}

/// One subscription's place in the stream.
struct Reader<E> {
    client: redis::Client,
    /// Its own connection, opened when it must read from Redis itself.
    conn: Option<MultiplexedConnection>,
    stream: String,
    /// The `seq` of the last event handed out (or the start).
    after: u64,
    /// Read from Redis, not yet handed out.
    pending: VecDeque<E>,
    tail: broadcast::Receiver<Arc<E>>,
    /// A tail event that came before this subscription caught up to it.
    parked: Option<Arc<E>>,
    /// Whether it may still be behind what Redis holds (at its start):
    /// it reads from Redis until a read finds nothing more.
    catching_up: bool,
}

impl<E: BusEvent + prost::Message + Default> Reader<E> {
    async fn next(&mut self) -> Result<E, Ended> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if self.catching_up {
                // Whatever is published from here on reaches the tail,
                // which this subscription listened to before it started.
                self.catching_up = self.read_more().await? > 0;
                continue;
            }
            let event = match self.parked.take() {
                Some(e) => e,
                None => match self.tail.recv().await {
                    Ok(e) => e,
                    // The tail's buffer overflowed: the next event shows
                    // the gap, which is read from Redis.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Ended::Unavailable("the log's reader stopped".into()));
                    }
                },
            };
            let seq = event.seq();
            if seq <= self.after {
                continue;
            }
            if seq == self.after + 1 {
                self.after = seq;
                return Ok((*event).clone());
            }
            // Behind the tail: read what lies between from Redis. Nothing
            // after `after`, though the tail has a later event: what lay
            // between was trimmed.
            if self.read_more().await? == 0 {
                return Err(Ended::Behind);
            }
            self.parked = Some(event);
        }
    }

    /// Reads one batch after `after` from Redis into `pending` and says
    /// how many events it read; the log having moved past `after` ends the
    /// subscription.
    async fn read_more(&mut self) -> Result<usize, Ended> {
        let unavailable = |e: redis::RedisError| Ended::Unavailable(e.to_string());
        if self.conn.is_none() {
            self.conn = Some(
                reading_connection(&self.client)
                    .await
                    .map_err(unavailable)?,
            );
        }
        let conn = self.conn.as_mut().expect("just connected");
        let entries = read_after::<E>(conn, &self.stream, self.after, false)
            .await
            .map_err(unavailable)?;
        let read = entries.len();
        for (seq, event) in entries {
            if seq != self.after + 1 {
                // The log moved past this subscriber: what it did not
                // read is gone.
                return Err(Ended::Behind);
            }
            self.after = seq;
            self.pending.push_back(event);
        }
        Ok(read)
    }
}

/// The `seq` of a stream entry ID (`<seq>-1`).
fn seq_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_id_names_its_seq() {
        assert_eq!(seq_of("42-1"), Some(42));
        assert_eq!(seq_of("nonsense"), None);
    }

    #[test]
    fn keys_share_one_hash_slot() {
        let k = Keys::new("confab:chat");
        assert_eq!(k.stream, "{confab:chat}:events");
        assert!(k.seq.starts_with("{confab:chat}"));
        assert!(k.epoch.starts_with("{confab:chat}"));
    }
}
