//! `presence-service`: presence-service alone, for deployments that run each
//! service as its own process.

use clap::Parser;
use confab_presence::Config;

#[derive(Parser)]
#[command(
    name = "presence-service",
    version,
    about = "confab presence-service: sessions, online/offline, last seen and typing over gRPC"
)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "PRESENCE_LISTEN", default_value = "127.0.0.1:50052")]
    listen: String,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let handle = confab_presence::serve(listener, args.config).await?;
    confab_proto::server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
