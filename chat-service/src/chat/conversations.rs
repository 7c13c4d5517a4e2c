//! Conversations and their members: create (a direct conversation is found
//! or created once, even by two requests at a time), get, list (newest
//! activity first, in a fixed number of queries), add and remove members,
//! the peers a user shares a conversation with, and membership checks.

use std::collections::HashMap;

use confab_kit::{db_err, now_ms};
use confab_proto::v1::{self, ConversationKind, chat_event::Kind};
use confab_proto::{ErrorCode, ServiceError};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
    TransactionTrait,
};

use super::render::{conversation_proto, member_ids};
use super::{Chat, MAX_MEMBERS, Result, actor, check_user_id, parse_id};
use crate::entity::{conversation, member, message};

impl Chat {
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
}
