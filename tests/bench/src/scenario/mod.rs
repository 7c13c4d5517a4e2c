//! The four scenarios of issue 12, each a module with one `run` function
//! taking a started server and returning what the report shows.

pub mod budget;
pub mod fanout;
pub mod idle;
pub mod storm;
