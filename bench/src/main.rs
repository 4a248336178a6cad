//! `clockwork-bench`: the project's benchmarks. Each subcommand measures one thing
//! against a baseline measured in the same run (machines are shared and noisy), prints
//! a human-readable table, and ends with one JSON line.

mod emulate;
mod handoff;
mod net;
mod sched;
mod sim;
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
    /// Action->completion handoff between a glommio executor and a device engine thread
    /// through clockwork-gpu's rings, against std::sync::mpsc between two threads.
    Handoff(handoff::HandoffArgs),
    /// A worker with many emulated GPUs under a steady planned INFER load over loopback
    /// TCP: completion error (actual - planned) and worker CPU per device-second.
    Emulate(emulate::EmulateArgs),
    /// The scheduler core alone under a saturating request stream: ns of scheduler work
    /// per request, actions/s on one core, request() decision latency.
    Sched(sched::SchedArgs),
    /// The scheduler driven by simulated workers in virtual time: goodput, SLO
    /// attainment, latency, cold starts, real-time factor.
    Sim(sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let cli = Cli::parse();
    match cli.command {
        Command::Net(args) => net::run(&args),
        Command::Handoff(args) => handoff::run(&args),
        Command::Emulate(args) => emulate::run(&args),
        Command::Sched(args) => sched::run(&args),
        Command::Sim(args) => sim::run(&args),
    }
}
