//! `confab.v1.PresenceService` over gRPC: each RPC forwards to [`Presence`]
//! and turns its [`ServiceError`](confab_proto::ServiceError) into a status
//! with a stable code in the details.

use confab_proto::bus::{EventStream, subscribe_response};
use confab_proto::server::Closing;
use confab_proto::v1::presence_service_server::PresenceService;
use confab_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::presence::Presence;

pub struct PresenceGrpc {
    presence: Presence,
    closing: Closing,
}

impl PresenceGrpc {
    pub fn new(presence: Presence, closing: Closing) -> Self {
        Self { presence, closing }
    }
}

fn reply<T>(r: Result<T, confab_proto::ServiceError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl PresenceService for PresenceGrpc {
    async fn register_session(
        &self,
        r: Request<RegisterSessionRequest>,
    ) -> Result<Response<RegisterSessionResponse>, Status> {
        reply(self.presence.register_session(r.into_inner()).await)
    }
    async fn unregister_session(
        &self,
        r: Request<UnregisterSessionRequest>,
    ) -> Result<Response<UnregisterSessionResponse>, Status> {
        reply(self.presence.unregister_session(r.into_inner()).await)
    }
    async fn heartbeat(
        &self,
        r: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        reply(self.presence.heartbeat(r.into_inner()).await)
    }
    async fn get_presence(
        &self,
        r: Request<GetPresenceRequest>,
    ) -> Result<Response<GetPresenceResponse>, Status> {
        reply(self.presence.get_presence(r.into_inner()).await)
    }
    async fn set_typing(
        &self,
        r: Request<SetTypingRequest>,
    ) -> Result<Response<SetTypingResponse>, Status> {
        reply(self.presence.set_typing(r.into_inner()).await)
    }
    async fn set_room_presence(
        &self,
        r: Request<SetRoomPresenceRequest>,
    ) -> Result<Response<SetRoomPresenceResponse>, Status> {
        reply(self.presence.set_room_presence(r.into_inner()).await)
    }

    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<PresenceEvent>>, Status> {
        Ok(subscribe_response(
            self.presence.bus(),
            r.get_ref(),
            "presence",
            self.closing.clone(),
        )
        .await)
    }
}
