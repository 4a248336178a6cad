//! `clockwork-bench`: the project's benchmarks. Each subcommand measures one thing
//! against a baseline measured in the same run (machines are shared and noisy), prints
//! a human-readable table, and ends with one JSON line.

mod net;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "clockwork-bench", about = "Clockwork-RS benchmarks", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Transport round trip: a framed rkyv INFER action and its result over glommio TCP,
    /// against blocking std::net TCP carrying the same bytes (the floor).
    Net(net::NetArgs),
}

fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let cli = Cli::parse();
    match cli.command {
        Command::Net(args) => net::run(&args),
    }
}
