//! New messages written together (group commit).
//!
//! Every `SendMessage` ends in one insert. When messages arrive together (a
//! burst into a busy room, many rooms at once) one statement per message
//! makes the last of a burst wait for all the others: on SQLite each
//! statement is a hand-off to sqlx's worker thread and back, on the one
//! connection every other statement waits for; on PostgreSQL each is a
//! round trip and a commit (a WAL flush) of its own.
//!
//! [`MessageWriter`] gives the inserts to one task, which takes every insert
//! waiting (up to [`MAX_BATCH`]) and writes them in one multi-row
//! `INSERT … RETURNING`: one statement, one commit, however many messages.
//! Each caller gets its own row back. If the statement fails (a unique-key
//! race on a client message id, a row the database refuses), the batch is
//! written again one row at a time, so an error reaches only the message it
//! belongs to.
//!
//! A message alone is written as before, at once: nothing waits to gather a
//! batch. A message whose caller stopped waiting before the writer reached
//! it (its request timed out) is dropped unwritten.
//!
//! The writer also publishes each stored message's event (when its caller
//! gives one): messages are announced in the order of the ids the database
//! gave them, however their callers' tasks are scheduled afterwards. A
//! caller hears back once its event is out.
//!
//! **On SQLite** one batch is written at a time (the one connection takes
//! one statement at a time anyway), and its events are published before the
//! next batch is taken: ids and announcements follow one order.
//!
//! **On PostgreSQL** one batch at a time would queue every insert behind one
//! round trip (slower than the pool running single inserts side by side),
//! so up to [`MAX_IN_FLIGHT`] batches are written at once, each on a
//! connection of the pool, while the next ones gather. Their ids come from
//! one sequence and may interleave: a batch sent later can get lower ids
//! than one still in flight. Events are published in id order *per
//! conversation* ([`Order`]): a stored message waits until no batch still in
//! flight can hold a lower id of its conversation. A batch's ids are all
//! above the highest id of every batch that came back before it was sent
//! (the sequence only grows), its *floor*; so a message is announced once
//! every batch in flight with its conversation has a floor at or above its
//! id. Publishing runs in a task of its own, fed in that order, so writing
//! goes on while events go out; a caller is answered after its event.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use confab_proto::bus::EventBus;
use confab_proto::v1::ChatEvent;
use sea_orm::{
    ActiveModelTrait, ActiveValue, DatabaseConnection, DbBackend, DbErr, EntityTrait, TryIntoModel,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::entity::message;

/// The most messages one statement writes.
pub const MAX_BATCH: usize = 64;

/// The most batches written at once on PostgreSQL (each holds one of the
/// pool's connections while in flight).
pub const MAX_IN_FLIGHT: usize = 4;

/// How many landed batches may wait for the publishing task before the
/// writer stops sending more (the bus's backpressure reaching the writer).
const PUBLISH_BACKLOG: usize = 64;

/// Builds the event that announces a stored message.
pub type Announce = Box<dyn FnOnce(&message::Model) -> ChatEvent + Send>;

type Reply = oneshot::Sender<Result<message::Model, DbErr>>;

/// An insert and what became of it.
type Written = (Pending, Result<message::Model, DbErr>);

/// One insert waiting for the writer.
struct Pending {
    row: message::ActiveModel,
    /// The row's conversation (to order its announcement among that
    /// conversation's).
    conversation_id: i64,
    announce: Option<Announce>,
    reply: Reply,
}

/// See the module documentation. Cheap to clone; the task starts with the
/// first insert and ends when the last clone is dropped.
#[derive(Clone)]
pub struct MessageWriter {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<ChatEvent>>,
    queue: Arc<OnceLock<mpsc::UnboundedSender<Pending>>>,
}

impl MessageWriter {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus<ChatEvent>>) -> Self {
        Self {
            db,
            bus,
            queue: Arc::new(OnceLock::new()),
        }
    }

    /// Inserts `row` (in the next statement the writer runs), publishes
    /// what `announce` makes of it, and returns it as stored.
    pub async fn insert(
        &self,
        row: message::ActiveModel,
        announce: Option<Announce>,
    ) -> Result<message::Model, DbErr> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let (db, bus) = (self.db.clone(), self.bus.clone());
            match db.get_database_backend() {
                DbBackend::Postgres => tokio::spawn(run_in_flight(db, bus, rx)),
                _ => tokio::spawn(run(db, bus, rx)),
            };
            tx
        });
        let conversation_id = match &row.conversation_id {
            ActiveValue::Set(id) | ActiveValue::Unchanged(id) => *id,
            ActiveValue::NotSet => 0,
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending {
                row,
                conversation_id,
                announce,
                reply,
            })
            .map_err(|_| DbErr::Custom("the message writer stopped".into()))?;
        answer
            .await
            .map_err(|_| DbErr::Custom("the message writer stopped".into()))?
    }
}

/// SQLite: one batch at a time, announced before the next is taken.
async fn run(
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<ChatEvent>>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for (p, result) in write(&db, std::mem::take(&mut batch)).await {
            stored_one(bus.as_ref(), p, result).await;
        }
    }
}

/// PostgreSQL: up to [`MAX_IN_FLIGHT`] batches at once, each a task of its
/// own; what they store is announced by [`announce_in_order`] in the order
/// [`Order`] releases it.
async fn run_in_flight(
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<ChatEvent>>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let (to_announce, announcing) = mpsc::channel(PUBLISH_BACKLOG);
    tokio::spawn(announce_in_order(bus, announcing));
    let mut order = Order::default();
    let mut flights: JoinSet<Vec<Written>> = JoinSet::new();
    // Which flight each task writes (a task that panicked says only its id).
    let mut flight_of: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    loop {
        tokio::select! {
            // A landed batch first: it frees a slot and may release events.
            biased;
            Some(landed) = flights.join_next_with_id(), if !flights.is_empty() => {
                let (task, written) = match landed {
                    Ok((task, written)) => (task, written),
                    // Its callers were answered by their dropped replies.
                    Err(e) => (e.id(), Vec::new()),
                };
                let Some(flight) = flight_of.remove(&task) else { continue };
                let release = order.landed(flight, written);
                if !release.is_empty() && to_announce.send(release).await.is_err() {
                    return;
                }
            }
            n = queue.recv_many(&mut batch, MAX_BATCH), if open && flights.len() < MAX_IN_FLIGHT => {
                if n == 0 {
                    open = false;
                    continue;
                }
                let mut rows = std::mem::take(&mut batch);
                rows.retain(|p| !p.reply.is_closed());
                if rows.is_empty() {
                    continue;
                }
                let flight = order.take_off(rows.iter().map(|p| p.conversation_id));
                let db = db.clone();
                let task = flights.spawn(async move { write(&db, rows).await });
                flight_of.insert(task.id(), flight);
            }
            else => return,
        }
    }
}

/// Publishes each released message's event (when it has one) and answers
/// its caller, in the order released.
async fn announce_in_order(
    bus: Arc<dyn EventBus<ChatEvent>>,
    mut released: mpsc::Receiver<Vec<(Pending, message::Model)>>,
) {
    while let Some(rows) = released.recv().await {
        for (p, row) in rows {
            stored_one(bus.as_ref(), p, Ok(row)).await;
        }
    }
}

/// Writes `batch` (its callers still waiting) and returns each with what
/// became of it, stored ones in id order.
async fn write(db: &DatabaseConnection, mut batch: Vec<Pending>) -> Vec<Written> {
    // A caller that stopped waiting (its request timed out: the sender was
    // told it failed) is not written: under overload the writer spends
    // itself on messages whose senders still wait, and a sender told
    // "failed" does not see its message delivered after all.
    batch.retain(|p| !p.reply.is_closed());
    if batch.len() > 1 {
        let rows: Vec<message::ActiveModel> = batch.iter().map(|p| p.row.clone()).collect();
        if let Ok(stored) = message::Entity::insert_many(rows)
            .exec_with_returning(db)
            .await
            && let Some(order) = match_rows(&batch, &stored)
        {
            let mut done: Vec<Written> = batch
                .into_iter()
                .zip(order)
                .map(|(p, i)| (p, Ok(stored[i].clone())))
                .collect();
            done.sort_by_key(|(_, row)| row.as_ref().map_or(0, |r| r.id));
            return done;
        }
    }
    let mut done = Vec::with_capacity(batch.len());
    for mut p in batch {
        let result = std::mem::take(&mut p.row).insert(db).await;
        done.push((p, result));
    }
    done
}

/// Announces a stored row (if it was stored and has an announcement) and
/// answers its caller.
async fn stored_one(
    bus: &dyn EventBus<ChatEvent>,
    p: Pending,
    result: Result<message::Model, DbErr>,
) {
    if let (Ok(row), Some(announce)) = (&result, p.announce) {
        bus.publish(announce(row)).await;
    }
    let _ = p.reply.send(result);
}

/// For each asked row, the index of the stored row that is it: matched by
/// what was written (two rows alike in every column are interchangeable),
/// in id order. `None` if some asked row has no stored match.
fn match_rows(asked: &[Pending], stored: &[message::Model]) -> Option<Vec<usize>> {
    let mut by_id: Vec<usize> = (0..stored.len()).collect();
    by_id.sort_by_key(|&i| stored[i].id);
    let mut taken = vec![false; stored.len()];
    let mut order = Vec::with_capacity(asked.len());
    for p in asked {
        let i = by_id
            .iter()
            .copied()
            .find(|&i| !taken[i] && same(&p.row, &stored[i]))?;
        taken[i] = true;
        order.push(i);
    }
    Some(order)
}

/// Whether `stored` is what `row` asked to write.
fn same(row: &message::ActiveModel, stored: &message::Model) -> bool {
    let mut asked = row.clone();
    asked.id = sea_orm::ActiveValue::Set(stored.id);
    asked.try_into_model().is_ok_and(|m| &m == stored)
}

/// The order of announcements with several batches in flight (PostgreSQL):
/// which stored messages may be announced, per conversation in id order.
#[derive(Default)]
struct Order {
    next_flight: u64,
    /// The highest id of every batch landed so far.
    high: i64,
    /// Batches in flight: their floor (every id they get is above it) and
    /// conversations.
    flying: HashMap<u64, (i64, Vec<i64>)>,
    /// Stored messages waiting for their turn, per conversation, by id.
    waiting: HashMap<i64, BTreeMap<i64, (Pending, message::Model)>>,
}

impl Order {
    /// A batch with rows of `conversations` is sent: its flight number.
    fn take_off(&mut self, conversations: impl Iterator<Item = i64>) -> u64 {
        let mut convs: Vec<i64> = conversations.collect();
        convs.sort_unstable();
        convs.dedup();
        let flight = self.next_flight;
        self.next_flight += 1;
        self.flying.insert(flight, (self.high, convs));
        flight
    }

    /// Batch `flight` came back with `written`: failures are answered at
    /// once; stored messages wait for their turn (one its caller announces,
    /// a reply, too, so that it comes after the lower ids). Returns the
    /// messages whose turn has come, in id order.
    fn landed(&mut self, flight: u64, written: Vec<Written>) -> Vec<(Pending, message::Model)> {
        let convs = self
            .flying
            .remove(&flight)
            .map(|(_, convs)| convs)
            .unwrap_or_default();
        for (p, result) in written {
            match result {
                Ok(row) => {
                    self.high = self.high.max(row.id);
                    self.waiting
                        .entry(row.conversation_id)
                        .or_default()
                        .insert(row.id, (p, row));
                }
                Err(e) => {
                    let _ = p.reply.send(Err(e));
                }
            }
        }
        let mut release = Vec::new();
        for conv in convs {
            // Every id a batch still in flight with this conversation can
            // get is above this.
            let bound = self
                .flying
                .values()
                .filter(|(_, cs)| cs.binary_search(&conv).is_ok())
                .map(|(floor, _)| *floor)
                .min()
                .unwrap_or(i64::MAX);
            let Some(queue) = self.waiting.get_mut(&conv) else {
                continue;
            };
            while let Some(entry) = queue.first_entry() {
                if *entry.key() > bound {
                    break;
                }
                release.push(entry.remove());
            }
            if queue.is_empty() {
                self.waiting.remove(&conv);
            }
        }
        release.sort_by_key(|(_, row)| row.id);
        release
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored message of conversation `conv` with id `id`, waiting for
    /// its turn, and the receiver its caller would hear on.
    fn stored(conv: i64, id: i64) -> (Written, oneshot::Receiver<Result<message::Model, DbErr>>) {
        let (reply, answer) = oneshot::channel();
        let row = message::Model {
            id,
            conversation_id: conv,
            sender_id: "u".into(),
            sender_name: String::new(),
            sender_username: String::new(),
            sender_avatar: String::new(),
            text: String::new(),
            attachments: "[]".into(),
            kind: "text".into(),
            reply_to_id: None,
            mentions: "[]".into(),
            client_message_id: None,
            created_at: 0,
            edited_at: None,
            deleted: false,
            recalled: false,
        };
        let announce: Announce = Box::new(|_| ChatEvent::default());
        let p = Pending {
            row: <message::ActiveModel as Default>::default(),
            conversation_id: conv,
            announce: Some(announce),
            reply,
        };
        ((p, Ok(row)), answer)
    }

    fn ids(release: &[(Pending, message::Model)]) -> Vec<i64> {
        release.iter().map(|(_, row)| row.id).collect()
    }

    #[test]
    fn a_conversation_is_announced_in_id_order_across_batches() {
        let mut order = Order::default();
        // Two batches of conversation 1 in flight, a third of conversation 2.
        let a = order.take_off([1].into_iter());
        let b = order.take_off([1, 3].into_iter());
        let c = order.take_off([2].into_iter());
        // The later one lands first with the lower ids: they wait, as the
        // first may hold lower ones still.
        let (b1, _) = stored(1, 10);
        let (b2, _) = stored(3, 11);
        // Conversation 3 has nothing else in flight: 11 goes out at once.
        assert_eq!(ids(&order.landed(b, vec![b1, b2])), [11]);
        let (c1, _) = stored(2, 12);
        assert_eq!(ids(&order.landed(c, vec![c1])), [12]);
        // A batch sent now gets ids above 12 (the highest landed so far).
        let d = order.take_off([1].into_iter());
        let (a1, _) = stored(1, 9);
        let (a2, _) = stored(1, 13);
        // 9 and 10 go; 13 waits for the batch sent after 12 landed.
        assert_eq!(ids(&order.landed(a, vec![a1, a2])), [9, 10]);
        let (d1, _) = stored(1, 14);
        assert_eq!(ids(&order.landed(d, vec![d1])), [13, 14]);
        assert!(order.waiting.is_empty() && order.flying.is_empty());
    }

    #[test]
    fn failures_are_answered_at_once_replies_in_their_turn() {
        let mut order = Order::default();
        let a = order.take_off([1].into_iter());
        let b = order.take_off([1].into_iter());
        let ((p, _), mut failed) = stored(1, 0);
        // A reply: its caller announces it once answered.
        let ((mut q, row), _) = stored(1, 5);
        q.announce = None;
        let (r, _) = stored(1, 6);
        let release = order.landed(
            b,
            vec![(p, Err(DbErr::Custom("refused".into()))), (q, row), r],
        );
        assert!(release.is_empty(), "5 and 6 wait for the batch in flight");
        assert!(failed.try_recv().expect("answered").is_err());
        assert_eq!(ids(&order.landed(a, Vec::new())), [5, 6]);
    }
}
