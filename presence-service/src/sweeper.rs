//! The background task that makes presence expire by itself: every
//! [`Config::sweep_interval`](crate::Config::sweep_interval)
//! it runs [`Presence::sweep`], until the service starts shutting down.

use std::time::Duration;

use confab_proto::server::Closing;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::presence::Presence;

/// Starts sweeping every `every`; the task ends when `closing` fires.
pub fn spawn(presence: Presence, every: Duration, closing: Closing) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let closed = closing.closed();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                _ = &mut closed => break,
                _ = tick.tick() => {
                    if let Err(e) = presence.sweep().await {
                        tracing::warn!(error = %e, "presence sweep failed; retrying next tick");
                    }
                }
            }
        }
        tracing::debug!("presence sweeper stopped");
    })
}
