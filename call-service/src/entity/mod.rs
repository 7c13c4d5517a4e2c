//! The tables call-service owns. Times are milliseconds since the Unix
//! epoch; a deadline column holds the time a timer fires, so the timers
//! survive a restart (the sweeper reads them back).

pub mod call;
pub mod participant;
