//! Limits every confab service and contract agrees on. chat-service enforces
//! them; an edge may check them early to refuse before doing other work.

/// The longest message text accepted, in bytes (10 KB).
pub const MAX_TEXT_BYTES: usize = 10 * 1024;

use crate::{ErrorCode, ServiceError};

/// Refuses text longer than [`MAX_TEXT_BYTES`] with `MESSAGE_TOO_LONG`.
pub fn check_text(text: &str) -> Result<(), ServiceError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ServiceError::new(
            ErrorCode::MessageTooLong,
            format!(
                "text is {} bytes; the limit is {MAX_TEXT_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(())
}
