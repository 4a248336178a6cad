//! `clockwork-controller`: the central controller process.

use clap::Parser;
use clockwork_controller::service::{serve, ServiceConfig};
use clockwork_core::Nanos;
use clockwork_net::runtime::{self, ExecutorConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The Clockwork-RS controller: plans every LOAD, INFER and UNLOAD on every worker's
/// GPUs and answers clients.
#[derive(Parser, Debug)]
#[command(name = "clockwork-controller", version)]
struct Args {
    /// Workers to connect to, comma separated (host:port,...). Each is retried until it
    /// answers, and again whenever its link drops.
    #[arg(long, value_delimiter = ',', required = true)]
    workers: Vec<SocketAddr>,
    /// Address for clients.
    #[arg(long, default_value = "127.0.0.1:12346")]
    listen: SocketAddr,
    /// Address for the HTTP front end (Open Inference Protocol v2, model repository,
    /// Prometheus `/metrics`), e.g. 127.0.0.1:8000; none when omitted.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Cluster token shared with workers and clients.
    #[arg(long, default_value = "clockwork-dev")]
    token: String,
    /// Default SLO in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    slo_ms: f64,
    /// How far ahead each GPU's timeline is filled, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    schedule_ahead_ms: f64,
    /// Largest completion buffer in milliseconds: batches are planned to complete this
    /// long before a request's deadline, for the result's trip back. The controller
    /// measures that trip and uses less when it allows (down to --min-buffer-ms).
    #[arg(long, default_value_t = 5.0)]
    buffer_ms: f64,
    /// Smallest completion buffer in milliseconds; equal to --buffer-ms for a constant
    /// buffer (the original Clockwork's 5 ms).
    #[arg(long, default_value_t = 1.0)]
    min_buffer_ms: f64,
    /// Largest batch size.
    #[arg(long, default_value_t = 16)]
    max_batch: u32,
    /// Outstanding LOADs per GPU.
    #[arg(long, default_value_t = 2)]
    max_loads: u32,
    /// Directory for the request and action logs (TSV); none when omitted.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Pin the controller's executor to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Spin this many microseconds before parking (lower latency, more CPU).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// Log filter level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log: tracing::Level,
}

fn ms(v: f64, flag: &str) -> Result<Nanos, String> {
    if !(v.is_finite() && v > 0.0 && v < 3_600_000.0) {
        return Err(format!(
            "--{flag} must be a positive number of milliseconds below one hour, got {v}"
        ));
    }
    Ok(Nanos((v * 1e6) as u64))
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(args.log)
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = ServiceConfig::new(args.workers.clone(), args.listen, args.token.clone());
    let checked = (|| -> Result<(), String> {
        cfg.scheduler.default_slo = ms(args.slo_ms, "slo-ms")?;
        cfg.scheduler.schedule_ahead = ms(args.schedule_ahead_ms, "schedule-ahead-ms")?;
        cfg.scheduler.buffer = ms(args.buffer_ms, "buffer-ms")?;
        cfg.scheduler.min_buffer = ms(args.min_buffer_ms, "min-buffer-ms")?;
        if cfg.scheduler.min_buffer > cfg.scheduler.buffer {
            return Err("--min-buffer-ms must not exceed --buffer-ms".into());
        }
        if cfg.scheduler.buffer >= cfg.scheduler.default_slo {
            return Err("--buffer-ms must be below the default SLO (--slo-ms)".into());
        }
        if args.max_batch == 0 {
            return Err("--max-batch must be at least 1".into());
        }
        cfg.scheduler.max_batch = args.max_batch;
        if args.max_loads == 0 {
            return Err("--max-loads must be at least 1".into());
        }
        cfg.scheduler.max_loads_in_flight = args.max_loads;
        cfg.scheduler.telemetry = args.log_dir.is_some();
        Ok(())
    })();
    if let Err(e) = checked {
        eprintln!("clockwork-controller: {e}");
        return ExitCode::from(2);
    }
    cfg.log_dir = args.log_dir.clone();
    cfg.http = args.http;
    let term = nix::sys::signal::Signal::SIGTERM as i32;
    let int = nix::sys::signal::Signal::SIGINT as i32;
    if let Err(e) = glommio::signal::block(&[term, int]) {
        eprintln!("clockwork-controller: cannot block signals: {e}");
        return ExitCode::from(1);
    }
    let mut exec = ExecutorConfig::named("controller");
    if let Some(cpu) = args.cpu {
        exec = exec.with_cpu(cpu);
    }
    if args.spin_us > 0 {
        exec = exec.with_spin_before_park(Duration::from_micros(args.spin_us));
    }
    let result = runtime::run_here(exec, async move {
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
        serve(cfg, shutdown).await
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("clockwork-controller: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("clockwork-controller: {e}");
            ExitCode::from(1)
        }
    }
}
