//! What call-service asks chat-service: whether users share a conversation.
//! It never reads chat-service's tables; it calls `ChatService` over gRPC —
//! over the network, or in-process in the embedded mode — through any tonic
//! transport ([`ChatServiceClient<T>`] implements [`Conversations`]).

use confab_proto::ServiceError;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::{
    Actor, CheckMembershipRequest, Conversation, ConversationKind, ListConversationsRequest,
};
use futures::future::BoxFuture;
use tonic::codegen::{Body, Bytes, StdError};

/// The questions call-service asks about conversations.
pub trait Conversations: Send + Sync + 'static {
    /// The conversation with its members, when `user_id` is one of them;
    /// `None` when not (a missing conversation is `CONVERSATION_NOT_FOUND`).
    fn member_of(
        &self,
        conversation_id: String,
        user_id: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, ServiceError>>;

    /// The conversation `a` and `b` share: their direct one when they have
    /// it, else any other they are both members of.
    fn shared(
        &self,
        a: String,
        b: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, ServiceError>>;
}

impl<T> Conversations for ChatServiceClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    fn member_of(
        &self,
        conversation_id: String,
        user_id: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, ServiceError>> {
        let mut client = self.clone();
        Box::pin(async move {
            let m = client
                .check_membership(CheckMembershipRequest {
                    conversation_id,
                    user_id,
                })
                .await
                .map_err(|st| ServiceError::from_status(&st))?
                .into_inner();
            Ok(if m.is_member { m.conversation } else { None })
        })
    }

    fn shared(
        &self,
        a: String,
        b: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, ServiceError>> {
        let mut client = self.clone();
        Box::pin(async move {
            let list = client
                .list_conversations(ListConversationsRequest {
                    actor: Some(Actor {
                        id: a,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(|st| ServiceError::from_status(&st))?
                .into_inner()
                .conversations;
            let with_b: Vec<Conversation> = list
                .into_iter()
                .filter(|c| c.members.iter().any(|m| m.user_id == b))
                .collect();
            let direct = with_b
                .iter()
                .position(|c| c.kind == ConversationKind::Direct as i32);
            Ok(match direct {
                Some(i) => with_b.into_iter().nth(i),
                None => with_b.into_iter().next(),
            })
        })
    }
}
