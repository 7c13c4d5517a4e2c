//! The gRPC clients the edge calls services with.
//!
//! Channels connect lazily and reconnect by themselves, so the edge starts
//! and keeps serving while a service is down: calls then fail fast (connect
//! timeout) or time out, and the client gets its contract's error.

use std::time::Duration;

use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::auth::Verifier;
use crate::config::EdgeConfig;
use crate::presence::TypingThrottle;

/// What every handler needs: the services and the token verifier.
#[derive(Clone)]
pub struct Services {
    pub chat: ChatServiceClient<Channel>,
    pub presence: PresenceServiceClient<Channel>,
    pub call: CallServiceClient<Channel>,
    pub notify: NotifyServiceClient<Channel>,
    pub verifier: Verifier,
    /// This edge's name in presence-service (sessions, heartbeats).
    pub edge_id: String,
    pub typing: TypingThrottle,
}

fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// A channel without a request timeout, for long-lived `Subscribe` streams.
pub fn stream_channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

impl Services {
    pub fn new(cfg: &EdgeConfig) -> anyhow::Result<Self> {
        let t = cfg.request_timeout;
        Ok(Self {
            chat: ChatServiceClient::new(channel(&cfg.urls.chat_url, t)?),
            presence: PresenceServiceClient::new(channel(&cfg.urls.presence_url, t)?),
            call: CallServiceClient::new(channel(&cfg.urls.call_url, t)?),
            notify: NotifyServiceClient::new(channel(&cfg.urls.notify_url, t)?),
            verifier: cfg.verifier.clone(),
            edge_id: cfg.edge_id.clone(),
            typing: TypingThrottle::default(),
        })
    }
}
