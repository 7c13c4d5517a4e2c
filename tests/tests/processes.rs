//! The distributed shape: chat-service, presence-service, call-service,
//! notify-service and confab-edge each run as their own process (the
//! binaries a platform team deploys), configured only by flags and
//! environment. A `raven` conversation runs through them with the official
//! socket.io-client; then chat-service is killed outright and started again,
//! and messages flow through the same edge afterwards.
//!
//! The binaries are the workspace's own: the test command builds them first
//! (`cargo build --workspace --bins`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use confab_tests::app::run_js_suite;
use tokio::process::{Child, Command};

fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/processes-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (the test command does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(name: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(bin(name));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Polls `/readyz` until it answers `want` (true: 200, false: 503).
async fn readyz_becomes(url: &str, want: bool) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let ok = client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{url}/readyz did not become {} within 15 s",
        if want { "ready" } else { "not ready" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let secret = format!("processes-{}", rand::random::<u64>());

    let chat_env = [("CHAT_LISTEN", addr(0)), ("DATABASE_URL", db.clone())];
    let mut chat = spawn("chat-service", &chat_env);
    let presence_db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("presence.db").display()
    );
    let _presence = spawn(
        "presence-service",
        &[
            ("PRESENCE_LISTEN", addr(1)),
            ("PRESENCE_DATABASE_URL", presence_db),
        ],
    );
    let _call = spawn("call-service", &[("CALL_LISTEN", addr(2))]);
    let _notify = spawn("notify-service", &[("NOTIFY_LISTEN", addr(3))]);
    let _edge = spawn(
        "confab-edge",
        &[
            ("CONFAB_LISTEN", addr(4)),
            ("CONFAB_JWT_SECRET", secret.clone()),
            ("CONFAB_DEFAULT_CONTRACT", "raven".into()),
            ("CONFAB_CHAT_URL", url(0)),
            ("CONFAB_PRESENCE_URL", url(1)),
            ("CONFAB_CALL_URL", url(2)),
            ("CONFAB_NOTIFY_URL", url(3)),
        ],
    );
    let edge = url(4);
    readyz_becomes(&edge, true).await;

    // The whole raven suite (its in-process restart test skips itself here).
    run_js_suite("raven.test.mjs", &edge, &secret, None, None).await;

    // chat-service dies without warning; the edge notices and keeps serving.
    chat.kill().await.unwrap();
    readyz_becomes(&edge, false).await;
    let _chat = spawn("chat-service", &chat_env);
    readyz_becomes(&edge, true).await;
    run_js_suite("raven.test.mjs", &edge, &secret, None, Some("two clients")).await;
}
