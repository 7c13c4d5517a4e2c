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
//! * **Reading.** Each subscription reads with `XREAD BLOCK` on a
//!   connection of its own (a blocking read would hold up a shared one).
//!
//! Unlike [`LocalBus`](confab_proto::bus::LocalBus) it never holds
//! publishers back for a slow subscriber: the retention is the bound.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use confab_proto::bus::{BusEvent, Ended, EventBus, Resume, Subscription};
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::StreamReadReply;

/// How many events the log keeps by default (`CONFAB_EVENT_LOG_RETENTION`).
pub const DEFAULT_RETENTION: u64 = 100_000;

/// How long one blocking read waits before it asks again.
const BLOCK: Duration = Duration::from_secs(5);

/// How many events one read takes at most.
const BATCH: usize = 512;

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

impl<E: BusEvent + prost::Message + Default> RedisBus<E> {
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
            let opened = async {
                let (after, resumed) = self.start(resume).await?;
                // A blocking read answers after up to `BLOCK`: its
                // connection must wait longer than that for a reply.
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok::<_, redis::RedisError>((after, resumed, conn))
            }
            .await;
            let (after, resumed, conn) = match opened {
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
                conn,
                stream: self.keys.stream.clone(),
                after,
                pending: VecDeque::new(),
                _events: PhantomData,
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

/// One subscription's place in the stream.
struct Reader<E> {
    conn: MultiplexedConnection,
    stream: String,
    /// The `seq` of the last event handed out (or the start).
    after: u64,
    pending: VecDeque<E>,
    _events: PhantomData<fn() -> E>,
}

impl<E: BusEvent + prost::Message + Default> Reader<E> {
    async fn next(&mut self) -> Result<E, Ended> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let reply: Option<StreamReadReply> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(format!("{}-1", self.after))
                .query_async(&mut self.conn)
                .await
                .map_err(|e| Ended::Unavailable(e.to_string()))?;
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                let Some(seq) = seq_of(&entry.id) else {
                    continue;
                };
                if seq != self.after + 1 {
                    // The log moved past this subscriber: what it did not
                    // read is gone.
                    return Err(Ended::Behind);
                }
                let bytes: Vec<u8> = match entry.map.get(FIELD) {
                    Some(v) => redis::from_redis_value_ref(v)
                        .map_err(|e| Ended::Unavailable(e.to_string()))?,
                    None => Vec::new(),
                };
                let mut event = E::decode(bytes.as_slice())
                    .map_err(|e| Ended::Unavailable(format!("an event could not be read: {e}")))?;
                event.set_seq(seq);
                self.after = seq;
                self.pending.push_back(event);
            }
        }
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
