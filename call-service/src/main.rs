//! `call-service`: call-service alone, for deployments that run each service as
//! its own process.

use clap::Parser;
use confab_call::Config;

#[derive(Parser)]
#[command(
    name = "call-service",
    version,
    about = "confab call-service: calls, WebRTC signaling relay and call records over gRPC"
)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "CALL_LISTEN", default_value = "127.0.0.1:50053")]
    listen: String,
    /// chat-service's gRPC URL (who shares a conversation with whom); its
    /// replicas' URLs comma-separated, balanced and failed over per call.
    #[arg(long, env = "CALL_CHAT_URL", default_value = "http://127.0.0.1:50051")]
    chat_url: String,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let args = Args::parse();
    if let Some(path) = args
        .config
        .database_url
        .strip_prefix("sqlite://")
        .and_then(|p| p.split('?').next())
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let chat = confab_call::chat_at(&args.chat_url)?;
    let handle = confab_call::serve(listener, args.config, chat).await?;
    confab_proto::server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
