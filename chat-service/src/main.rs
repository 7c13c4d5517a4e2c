//! `chat-service`: chat-service alone, for deployments that run each service
//! as its own process.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "chat-service",
    version,
    about = "confab chat-service: conversations and messages over gRPC"
)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    #[command(flatten)]
    config: confab_chat::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let handle = confab_chat::serve(listener, args.config).await?;
    confab_proto::server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
