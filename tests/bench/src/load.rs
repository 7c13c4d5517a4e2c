//! The building blocks every scenario shares: connecting a crowd of clients
//! a bounded number at a time ([`connect_many`]), a conversation room whose
//! members all joined ([`Room::open`]), and one paced step of sending
//! ([`run_step`]) whose deliveries a [`Recorder`] times.
//!
//! Each message's text is `b|<step>|<seq>|<sent µs>`, the send time on the
//! generator's own clock ([`crate::clock`]), so a receiver in the same
//! process knows the end-to-end latency, and a delivery from an earlier step
//! that arrives late is never counted in a later one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::client::{self, Handle, OnEvent};
use crate::clock::now_us;
use crate::servers::Server;
use crate::stats::{Percentiles, percentiles};

/// The namespace every scenario uses.
pub const NS: &str = "/raven";

/// The outcome of connecting a crowd.
pub struct Crowd {
    /// Connected clients, in the order of the users asked for (failed ones left out).
    pub handles: Vec<Arc<Handle>>,
    /// Time of each successful connect (TCP + upgrade + namespace with JWT), µs.
    pub connect_us: Vec<u64>,
    pub failures: usize,
    pub first_error: Option<String>,
    /// From the first connect started to the last one finished.
    pub wall: Duration,
}

/// Connects one client per user to namespace `ns`, at most `concurrency` at a time, client `i`
/// from source address `source_offset + i`. `on_event(i)` makes client `i`'s
/// event callback.
pub async fn connect_many(
    server: &Server,
    ns: &str,
    users: &[String],
    concurrency: usize,
    source_offset: usize,
    on_event: impl Fn(usize) -> OnEvent,
) -> Crowd {
    connect_many_to(
        server,
        None,
        ns,
        users,
        concurrency,
        source_offset,
        on_event,
    )
    .await
}

/// [`connect_many`], every client to edge `edge` (an index into
/// `server.edges`) when given, else spread over the edges.
pub async fn connect_many_to(
    server: &Server,
    edge: Option<usize>,
    ns: &str,
    users: &[String],
    concurrency: usize,
    source_offset: usize,
    on_event: impl Fn(usize) -> OnEvent,
) -> Crowd {
    // Tokens are signed before the clock starts: the storm times the server.
    let tokens: Vec<String> = users.iter().map(|u| server.token(u)).collect();
    let started = Instant::now();
    let mut results: Vec<(usize, anyhow::Result<(client::Session, u64)>)> =
        futures::stream::iter(tokens.into_iter().enumerate())
            .map(|(i, token)| async move {
                let t0 = Instant::now();
                let src = client::source_ip(source_offset + i);
                let addr = server.edge_for(edge.unwrap_or(source_offset + i));
                let r = client::connect(addr, src, ns, &token).await;
                (i, r.map(|s| (s, t0.elapsed().as_micros() as u64)))
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let wall = started.elapsed();
    results.sort_by_key(|(i, _)| *i);
    let mut crowd = Crowd {
        handles: Vec::with_capacity(results.len()),
        connect_us: Vec::with_capacity(results.len()),
        failures: 0,
        first_error: None,
        wall,
    };
    for (i, r) in results {
        match r {
            Ok((session, us)) => {
                crowd.connect_us.push(us);
                crowd.handles.push(Arc::new(session.spawn(on_event(i))));
            }
            Err(e) => {
                crowd.failures += 1;
                crowd.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    crowd
}

/// Deliveries seen by a step.
#[derive(Default)]
struct StepLog {
    latency_us: Vec<u64>,
    last_at_us: u64,
}

/// Times every arrival of one event (`new_message` unless told) whose
/// payload carries a `"b|<step>|<seq>|<sent µs>` marker, per step; counts
/// `error`s.
pub struct Recorder {
    event: &'static str,
    steps: Mutex<HashMap<u32, StepLog>>,
    pub errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new("new_message")
    }
}

impl Recorder {
    /// A recorder timing `event`.
    pub fn new(event: &'static str) -> Recorder {
        Recorder {
            event,
            steps: Mutex::default(),
            errors: AtomicU64::new(0),
            first_error: Mutex::default(),
        }
    }

    /// An event callback feeding this recorder.
    pub fn callback(self: &Arc<Self>) -> OnEvent {
        let me = self.clone();
        Box::new(move |data| me.on_event(data))
    }

    fn on_event(&self, data: &str) {
        let now = now_us();
        match crate::sio::event_name(data) {
            Some(name) if name == self.event => {
                let Some((step, sent)) = parse_marker(data) else {
                    return;
                };
                let mut steps = self.steps.lock().expect("recorder lock");
                let log = steps.entry(step).or_default();
                log.latency_us.push(now.saturating_sub(sent));
                log.last_at_us = log.last_at_us.max(now);
            }
            Some("error") => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().expect("recorder lock");
                first.get_or_insert_with(|| data.chars().take(300).collect());
            }
            _ => {}
        }
    }

    fn received(&self, step: u32) -> u64 {
        let steps = self.steps.lock().expect("recorder lock");
        steps.get(&step).map_or(0, |l| l.latency_us.len() as u64)
    }

    fn take(&self, step: u32) -> StepLog {
        let mut steps = self.steps.lock().expect("recorder lock");
        steps.remove(&step).unwrap_or_default()
    }
}

/// `(step, sent µs)` from the first string in an event's payload that
/// starts with our marker `b|<step>|<seq>|<sent µs>` (a message's text, a
/// candidate, a notification's content; anything may follow the digits).
fn parse_marker(data: &str) -> Option<(u32, u64)> {
    let start = data.find("\"b|")? + "\"b|".len();
    let rest = &data[start..];
    let text = &rest[..rest.find('"')?];
    let mut parts = text.split('|');
    let step = parts.next()?.parse().ok()?;
    let _seq = parts.next()?;
    let sent = parts.next()?;
    let digits = sent.bytes().take_while(u8::is_ascii_digit).count();
    Some((step, sent[..digits].parse().ok()?))
}

/// A conversation whose members are all connected and joined; member 0 sends.
pub struct Room {
    pub conversation_id: String,
    pub members: Vec<Arc<Handle>>,
    /// Connect time of each member, µs.
    pub connect_us: Vec<u64>,
    /// `join_conversation` → ack time of each member, µs.
    pub join_us: Vec<u64>,
}

impl Room {
    /// Creates a conversation of `size` users named `<prefix>-<i>`, connects
    /// them (100 at a time) and joins every one to it.
    pub async fn open(
        server: &Server,
        prefix: &str,
        size: usize,
        source_offset: usize,
        recorder: &Arc<Recorder>,
    ) -> anyhow::Result<Room> {
        Self::open_on(server, None, prefix, size, source_offset, recorder).await
    }

    /// [`Room::open`] with every member on edge `edge` when given.
    pub async fn open_on(
        server: &Server,
        edge: Option<usize>,
        prefix: &str,
        size: usize,
        source_offset: usize,
        recorder: &Arc<Recorder>,
    ) -> anyhow::Result<Room> {
        let users: Vec<String> = (0..size).map(|i| format!("{prefix}-{i}")).collect();
        let conversation_id = server.create_conversation(&users).await?;
        let crowd = connect_many_to(server, edge, NS, &users, 100, source_offset, |_| {
            recorder.callback()
        })
        .await;
        if crowd.failures > 0 {
            anyhow::bail!(
                "{} of {size} members could not connect: {}",
                crowd.failures,
                crowd.first_error.unwrap_or_default()
            );
        }
        let join = json!({ "conversation_id": conversation_id });
        let joins: Vec<anyhow::Result<u64>> = futures::stream::iter(crowd.handles.iter())
            .map(|h| {
                let join = &join;
                async move {
                    let t0 = Instant::now();
                    let ack = h.request("join_conversation", join).await?;
                    anyhow::ensure!(ack.contains("\"success\":true"), "join refused: {ack}");
                    Ok(t0.elapsed().as_micros() as u64)
                }
            })
            .buffer_unordered(100)
            .collect()
            .await;
        let join_us = joins.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Room {
            conversation_id,
            members: crowd.handles,
            connect_us: crowd.connect_us,
            join_us,
        })
    }
}

/// What one step of sending measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepResult {
    /// Messages per second each room's sender offered.
    pub rate_per_room: f64,
    pub messages: u64,
    /// Deliveries offered per second (messages × members ÷ send time).
    pub offered_per_s: f64,
    pub expected: u64,
    pub delivered: u64,
    /// Deliveries that never arrived within the grace period.
    pub lost: u64,
    /// Deliveries per second achieved (delivered ÷ time to the last one).
    pub delivered_per_s: f64,
    /// Send → `new_message` at every member, the sender included.
    pub latency: Percentiles,
    /// Send → ack at the sender (only when asked for).
    pub ack: Option<Percentiles>,
    /// `error` events during the step.
    pub errors: u64,
}

/// When a paced step started and what it sent.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Sends per second of each sender.
    pub rate: f64,
    /// Senders.
    pub units: usize,
    /// Sends of each sender.
    pub per_unit: u64,
    /// When the first send went out, on the generator's clock ([`crate::clock`]).
    pub start_us: u64,
    /// From the first send to the last.
    pub send_time: Duration,
}

impl Timing {
    /// One send at `start` (a publish) to be collected with [`finish_step`].
    pub fn single(start: Instant, start_us: u64) -> Timing {
        Timing {
            rate: 1.0,
            units: 1,
            per_unit: 1,
            start_us,
            send_time: start.elapsed().max(Duration::from_millis(1)),
        }
    }

    /// Sends in all.
    pub fn messages(&self) -> u64 {
        self.per_unit * self.units as u64
    }
}

/// Calls `send(unit, seq)` for each of `units` senders `rate` times a
/// second for `duration`, on a 1 ms tick (sends that fell due since the
/// last tick go out together).
pub async fn paced(
    units: usize,
    rate: f64,
    duration: Duration,
    mut send: impl FnMut(usize, u64),
) -> Timing {
    let per_unit = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now();
    let start_us = now_us();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while sent < per_unit {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(per_unit);
        for seq in sent..due {
            for unit in 0..units {
                send(unit, seq);
            }
        }
        sent = due;
    }
    Timing {
        rate,
        units,
        per_unit,
        start_us,
        send_time: start.elapsed().max(Duration::from_millis(1)),
    }
}

/// Acks a step's senders asked for: their tasks, and the times they record.
#[derive(Default)]
pub struct Acks {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    pub times_us: Arc<Mutex<Vec<u64>>>,
}

/// Waits up to `grace` for the `expected` deliveries of `step` (and for the
/// acks), then reports what arrived.
pub async fn finish_step(
    recorder: &Recorder,
    step: u32,
    timing: Timing,
    expected: u64,
    grace: Duration,
    acks: Option<Acks>,
) -> StepResult {
    let deadline = Instant::now() + grace;
    while recorder.received(step) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ack = match acks {
        Some(acks) => {
            for t in acks.tasks {
                let _ = t.await;
            }
            Some(percentiles(&mut acks.times_us.lock().expect("acks lock")))
        }
        None => None,
    };
    let mut log = recorder.take(step);
    let delivered = (log.latency_us.len() as u64).min(expected);
    let span_us = log
        .last_at_us
        .saturating_sub(timing.start_us)
        .max(timing.send_time.as_micros() as u64)
        .max(1);
    StepResult {
        rate_per_room: timing.rate,
        messages: timing.messages(),
        offered_per_s: expected as f64 / timing.send_time.as_secs_f64(),
        expected,
        delivered,
        lost: expected - delivered,
        delivered_per_s: delivered as f64 / (span_us as f64 / 1e6),
        latency: percentiles(&mut log.latency_us),
        ack,
        errors: recorder.errors.load(Ordering::Relaxed),
    }
}

/// Each room's sender sends `rate` messages a second for `duration`, then
/// the step waits up to `grace` for every delivery.
pub async fn run_step(
    rooms: &[Room],
    rate: f64,
    duration: Duration,
    grace: Duration,
    step: u32,
    recorder: &Arc<Recorder>,
    with_ack: bool,
) -> StepResult {
    let errors_before = recorder.errors.load(Ordering::Relaxed);
    let mut acks = Acks::default();
    let timing = paced(rooms.len(), rate, duration, |r, seq| {
        let room = &rooms[r];
        let text = format!("b|{step}|{seq}|{}", now_us());
        let data = json!({ "conversation_id": room.conversation_id, "text": text });
        let sender = room.members[0].clone();
        if with_ack {
            let times = acks.times_us.clone();
            acks.tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                if sender.request("send_message", &data).await.is_ok() {
                    let us = t0.elapsed().as_micros() as u64;
                    times.lock().expect("acks lock").push(us);
                }
            }));
        } else {
            sender.emit("send_message", &data);
        }
    })
    .await;
    let expected: u64 = rooms
        .iter()
        .map(|r| timing.per_unit * r.members.len() as u64)
        .sum();
    let mut result = finish_step(
        recorder,
        step,
        timing,
        expected,
        grace,
        with_ack.then_some(acks),
    )
    .await;
    result.errors -= errors_before;
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_send_time_back_from_a_new_message() {
        let data = r#"["new_message",{"id":"1","text":"b|3|17|123456","createdAt":"x"}]"#;
        assert_eq!(super::parse_marker(data), Some((3, 123456)));
        let data = r#"["new_notification",{"id":7,"content":"b|2|0|99 liked your post"}]"#;
        assert_eq!(super::parse_marker(data), Some((2, 99)));
    }
}
