//! `call-service`: call-service alone, for deployments that run each service as
//! its own process.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "call-service",
    version,
    about = "confab call-service over gRPC"
)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, env = "CALL_LISTEN", default_value = "127.0.0.1:50053")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let handle = confab_call::serve(listener).await?;
    confab_proto::server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
