//! call-service: see the README's status table. This crate already serves
//! `confab.v1.CallService` with gRPC health, reflection and a working
//! `Subscribe` stream fed by its event bus; every other RPC answers
//! UNIMPLEMENTED until its own issue builds it.
//!
//! It must not know Socket.IO, any frontend contract, or another service's
//! data.

use std::sync::Arc;

use confab_proto::bus::{EventBus, EventStream, LocalBus, subscribe_response};
use confab_proto::server::{Closer, Closing, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::call_service_server::{CallService, CallServiceServer};
use confab_proto::v1::{CallEvent, SubscribeRequest};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.CallService";

/// The call service over its event bus.
#[derive(Clone)]
pub struct Call {
    bus: Arc<dyn EventBus<CallEvent>>,
    closing: Closing,
}

impl Call {
    pub fn new(bus: Arc<dyn EventBus<CallEvent>>, closing: Closing) -> Self {
        Self { bus, closing }
    }
}

#[tonic::async_trait]
impl CallService for Call {
    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<CallEvent>>, Status> {
        Ok(subscribe_response(
            self.bus.as_ref(),
            r.get_ref(),
            "call",
            self.closing.clone(),
        ))
    }
}

/// call-service, ready to serve: its gRPC service and the signal that
/// ends its streams at shutdown.
pub fn build() -> (CallServiceServer<Call>, Closer) {
    let (closer, closing) = closing();
    let svc = Call::new(Arc::new(LocalBus::new(4096)), closing);
    (CallServiceServer::new(svc), closer)
}

/// Starts call-service on `listener`.
pub async fn serve(listener: TcpListener) -> std::io::Result<ServiceHandle> {
    let (svc, closer) = build();
    GrpcServer::new().add(svc, closer).spawn(listener).await
}
