//! `clockwork-worker`: the worker process. Parses the command line (the library's
//! [`clockwork_worker::cli`]), starts the devices and the network executor (see the
//! library docs for what the worker does), prints a banner, and serves until killed.
//!
//! Signals (through `nix`: blocked in every thread, taken by one waiting thread with
//! `sigwait`): SIGINT or SIGTERM drains the worker (no new connections or actions,
//! in-flight actions finished and answered within `--drain-ms`, devices released) and
//! it exits 0.
//!
//! Exit codes: 0 after a clean stop, 2 for a bad command line or devices that cannot be
//! had (e.g. `--cuda` without CUDA), 1 for any other start-up failure (e.g. the address
//! is in use).

use clap::{CommandFactory, Parser};
use clockwork_worker::cli::{self, WorkerArgs};
use clockwork_worker::{Worker, WorkerError, DEFAULT_TOKEN};
use nix::sys::signal::{SigSet, Signal};
use std::process::ExitCode;

/// Clockwork-RS worker: runs the controller's LOAD, UNLOAD and INFER actions on this
/// machine's GPUs (or emulated ones), each inside its [earliest, latest] window, and
/// reports exact timings. It makes no decisions of its own.
///
/// On a shared host, run it with real-time priority so its threads are not preempted
/// past their deadlines: `chrt -f 50 clockwork-worker ...` (every thread inherits it).
/// It exits with code 2 for a bad command line or unavailable devices, 1 for other
/// start-up failures.
#[derive(Parser, Debug)]
#[command(name = "clockwork-worker", version)]
struct Cli {
    #[command(flatten)]
    args: WorkerArgs,
}

/// Print a usage error the way clap does and exit with code 2.
fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

fn main() -> ExitCode {
    let Cli { args } = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.log)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let config = match args.config() {
        Ok(c) => c,
        Err(message) => usage_error(&message),
    };
    let banner = cli::describe(&args, &config);
    // Blocked before any thread starts, so that every thread inherits the mask and the
    // signals wait for the one thread that takes them.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGINT);
    stop_signals.add(Signal::SIGTERM);
    if let Err(e) = stop_signals.thread_block() {
        eprintln!("error: cannot block SIGINT/SIGTERM: {e}");
        return ExitCode::from(1);
    }
    let worker = match Worker::serve(config) {
        Ok(w) => w,
        Err(e @ WorkerError::Gpu(_)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "clockwork-worker `{}` listening on {}",
        args.name,
        worker.local_addr()
    );
    for line in banner {
        println!("  {line}");
    }
    for g in worker.gpus() {
        if !g.emulated {
            println!("  {}: {}", g.id, g.name);
        }
    }
    if args.token == *DEFAULT_TOKEN {
        println!(
            "  token: the default development token `{DEFAULT_TOKEN}`; set --token for anything but local testing"
        );
    }
    let stopper = worker.stopper();
    std::thread::spawn(move || {
        if let Ok(signal) = stop_signals.wait() {
            tracing::info!(%signal, "stop requested: draining in-flight actions");
            stopper.drain();
        }
    });
    match worker.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
