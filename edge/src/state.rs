//! The edge's shared state, handed to every handler: the service clients,
//! the token verifier, this edge's name and the per-edge throttles.
//!
//! It is per edge, never per socket, and holds no business data.

use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;

use crate::auth::Verifier;
use crate::clients::{CallClient, ChatClient, NotifyClient, PresenceClient, Service};
use crate::config::EdgeConfig;
use crate::deliveries::Deliveries;
use crate::interest::Interest;
use crate::lingering::Lingering;
use crate::recovery::Recovery;
use crate::throttle::TypingThrottle;

/// What every handler needs (socketioxide's and axum's `State`).
#[derive(Clone)]
pub struct EdgeState {
    pub chat: ChatClient,
    pub presence: PresenceClient,
    pub call: CallClient,
    pub notify: NotifyClient,
    pub verifier: Verifier,
    /// This edge's name in presence-service (sessions, heartbeats).
    pub edge_id: String,
    pub typing: TypingThrottle,
    /// How many messages a user's offline queue keeps (`CONFAB_OFFLINE_QUEUE`).
    pub offline_queue: u32,
    /// The users and conversation rooms this edge holds sockets for.
    pub interest: Interest,
    /// Delivery receipts on their way to chat-service.
    pub deliveries: Deliveries,
    /// Resumable sessions and the recent chat events.
    pub recovery: Recovery,
    /// How long a dropped socket's presence session outlives it
    /// (`CONFAB_PRESENCE_GRACE_MS`).
    pub presence_grace: std::time::Duration,
    /// The dropped sockets whose presence session is in its grace.
    pub lingering: Lingering,
}

impl EdgeState {
    pub fn new(
        cfg: &EdgeConfig,
        deliveries: Deliveries,
        recovery: Recovery,
    ) -> anyhow::Result<Self> {
        let t = Some(cfg.request_timeout);
        let to = |s| cfg.services.transport(s, t);
        Ok(Self {
            chat: ChatServiceClient::new(to(Service::Chat)?),
            presence: PresenceServiceClient::new(to(Service::Presence)?),
            call: CallServiceClient::new(to(Service::Call)?),
            notify: NotifyServiceClient::new(to(Service::Notify)?),
            verifier: cfg.verifier.clone(),
            edge_id: cfg.edge_id.clone(),
            typing: TypingThrottle::default(),
            offline_queue: cfg.offline_queue,
            interest: Interest::default(),
            deliveries,
            recovery,
            presence_grace: cfg.presence_grace,
            lingering: Lingering::default(),
        })
    }
}
