//! Conversations and their member lists for the hot path: kept in memory
//! on SQLite ([`MemberCache`]), read together on PostgreSQL
//! ([`MemberReader`]).
//!
//! Every `SendMessage` needs its conversation and who is in it (to check
//! the sender and to address the event). Reading both from the database is
//! two statements per message; on SQLite each is also a hand-off to sqlx's
//! worker thread and back. [`MemberCache`] keeps them once read.
//!
//! It is only correct while this process makes every change to membership,
//! so [`crate::Chat`] uses it only on SQLite, whose file one chat-service
//! owns (PostgreSQL may have replicas writing beside it). Conversations are
//! never changed after creation; a member list is dropped from the cache
//! after every write to it ([`MemberCache::forget`]), and a read that
//! started before such a write never puts its stale result back: each
//! `forget` moves a generation counter on, and [`MemberCache::fill`] keeps a
//! result only if the generation it read under is still current.
//!
//! On PostgreSQL member lists are read each time, but not one statement per
//! message: [`MemberReader`] gathers every read waiting and reads their
//! conversations' members in one statement, up to [`MAX_READS`] such reads
//! at once. A read always starts after the request that waits for it
//! arrived (a request arriving during a read waits for the next one), so a
//! membership change any replica committed before a message was sent is
//! seen by it, as with a statement of its own. Only conversation rows are
//! kept in memory, as they never change once created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::entity::{conversation, member};

/// The most conversations kept; past it the cache starts over.
const CAPACITY: usize = 10_000;

/// A conversation and its member ids, in joining order.
#[derive(Debug)]
pub struct Members {
    pub conversation: conversation::Model,
    pub user_ids: Vec<String>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    map: HashMap<i64, Arc<Members>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct MemberCache {
    inner: Mutex<Inner>,
}

impl MemberCache {
    /// The cached members of conversation `id`, or the generation to pass
    /// to [`MemberCache::fill`] after reading them from the database.
    pub fn get(&self, id: i64) -> Result<Arc<Members>, u64> {
        let inner = self.inner.lock().expect("member cache lock");
        inner.map.get(&id).cloned().ok_or(inner.generation)
    }

    /// Keeps what was read under `generation`, unless a write came since.
    pub fn fill(&self, id: i64, generation: u64, members: Arc<Members>) {
        let mut inner = self.inner.lock().expect("member cache lock");
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= CAPACITY {
            inner.map.clear();
        }
        inner.map.insert(id, members);
    }

    /// Drops conversation `id` after a write to its members.
    pub fn forget(&self, id: i64) {
        let mut inner = self.inner.lock().expect("member cache lock");
        inner.generation += 1;
        inner.map.remove(&id);
    }
}

/// The most member reads at once on PostgreSQL (each holds one of the
/// pool's connections while it runs).
pub const MAX_READS: usize = 4;

/// The most requests one read answers.
const MAX_ASKS: usize = 256;

type Answer = Result<Option<Arc<Members>>, DbErr>;

/// A request for conversation `conversation_id` and its members.
struct Ask {
    conversation_id: i64,
    reply: oneshot::Sender<Answer>,
}

/// Conversations and their members read together (PostgreSQL); see the
/// module documentation. Cheap to clone; its task starts with the first
/// read and ends when the last clone is dropped.
#[derive(Clone)]
pub struct MemberReader {
    db: DatabaseConnection,
    queue: Arc<OnceLock<mpsc::UnboundedSender<Ask>>>,
    /// Conversation rows read so far (they never change).
    conversations: Arc<Mutex<HashMap<i64, conversation::Model>>>,
}

impl MemberReader {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            queue: Arc::new(OnceLock::new()),
            conversations: Arc::default(),
        }
    }

    /// Conversation `id` and its members as the database has them now (read
    /// after this call began), or `None` when there is no such conversation.
    pub async fn read(&self, id: i64) -> Answer {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run_reads(self.clone(), rx));
            tx
        });
        let stopped = || DbErr::Custom("the member reader stopped".into());
        let (reply, answer) = oneshot::channel();
        queue
            .send(Ask {
                conversation_id: id,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Reads the conversations `asks` name and their members, and answers
    /// each ask.
    async fn answer(&self, asks: Vec<Ask>) {
        let mut ids: Vec<i64> = asks.iter().map(|a| a.conversation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        match self.read_many(&ids).await {
            Ok(found) => {
                for ask in asks {
                    let _ = ask.reply.send(Ok(found.get(&ask.conversation_id).cloned()));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for ask in asks {
                    let _ = ask.reply.send(Err(DbErr::Custom(e.clone())));
                }
            }
        }
    }

    /// Conversations `ids` (those that exist), from the rows read before
    /// and one statement for the others.
    pub async fn conversations(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, conversation::Model>, DbErr> {
        self.read_conversations(ids).await?;
        let known = self.conversations.lock().expect("conversation rows lock");
        Ok(ids
            .iter()
            .filter_map(|id| Some((*id, known.get(id)?.clone())))
            .collect())
    }

    /// Reads those of conversations `ids` not read before.
    async fn read_conversations(&self, ids: &[i64]) -> Result<(), DbErr> {
        let missing: Vec<i64> = {
            let known = self.conversations.lock().expect("conversation rows lock");
            ids.iter()
                .copied()
                .filter(|id| !known.contains_key(id))
                .collect()
        };
        if !missing.is_empty() {
            let rows = conversation::Entity::find()
                .filter(conversation::Column::Id.is_in(missing))
                .all(&self.db)
                .await?;
            let mut known = self.conversations.lock().expect("conversation rows lock");
            if known.len() + rows.len() > CAPACITY {
                known.clear();
            }
            known.extend(rows.into_iter().map(|c| (c.id, c)));
        }
        Ok(())
    }

    /// Conversations `ids` (those that exist) with their member ids in
    /// joining order: one statement, two when some conversation row was
    /// not read before.
    async fn read_many(&self, ids: &[i64]) -> Result<HashMap<i64, Arc<Members>>, DbErr> {
        self.read_conversations(ids).await?;
        let rows: Vec<(i64, String)> = member::Entity::find()
            .select_only()
            .column(member::Column::ConversationId)
            .column(member::Column::UserId)
            .filter(member::Column::ConversationId.is_in(ids.iter().copied()))
            .order_by_asc(member::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut user_ids: HashMap<i64, Vec<String>> = HashMap::new();
        for (conv, user) in rows {
            user_ids.entry(conv).or_default().push(user);
        }
        let known = self.conversations.lock().expect("conversation rows lock");
        Ok(ids
            .iter()
            .filter_map(|id| {
                let conversation = known.get(id)?.clone();
                let user_ids = user_ids.remove(id).unwrap_or_default();
                Some((
                    *id,
                    Arc::new(Members {
                        conversation,
                        user_ids,
                    }),
                ))
            })
            .collect())
    }
}

/// Takes every ask waiting and reads for them together, up to
/// [`MAX_READS`] reads at once.
async fn run_reads(reader: MemberReader, mut queue: mpsc::UnboundedReceiver<Ask>) {
    // The task holds a clone, so it would keep itself alive: it keeps what
    // it needs instead and ends when every other clone is dropped.
    let reader = MemberReader {
        queue: Arc::new(OnceLock::new()),
        ..reader
    };
    let mut reads = JoinSet::new();
    let mut asks = Vec::with_capacity(MAX_ASKS);
    loop {
        tokio::select! {
            biased;
            Some(_) = reads.join_next(), if !reads.is_empty() => {}
            n = queue.recv_many(&mut asks, MAX_ASKS), if reads.len() < MAX_READS => {
                if n == 0 {
                    break;
                }
                let (reader, asks) = (reader.clone(), std::mem::take(&mut asks));
                reads.spawn(async move { reader.answer(asks).await });
            }
        }
    }
    while reads.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Arc<Members> {
        Arc::new(Members {
            conversation: conversation::Model {
                id: 1,
                kind: "group".into(),
                name: String::new(),
                created_by: "a".into(),
                created_at: 0,
                direct_key: None,
            },
            user_ids: ids.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn a_read_from_before_a_write_is_not_kept() {
        let cache = MemberCache::default();
        let generation = cache.get(1).expect_err("empty");
        // A member is removed while the read is in flight…
        cache.forget(1);
        // …so what the read saw (with them) is not kept.
        cache.fill(1, generation, members(&["a", "b"]));
        assert!(cache.get(1).is_err());

        let generation = cache.get(1).expect_err("still empty");
        cache.fill(1, generation, members(&["a"]));
        assert_eq!(cache.get(1).expect("kept").user_ids, ["a"]);
        cache.forget(1);
        assert!(cache.get(1).is_err());
    }
}
