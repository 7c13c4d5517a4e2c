//! `confab-edge`: the edge alone, in front of services running elsewhere.

use clap::Parser;
use confab_edge::config::{EdgeArgs, EdgeConfig, ServiceUrls};

#[derive(Parser)]
#[command(
    name = "confab-edge",
    version,
    about = "confab edge: Socket.IO and REST in front of confab's gRPC services"
)]
struct Cli {
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    urls: ServiceUrls,
    /// Redis for recoverable sessions, so that a client resumes its session
    /// on any edge; without it, on this edge only.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let cli = Cli::parse();
    let mut cfg = EdgeConfig::from_args(&cli.edge, cli.urls, None)?;
    cfg.recovery.redis_url = cli.redis_url;
    let listener = tokio::net::TcpListener::bind(&cli.edge.listen).await?;
    let edge = confab_edge::start(cfg, listener).await?;
    confab_proto::server::shutdown_signal().await;
    edge.shutdown().await;
    Ok(())
}
