//! `confab-bench hold`: a worker process that opens `count` idle clients and
//! keeps them connected (answering pings) until told to stop. The idle
//! scenario runs several of these, because one process may hold at most
//! 20,000 open files here and the server under test needs that many too.
//!
//! Protocol on stdio: the worker prints `ready <connected> <failed> <first error>`
//! once every connect finished; a line on stdin (or its end) makes it print
//! `alive <still open>` and exit.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client;
use crate::load::NS;
use crate::token;

/// What a worker is asked to hold.
#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    /// The server's address (loopback).
    #[arg(long)]
    pub addr: SocketAddr,
    /// User ids are `<prefix>-<n>`.
    #[arg(long)]
    pub prefix: String,
    /// The first n.
    #[arg(long)]
    pub from: usize,
    /// How many clients.
    #[arg(long)]
    pub count: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// The JWT secret the server uses.
    #[arg(long, env = "CONFAB_BENCH_SECRET", hide_env_values = true)]
    pub secret: String,
}

pub async fn run(args: HoldArgs) -> anyhow::Result<()> {
    use futures::StreamExt;
    let results: Vec<anyhow::Result<client::Session>> =
        futures::stream::iter(args.from..args.from + args.count)
            .map(|n| {
                let token = token::mint(&args.secret, &format!("{}-{n}", args.prefix));
                async move { client::connect(args.addr, client::source_ip(n), NS, &token).await }
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
    let mut handles = Vec::new();
    let mut failed = 0;
    let mut first_error = String::new();
    for r in results {
        match r {
            Ok(s) => handles.push(s.spawn(Box::new(|_| {}))),
            Err(e) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = format!("{e:#}").replace('\n', " ");
                }
            }
        }
    }
    println!("ready {} {failed} {first_error}", handles.len());
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    let alive = handles.iter().filter(|h| h.is_open()).count();
    println!("alive {alive}");
    Ok(())
}
