//! Typing: a user starting or stopping typing in a conversation. Only
//! members may (chat-service's `CheckMembership`), starts are throttled per
//! user on this edge ([`crate::throttle`]), and presence-service relays it
//! to the other members and ends it by itself when no stop comes.

use confab_proto::v1::{CheckMembershipRequest, SetTypingRequest};
use confab_proto::{ErrorCode, ServiceError};

use crate::auth::Identity;
use crate::state::EdgeState;

/// What became of a typing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    /// presence-service has it and tells the other members.
    Relayed,
    /// Over the per-user rate: dropped without an error.
    Throttled,
}

/// Starts or stops `me` typing in a conversation: only members may, and
/// starts are throttled per user.
pub async fn set_typing(
    edge: &EdgeState,
    me: &Identity,
    conversation_id: &str,
    typing: bool,
) -> Result<Typing, ServiceError> {
    if typing && !edge.typing.allows(&me.user_id) {
        return Ok(Typing::Throttled);
    }
    let membership = edge
        .chat
        .clone()
        .check_membership(CheckMembershipRequest {
            conversation_id: conversation_id.to_string(),
            user_id: me.user_id.clone(),
        })
        .await
        .map_err(ServiceError::from)?
        .into_inner();
    if !membership.is_member {
        return Err(ServiceError::new(
            ErrorCode::NotAMember,
            format!("you are not a member of conversation {conversation_id}"),
        ));
    }
    let member_ids = membership
        .conversation
        .map(|c| c.members.into_iter().map(|m| m.user_id).collect())
        .unwrap_or_default();
    let req = SetTypingRequest {
        actor: Some(me.actor()),
        conversation_id: conversation_id.to_string(),
        typing,
        member_ids,
    };
    edge.presence
        .clone()
        .set_typing(req)
        .await
        .map_err(ServiceError::from)?;
    Ok(Typing::Relayed)
}
