//! New messages written together (group commit), on SQLite.
//!
//! Every `SendMessage` ends in one insert. On SQLite each statement is a
//! hand-off to sqlx's worker thread and back, on the one connection that
//! every other statement waits for. (PostgreSQL's pool runs inserts side
//! by side instead; one writer there would queue them behind one round
//! trip at a time, so chat-service uses it on SQLite only.) When
//! messages arrive together (a burst into a busy room, many rooms at once)
//! they queued one insert at a time, and the last of a burst waited for all
//! the others.
//!
//! [`MessageWriter`] gives the inserts to one task, which takes every insert
//! waiting when it is free (up to [`MAX_BATCH`]) and writes them in one
//! multi-row `INSERT … RETURNING`: one statement, one hand-off, however
//! many messages. Each caller gets its own row back. If the statement fails
//! (a unique-key race on a client message id, say), the batch is written
//! again one row at a time, so an error reaches only the message it
//! belongs to.
//!
//! A message alone is written as before, at once: nothing waits to gather a
//! batch. A message whose caller stopped waiting before the writer reached
//! it (its request timed out) is dropped unwritten.
//!
//! The writer also publishes each stored message's event (when its caller
//! gives one), in the order of the ids the database gave: messages are
//! announced in the order they are stored, however their callers' tasks
//! are scheduled afterwards. A caller hears back once its event is out.

use std::sync::{Arc, OnceLock};

use confab_proto::bus::EventBus;
use confab_proto::v1::ChatEvent;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, TryIntoModel};
use tokio::sync::{mpsc, oneshot};

use crate::entity::message;

/// The most messages one statement writes.
pub const MAX_BATCH: usize = 64;

/// Builds the event that announces a stored message.
pub type Announce = Box<dyn FnOnce(&message::Model) -> ChatEvent + Send>;

type Reply = oneshot::Sender<Result<message::Model, DbErr>>;

/// One insert waiting for the writer.
struct Pending {
    row: message::ActiveModel,
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
            tokio::spawn(run(self.db.clone(), self.bus.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending {
                row,
                announce,
                reply,
            })
            .map_err(|_| DbErr::Custom("the message writer stopped".into()))?;
        answer
            .await
            .map_err(|_| DbErr::Custom("the message writer stopped".into()))?
    }
}

async fn run(
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<ChatEvent>>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write(&db, bus.as_ref(), std::mem::take(&mut batch)).await;
    }
}

/// Writes `batch`, announces what was stored in id order, and answers each
/// of its callers.
async fn write(db: &DatabaseConnection, bus: &dyn EventBus<ChatEvent>, mut batch: Vec<Pending>) {
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
            let mut done: Vec<(Pending, message::Model)> = batch
                .into_iter()
                .zip(order)
                .map(|(p, i)| (p, stored[i].clone()))
                .collect();
            done.sort_by_key(|(_, row)| row.id);
            for (p, row) in done {
                stored_one(bus, p, Ok(row)).await;
            }
            return;
        }
    }
    for mut p in batch {
        let result = std::mem::take(&mut p.row).insert(db).await;
        stored_one(bus, p, result).await;
    }
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
