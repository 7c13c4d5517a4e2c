//! `notify-service`: notify-service alone, for deployments that run each
//! service as its own process.

use clap::Parser;
use confab_notify::Config;

#[derive(Parser)]
#[command(
    name = "notify-service",
    version,
    about = "confab notify-service: notifications and domain events over gRPC"
)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "NOTIFY_LISTEN", default_value = "127.0.0.1:50054")]
    listen: String,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let handle = confab_notify::serve(listener, args.config).await?;
    confab_proto::server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
