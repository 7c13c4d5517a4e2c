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
    /// `sqlite://path?mode=rwc` or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/chat.db?mode=rwc"
    )]
    database_url: String,
    /// The most messages one user may send in any one second, counted over
    /// all their sockets and contracts.
    #[arg(long, env = "CONFAB_MESSAGE_RATE_LIMIT", default_value_t = confab_chat::rate::DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    message_rate_limit: u32,
    /// Redis where replicas share the message rate windows; in this
    /// process when unset.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let args = Args::parse();
    let db = confab_chat::connect(&args.database_url).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let rate = confab_chat::rate_limit(args.message_rate_limit, args.redis_url.as_deref()).await?;
    let handle = confab_chat::serve_with(listener, db, rate).await?;
    confab_proto::server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
