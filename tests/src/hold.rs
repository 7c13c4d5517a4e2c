//! One socket held open by the official `socket.io-client`
//! (`tests/js/hold.mjs`), for Rust tests that need a live socket while they
//! act on the processes behind it. The script prints one line per thing
//! that happens to the socket: `connected` (joined to the conversation,
//! when one is given), `refused <message>`, `new_message <json>`,
//! `disconnected <reason>`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::js::js_dir;

/// A held socket; the node process is killed when this is dropped.
pub struct Held {
    /// The first line: `connected` or `refused <message>`.
    pub first: String,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl Held {
    /// Connects to `url` + `namespace` with `token` (and joins
    /// `conversation` with raven's `join_conversation`) and waits up to
    /// 10 s for the first line.
    pub async fn open(url: &str, namespace: &str, token: &str, conversation: Option<&str>) -> Held {
        let mut child = Command::new("node")
            .current_dir(js_dir())
            .args(["hold.mjs", url, namespace, token])
            .args(conversation)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("hold.mjs answered within 10 s")
            .expect("reading hold.mjs")
            .unwrap_or_default();
        Held {
            first,
            lines,
            _child: child,
        }
    }

    /// The next line within 10 s; `None` when the script ended or was silent.
    pub async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .ok()?
            .ok()?
    }
}
