//! The load generator's client: one Socket.IO client over a raw WebSocket,
//! cheap enough that one process holds thousands.
//!
//! [`connect`] opens the TCP connection from one of several loopback source
//! addresses (127.0.0.2, 127.0.0.3, …: each has its own ~28,000 ephemeral
//! ports, so thousands of sockets and their TIME_WAITs never exhaust them),
//! does the WebSocket upgrade, waits for Engine.IO's open packet and
//! connects to the namespace with the token. [`Session::spawn`] then runs
//! the connection in one task: it answers pings, passes every event to a
//! callback, resolves acks, and writes what [`Handle`] queues.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::sio::{self, Packet};

/// How many loopback source addresses clients are spread over.
pub const SOURCES: usize = 16;

/// The longest a connect (TCP + upgrade + namespace) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The source address of client number `i`: 127.0.0.2 … 127.0.0.17.
pub fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8))
}

/// Small buffers: a client reads short frames, and thousands share a process.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

type Ws = WebSocketStream<TcpStream>;

/// A client connected to a namespace, not yet running.
pub struct Session {
    ws: Ws,
    ns: String,
}

/// Opens a TCP connection from `src` to `server`, upgrades it and connects to
/// namespace `ns` with `token`. A refused namespace connect is an error
/// carrying the server's message.
pub async fn connect(
    server: SocketAddr,
    src: IpAddr,
    ns: &str,
    token: &str,
) -> anyhow::Result<Session> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(server, src, ns, token))
        .await
        .context("connect timed out")?
}

async fn connect_inner(
    server: SocketAddr,
    src: IpAddr,
    ns: &str,
    token: &str,
) -> anyhow::Result<Session> {
    if !server.ip().is_loopback() || !src.is_loopback() {
        bail!("the benchmark only connects over loopback");
    }
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = client_async_with_config(url, stream, Some(ws_config())).await?;
    // Engine.IO open, then the namespace connect with the token.
    let mut sent_connect = false;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        match sio::parse(&text) {
            Packet::Open if !sent_connect => {
                sent_connect = true;
                let frame = sio::connect(ns, &json!({ "token": token }));
                ws.send(Message::text(frame)).await?;
            }
            Packet::Ping => ws.send(Message::text(sio::PONG)).await?,
            Packet::Connect { ns: got, .. } if got == ns => {
                return Ok(Session {
                    ws,
                    ns: ns.to_string(),
                });
            }
            Packet::ConnectError { data, .. } => bail!("connect_error {data}"),
            _ => {}
        }
    }
    bail!("the server closed the connection during the handshake")
}

/// What a running client is told to write.
enum Out {
    Frame(String),
    Request {
        id: u64,
        frame: String,
        reply: oneshot::Sender<String>,
    },
}

/// Called with each event packet's payload, e.g. `["new_message",{…}]`.
pub type OnEvent = Box<dyn FnMut(&str) + Send>;

impl Session {
    /// Runs the connection in its own task until the [`Handle`] is dropped or
    /// the server closes it.
    pub fn spawn(self, mut on_event: OnEvent) -> Handle {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        let Session { ws, ns } = self;
        let pong = sio::event(&ns, None, "pong", &serde_json::json!({}));
        let task = tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let mut acks: HashMap<u64, oneshot::Sender<String>> = HashMap::new();
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let text = match msg {
                            Some(Ok(Message::Text(text))) => text,
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                            Some(Ok(_)) => continue,
                        };
                        match sio::parse(&text) {
                            Packet::Ping if sink.send(Message::text(sio::PONG)).await.is_err() => break,
                            Packet::Event { data, .. } => {
                                // A `v3` server beats with `ping`; a client
                                // that never answers is dropped after three.
                                if data.starts_with("[\"ping\",")
                                    && sink.send(Message::text(pong.clone())).await.is_err()
                                {
                                    break;
                                }
                                on_event(data)
                            }
                            Packet::Ack { id, data, .. } => {
                                if let Some(reply) = acks.remove(&id) {
                                    let _ = reply.send(data.to_string());
                                }
                            }
                            _ => {}
                        }
                    }
                    out = rx.recv() => {
                        let frame = match out {
                            Some(Out::Frame(f)) => f,
                            Some(Out::Request { id, frame, reply }) => {
                                acks.insert(id, reply);
                                frame
                            }
                            None => {
                                let _ = sink.close().await;
                                break;
                            }
                        };
                        if sink.send(Message::text(frame)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Handle {
            tx,
            ns,
            next_ack: AtomicU64::new(1),
            task,
        }
    }
}

/// Writes to a running client. Dropping it closes the connection.
pub struct Handle {
    tx: mpsc::UnboundedSender<Out>,
    ns: String,
    next_ack: AtomicU64,
    task: JoinHandle<()>,
}

impl Handle {
    /// Emits `event` without an ack.
    pub fn emit(&self, event: &str, data: &Value) {
        let _ = self
            .tx
            .send(Out::Frame(sio::event(&self.ns, None, event, data)));
    }

    /// Emits `event` with an ack and waits for it (its `[…]` payload).
    pub async fn request(&self, event: &str, data: &Value) -> anyhow::Result<String> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let frame = sio::event(&self.ns, Some(id), event, data);
        self.tx
            .send(Out::Request { id, frame, reply })
            .map_err(|_| anyhow::anyhow!("connection closed"))?;
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .context("no ack within 10 s")?
            .context("connection closed before the ack")
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
