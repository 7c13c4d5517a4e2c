//! The two HTTP requests the benchmark makes (readiness probes and creating a
//! conversation), written by hand over one loopback TCP connection each, so
//! the crate needs no HTTP client.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code and body.
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<Response> {
    if !addr.ip().is_loopback() {
        bail!("the benchmark only talks to loopback");
    }
    let mut stream = TcpStream::connect(addr).await?;
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Response { status, body })
}

/// The JSON object in a body (skipping chunked-encoding sizes if any).
pub fn json_body(body: &str) -> anyhow::Result<serde_json::Value> {
    let start = body.find('{').context("no JSON object in the body")?;
    let end = body.rfind('}').context("no JSON object in the body")?;
    Ok(serde_json::from_str(&body[start..=end])?)
}
