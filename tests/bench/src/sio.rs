//! Engine.IO 4 / Socket.IO 5 framing over WebSocket — just the packets the
//! `raven` flow uses, shared by the load generator and the raw server.
//!
//! Over a WebSocket every Engine.IO packet is one text frame whose first
//! character is its type (`0` open, `2` ping, `3` pong, `4` message). A
//! Socket.IO packet rides inside a message: `4` + its own type (`0` connect,
//! `2` event, `3` ack, `4` connect error) + `/namespace,` + an optional ack
//! id + a JSON payload. So `42/raven,7["send_message",{…}]` is event
//! `send_message` in `/raven` asking for ack 7, and `43/raven,7[{…}]` is
//! that ack.

use serde_json::Value;

/// The Engine.IO ping the server sends; the client answers [`PONG`].
pub const PING: &str = "2";
/// The client's answer to [`PING`].
pub const PONG: &str = "3";

/// A Socket.IO packet inside an Engine.IO message, as read from a frame.
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    /// Engine.IO `0{…}`: the session is open.
    Open,
    /// Engine.IO `2`.
    Ping,
    /// Engine.IO `3`.
    Pong,
    /// `40/ns,{…}`: namespace connect (client: with auth; server: accepted).
    Connect { ns: &'a str, data: &'a str },
    /// `44/ns,{…}`: namespace connect refused.
    ConnectError { ns: &'a str, data: &'a str },
    /// `42/ns,[id]["event", …]`.
    Event {
        ns: &'a str,
        ack: Option<u64>,
        data: &'a str,
    },
    /// `43/ns,id[…]`.
    Ack { ns: &'a str, id: u64, data: &'a str },
    /// Anything else (other namespaces' packets, binary, upgrades).
    Other,
}

/// Splits `/ns,rest` into (`/ns`, `rest`); the main namespace has no prefix.
fn split_ns(s: &str) -> (&str, &str) {
    if s.starts_with('/') {
        match s.find(',') {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (s, ""),
        }
    } else {
        ("/", s)
    }
}

/// Splits a leading decimal ack id off `rest`.
fn split_id(rest: &str) -> (Option<u64>, &str) {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        (None, rest)
    } else {
        (rest[..digits].parse().ok(), &rest[digits..])
    }
}

/// Reads one text frame.
pub fn parse(frame: &str) -> Packet<'_> {
    let mut chars = frame.chars();
    match chars.next() {
        Some('0') => Packet::Open,
        Some('2') => Packet::Ping,
        Some('3') => Packet::Pong,
        Some('4') => {
            let body = &frame[1..];
            let Some(kind) = body.chars().next() else {
                return Packet::Other;
            };
            let (ns, rest) = split_ns(&body[1..]);
            match kind {
                '0' => Packet::Connect { ns, data: rest },
                '4' => Packet::ConnectError { ns, data: rest },
                '2' => {
                    let (ack, data) = split_id(rest);
                    Packet::Event { ns, ack, data }
                }
                '3' => match split_id(rest) {
                    (Some(id), data) => Packet::Ack { ns, id, data },
                    _ => Packet::Other,
                },
                _ => Packet::Other,
            }
        }
        _ => Packet::Other,
    }
}

/// The prefix `4x/ns,` of a Socket.IO packet of type `kind` in `ns`.
fn prefix(kind: char, ns: &str) -> String {
    if ns == "/" {
        format!("4{kind}")
    } else {
        format!("4{kind}{ns},")
    }
}

/// `40/ns,{auth}`: connect to a namespace.
pub fn connect(ns: &str, auth: &Value) -> String {
    format!("{}{auth}", prefix('0', ns))
}

/// `44/ns,{"message": …}`: a refused namespace connect.
pub fn connect_error(ns: &str, message: &str) -> String {
    format!(
        "{}{}",
        prefix('4', ns),
        serde_json::json!({ "message": message })
    )
}

/// `42/ns,[ack]["event",data]`.
pub fn event(ns: &str, ack: Option<u64>, name: &str, data: &Value) -> String {
    let id = ack.map(|a| a.to_string()).unwrap_or_default();
    format!("{}{id}{}", prefix('2', ns), serde_json::json!([name, data]))
}

/// `43/ns,id[data]`.
pub fn ack(ns: &str, id: u64, data: &Value) -> String {
    format!("{}{id}{}", prefix('3', ns), serde_json::json!([data]))
}

/// The event name of an event packet's `["name", …]` payload, without
/// parsing the rest (a receiver reads thousands of these a second).
pub fn event_name(data: &str) -> Option<&str> {
    let rest = data.strip_prefix("[\"")?;
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_a_socket_io_server_sends() {
        assert_eq!(parse("0{\"sid\":\"x\"}"), Packet::Open);
        assert_eq!(parse("2"), Packet::Ping);
        assert_eq!(
            parse("40/raven,{\"sid\":\"a\"}"),
            Packet::Connect {
                ns: "/raven",
                data: "{\"sid\":\"a\"}"
            }
        );
        assert_eq!(
            parse("42/raven,[\"new_message\",{}]"),
            Packet::Event {
                ns: "/raven",
                ack: None,
                data: "[\"new_message\",{}]"
            }
        );
        assert_eq!(
            parse("43/raven,12[{\"success\":true}]"),
            Packet::Ack {
                ns: "/raven",
                id: 12,
                data: "[{\"success\":true}]"
            }
        );
        assert_eq!(event_name("[\"new_message\",{}]"), Some("new_message"));
    }

    #[test]
    fn writes_what_a_socket_io_client_sends() {
        assert_eq!(
            connect("/raven", &json!({"token": "t"})),
            "40/raven,{\"token\":\"t\"}"
        );
        assert_eq!(
            event(
                "/raven",
                Some(3),
                "join_conversation",
                &json!({"conversation_id": "1"})
            ),
            "42/raven,3[\"join_conversation\",{\"conversation_id\":\"1\"}]"
        );
        assert_eq!(ack("/raven", 3, &json!({})), "43/raven,3[{}]");
        assert_eq!(event("/", None, "x", &json!(1)), "42[\"x\",1]");
    }
}
