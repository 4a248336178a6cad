//! `clockwork-bench`: the project's benchmarks. Each subcommand measures one thing
//! against a baseline measured in the same run (machines are shared and noisy), prints
//! a human-readable table, and ends with one JSON line.

mod cluster;
mod cpu_infer;
mod duration;
mod emulate;
mod experiment;
mod handoff;
mod http;
mod loadgen;
mod local;
mod make_model;
mod net;
mod overload;
mod scalability;
mod sched;
mod sim;
mod soak;
mod stats;
mod tight_slo;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "clockwork-bench", about = "Clockwork-RS benchmarks", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of its largest variant (the controller's flags)
// costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// The main job: a controller and emulated workers as separate processes on
    /// loopback replaying a workload (default: the synthetic Azure trace), with a
    /// report, logs and plots in an output folder.
    Local(local::LocalArgs),
    /// Transport round trip: a framed rkyv INFER action and its result over glommio TCP,
    /// against blocking std::net TCP carrying the same bytes (the floor).
    Net(net::NetArgs),
    /// Action->completion handoff between a glommio executor and a device engine thread
    /// through clockwork-gpu's rings, against std::sync::mpsc between two threads.
    Handoff(handoff::HandoffArgs),
    /// A worker with many emulated GPUs under a steady planned INFER load over loopback
    /// TCP: completion error (actual - planned) and worker CPU per device-second.
    Emulate(emulate::EmulateArgs),
    /// Inference round trips over the HTTP front end (Open Inference Protocol) against
    /// the native protocol, same controller and emulated worker: p50/p99 and their ratio.
    Http(http::HttpArgs),
    /// The scheduler core alone under a saturating request stream: ns of scheduler work
    /// per request, actions/s on one core, request() decision latency.
    Sched(sched::SchedArgs),
    /// The scheduler driven by simulated workers in virtual time: goodput, SLO
    /// attainment, latency, cold starts, real-time factor.
    Sim(sim::SimArgs),
    /// A local cluster (emulated GPUs) under steady load at ~60 % of capacity for N
    /// minutes: RSS, open descriptors, p99 and refusal rate per interval as JSON lines,
    /// and whether memory stayed flat.
    Soak(soak::SoakArgs),
    /// The paper's experiments (6.1, 6.2, 6.3, 6.5, 6.6) on emulated GPUs, scaled in time.
    Experiment(experiment::ExperimentArgs),
    /// Open- and closed-loop load generator for any Open Inference Protocol REST
    /// endpoint: per-SLO goodput, attainment, 429s and latency from each request's
    /// scheduled send time; `--self-test` checks its own speed against a sink.
    Loadgen(loadgen::LoadgenArgs),
    /// Issue 14's overload goal on real processes: emulated workers, Poisson load over
    /// HTTP at 1.5x capacity; refusal latency against the SLO, goodput, and the same
    /// with one worker killed halfway.
    Overload(overload::OverloadArgs),
    /// The tight-SLO issue's rows on one emulated GPU (H200 ResNet-50 fp16 at 10, 5 and
    /// 2.5 ms; V100 ResNet-50 at 10 and 25 ms), loaded over HTTP by `loadgen`.
    TightSlo(tight_slo::TightSloArgs),
    /// Write a generated ONNX model (seeded weights, nothing downloaded) into a model
    /// repository: identity, small_cnn, resnet18, resnet50.
    MakeModel(make_model::MakeModelArgs),
    /// A real model on one pinned core: the CPU device's execution against a direct
    /// tract run of the same plans (p50/p99, spread, bitwise-equal outputs), and the
    /// serving overhead over HTTP of a controller and a `--cpu 1` worker.
    CpuInfer(cpu_infer::CpuInferArgs),
    /// (internal) A worker process of the local cluster: `clockwork-worker`'s flags.
    #[command(name = "_worker", hide = true)]
    Worker(clockwork_worker::cli::WorkerArgs),
    /// (internal) The controller process of the local cluster: `clockwork-controller`'s
    /// flags.
    #[command(name = "_controller", hide = true)]
    Controller(clockwork_controller::cli::ControllerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The cluster's processes log at their --log level (as the binaries do); the
    // benchmarks only warnings.
    let level = match &cli.command {
        Command::Worker(args) => args.log,
        Command::Controller(args) => args.log,
        _ => tracing::Level::WARN,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
    match cli.command {
        Command::Net(args) => net::run(&args),
        Command::Handoff(args) => handoff::run(&args),
        Command::Emulate(args) => emulate::run(&args),
        Command::Http(args) => http::run(&args),
        Command::Sched(args) => sched::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Local(args) => local::run(&args),
        Command::Soak(args) => soak::run(&args),
        Command::Experiment(args) => experiment::run(&args),
        Command::MakeModel(args) => make_model::run(&args),
        Command::Loadgen(args) => loadgen::run(&args),
        Command::TightSlo(args) => tight_slo::run(&args),
        Command::Overload(args) => overload::run(&args),
        Command::CpuInfer(args) => cpu_infer::run(&args),
        Command::Worker(args) => cluster::exit_on_error(cluster::run_worker(&args)),
        Command::Controller(args) => cluster::exit_on_error(cluster::run_controller(&args)),
    }
}
