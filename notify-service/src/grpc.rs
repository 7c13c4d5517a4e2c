//! `confab.v1.NotifyService` over gRPC: each RPC forwards to [`Notify`] and
//! turns its [`ServiceError`](confab_proto::ServiceError) into a status with
//! a stable code in the details.

use confab_proto::bus::{EventStream, subscribe_response};
use confab_proto::server::Closing;
use confab_proto::v1::notify_service_server::NotifyService;
use confab_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::notify::Notify;

pub struct NotifyGrpc {
    notify: Notify,
    closing: Closing,
}

impl NotifyGrpc {
    pub fn new(notify: Notify, closing: Closing) -> Self {
        Self { notify, closing }
    }
}

fn reply<T>(r: Result<T, confab_proto::ServiceError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl NotifyService for NotifyGrpc {
    async fn publish(
        &self,
        r: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        reply(self.notify.publish(r.into_inner()).await)
    }
    async fn list_notifications(
        &self,
        r: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        reply(self.notify.list(r.into_inner()).await)
    }
    async fn unread_count(
        &self,
        r: Request<UnreadCountRequest>,
    ) -> Result<Response<UnreadCountResponse>, Status> {
        reply(self.notify.unread_count(r.into_inner()).await)
    }
    async fn mark_notifications_read(
        &self,
        r: Request<MarkNotificationsReadRequest>,
    ) -> Result<Response<MarkNotificationsReadResponse>, Status> {
        reply(self.notify.mark_read(r.into_inner()).await)
    }
    async fn report(&self, r: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        reply(self.notify.report(r.into_inner()).await)
    }
    async fn list_story_views(
        &self,
        r: Request<ListStoryViewsRequest>,
    ) -> Result<Response<ListStoryViewsResponse>, Status> {
        reply(self.notify.story_views(r.into_inner()).await)
    }

    async fn subscribe(
        &self,
        r: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<NotifyEvent>>, Status> {
        Ok(subscribe_response(
            self.notify.bus(),
            r.get_ref(),
            "notify",
            self.closing.clone(),
        )
        .await)
    }
}
