//! The chat domain: every rule about conversations, members and messages.
//!
//! [`Chat`] takes canonical requests, checks them (validation, membership,
//! authorship), stores the result and publishes one [`ChatEvent`] per change
//! on the bus. The gRPC layer in `grpc.rs` only forwards to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use confab_kit::{db_err, now_ms, page};
use confab_proto::bus::EventBus;
use confab_proto::v1::{self, Audience, ChatEvent, ConversationKind, chat_event::Kind};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr, TransactionTrait,
};

use crate::entity::{conversation, delivery, member, message, reaction};
use crate::members::{MemberCache, Members};
use crate::rate::RateLimit;
use crate::writer::{Announce, MessageWriter};

pub use confab_proto::limits::{MAX_TEXT_BYTES, check_text};
/// The most attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 20;
/// The most members a conversation may be created with.
pub const MAX_MEMBERS: usize = 1000;
/// The most messages one `RecordDeliveries` call may carry.
pub const MAX_DELIVERY_BATCH: usize = 1000;

type Result<T> = std::result::Result<T, ServiceError>;

/// The chat domain over one database and one event bus.
#[derive(Clone)]
pub struct Chat {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<ChatEvent>>,
    /// Member lists in memory, on SQLite only (see [`crate::members`]).
    members: Option<Arc<MemberCache>>,
    /// Messages per user and second ([`crate::rate`]).
    rate: Arc<RateLimit>,
    /// New messages' inserts, written together ([`crate::writer`]), on
    /// SQLite only: its one connection takes one statement at a time, where
    /// PostgreSQL's pool runs inserts side by side.
    writer: Option<MessageWriter>,
}

fn parse_id(s: &str, what: &str) -> Result<i64> {
    ids::parse(s).ok_or_else(|| {
        ServiceError::invalid(format!("{what} must be a positive integer id, got {s:?}"))
    })
}

fn actor(a: &Option<v1::Actor>) -> Result<&v1::Actor> {
    match a {
        Some(a) if !a.id.trim().is_empty() => Ok(a),
        _ => Err(ServiceError::invalid("actor.id is required")),
    }
}

fn check_user_id(u: &str) -> Result<()> {
    if u.trim().is_empty() || u.len() > 128 {
        return Err(ServiceError::invalid("user ids must be 1..=128 characters"));
    }
    Ok(())
}

impl Chat {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus<ChatEvent>>) -> Self {
        let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        let members = sqlite.then(|| Arc::new(MemberCache::default()));
        Self {
            writer: sqlite.then(|| MessageWriter::new(db.clone(), bus.clone())),
            db,
            bus,
            members,
            rate: Arc::new(RateLimit::local(crate::rate::DEFAULT_LIMIT)),
        }
    }

    /// The same, with another message rate limit (its number, or its windows
    /// in Redis).
    pub fn with_rate_limit(mut self, rate: RateLimit) -> Self {
        self.rate = Arc::new(rate);
        self
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<ChatEvent> {
        self.bus.as_ref()
    }

    async fn publish(&self, conv: &conversation::Model, members: Vec<String>, kind: Kind) {
        self.publish_from(conv, members, String::new(), kind).await;
    }

    /// Publishes an event caused by a request that named its `origin`.
    async fn publish_from(
        &self,
        conv: &conversation::Model,
        members: Vec<String>,
        origin: String,
        kind: Kind,
    ) {
        self.bus.publish(event(conv, members, origin, kind)).await;
    }

    // ---- conversations -------------------------------------------------

    pub async fn create_conversation(
        &self,
        req: v1::CreateConversationRequest,
    ) -> Result<v1::Conversation> {
        let actor = actor(&req.actor)?;
        let mut others: Vec<String> = Vec::new();
        for m in req.member_ids {
            check_user_id(&m)?;
            if m != actor.id && !others.contains(&m) {
                others.push(m);
            }
        }
        if others.len() + 1 > MAX_MEMBERS {
            return Err(ServiceError::invalid(format!(
                "a conversation has at most {MAX_MEMBERS} members"
            )));
        }
        if req.name.len() > 200 {
            return Err(ServiceError::invalid("name is at most 200 bytes"));
        }
        let kind = match ConversationKind::try_from(req.kind).unwrap_or_default() {
            ConversationKind::Direct => ConversationKind::Direct,
            ConversationKind::Group => ConversationKind::Group,
            ConversationKind::Unspecified if others.len() == 1 && req.name.is_empty() => {
                ConversationKind::Direct
            }
            ConversationKind::Unspecified => ConversationKind::Group,
        };
        let direct_key = if kind == ConversationKind::Direct {
            if others.len() != 1 {
                return Err(ServiceError::invalid(
                    "a direct conversation has exactly one other member",
                ));
            }
            let mut pair = [actor.id.clone(), others[0].clone()];
            pair.sort();
            let key = pair.join(" ");
            if let Some(existing) = conversation::Entity::find()
                .filter(conversation::Column::DirectKey.eq(key.clone()))
                .one(&self.db)
                .await
                .map_err(db_err)?
            {
                return self.load_conversation(existing).await;
            }
            Some(key)
        } else {
            None
        };
        let now = now_ms();
        // The conversation and its members appear together or not at all, so
        // a concurrent find-or-create never sees a conversation without members.
        let txn = self.db.begin().await.map_err(db_err)?;
        let inserted = conversation::ActiveModel {
            kind: Set(if kind == ConversationKind::Direct {
                "direct"
            } else {
                "group"
            }
            .into()),
            name: Set(req.name.trim().to_string()),
            created_by: Set(actor.id.clone()),
            created_at: Set(now),
            direct_key: Set(direct_key.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        let conv = match inserted {
            Ok(c) => c,
            // Two concurrent find-or-creates of the same direct conversation:
            // the other one committed first.
            Err(e)
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                    && direct_key.is_some() =>
            {
                txn.rollback().await.map_err(db_err)?;
                let existing = conversation::Entity::find()
                    .filter(conversation::Column::DirectKey.eq(direct_key))
                    .one(&self.db)
                    .await
                    .map_err(db_err)?
                    .ok_or_else(|| ServiceError::internal("direct conversation vanished"))?;
                return self.load_conversation(existing).await;
            }
            Err(e) => return Err(db_err(e)),
        };
        let rows = std::iter::once((actor.id.clone(), "owner"))
            .chain(others.iter().map(|u| (u.clone(), "member")))
            .map(|(user_id, role)| member::ActiveModel {
                conversation_id: Set(conv.id),
                user_id: Set(user_id),
                role: Set(role.into()),
                joined_at: Set(now),
                last_read_message_id: Set(0),
                ..Default::default()
            });
        member::Entity::insert_many(rows)
            .exec(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        let out = self.load_conversation(conv.clone()).await?;
        self.publish(
            &conv,
            member_ids(&out),
            Kind::ConversationCreated(out.clone()),
        )
        .await;
        Ok(out)
    }

    pub async fn get_conversation(
        &self,
        req: v1::GetConversationRequest,
    ) -> Result<v1::Conversation> {
        let actor = actor(&req.actor)?;
        let id = parse_id(&req.conversation_id, "conversation_id")?;
        let (conv, _) = self.require_member(id, &actor.id).await?;
        let mut out = self.load_conversation(conv).await?;
        out.last_message = self.last_message(id).await?;
        Ok(out)
    }

    pub async fn list_conversations(
        &self,
        req: v1::ListConversationsRequest,
    ) -> Result<v1::ListConversationsResponse> {
        let actor = actor(&req.actor)?;
        let mine = member::Entity::find()
            .filter(member::Column::UserId.eq(actor.id.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let conv_ids: Vec<i64> = mine.iter().map(|m| m.conversation_id).collect();
        let convs = conversation::Entity::find()
            .filter(conversation::Column::Id.is_in(conv_ids.clone()))
            .order_by_desc(conversation::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        // Four queries whatever the number of conversations: members, the
        // newest message id of each, those messages, and their details.
        let mut members: HashMap<i64, Vec<member::Model>> = HashMap::new();
        for m in member::Entity::find()
            .filter(member::Column::ConversationId.is_in(conv_ids.clone()))
            .order_by_asc(member::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?
        {
            members.entry(m.conversation_id).or_default().push(m);
        }
        let newest: Vec<i64> = message::Entity::find()
            .select_only()
            .column_as(message::Column::Id.max(), "newest")
            .filter(message::Column::ConversationId.is_in(conv_ids))
            .group_by(message::Column::ConversationId)
            .into_tuple::<i64>()
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let rows = message::Entity::find()
            .filter(message::Column::Id.is_in(newest))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let mut last: HashMap<String, v1::ChatMessage> = self
            .render_many(rows)
            .await?
            .into_iter()
            .map(|m| (m.conversation_id.clone(), m))
            .collect();
        let mut out: Vec<v1::Conversation> = convs
            .into_iter()
            .map(|c| {
                let of_c = members.remove(&c.id).unwrap_or_default();
                let mut conv = conversation_proto(c, of_c);
                conv.last_message = last.remove(&conv.id);
                conv
            })
            .collect();
        // Most recently active first.
        out.sort_by_key(|c| {
            std::cmp::Reverse(
                c.last_message
                    .as_ref()
                    .map(|m| m.created_at_ms)
                    .unwrap_or(c.created_at_ms),
            )
        });
        Ok(v1::ListConversationsResponse { conversations: out })
    }

    pub async fn add_members(&self, req: v1::AddMembersRequest) -> Result<v1::Conversation> {
        let actor = actor(&req.actor)?;
        let id = parse_id(&req.conversation_id, "conversation_id")?;
        let (conv, _) = self.require_member(id, &actor.id).await?;
        if conv.kind == "direct" {
            return Err(ServiceError::new(
                ErrorCode::PermissionDenied,
                "members cannot be added to a direct conversation",
            ));
        }
        let existing = self.member_ids_of(id).await?;
        let mut added = Vec::new();
        for u in req.user_ids {
            check_user_id(&u)?;
            if !existing.contains(&u) && !added.contains(&u) {
                added.push(u);
            }
        }
        if existing.len() + added.len() > MAX_MEMBERS {
            return Err(ServiceError::invalid(format!(
                "a conversation has at most {MAX_MEMBERS} members"
            )));
        }
        if !added.is_empty() {
            let now = now_ms();
            member::Entity::insert_many(added.iter().map(|u| member::ActiveModel {
                conversation_id: Set(id),
                user_id: Set(u.clone()),
                role: Set("member".into()),
                joined_at: Set(now),
                last_read_message_id: Set(0),
                ..Default::default()
            }))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
            self.forget_members(id);
        }
        let out = self.load_conversation(conv.clone()).await?;
        if !added.is_empty() {
            self.publish(
                &conv,
                member_ids(&out),
                Kind::MembersChanged(v1::MembersChange {
                    conversation: Some(out.clone()),
                    added_user_ids: added,
                    removed_user_ids: vec![],
                    actor_id: actor.id.clone(),
                }),
            )
            .await;
        }
        Ok(out)
    }

    pub async fn remove_member(&self, req: v1::RemoveMemberRequest) -> Result<v1::Conversation> {
        let actor = actor(&req.actor)?;
        let id = parse_id(&req.conversation_id, "conversation_id")?;
        let (conv, me) = self.require_member(id, &actor.id).await?;
        if req.user_id != actor.id && me.role != "owner" {
            return Err(ServiceError::new(
                ErrorCode::PermissionDenied,
                "only the owner may remove other members",
            ));
        }
        let before = self.member_ids_of(id).await?;
        if !before.contains(&req.user_id) {
            return Err(ServiceError::new(
                ErrorCode::NotAMember,
                "that user is not a member",
            ));
        }
        member::Entity::delete_many()
            .filter(member::Column::ConversationId.eq(id))
            .filter(member::Column::UserId.eq(req.user_id.clone()))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        self.forget_members(id);
        let out = self.load_conversation(conv.clone()).await?;
        // The removed user hears of it too.
        self.publish(
            &conv,
            before,
            Kind::MembersChanged(v1::MembersChange {
                conversation: Some(out.clone()),
                added_user_ids: vec![],
                removed_user_ids: vec![req.user_id],
                actor_id: actor.id.clone(),
            }),
        )
        .await;
        Ok(out)
    }

    pub async fn list_peers(&self, req: v1::ListPeersRequest) -> Result<v1::ListPeersResponse> {
        check_user_id(&req.user_id)?;
        // One statement: it runs at every socket's handshake.
        let mine = Query::select()
            .column(member::Column::ConversationId)
            .from(member::Entity)
            .and_where(member::Column::UserId.eq(req.user_id.clone()))
            .to_owned();
        let mut user_ids: Vec<String> = member::Entity::find()
            .select_only()
            .column(member::Column::UserId)
            .distinct()
            .filter(member::Column::ConversationId.in_subquery(mine))
            .filter(member::Column::UserId.ne(req.user_id))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_err)?;
        user_ids.sort();
        Ok(v1::ListPeersResponse { user_ids })
    }

    pub async fn check_membership(
        &self,
        req: v1::CheckMembershipRequest,
    ) -> Result<v1::Membership> {
        let id = parse_id(&req.conversation_id, "conversation_id")?;
        // Runs at every room join: the conversation comes from the member
        // cache where there is one (SQLite), the membership from the member
        // list the answer carries anyway (one query instead of three).
        let conv = match self.members {
            Some(_) => self.conversation_members(id).await?.conversation.clone(),
            None => self.find_conversation(id).await?,
        };
        let conversation = self.load_conversation(conv).await?;
        let role = conversation
            .members
            .iter()
            .find(|m| m.user_id == req.user_id)
            .map(|m| m.role.clone());
        Ok(v1::Membership {
            is_member: role.is_some(),
            role: role.unwrap_or_default(),
            conversation: Some(conversation),
        })
    }

    // ---- messages ------------------------------------------------------

    pub async fn send_message(
        &self,
        req: v1::SendMessageRequest,
    ) -> Result<v1::SendMessageResponse> {
        let actor = actor(&req.actor)?;
        let conv_id = parse_id(&req.conversation_id, "conversation_id")?;
        check_text(&req.text)?;
        if req.text.trim().is_empty()
            && req
                .attachments
                .iter()
                .all(|a| a.url.trim().is_empty() && a.file_name.trim().is_empty())
        {
            return Err(ServiceError::new(
                ErrorCode::EmptyMessage,
                "a message needs text or an attachment",
            ));
        }
        if req.attachments.len() > MAX_ATTACHMENTS {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_ATTACHMENTS} attachments"
            )));
        }
        if req.client_message_id.len() > 128
            || req.origin.len() > 128
            || req.kind.len() > 32
            || req.mentions.len() > 100
        {
            return Err(ServiceError::invalid(
                "client_message_id and origin ≤ 128 bytes, kind ≤ 32 bytes, ≤ 100 mentions",
            ));
        }
        let reply_to_id = ids::parse_opt(&req.reply_to_id)
            .map_err(|_| ServiceError::invalid("reply_to_id must be a message id"))?;
        // Hot path: the conversation, its members (who hears the message, and
        // whether the sender is one) and the insert: three queries, or only
        // the insert when the members are cached.
        let cached = self.conversation_members(conv_id).await?;
        let conv = &cached.conversation;
        if !cached.user_ids.contains(&actor.id) {
            return Err(ServiceError::new(
                ErrorCode::NotAMember,
                format!("you are not a member of conversation {conv_id}"),
            ));
        }
        let client_id = Some(req.client_message_id.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(cid) = &client_id
            && let Some(existing) = self.find_by_client_id(conv_id, &actor.id, cid).await?
        {
            return Ok(v1::SendMessageResponse {
                message: Some(self.render(existing).await?),
                duplicate: true,
            });
        }
        if let Some(r) = reply_to_id {
            let target = self.find_message(r).await?;
            if target.conversation_id != conv_id {
                return Err(ServiceError::invalid(
                    "reply_to_id is a message of another conversation",
                ));
            }
        }
        // Last before the insert: only a send that would be stored counts.
        if let Err(limited) = self.rate.admit(&actor.id).await {
            return Err(ServiceError::limit(
                format!(
                    "at most {} messages a second; try again in {} ms",
                    self.rate.limit(),
                    limited.retry_after_ms
                ),
                limited.retry_after_ms,
            ));
        }
        let row = message::ActiveModel {
            conversation_id: Set(conv_id),
            sender_id: Set(actor.id.clone()),
            sender_name: Set(actor.name.clone()),
            sender_username: Set(actor.username.clone()),
            sender_avatar: Set(actor.avatar.clone()),
            text: Set(req.text.clone()),
            attachments: Set(to_json(
                &req.attachments.iter().map(Att::from).collect::<Vec<_>>(),
            )),
            kind: Set(if req.kind.is_empty() {
                "text".into()
            } else {
                req.kind.clone()
            }),
            reply_to_id: Set(reply_to_id),
            mentions: Set(to_json(&req.mentions)),
            client_message_id: Set(client_id.clone()),
            created_at: Set(now_ms()),
            edited_at: Set(None),
            deleted: Set(false),
            recalled: Set(false),
            ..Default::default()
        };
        // Through the writer, a message that replies to none is announced by
        // it, in the order of the ids it was given; any other once rendered,
        // below.
        let (inserted, announced) = match &self.writer {
            Some(writer) => {
                let announce: Option<Announce> = reply_to_id.is_none().then(|| {
                    let conv = conv.clone();
                    let members = cached.user_ids.clone();
                    let origin = req.origin.clone();
                    Box::new(move |row: &message::Model| {
                        let msg = base_message(row.clone(), Vec::new());
                        event(&conv, members, origin, Kind::MessageCreated(msg))
                    }) as Announce
                });
                let announced = announce.is_some();
                (writer.insert(row, announce).await, announced)
            }
            None => (row.insert(&self.db).await, false),
        };
        let row = match inserted {
            Ok(row) => row,
            // A concurrent retry with the same client message id won the race.
            Err(e)
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                    && client_id.is_some() =>
            {
                let existing = self
                    .find_by_client_id(conv_id, &actor.id, client_id.as_deref().unwrap_or_default())
                    .await?
                    .ok_or_else(|| ServiceError::internal("idempotent message vanished"))?;
                return Ok(v1::SendMessageResponse {
                    message: Some(self.render(existing).await?),
                    duplicate: true,
                });
            }
            Err(e) => return Err(db_err(e)),
        };
        // A new message has no reactions yet; only a reply needs a lookup.
        let msg = if row.reply_to_id.is_some() {
            self.render(row).await?
        } else {
            base_message(row, Vec::new())
        };
        if !announced {
            self.publish_from(
                conv,
                cached.user_ids.clone(),
                req.origin,
                Kind::MessageCreated(msg.clone()),
            )
            .await;
        }
        Ok(v1::SendMessageResponse {
            message: Some(msg),
            duplicate: false,
        })
    }

    pub async fn edit_message(&self, req: v1::EditMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        check_text(&req.text)?;
        if req.text.trim().is_empty() {
            return Err(ServiceError::new(
                ErrorCode::EmptyMessage,
                "the new text is empty",
            ));
        }
        let (conv, row) = self
            .authored_live_message(&req.message_id, &actor.id)
            .await?;
        let mut am: message::ActiveModel = row.into();
        am.text = Set(req.text);
        am.edited_at = Set(Some(now_ms()));
        let row = am.update(&self.db).await.map_err(db_err)?;
        let msg = self.render(row).await?;
        self.publish(
            &conv,
            self.member_ids_of(conv.id).await?,
            Kind::MessageEdited(msg.clone()),
        )
        .await;
        Ok(msg)
    }

    pub async fn delete_message(&self, req: v1::DeleteMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        let (conv, row) = self
            .authored_live_message(&req.message_id, &actor.id)
            .await?;
        let mut am: message::ActiveModel = row.into();
        am.deleted = Set(true);
        am.text = Set(String::new());
        am.attachments = Set("[]".into());
        let msg = self
            .render(am.update(&self.db).await.map_err(db_err)?)
            .await?;
        self.publish(
            &conv,
            self.member_ids_of(conv.id).await?,
            Kind::MessageDeleted(msg.clone()),
        )
        .await;
        Ok(msg)
    }

    pub async fn recall_message(&self, req: v1::RecallMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        let (conv, row) = self
            .authored_live_message(&req.message_id, &actor.id)
            .await?;
        let mut am: message::ActiveModel = row.into();
        am.recalled = Set(true);
        am.text = Set(String::new());
        am.attachments = Set("[]".into());
        let msg = self
            .render(am.update(&self.db).await.map_err(db_err)?)
            .await?;
        self.publish(
            &conv,
            self.member_ids_of(conv.id).await?,
            Kind::MessageRecalled(msg.clone()),
        )
        .await;
        Ok(msg)
    }

    pub async fn react(&self, req: v1::ReactToMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        let emoji = req.emoji.trim().to_string();
        if emoji.is_empty() || emoji.len() > 64 {
            return Err(ServiceError::invalid("emoji must be 1..=64 bytes"));
        }
        let id = parse_id(&req.message_id, "message_id")?;
        let row = self.find_message(id).await?;
        let (conv, _) = self.require_member(row.conversation_id, &actor.id).await?;
        if row.deleted || row.recalled {
            return Err(ServiceError::new(
                ErrorCode::MessageGone,
                "the message was deleted or recalled",
            ));
        }
        if req.remove {
            reaction::Entity::delete_many()
                .filter(reaction::Column::MessageId.eq(id))
                .filter(reaction::Column::UserId.eq(actor.id.clone()))
                .filter(reaction::Column::Emoji.eq(emoji.clone()))
                .exec(&self.db)
                .await
                .map_err(db_err)?;
        } else {
            let res = reaction::ActiveModel {
                message_id: Set(id),
                user_id: Set(actor.id.clone()),
                emoji: Set(emoji.clone()),
                created_at: Set(now_ms()),
                ..Default::default()
            }
            .insert(&self.db)
            .await;
            match res {
                Ok(_) => {}
                // Reacting twice with the same emoji is a no-op.
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
                Err(e) => return Err(db_err(e)),
            }
        }
        let msg = self.render(row).await?;
        self.publish(
            &conv,
            self.member_ids_of(conv.id).await?,
            Kind::ReactionChanged(v1::ReactionChange {
                message: Some(msg.clone()),
                user_id: actor.id.clone(),
                emoji,
                removed: req.remove,
                user_name: actor.name.clone(),
                at_ms: now_ms(),
            }),
        )
        .await;
        Ok(msg)
    }

    pub async fn mark_read(&self, req: v1::MarkReadRequest) -> Result<v1::MarkReadResponse> {
        let actor = actor(&req.actor)?;
        let conv_id = parse_id(&req.conversation_id, "conversation_id")?;
        let up_to = ids::parse_opt(&req.up_to_message_id)
            .map_err(|_| ServiceError::invalid("up_to_message_id must be a message id"))?;
        let (conv, mut me) = self.require_member(conv_id, &actor.id).await?;
        let newest = match up_to {
            Some(id) => {
                let m = self.find_message(id).await?;
                if m.conversation_id != conv_id {
                    return Err(ServiceError::new(
                        ErrorCode::MessageNotFound,
                        "no such message in this conversation",
                    ));
                }
                id
            }
            None => self.last_message_id(conv_id).await?.unwrap_or(0),
        };
        let read_at = now_ms();
        let mut newly = Vec::new();
        // Compare-and-set on the read marker: of two concurrent calls, only
        // the one that moved the marker reports (and publishes) what it read.
        for _ in 0..5 {
            let from = me.last_read_message_id;
            if newest <= from {
                break;
            }
            let moved = member::Entity::update_many()
                .col_expr(member::Column::LastReadMessageId, Expr::value(newest))
                .filter(member::Column::Id.eq(me.id))
                .filter(member::Column::LastReadMessageId.eq(from))
                .exec(&self.db)
                .await
                .map_err(db_err)?
                .rows_affected;
            if moved == 1 {
                newly = message::Entity::find()
                    .filter(message::Column::ConversationId.eq(conv_id))
                    .filter(message::Column::Id.gt(from))
                    .filter(message::Column::Id.lte(newest))
                    .filter(message::Column::SenderId.ne(actor.id.clone()))
                    .order_by_asc(message::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(db_err)?;
                break;
            }
            me = self.find_member(conv_id, &actor.id).await?.ok_or_else(|| {
                ServiceError::new(ErrorCode::NotAMember, "you left the conversation")
            })?;
        }
        let message_ids: Vec<String> = newly.iter().map(|m| m.id.to_string()).collect();
        let mut sender_ids: Vec<String> = newly.iter().map(|m| m.sender_id.clone()).collect();
        sender_ids.sort();
        sender_ids.dedup();
        let up_to_message_id = if newest > 0 {
            newest.to_string()
        } else {
            String::new()
        };
        if !message_ids.is_empty() {
            self.publish(
                &conv,
                self.member_ids_of(conv_id).await?,
                Kind::MessagesRead(v1::ReadReceipt {
                    conversation_id: conv_id.to_string(),
                    reader_id: actor.id.clone(),
                    message_ids: message_ids.clone(),
                    up_to_message_id: up_to_message_id.clone(),
                    read_at_ms: read_at,
                    sender_ids,
                    messages: newly
                        .iter()
                        .map(|m| v1::ReadMessage {
                            message_id: m.id.to_string(),
                            sender_id: m.sender_id.clone(),
                            client_message_id: m.client_message_id.clone().unwrap_or_default(),
                        })
                        .collect(),
                }),
            )
            .await;
        }
        Ok(v1::MarkReadResponse {
            conversation_id: conv_id.to_string(),
            up_to_message_id,
            message_ids,
            read_at_ms: read_at,
        })
    }

    pub async fn mark_delivered(
        &self,
        req: v1::MarkDeliveredRequest,
    ) -> Result<v1::MarkDeliveredResponse> {
        let actor = actor(&req.actor)?;
        let id = parse_id(&req.message_id, "message_id")?;
        let row = self.find_message(id).await?;
        let (conv, _) = self.require_member(row.conversation_id, &actor.id).await?;
        let now = now_ms();
        if row.sender_id == actor.id {
            return Ok(v1::MarkDeliveredResponse {
                message_id: id.to_string(),
                delivered_at_ms: now,
            });
        }
        let res = delivery::ActiveModel {
            message_id: Set(id),
            user_id: Set(actor.id.clone()),
            delivered_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await;
        match res {
            Ok(_) => {
                self.publish(
                    &conv,
                    vec![row.sender_id.clone()],
                    Kind::MessageDelivered(v1::DeliveryReceipt {
                        conversation_id: row.conversation_id.to_string(),
                        message_id: id.to_string(),
                        recipient_ids: vec![actor.id.clone()],
                        sender_id: row.sender_id.clone(),
                        delivered_at_ms: now,
                        client_message_id: row.client_message_id.clone().unwrap_or_default(),
                        offline: req.offline,
                    }),
                )
                .await
            }
            // Already recorded: acknowledge again without a second event.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            Err(e) => return Err(db_err(e)),
        }
        Ok(v1::MarkDeliveredResponse {
            message_id: id.to_string(),
            delivered_at_ms: now,
        })
    }

    /// Records what edges saw delivered: for each message, the recipients
    /// (members other than the sender, not recorded before) get a delivery
    /// row, and the sender hears one `message_delivered` naming them all.
    /// Five queries per call, however many messages and recipients.
    pub async fn record_deliveries(
        &self,
        req: v1::RecordDeliveriesRequest,
    ) -> Result<v1::RecordDeliveriesResponse> {
        if req.deliveries.len() > MAX_DELIVERY_BATCH {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_DELIVERY_BATCH} deliveries per call"
            )));
        }
        let mut asked: Vec<(i64, Vec<String>, bool)> = Vec::with_capacity(req.deliveries.len());
        for d in req.deliveries {
            if d.recipient_ids.len() > MAX_MEMBERS {
                return Err(ServiceError::invalid(format!(
                    "at most {MAX_MEMBERS} recipients per delivery"
                )));
            }
            for u in &d.recipient_ids {
                check_user_id(u)?;
            }
            asked.push((
                parse_id(&d.message_id, "message_id")?,
                d.recipient_ids,
                d.offline,
            ));
        }
        let message_ids: Vec<i64> = asked.iter().map(|a| a.0).collect();
        let mut users: Vec<String> = asked.iter().flat_map(|a| a.1.iter().cloned()).collect();
        users.sort();
        users.dedup();
        if message_ids.is_empty() || users.is_empty() {
            return Ok(v1::RecordDeliveriesResponse { recorded: 0 });
        }
        let messages: HashMap<i64, message::Model> = message::Entity::find()
            .filter(message::Column::Id.is_in(message_ids.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let conv_ids = conversation_ids(messages.values());
        let convs = self.conversations_by_id(&conv_ids).await?;
        let members: std::collections::HashSet<(i64, String)> = member::Entity::find()
            .filter(member::Column::ConversationId.is_in(conv_ids))
            .filter(member::Column::UserId.is_in(users.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.conversation_id, m.user_id))
            .collect();
        let mut seen: std::collections::HashSet<(i64, String)> = delivery::Entity::find()
            .filter(delivery::Column::MessageId.is_in(message_ids))
            .filter(delivery::Column::UserId.is_in(users))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|d| (d.message_id, d.user_id))
            .collect();
        let now = now_ms();
        let mut rows = Vec::new();
        let mut receipts = Vec::new();
        for (id, recipients, offline) in asked {
            let Some(msg) = messages.get(&id) else {
                continue;
            };
            let mut new = Vec::new();
            for user in recipients {
                if user != msg.sender_id
                    && members.contains(&(msg.conversation_id, user.clone()))
                    && seen.insert((id, user.clone()))
                {
                    rows.push(delivery::ActiveModel {
                        message_id: Set(id),
                        user_id: Set(user.clone()),
                        delivered_at: Set(now),
                        ..Default::default()
                    });
                    new.push(user);
                }
            }
            if !new.is_empty() {
                receipts.push((msg, new, offline));
            }
        }
        let recorded = rows.len() as u32;
        // A concurrent call may have recorded some of these since the lookup:
        // those rows are skipped, not an error.
        for chunk in chunked(rows, 500) {
            delivery::Entity::insert_many(chunk)
                .on_conflict_do_nothing_on([delivery::Column::MessageId, delivery::Column::UserId])
                .exec_without_returning(&self.db)
                .await
                .map_err(db_err)?;
        }
        for (msg, recipient_ids, offline) in receipts {
            if let Some(conv) = convs.get(&msg.conversation_id) {
                self.publish_delivered(conv, msg, recipient_ids, now, offline)
                    .await;
            }
        }
        Ok(v1::RecordDeliveriesResponse { recorded })
    }

    pub async fn get_message(&self, req: v1::GetMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        let row = self
            .find_message(parse_id(&req.message_id, "message_id")?)
            .await?;
        self.require_member(row.conversation_id, &actor.id).await?;
        self.render(row).await
    }

    pub async fn history(&self, req: v1::GetHistoryRequest) -> Result<v1::GetHistoryResponse> {
        let actor = actor(&req.actor)?;
        let conv_id = parse_id(&req.conversation_id, "conversation_id")?;
        let before = ids::parse_opt(&req.before)
            .map_err(|_| ServiceError::invalid("before must be a message id"))?;
        let limit = page::limit(req.limit, 50, 100)?;
        self.require_member(conv_id, &actor.id).await?;
        let mut q = message::Entity::find().filter(message::Column::ConversationId.eq(conv_id));
        if let Some(b) = before {
            q = q.filter(message::Column::Id.lt(b));
        }
        let mut rows = q
            .order_by_desc(message::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let more = page::trim(&mut rows, limit);
        rows.reverse();
        let next_before = page::next_cursor(more, rows.first().map(|m| m.id));
        Ok(v1::GetHistoryResponse {
            messages: self.render_many(rows).await?,
            next_before,
        })
    }

    pub async fn catch_up(&self, req: v1::CatchUpRequest) -> Result<v1::CatchUpResponse> {
        let actor = actor(&req.actor)?;
        let after = ids::parse_opt(&req.after_message_id)
            .map_err(|_| ServiceError::invalid("after_message_id must be a message id"))?;
        let limit = page::limit(req.limit, 200, 1000)? as usize;
        let mine = member::Entity::find()
            .filter(member::Column::UserId.eq(actor.id.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let mut rows = Vec::new();
        for m in mine {
            let from = after.unwrap_or(m.last_read_message_id);
            let mut part = message::Entity::find()
                .filter(message::Column::ConversationId.eq(m.conversation_id))
                .filter(message::Column::Id.gt(from))
                .filter(message::Column::SenderId.ne(actor.id.clone()))
                .order_by_asc(message::Column::Id)
                .limit(limit as u64)
                .all(&self.db)
                .await
                .map_err(db_err)?;
            rows.append(&mut part);
        }
        rows.sort_by_key(|m| m.id);
        rows.truncate(limit);
        Ok(v1::CatchUpResponse {
            messages: self.render_many(rows).await?,
        })
    }

    /// Takes the actor's offline queue: the newest `limit` messages of its
    /// conversations that reached none of its sockets, oldest first, each
    /// recorded delivered (so no second take returns it) and its sender
    /// told (`message_delivered`, offline).
    ///
    /// "Reached none of its sockets" is the delivery receipts the edges
    /// record for every socket a message reached, so the queue costs
    /// nothing per message: it is read only here. Its look-back starts after
    /// the newest message ever delivered to the user (every later one is
    /// undelivered by definition) and, per conversation, at the user's
    /// joining; what falls before the newest `limit` is dropped, as the
    /// take moves that start past it. Two takes at once (two tabs, two
    /// edges) each claim rows with an insert that skips existing ones, so a
    /// message goes to one of them.
    pub async fn take_offline_messages(
        &self,
        req: v1::TakeOfflineMessagesRequest,
    ) -> Result<v1::TakeOfflineMessagesResponse> {
        let actor = actor(&req.actor)?;
        let limit = page::limit(req.limit, 25, 100)?;
        // The queue is the newest `limit` messages of the user's
        // conversations (since they joined each) that came after the newest
        // one any socket of theirs received: walk them newest first, a page
        // at a time, and stop at the first with a delivery receipt for the
        // user. Each page is two indexed reads (the messages, then which of
        // them the user has a receipt for, by the receipts' unique
        // `(message_id, user_id)` index), so the hot path's receipts need no
        // index by user.
        const PAGE: u64 = 100;
        let joined = || {
            message::Entity::belongs_to(member::Entity)
                .from(message::Column::ConversationId)
                .to(member::Column::ConversationId)
                .into()
        };
        let mut rows: Vec<message::Model> = Vec::new();
        let mut before: Option<i64> = None;
        'walk: loop {
            let mut q = message::Entity::find()
                .join(sea_orm::JoinType::InnerJoin, joined())
                .filter(member::Column::UserId.eq(actor.id.clone()))
                .filter(sea_orm::ExprTrait::gte(
                    Expr::col((message::Entity, message::Column::CreatedAt)),
                    Expr::col((member::Entity, member::Column::JoinedAt)),
                ));
            if let Some(b) = before {
                q = q.filter(message::Column::Id.lt(b));
            }
            let page = q
                .order_by_desc(message::Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await
                .map_err(db_err)?;
            let Some(last) = page.last() else {
                break;
            };
            before = Some(last.id);
            let full = page.len() as u64 == PAGE;
            let received: std::collections::HashSet<i64> = delivery::Entity::find()
                .select_only()
                .column(delivery::Column::MessageId)
                .filter(delivery::Column::MessageId.is_in(page.iter().map(|m| m.id)))
                .filter(delivery::Column::UserId.eq(actor.id.clone()))
                .into_tuple::<i64>()
                .all(&self.db)
                .await
                .map_err(db_err)?
                .into_iter()
                .collect();
            for m in page {
                if received.contains(&m.id) {
                    break 'walk;
                }
                if m.sender_id != actor.id && !m.deleted && !m.recalled {
                    rows.push(m);
                    if rows.len() as u64 == limit {
                        break 'walk;
                    }
                }
            }
            if !full {
                break;
            }
        }
        if rows.is_empty() {
            return Ok(v1::TakeOfflineMessagesResponse {
                messages: Vec::new(),
                delivered_at_ms: now_ms(),
            });
        }
        rows.reverse();
        let now = now_ms();
        let txn = self.db.begin().await.map_err(db_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let inserted = delivery::Entity::insert(delivery::ActiveModel {
                message_id: Set(row.id),
                user_id: Set(actor.id.clone()),
                delivered_at: Set(now),
                ..Default::default()
            })
            .on_conflict_do_nothing_on([delivery::Column::MessageId, delivery::Column::UserId])
            .exec_without_returning(&txn)
            .await
            .map_err(db_err)?;
            if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
                claimed.push(row);
            }
        }
        txn.commit().await.map_err(db_err)?;
        let conv_ids = conversation_ids(claimed.iter());
        let convs = self.conversations_by_id(&conv_ids).await?;
        // Read markers after the claim: a read that raced it is seen.
        let read_up_to: HashMap<i64, i64> = member::Entity::find()
            .filter(member::Column::UserId.eq(actor.id.clone()))
            .filter(member::Column::ConversationId.is_in(conv_ids))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.conversation_id, m.last_read_message_id))
            .collect();
        for msg in &claimed {
            if let Some(conv) = convs.get(&msg.conversation_id) {
                self.publish_delivered(conv, msg, vec![actor.id.clone()], now, true)
                    .await;
            }
        }
        let read: Vec<bool> = claimed
            .iter()
            .map(|m| {
                read_up_to
                    .get(&m.conversation_id)
                    .is_some_and(|r| *r >= m.id)
            })
            .collect();
        let info: Vec<Option<v1::ConversationInfo>> = claimed
            .iter()
            .map(|m| convs.get(&m.conversation_id).map(conversation_info))
            .collect();
        let messages = self
            .render_many(claimed)
            .await?
            .into_iter()
            .zip(read.into_iter().zip(info))
            .map(|(message, (read, conversation))| v1::OfflineMessage {
                message: Some(message),
                conversation,
                read,
            })
            .collect();
        Ok(v1::TakeOfflineMessagesResponse {
            messages,
            delivered_at_ms: now,
        })
    }

    // ---- helpers -------------------------------------------------------

    /// Tells `msg`'s sender that it reached `recipient_ids`.
    async fn publish_delivered(
        &self,
        conv: &conversation::Model,
        msg: &message::Model,
        recipient_ids: Vec<String>,
        delivered_at_ms: i64,
        offline: bool,
    ) {
        self.publish(
            conv,
            vec![msg.sender_id.clone()],
            Kind::MessageDelivered(v1::DeliveryReceipt {
                conversation_id: msg.conversation_id.to_string(),
                message_id: msg.id.to_string(),
                recipient_ids,
                sender_id: msg.sender_id.clone(),
                delivered_at_ms,
                client_message_id: msg.client_message_id.clone().unwrap_or_default(),
                offline,
            }),
        )
        .await;
    }

    /// The conversations `ids`, by id.
    async fn conversations_by_id(&self, ids: &[i64]) -> Result<HashMap<i64, conversation::Model>> {
        Ok(conversation::Entity::find()
            .filter(conversation::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect())
    }

    async fn find_conversation(&self, id: i64) -> Result<conversation::Model> {
        conversation::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::ConversationNotFound,
                    format!("conversation {id} does not exist"),
                )
            })
    }

    async fn find_member(&self, conv_id: i64, user_id: &str) -> Result<Option<member::Model>> {
        member::Entity::find()
            .filter(member::Column::ConversationId.eq(conv_id))
            .filter(member::Column::UserId.eq(user_id))
            .one(&self.db)
            .await
            .map_err(db_err)
    }

    /// The conversation and the actor's membership, or NOT_FOUND / NOT_A_MEMBER.
    async fn require_member(
        &self,
        conv_id: i64,
        user_id: &str,
    ) -> Result<(conversation::Model, member::Model)> {
        let conv = self.find_conversation(conv_id).await?;
        match self.find_member(conv_id, user_id).await? {
            Some(m) => Ok((conv, m)),
            None => Err(ServiceError::new(
                ErrorCode::NotAMember,
                format!("you are not a member of conversation {conv_id}"),
            )),
        }
    }

    async fn find_message(&self, id: i64) -> Result<message::Model> {
        message::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::MessageNotFound,
                    format!("message {id} does not exist"),
                )
            })
    }

    async fn find_by_client_id(
        &self,
        conv_id: i64,
        sender: &str,
        cid: &str,
    ) -> Result<Option<message::Model>> {
        message::Entity::find()
            .filter(message::Column::ConversationId.eq(conv_id))
            .filter(message::Column::SenderId.eq(sender))
            .filter(message::Column::ClientMessageId.eq(cid))
            .one(&self.db)
            .await
            .map_err(db_err)
    }

    /// A message the actor wrote and that is neither deleted nor recalled.
    async fn authored_live_message(
        &self,
        id: &str,
        actor_id: &str,
    ) -> Result<(conversation::Model, message::Model)> {
        let row = self.find_message(parse_id(id, "message_id")?).await?;
        let (conv, _) = self.require_member(row.conversation_id, actor_id).await?;
        if row.sender_id != actor_id {
            return Err(ServiceError::new(
                ErrorCode::NotAuthor,
                "only the sender may change this message",
            ));
        }
        if row.deleted || row.recalled {
            return Err(ServiceError::new(
                ErrorCode::MessageGone,
                "the message was already deleted or recalled",
            ));
        }
        Ok((conv, row))
    }

    /// A conversation and its member ids, from the cache when there is one.
    async fn conversation_members(&self, conv_id: i64) -> Result<Arc<Members>> {
        let generation = match self.members.as_deref().map(|c| c.get(conv_id)) {
            Some(Ok(hit)) => return Ok(hit),
            Some(Err(generation)) => Some(generation),
            None => None,
        };
        let read = Arc::new(Members {
            conversation: self.find_conversation(conv_id).await?,
            user_ids: self.member_ids_of(conv_id).await?,
        });
        if let (Some(cache), Some(generation)) = (self.members.as_deref(), generation) {
            cache.fill(conv_id, generation, read.clone());
        }
        Ok(read)
    }

    /// After a write to conversation `conv_id`'s members.
    fn forget_members(&self, conv_id: i64) {
        if let Some(cache) = &self.members {
            cache.forget(conv_id);
        }
    }

    async fn member_ids_of(&self, conv_id: i64) -> Result<Vec<String>> {
        Ok(member::Entity::find()
            .filter(member::Column::ConversationId.eq(conv_id))
            .order_by_asc(member::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| m.user_id)
            .collect())
    }

    async fn last_message_id(&self, conv_id: i64) -> Result<Option<i64>> {
        Ok(message::Entity::find()
            .filter(message::Column::ConversationId.eq(conv_id))
            .order_by_desc(message::Column::Id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .map(|m| m.id))
    }

    async fn last_message(&self, conv_id: i64) -> Result<Option<v1::ChatMessage>> {
        let row = message::Entity::find()
            .filter(message::Column::ConversationId.eq(conv_id))
            .order_by_desc(message::Column::Id)
            .one(&self.db)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some(self.render(r).await?)),
            None => Ok(None),
        }
    }

    async fn load_conversation(&self, c: conversation::Model) -> Result<v1::Conversation> {
        let members = member::Entity::find()
            .filter(member::Column::ConversationId.eq(c.id))
            .order_by_asc(member::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(conversation_proto(c, members))
    }

    async fn render(&self, row: message::Model) -> Result<v1::ChatMessage> {
        Ok(self.render_many(vec![row]).await?.pop().unwrap_or_default())
    }

    /// Turns rows into canonical messages with their reactions and the
    /// message each replies to, in two queries whatever the number of rows.
    async fn render_many(&self, rows: Vec<message::Model>) -> Result<Vec<v1::ChatMessage>> {
        let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
        let mut reactions: HashMap<i64, BTreeMap<String, Vec<(String, i64)>>> = HashMap::new();
        if !ids.is_empty() {
            for r in reaction::Entity::find()
                .filter(reaction::Column::MessageId.is_in(ids))
                .order_by_asc(reaction::Column::Id)
                .all(&self.db)
                .await
                .map_err(db_err)?
            {
                reactions
                    .entry(r.message_id)
                    .or_default()
                    .entry(r.emoji)
                    .or_default()
                    .push((r.user_id, r.created_at));
            }
        }
        let reply_ids: Vec<i64> = rows.iter().filter_map(|m| m.reply_to_id).collect();
        let mut replies: HashMap<i64, v1::ChatMessage> = HashMap::new();
        if !reply_ids.is_empty() {
            for r in message::Entity::find()
                .filter(message::Column::Id.is_in(reply_ids))
                .all(&self.db)
                .await
                .map_err(db_err)?
            {
                replies.insert(r.id, base_message(r, Vec::new()));
            }
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let reply_to = row.reply_to_id.and_then(|id| replies.get(&id).cloned());
                let rs = reactions
                    .remove(&row.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(emoji, who)| {
                        let (user_ids, reacted_at_ms) = who.into_iter().unzip();
                        v1::Reaction {
                            emoji,
                            user_ids,
                            reacted_at_ms,
                        }
                    })
                    .collect();
                let mut msg = base_message(row, rs);
                msg.reply_to = reply_to.map(Box::new);
                msg
            })
            .collect())
    }
}

/// `items` in chunks of at most `n` (a statement's bound parameters are limited).
fn chunked<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(n).collect());
    }
    out
}

/// A conversation row and its member rows as the canonical message.
/// The distinct conversations of `messages`, in order.
fn conversation_ids<'a>(messages: impl Iterator<Item = &'a message::Model>) -> Vec<i64> {
    let mut ids: Vec<i64> = messages.map(|m| m.conversation_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What a chat event says of its conversation.
fn conversation_info(c: &conversation::Model) -> v1::ConversationInfo {
    v1::ConversationInfo {
        id: c.id.to_string(),
        kind: kind_of(c) as i32,
        name: c.name.clone(),
    }
}

fn conversation_proto(c: conversation::Model, members: Vec<member::Model>) -> v1::Conversation {
    v1::Conversation {
        id: c.id.to_string(),
        kind: kind_of(&c) as i32,
        name: c.name,
        members: members
            .into_iter()
            .map(|m| v1::Member {
                user_id: m.user_id,
                role: m.role,
                joined_at_ms: m.joined_at,
                last_read_message_id: if m.last_read_message_id > 0 {
                    m.last_read_message_id.to_string()
                } else {
                    String::new()
                },
            })
            .collect(),
        created_by: c.created_by,
        created_at_ms: c.created_at,
        last_message: None,
    }
}

fn kind_of(c: &conversation::Model) -> ConversationKind {
    if c.kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

fn member_ids(c: &v1::Conversation) -> Vec<String> {
    c.members.iter().map(|m| m.user_id.clone()).collect()
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// An attachment as stored in the `attachments` JSON column.
#[derive(serde::Serialize, serde::Deserialize)]
struct Att {
    url: String,
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    size_bytes: i64,
}

impl From<&v1::Attachment> for Att {
    fn from(a: &v1::Attachment) -> Self {
        Self {
            url: a.url.clone(),
            file_name: a.file_name.clone(),
            mime_type: a.mime_type.clone(),
            size_bytes: a.size_bytes,
        }
    }
}

/// The event of a change to conversation `conv`, for its `members`.
fn event(
    conv: &conversation::Model,
    members: Vec<String>,
    origin: String,
    kind: Kind,
) -> ChatEvent {
    ChatEvent {
        origin,
        audience: Some(Audience {
            user_ids: members,
            conversation_id: conv.id.to_string(),
            ..Default::default()
        }),
        conversation: Some(conversation_info(conv)),
        kind: Some(kind),
        ..Default::default()
    }
}

fn base_message(row: message::Model, reactions: Vec<v1::Reaction>) -> v1::ChatMessage {
    let attachments: Vec<Att> = serde_json::from_str(&row.attachments).unwrap_or_default();
    v1::ChatMessage {
        id: row.id.to_string(),
        conversation_id: row.conversation_id.to_string(),
        sender_id: row.sender_id,
        sender_name: row.sender_name,
        sender_username: row.sender_username,
        sender_avatar: row.sender_avatar,
        text: row.text,
        attachments: attachments
            .into_iter()
            .map(|a| v1::Attachment {
                url: a.url,
                file_name: a.file_name,
                mime_type: a.mime_type,
                size_bytes: a.size_bytes,
            })
            .collect(),
        kind: row.kind,
        reply_to_id: row.reply_to_id.map(|r| r.to_string()).unwrap_or_default(),
        mentions: serde_json::from_str(&row.mentions).unwrap_or_default(),
        client_message_id: row.client_message_id.unwrap_or_default(),
        created_at_ms: row.created_at,
        edited_at_ms: row.edited_at.unwrap_or(0),
        deleted: row.deleted,
        recalled: row.recalled,
        reactions,
        reply_to: None,
    }
}
