//! The tables notify-service owns. Times are milliseconds since the Unix
//! epoch. A published event is stored once (`notify_events`), with the
//! notification it keeps; each recipient's copy (`notifications`) is a small
//! row pointing at it, so a 10,000-recipient publish writes its payload once.

pub mod cursor;
pub mod event;
pub mod notification;
pub mod story_view;
