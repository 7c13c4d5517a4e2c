//! `confab.v1.ChatService` over gRPC: each RPC forwards to [`Chat`] and turns
//! its [`ServiceError`](confab_proto::ServiceError) into a status with a
//! stable code in the details.

use confab_proto::bus::{EventStream, subscribe_response};
use confab_proto::server::Closing;
use confab_proto::v1::chat_service_server::ChatService;
use confab_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::chat::Chat;

pub struct ChatGrpc {
    chat: Chat,
    closing: Closing,
}

impl ChatGrpc {
    pub fn new(chat: Chat, closing: Closing) -> Self {
        Self { chat, closing }
    }
}

fn reply<T>(r: Result<T, confab_proto::ServiceError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl ChatService for ChatGrpc {
    async fn create_conversation(
        &self,
        r: Request<CreateConversationRequest>,
    ) -> Result<Response<Conversation>, Status> {
        reply(self.chat.create_conversation(r.into_inner()).await)
    }
    async fn get_conversation(
        &self,
        r: Request<GetConversationRequest>,
    ) -> Result<Response<Conversation>, Status> {
        reply(self.chat.get_conversation(r.into_inner()).await)
    }
    async fn list_conversations(
        &self,
        r: Request<ListConversationsRequest>,
    ) -> Result<Response<ListConversationsResponse>, Status> {
        reply(self.chat.list_conversations(r.into_inner()).await)
    }
    async fn add_members(
        &self,
        r: Request<AddMembersRequest>,
    ) -> Result<Response<Conversation>, Status> {
        reply(self.chat.add_members(r.into_inner()).await)
    }
    async fn remove_member(
        &self,
        r: Request<RemoveMemberRequest>,
    ) -> Result<Response<Conversation>, Status> {
        reply(self.chat.remove_member(r.into_inner()).await)
    }
    async fn check_membership(
        &self,
        r: Request<CheckMembershipRequest>,
    ) -> Result<Response<Membership>, Status> {
        reply(self.chat.check_membership(r.into_inner()).await)
    }
    async fn list_peers(
        &self,
        r: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersResponse>, Status> {
        reply(self.chat.list_peers(r.into_inner()).await)
    }
    async fn send_message(
        &self,
        r: Request<SendMessageRequest>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        reply(self.chat.send_message(r.into_inner()).await)
    }
    async fn edit_message(
        &self,
        r: Request<EditMessageRequest>,
    ) -> Result<Response<ChatMessage>, Status> {
        reply(self.chat.edit_message(r.into_inner()).await)
    }
    async fn delete_message(
        &self,
        r: Request<DeleteMessageRequest>,
    ) -> Result<Response<ChatMessage>, Status> {
        reply(self.chat.delete_message(r.into_inner()).await)
    }
    async fn recall_message(
        &self,
        r: Request<RecallMessageRequest>,
    ) -> Result<Response<ChatMessage>, Status> {
        reply(self.chat.recall_message(r.into_inner()).await)
    }
    async fn react_to_message(
        &self,
        r: Request<ReactToMessageRequest>,
    ) -> Result<Response<ChatMessage>, Status> {
        reply(self.chat.react(r.into_inner()).await)
    }
    async fn mark_read(
        &self,
        r: Request<MarkReadRequest>,
    ) -> Result<Response<MarkReadResponse>, Status> {
        reply(self.chat.mark_read(r.into_inner()).await)
    }
    async fn mark_delivered(
        &self,
        r: Request<MarkDeliveredRequest>,
    ) -> Result<Response<MarkDeliveredResponse>, Status> {
        reply(self.chat.mark_delivered(r.into_inner()).await)
    }
    async fn record_deliveries(
        &self,
        r: Request<RecordDeliveriesRequest>,
    ) -> Result<Response<RecordDeliveriesResponse>, Status> {
        reply(self.chat.record_deliveries(r.into_inner()).await)
    }
    async fn get_message(
        &self,
        r: Request<GetMessageRequest>,
    ) -> Result<Response<ChatMessage>, Status> {
        reply(self.chat.get_message(r.into_inner()).await)
    }
    async fn get_history(
        &self,
        r: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        reply(self.chat.history(r.into_inner()).await)
    }
    async fn catch_up(
        &self,
        r: Request<CatchUpRequest>,
    ) -> Result<Response<CatchUpResponse>, Status> {
        reply(self.chat.catch_up(r.into_inner()).await)
    }

    async fn take_offline_messages(
        &self,
        r: Request<TakeOfflineMessagesRequest>,
    ) -> Result<Response<TakeOfflineMessagesResponse>, Status> {
        reply(self.chat.take_offline_messages(r.into_inner()).await)
    }

    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<ChatEvent>>, Status> {
        Ok(subscribe_response(self.chat.bus(), r.get_ref(), "chat", self.closing.clone()).await)
    }
}
