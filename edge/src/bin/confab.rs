//! `confab`: the whole system in one process (the embedded mode), and
//! `confab token` to mint a token signed with the same secret.

use clap::{Parser, Subcommand};
use confab_edge::config::EdgeArgs;
use confab_edge::embedded::{self, EmbeddedArgs};

#[derive(Parser)]
#[command(
    name = "confab",
    version,
    about = "confab: a real-time messaging backend (edge + all services in one process)"
)]
struct Cli {
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    embedded: EmbeddedArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print an HS256 token signed with this installation's secret.
    Token {
        /// The user id (`sub` claim).
        #[arg(long)]
        sub: String,
        /// Display name (`name` claim).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    confab_proto::server::init_tracing();
    let cli = Cli::parse();
    if let Some(Command::Token { sub, name, ttl }) = cli.command {
        let secret = embedded::secret(&cli.edge, &cli.embedded)?;
        println!(
            "{}",
            confab_edge::auth::mint_hs256(secret.as_bytes(), &sub, name.as_deref(), ttl)
        );
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&cli.edge.listen).await?;
    let system = embedded::start(&cli.edge, &cli.embedded, listener).await?;
    tracing::info!(url = %system.edge.url(), data_dir = %cli.embedded.data_dir.display(), "confab is running; Ctrl-C stops it");
    confab_proto::server::shutdown_signal().await;
    system.shutdown().await;
    Ok(())
}
