//! `clockwork-worker`: the worker process. Parses the command line, starts the devices
//! and the network executor (see the library docs for what the worker does), prints a
//! banner, and serves until killed.
//!
//! Exit codes: 0 after a clean stop, 2 for a bad command line or devices that cannot be
//! had (e.g. `--cuda` without CUDA), 1 for any other start-up failure (e.g. the address
//! is in use).

mod cli;

use clap::Parser;
use cli::Cli;
use clockwork_worker::{Worker, WorkerError, DEFAULT_TOKEN};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.log)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let config = match args.config() {
        Ok(c) => c,
        Err(message) => cli::usage_error(&message),
    };
    let banner = cli::describe(&args, &config);
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
    if args.token == DEFAULT_TOKEN {
        println!(
            "  token: the default development token `{DEFAULT_TOKEN}`; set --token for anything but local testing"
        );
    }
    match worker.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
