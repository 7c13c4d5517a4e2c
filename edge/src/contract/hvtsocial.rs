//! `hvtsocial` — not built yet (skeleton so the contract layer compiles).

use confab_proto::v1::ChatEvent;
use socketioxide::extract::SocketRef;

use super::{Contract, Emit, any_handshake};
use crate::auth::Identity;

pub const CONTRACT: Contract = Contract {
    name: "hvtsocial",
    handshake: any_handshake,
    auth_error: None,
    on_connect,
    chat_event,
};

fn on_connect(_s: &SocketRef, _me: &Identity) {}

fn chat_event(_ev: &ChatEvent) -> Vec<Emit> {
    Vec::new()
}
