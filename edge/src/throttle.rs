//! The per-user typing throttle, shared by every socket on this edge.
//!
//! Typing indicators are cheap to send and costly to fan out; a client
//! that sends a start per keystroke is slowed here, before any service
//! hears of it. It knows nothing of sockets or services.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Typing starts a user may send per minute (seed 004's suggestion); more
/// are dropped silently. Stops always pass, so an indicator never sticks.
pub const TYPING_STARTS_PER_MINUTE: u32 = 30;

/// Per-user typing throttle, shared by every socket on this edge.
#[derive(Clone)]
pub struct TypingThrottle(Arc<DefaultKeyedRateLimiter<String>>);

impl TypingThrottle {
    /// Whether `user_id` may start typing now (a start is counted).
    pub fn allows(&self, user_id: &str) -> bool {
        self.0.check_key(&user_id.to_string()).is_ok()
    }
}

impl Default for TypingThrottle {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(TYPING_STARTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))))
    }
}
