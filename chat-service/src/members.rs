//! Conversations and their member lists, kept in memory for the hot path.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::entity::conversation;

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
