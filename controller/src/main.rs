//! `clockwork-controller`: the central controller process. Its flags and their checks
//! are the library's ([`clockwork_controller::cli`]); this binary adds the signal
//! handling (SIGTERM or SIGINT: graceful stop) and the exit codes: 2 for a bad command
//! line, 1 for any other failure.

use clap::Parser;
use clockwork_controller::cli::{self, ControllerArgs};
use std::process::ExitCode;

/// The Clockwork-RS controller: plans every LOAD, INFER and UNLOAD on every worker's
/// GPUs and answers clients.
#[derive(Parser, Debug)]
#[command(name = "clockwork-controller", version)]
struct Cli {
    #[command(flatten)]
    args: ControllerArgs,
}

fn main() -> ExitCode {
    let Cli { args } = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(args.log)
        .with_writer(std::io::stderr)
        .init();
    let service = match args.service_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clockwork-controller: {e}");
            return ExitCode::from(2);
        }
    };
    let term = nix::sys::signal::Signal::SIGTERM as i32;
    let int = nix::sys::signal::Signal::SIGINT as i32;
    if let Err(e) = glommio::signal::block(&[term, int]) {
        eprintln!("clockwork-controller: cannot block signals: {e}");
        return ExitCode::from(1);
    }
    let shutdown = async move {
        match glommio::signal::Signals::new(&[term, int]) {
            Ok(s) => {
                let _ = s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch signals; stop with SIGKILL");
                futures_lite::future::pending::<()>().await;
            }
        }
    };
    match cli::run(service, args.executor_config(), shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clockwork-controller: {e}");
            ExitCode::from(1)
        }
    }
}
