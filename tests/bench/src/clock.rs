//! One clock for the whole generator process: send times are written into
//! message texts as microseconds since [`now_us`]'s epoch, and receivers in
//! the same process subtract them from their own reading.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the first call in this process.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}
