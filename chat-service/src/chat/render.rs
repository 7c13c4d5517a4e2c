//! Rows as chat-service answers them: canonical messages with their
//! reactions and the message each replies to, conversations with their
//! members, the attachments JSON column, and the events chat publishes.

use std::collections::{BTreeMap, HashMap};

use confab_kit::db_err;
use confab_proto::v1::{self, Audience, ChatEvent, ConversationKind, chat_event::Kind};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Chat, Result};
use crate::entity::{conversation, member, message, reaction};

impl Chat {
    pub(super) async fn render(&self, row: message::Model) -> Result<v1::ChatMessage> {
        Ok(self.render_many(vec![row]).await?.pop().unwrap_or_default())
    }

    /// Turns rows into canonical messages with their reactions and the
    /// message each replies to, in two queries whatever the number of rows.
    pub(super) async fn render_many(
        &self,
        rows: Vec<message::Model>,
    ) -> Result<Vec<v1::ChatMessage>> {
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

/// What a chat event says of its conversation.
pub(super) fn conversation_info(c: &conversation::Model) -> v1::ConversationInfo {
    v1::ConversationInfo {
        id: c.id.to_string(),
        kind: kind_of(c) as i32,
        name: c.name.clone(),
    }
}

/// A conversation row and its member rows as the canonical message.
pub(super) fn conversation_proto(
    c: conversation::Model,
    members: Vec<member::Model>,
) -> v1::Conversation {
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

pub(super) fn kind_of(c: &conversation::Model) -> ConversationKind {
    if c.kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

pub(super) fn member_ids(c: &v1::Conversation) -> Vec<String> {
    c.members.iter().map(|m| m.user_id.clone()).collect()
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// An attachment as stored in the `attachments` JSON column.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Att {
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
pub(super) fn event(
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

pub(super) fn base_message(row: message::Model, reactions: Vec<v1::Reaction>) -> v1::ChatMessage {
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
