//! The raw broadcast server — the machine's limit the others are measured
//! against. tokio-tungstenite and just enough Engine.IO/Socket.IO framing
//! that the same load generator works against it: the open packet, the
//! namespace connect with an HS256 token check, pings every 25 s, acks.
//!
//! Rooms live in memory. `join_conversation {conversation_id}` joins any
//! room (no membership: that is the services' work confab and Node do), and
//! `send_message {conversation_id, text}` builds one `new_message` frame and
//! hands the same bytes to every member's connection, the sender's included.
//! Each connection is one task writing what its channel brings, a batch per
//! wake-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::sio::{self, Packet};
use crate::token;

type Tx = mpsc::UnboundedSender<Utf8Bytes>;

/// Room name → (connection id, its outgoing queue).
#[derive(Default)]
struct Rooms(Mutex<HashMap<String, Vec<(u64, Tx)>>>);

struct State {
    secret: String,
    rooms: Rooms,
    next_id: AtomicU64,
}

/// Serves until the process is killed.
pub async fn serve(listen: SocketAddr, secret: String) -> anyhow::Result<()> {
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "the raw server listens on loopback only"
    );
    let listener = TcpListener::bind(listen).await?;
    let state = Arc::new(State {
        secret,
        rooms: Rooms::default(),
        next_id: AtomicU64::new(1),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors: wait instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = connection(stream, state).await;
        });
    }
}

/// Who a connection is once its namespace connect succeeded.
struct Member {
    ns: String,
    user: String,
}

async fn connection(stream: TcpStream, state: Arc<State>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let config = crate::client::ws_config();
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut stream) = ws.split();
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let open = json!({
        "sid": id.to_string(), "upgrades": [], "pingInterval": 25000,
        "pingTimeout": 20000, "maxPayload": 1_000_000
    });
    sink.send(Message::text(format!("0{open}"))).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut member: Option<Member> = None;
    let mut joined: Vec<String> = Vec::new();
    let mut ping = tokio::time::interval(Duration::from_secs(25));
    ping.tick().await;
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(()),
                        Some(Ok(_)) => continue,
                    };
                    match sio::parse(&text) {
                        Packet::Connect { ns, data } => {
                            let token = serde_json::from_str::<Value>(data)
                                .ok()
                                .and_then(|v| v["token"].as_str().map(str::to_string));
                            let frame = match token.and_then(|t| token::verify(&state.secret, &t)) {
                                Some(user) => {
                                    member = Some(Member { ns: ns.to_string(), user });
                                    sio::connect(ns, &json!({ "sid": id.to_string() }))
                                }
                                None => sio::connect_error(ns, "INVALID_TOKEN"),
                            };
                            sink.send(Message::text(frame)).await?;
                        }
                        Packet::Event { ack, data, .. } => {
                            let Some(m) = &member else { continue };
                            let reply = event(&state, m, id, &tx, &mut joined, data);
                            if let Some(ack) = ack {
                                sink.send(Message::text(sio::ack(&m.ns, ack, &reply))).await?;
                            }
                        }
                        _ => {}
                    }
                }
                frame = rx.recv() => {
                    let Some(frame) = frame else { return Ok(()) };
                    sink.feed(Message::Text(frame)).await?;
                    while let Ok(more) = rx.try_recv() {
                        sink.feed(Message::Text(more)).await?;
                    }
                    sink.flush().await?;
                }
                _ = ping.tick() => sink.send(Message::text(sio::PING)).await?,
            }
        }
    }
    .await;
    let mut rooms = state.rooms.0.lock().expect("rooms lock");
    for room in joined {
        if let Some(members) = rooms.get_mut(&room) {
            members.retain(|(c, _)| *c != id);
            if members.is_empty() {
                rooms.remove(&room);
            }
        }
    }
    result
}

/// Handles one event and returns what its ack carries.
fn event(
    state: &State,
    m: &Member,
    id: u64,
    tx: &Tx,
    joined: &mut Vec<String>,
    data: &str,
) -> Value {
    let Ok(Value::Array(args)) = serde_json::from_str::<Value>(data) else {
        return json!({ "success": false });
    };
    let name = args.first().and_then(Value::as_str).unwrap_or("");
    let payload = args.get(1).cloned().unwrap_or(Value::Null);
    let room = match &payload["conversation_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return json!({ "success": false }),
    };
    match name {
        "join_conversation" => {
            if !joined.contains(&room) {
                joined.push(room.clone());
                let mut rooms = state.rooms.0.lock().expect("rooms lock");
                rooms
                    .entry(room.clone())
                    .or_default()
                    .push((id, tx.clone()));
            }
            json!({ "success": true, "data": { "conversationId": room } })
        }
        "leave_conversation" => {
            joined.retain(|r| *r != room);
            let mut rooms = state.rooms.0.lock().expect("rooms lock");
            if let Some(members) = rooms.get_mut(&room) {
                members.retain(|(c, _)| *c != id);
            }
            json!({ "success": true })
        }
        "send_message" => {
            let message = json!({
                "id": state.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
                "conversationId": room,
                "senderId": m.user,
                "senderName": m.user,
                "text": payload["text"],
                "createdAt": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0).to_string(),
            });
            // Rendered once; every member gets the same bytes.
            let frame = Utf8Bytes::from(sio::event(&m.ns, None, "new_message", &message));
            let rooms = state.rooms.0.lock().expect("rooms lock");
            for (_, member) in rooms.get(&room).into_iter().flatten() {
                let _ = member.send(frame.clone());
            }
            json!({ "success": true, "data": message })
        }
        _ => json!({ "success": false }),
    }
}
