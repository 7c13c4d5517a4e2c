//! The scenarios, each a module with one `run` function taking a started
//! server and returning what the report shows: the four every server runs
//! (storm, idle, fan-out, the seed's budgets) and two only confab can
//! (call signaling in `v3`, a publish to a large audience in `hvtsocial`);
//! `scaling`, what one more edge of the distributed confab costs; and
//! `drops`, connections cut under a steady stream.

pub mod budget;
pub mod drops;
pub mod fanout;
pub mod idle;
pub mod publish;
pub mod scaling;
pub mod signaling;
pub mod storm;
