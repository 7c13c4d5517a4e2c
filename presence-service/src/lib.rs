//! presence-service: see the README's status table. This crate already serves
//! `confab.v1.PresenceService` with gRPC health, reflection and a working
//! `Subscribe` stream fed by its event bus; every other RPC answers
//! UNIMPLEMENTED until its own issue builds it.
//!
//! It must not know Socket.IO, any frontend contract, or another service's
//! data.

use std::sync::Arc;

use confab_proto::bus::{EventBus, EventStream, LocalBus, subscribe_stream};
use confab_proto::server::{Closing, ServiceHandle, closing, spawn};
use confab_proto::v1::presence_service_server::{PresenceService, PresenceServiceServer};
use confab_proto::v1::{PresenceEvent, SubscribeRequest};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.PresenceService";

/// The presence service over its event bus.
#[derive(Clone)]
pub struct Presence {
    bus: Arc<dyn EventBus<PresenceEvent>>,
    closing: Closing,
}

impl Presence {
    pub fn new(bus: Arc<dyn EventBus<PresenceEvent>>, closing: Closing) -> Self {
        Self { bus, closing }
    }
}

#[tonic::async_trait]
impl PresenceService for Presence {
    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<PresenceEvent>>, Status> {
        tracing::info!(subscriber = %r.get_ref().subscriber, "presence subscriber connected");
        let stream = subscribe_stream(self.bus.subscribe(), "presence", self.closing.clone());
        Ok(Response::new(stream))
    }
}

/// Starts presence-service on `listener`.
pub async fn serve(listener: TcpListener) -> std::io::Result<ServiceHandle> {
    let (closer, closing) = closing();
    let svc = Presence::new(Arc::new(LocalBus::new(4096)), closing);
    let routes = tonic::service::Routes::new(PresenceServiceServer::new(svc));
    spawn(listener, SERVICE_NAME, routes, closer).await
}
