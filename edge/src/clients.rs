//! The gRPC clients the edge calls services with, and how they reach them.
//!
//! A separate edge ([`ServiceTargets::Remote`]) reaches each service over
//! the network. Its channels connect lazily and reconnect by themselves, so
//! the edge starts and keeps serving while a service is down: calls then
//! fail fast (connect timeout) or time out, and the client gets its
//! contract's error. A service given as several comma-separated addresses
//! (its replicas) is reached through [`Failover`]: round robin over the
//! ones that are up.
//!
//! The embedded `confab` ([`ServiceTargets::InProcess`]) hands the edge the
//! services' own gRPC routes: a call is encoded and decoded exactly as over
//! the network, with the same metadata and status codes, but goes straight
//! to the handler — no socket, no HTTP/2 framing, no trip through the
//! kernel. Every message crosses this boundary three times (the send, the
//! chat stream's event, the delivery receipts), so the embedded mode saves
//! three loopback round trips per message.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use futures::TryFutureExt;
use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use confab_proto::failover::{self, Failover};

/// What a client sends its calls through: a network channel or the
/// services' routes in this process.
#[derive(Clone)]
pub struct Transport(BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>);

/// A call that failed below gRPC (connection refused, timed out). Its
/// [`source`](std::error::Error::source) is the cause, where tonic finds
/// the status the caller gets.
#[derive(Debug, thiserror::Error)]
#[error("transport error")]
pub struct TransportError(#[source] BoxError);

impl tower::Service<Request<Body>> for Transport {
    type Response = Response<Body>;
    type Error = TransportError;
    type Future = BoxFuture<'static, Result<Response<Body>, TransportError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.0.poll_ready(cx).map_err(TransportError)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.0.call(request).map_err(TransportError))
    }
}

impl Transport {
    fn new<S>(service: S) -> Self
    where
        S: tower::Service<Request<Body>, Response = Response<Body>, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self(BoxCloneSyncService::new(service))
    }
}

pub type ChatClient = ChatServiceClient<Transport>;
pub type PresenceClient = PresenceServiceClient<Transport>;
pub type CallClient = CallServiceClient<Transport>;
pub type NotifyClient = NotifyServiceClient<Transport>;

/// Where the services are: each a URL, or several comma-separated (a
/// service's replicas, [`Failover`]).
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceUrls {
    #[arg(
        long,
        env = "CONFAB_CHAT_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub chat_url: String,
    #[arg(
        long,
        env = "CONFAB_PRESENCE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub presence_url: String,
    #[arg(
        long,
        env = "CONFAB_CALL_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub call_url: String,
    #[arg(
        long,
        env = "CONFAB_NOTIFY_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub notify_url: String,
}

/// Where the services are: at their URLs, or in this process.
#[derive(Clone)]
pub enum ServiceTargets {
    /// Each service at its gRPC URL.
    Remote(ServiceUrls),
    /// All four services in this process (the embedded mode).
    InProcess(Routes),
}

impl From<ServiceUrls> for ServiceTargets {
    fn from(urls: ServiceUrls) -> Self {
        Self::Remote(urls)
    }
}

/// Which service a client is for.
#[derive(Clone, Copy)]
pub enum Service {
    Chat,
    Presence,
    Call,
    Notify,
}

impl ServiceTargets {
    /// A transport to `service`. With a `timeout`, a call that has not
    /// answered in time fails with DEADLINE_EXCEEDED; without one (for the
    /// long-lived `Subscribe` streams) the connection is kept alive by
    /// HTTP/2 pings instead.
    pub fn transport(
        &self,
        service: Service,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Transport> {
        match self {
            Self::Remote(urls) => {
                let urls = match service {
                    Service::Chat => &urls.chat_url,
                    Service::Presence => &urls.presence_url,
                    Service::Call => &urls.call_url,
                    Service::Notify => &urls.notify_url,
                };
                let channels = failover::addresses(urls)
                    .map(|url| channel(url, timeout))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                match <[Channel; 1]>::try_from(channels) {
                    Ok([one]) => Ok(Transport::new(ServiceExt::<Request<Body>>::map_err(
                        one,
                        |e: tonic::transport::Error| -> BoxError { Box::new(e) },
                    ))),
                    Err(channels) if channels.is_empty() => {
                        anyhow::bail!("no address for a service")
                    }
                    Err(channels) => Ok(Transport::new(Failover::new(channels))),
                }
            }
            Self::InProcess(routes) => {
                let routes = ServiceExt::<Request<Body>>::map_err(
                    routes.clone(),
                    |e: Infallible| -> BoxError { match e {} },
                );
                Ok(match timeout {
                    Some(t) => Transport::new(
                        ServiceBuilder::new()
                            .map_err(deadline_exceeded)
                            .timeout(t)
                            .service(routes),
                    ),
                    None => Transport::new(routes),
                })
            }
        }
    }
}

/// A channel to one address, connected lazily (the edge starts while the
/// service is down), set up as every caller's ([`failover::endpoint`]).
fn channel(url: &str, timeout: Option<Duration>) -> anyhow::Result<Channel> {
    Ok(failover::endpoint(Endpoint::from_shared(url.to_string())?, timeout).connect_lazy())
}

/// The in-process timeout's error as the status a network call that timed
/// out gets, so the edge answers clients the same in both modes.
fn deadline_exceeded(e: BoxError) -> BoxError {
    if e.is::<tower::timeout::error::Elapsed>() {
        Box::new(tonic::Status::deadline_exceeded(
            "the service did not answer in time",
        ))
    } else {
        e
    }
}
