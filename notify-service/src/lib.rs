//! notify-service: see the README's status table. This crate already serves
//! `confab.v1.NotifyService` with gRPC health, reflection and a working
//! `Subscribe` stream fed by its event bus; every other RPC answers
//! UNIMPLEMENTED until its own issue builds it.
//!
//! It must not know Socket.IO, any frontend contract, or another service's
//! data.

use std::sync::Arc;

use confab_proto::bus::{EventBus, EventStream, LocalBus, subscribe_response};
use confab_proto::server::{Closer, Closing, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::notify_service_server::{NotifyService, NotifyServiceServer};
use confab_proto::v1::{NotifyEvent, SubscribeRequest};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.NotifyService";

/// The notify service over its event bus.
#[derive(Clone)]
pub struct Notify {
    bus: Arc<dyn EventBus<NotifyEvent>>,
    closing: Closing,
}

impl Notify {
    pub fn new(bus: Arc<dyn EventBus<NotifyEvent>>, closing: Closing) -> Self {
        Self { bus, closing }
    }
}

#[tonic::async_trait]
impl NotifyService for Notify {
    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<NotifyEvent>>, Status> {
        Ok(subscribe_response(
            self.bus.as_ref(),
            r.get_ref(),
            "notify",
            self.closing.clone(),
        ))
    }
}

/// notify-service, ready to serve: its gRPC service and the signal that
/// ends its streams at shutdown.
pub fn build() -> (NotifyServiceServer<Notify>, Closer) {
    let (closer, closing) = closing();
    let svc = Notify::new(Arc::new(LocalBus::new(4096)), closing);
    (NotifyServiceServer::new(svc), closer)
}

/// Starts notify-service on `listener`.
pub async fn serve(listener: TcpListener) -> std::io::Result<ServiceHandle> {
    let (svc, closer) = build();
    GrpcServer::new().add(svc, closer).spawn(listener).await
}
