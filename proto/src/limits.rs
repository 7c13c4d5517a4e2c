//! Limits every confab service and contract agrees on. chat-service enforces
//! them; an edge may check them early to refuse before doing other work.

/// The longest message text accepted, in bytes (10 KB).
pub const MAX_TEXT_BYTES: usize = 10 * 1024;
