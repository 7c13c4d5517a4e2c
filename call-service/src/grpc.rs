//! `confab.v1.CallService` over gRPC: each RPC forwards to [`Calls`] and
//! turns its [`ServiceError`](confab_proto::ServiceError) into a status with
//! a stable code in the details.

use confab_proto::bus::{EventStream, subscribe_response};
use confab_proto::server::Closing;
use confab_proto::v1::call_service_server::CallService;
use confab_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::calls::Calls;

pub struct CallGrpc {
    calls: Calls,
    closing: Closing,
}

impl CallGrpc {
    pub fn new(calls: Calls, closing: Closing) -> Self {
        Self { calls, closing }
    }
}

fn reply<T>(r: Result<T, confab_proto::ServiceError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl CallService for CallGrpc {
    async fn initiate_call(
        &self,
        r: Request<InitiateCallRequest>,
    ) -> Result<Response<Call>, Status> {
        reply(self.calls.initiate(r.into_inner()).await)
    }
    async fn answer_call(&self, r: Request<CallActionRequest>) -> Result<Response<Call>, Status> {
        reply(self.calls.answer(r.into_inner()).await)
    }
    async fn reject_call(&self, r: Request<CallActionRequest>) -> Result<Response<Call>, Status> {
        reply(self.calls.reject(r.into_inner()).await)
    }
    async fn cancel_call(&self, r: Request<CallActionRequest>) -> Result<Response<Call>, Status> {
        reply(self.calls.cancel(r.into_inner()).await)
    }
    async fn end_call(&self, r: Request<CallActionRequest>) -> Result<Response<Call>, Status> {
        reply(self.calls.end(r.into_inner()).await)
    }
    async fn hangup(&self, r: Request<CallActionRequest>) -> Result<Response<Call>, Status> {
        reply(self.calls.hangup(r.into_inner()).await)
    }
    async fn signal(&self, r: Request<SignalRequest>) -> Result<Response<SignalResponse>, Status> {
        reply(self.calls.signal(r.into_inner()).await)
    }
    async fn update_controls(
        &self,
        r: Request<UpdateControlsRequest>,
    ) -> Result<Response<Call>, Status> {
        reply(self.calls.update_controls(r.into_inner()).await)
    }
    async fn get_call(&self, r: Request<GetCallRequest>) -> Result<Response<Call>, Status> {
        reply(self.calls.get(r.into_inner()).await)
    }
    async fn list_call_records(
        &self,
        r: Request<ListCallRecordsRequest>,
    ) -> Result<Response<ListCallRecordsResponse>, Status> {
        reply(self.calls.records(r.into_inner()).await)
    }
    async fn report_session(
        &self,
        r: Request<ReportSessionRequest>,
    ) -> Result<Response<ReportSessionResponse>, Status> {
        reply(self.calls.report_session(r.into_inner()).await)
    }

    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<CallEvent>>, Status> {
        Ok(subscribe_response(self.calls.bus(), r.get_ref(), "call", self.closing.clone()).await)
    }
}
