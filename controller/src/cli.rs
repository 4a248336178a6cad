//! The controller's command line: its flags ([`ControllerArgs`]), the checks clap cannot
//! do, the service and executor configurations they make, and [`run`], which serves
//! until told to stop.
//!
//! The `clockwork-controller` binary and the main job's controller process
//! (`clockwork-bench local`, which flattens these flags into a hidden subcommand) both
//! start this way, so they accept the same flags and refuse the same bad values.

use crate::service::{
    serve, AdminAccess, BearerToken, HttpEngine, ServiceConfig, ServiceError, WorkerAddr,
};
use clockwork_core::{Nanos, Secret};
use clockwork_net::runtime::{self, ExecutorConfig, RuntimeError, DEFAULT_TICK_US, TICK_US_RANGE};
use clockwork_net::tls::{TlsClient, TlsServer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// The controller's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Workers to connect to, comma separated (host:port,...; IP addresses or host
    /// names, a name resolved again at every attempt). Each is retried until it answers,
    /// and again whenever its link drops.
    #[arg(long, value_delimiter = ',', required = true)]
    pub workers: Vec<WorkerAddr>,
    /// Address for clients.
    #[arg(long, default_value = "127.0.0.1:12346")]
    pub listen: SocketAddr,
    /// Address for the HTTP front end (Open Inference Protocol v2, model repository,
    /// Prometheus `/metrics`), e.g. 127.0.0.1:8000; none when omitted.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Which HTTP/1.1 implementation serves --http: `native` (the front end's own) or
    /// `hyper` (hyper's server on the controller's executor; more memory per held
    /// connection); same endpoints and limits (docs/http.md, "HTTP engines").
    #[arg(long, value_name = "ENGINE", default_value_t = HttpEngine::default())]
    pub http_engine: HttpEngine,
    /// Address for the gRPC front end (the Open Inference Protocol's
    /// `inference.GRPCInferenceService`, as Triton serves it), e.g. 127.0.0.1:8001;
    /// none when omitted. It shares the HTTP front end's admin token and limits.
    #[arg(long)]
    pub grpc: Option<SocketAddr>,
    /// A model repository in Triton's layout (`DIR/<name>/<version>/model.onnx`, with
    /// an optional `DIR/<name>/config.json`): every good entry is served as `<name>`
    /// (each copy also as `<name>-<id>`); bad entries are logged and skipped. Workers
    /// read the model files from the same paths (docs/adr/0003-model-files-by-path.md).
    #[arg(long)]
    pub model_repository: Option<PathBuf>,
    /// Cluster token shared with workers and clients.
    #[arg(long, default_value = "clockwork-dev")]
    pub token: Secret,
    /// Default SLO in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub slo_ms: f64,
    /// How far ahead each GPU's timeline is filled, in milliseconds (the most: the EXEC
    /// timeline's follows the tightest recent SLO).
    #[arg(long, default_value_t = 10.0)]
    pub schedule_ahead_ms: f64,
    /// Largest completion buffer in milliseconds: batches are planned to complete this
    /// long before a request's deadline, for the result's trip back. The controller
    /// measures that trip and uses less when it allows (down to --min-buffer-ms).
    #[arg(long, default_value_t = 5.0)]
    pub buffer_ms: f64,
    /// Smallest (and initial) completion buffer in milliseconds; equal to --buffer-ms
    /// for a constant buffer (the original Clockwork's 5 ms).
    #[arg(long, default_value_t = 0.2)]
    pub min_buffer_ms: f64,
    /// Percentile of the last ten measured runs that each execution estimate uses, in
    /// (0, 1]: 0.9 (the default) is the second largest, 1 the largest (the original
    /// Clockwork's p99 of ten). Lower plans a busy GPU closer to its real pace and
    /// serves more near saturation, at the risk of batches that end after their
    /// target (docs/scheduler.md).
    #[arg(long, default_value_t = 0.9)]
    pub estimator_percentile: f64,
    /// Largest batch size.
    #[arg(long, default_value_t = 16)]
    pub max_batch: u32,
    /// Most model instances this controller registers in all (retired ones included),
    /// over every interface: a registration that would pass it is refused whole.
    #[arg(long, default_value_t = clockwork_scheduler::config::DEFAULT_MAX_MODELS)]
    pub max_models: u32,
    /// Share of a GPU's admitted requests that may fail before the requests its plan
    /// under pressure doubts are refused at admission instead of queued, in [0, 1]
    /// (docs/scheduler.md, "Doubtful admissions"). 0 refuses every doubt, so that
    /// failures come at once; higher serves more at tight SLOs, with more failures
    /// coming late.
    #[arg(long, default_value_t = clockwork_scheduler::doubt::LATE_FAILURES_MAX)]
    pub late_failure_share: f64,
    /// Outstanding LOADs per GPU.
    #[arg(long, default_value_t = 2)]
    pub max_loads: u32,
    /// How long to wait before reconnecting to a worker that did not answer or whose
    /// link dropped, in milliseconds.
    #[arg(long, default_value_t = 200.0)]
    pub reconnect_ms: f64,
    /// Directory for the request and action logs (TSV); none when omitted.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Pin the controller's executor to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Spin this many microseconds before parking (lower latency, more CPU).
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,
    /// Period of the executor's tick guard in microseconds: the longest stall a wrong
    /// park of glommio can cause, and one wake-up per period while idle (CPU). See
    /// docs/operations.md, "Idle CPU and the tick guard".
    #[arg(long, default_value_t = DEFAULT_TICK_US,
          value_parser = clap::value_parser!(u64).range(TICK_US_RANGE))]
    pub tick_us: u64,
    /// Longest period, in microseconds, the controller stretches its tick guard to
    /// while the tightest recent SLO allows it (a twentieth of that SLO, never below
    /// --tick-us): 5 ms at the default 100 ms SLO. Set it to --tick-us to keep the tick
    /// fixed. docs/operations.md, "Idle CPU and the tick guard".
    #[arg(long, default_value_t = crate::service::DEFAULT_TICK_MAX_US,
          value_parser = clap::value_parser!(u64).range(TICK_US_RANGE))]
    pub tick_max_us: u64,
    /// Log filter level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log: tracing::Level,

    // The HTTP admin surface and its bounds (docs/http.md, "Admin surface").
    /// Token that guards the HTTP admin endpoints (register, load, unload), sent as
    /// `Authorization: Bearer TOKEN`. Without one of --admin-token, --admin-token-file
    /// or --admin-open they answer 403. Prefer the file: a flag shows in `ps`.
    #[arg(long, conflicts_with_all = ["admin_token_file", "admin_open"])]
    pub admin_token: Option<Secret>,
    /// File holding the admin token (surrounding whitespace is ignored).
    #[arg(long, conflicts_with = "admin_open")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve the HTTP admin endpoints without a token: local development only,
    /// allowed only when --http is a loopback address.
    #[arg(long)]
    pub admin_open: bool,
    /// Token every HTTP client must send as `Authorization: Bearer TOKEN` (all
    /// endpoints but `/v2/health/live`, `/v2/health/ready` and `/metrics`; the admin
    /// token is accepted too). Without one the client endpoints are open. Prefer
    /// --api-token-file: a flag shows in `ps`.
    #[arg(long, conflicts_with = "api_token_file")]
    pub api_token: Option<Secret>,
    /// File holding the API token (surrounding whitespace is ignored).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// `/metrics` needs the API token too (by default it stays open for scrapers).
    #[arg(long)]
    pub metrics_need_token: bool,
    /// PEM certificate chain (leaf first) for the HTTP front end: with it and
    /// --http-tls-key the HTTP port speaks HTTPS only (TLS 1.2/1.3). Read at start;
    /// restart to change it.
    #[arg(long, value_name = "PEM", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key of --http-tls-cert.
    #[arg(long, value_name = "PEM", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// PEM certificate chain (leaf first) for the gRPC front end: with it and
    /// --grpc-tls-key the gRPC port speaks TLS only (ALPN h2). Read at start; restart
    /// to change it.
    #[arg(long, value_name = "PEM", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of --grpc-tls-cert.
    #[arg(long, value_name = "PEM", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign the workers' link certificates (their
    /// --tls-cert): with it every worker link is TLS, and a worker's certificate must
    /// name the host given in --workers. Read at start; restart to change it.
    #[arg(long, value_name = "PEM")]
    pub worker_tls_ca: Option<PathBuf>,
    /// Directory where models registered over HTTP are kept, so that they come back
    /// after a restart (`registrations.json`); none when omitted.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Longest SLO an HTTP inference request may ask for, in milliseconds (longer: 400).
    #[arg(long, default_value_t = 60_000.0)]
    pub max_slo_ms: f64,
    /// Most open HTTP connections; further ones get 503 and are closed.
    #[arg(long, default_value_t = 1024)]
    pub http_max_connections: usize,
    /// A request must arrive completely within this many milliseconds of its first
    /// byte (else 408 and the connection is closed: slow senders cannot hold it).
    #[arg(long, default_value_t = 10_000.0)]
    pub http_request_timeout_ms: f64,
    /// A keep-alive HTTP connection with no new request for this many milliseconds is
    /// closed; so is a gRPC connection with no call in progress (after a GOAWAY).
    #[arg(long, default_value_t = 60_000.0)]
    pub http_idle_timeout_ms: f64,
    /// Send a gRPC peer an HTTP/2 PING after this many milliseconds without a frame from
    /// it, and close the connection if the PING is not answered within as long again
    /// (a dead peer with a call in progress); 0: no pings.
    #[arg(long, default_value_t = 30_000.0)]
    pub grpc_keepalive_ms: f64,
    // Link liveness and connection limits (docs/operations.md).
    /// Send each worker a heartbeat this often (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 100.0)]
    pub heartbeat_ms: f64,
    /// Declare a worker lost after this long without a frame from it (milliseconds; at
    /// least twice --heartbeat-ms and the workers' --heartbeat-ms).
    #[arg(long, value_name = "MS", default_value_t = 800.0)]
    pub link_timeout_ms: f64,
    /// Declare a worker link broken when a LOAD's or INFER's result is not back this
    /// long after its window's end plus its expected duration (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 1000.0)]
    pub result_grace_ms: f64,
    /// Most native client connections held at once; more are refused in words.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub max_connections: usize,
}

/// A flag value the controller cannot use; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ArgsError(String);

/// Why the controller stopped with an error.
#[derive(Debug, Error)]
pub enum RunError {
    /// The executor could not be built (e.g. a CPU that does not exist).
    #[error(transparent)]
    Executor(#[from] RuntimeError),
    /// The service could not start or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A positive number of milliseconds below one hour, for `--{flag}`.
fn ms(v: f64, flag: &str) -> Result<Nanos, ArgsError> {
    if !(v.is_finite() && v > 0.0 && v < 3_600_000.0) {
        return Err(ArgsError(format!(
            "--{flag} must be a positive number of milliseconds below one hour, got {v}"
        )));
    }
    Ok(Nanos((v * 1e6) as u64))
}

impl ControllerArgs {
    /// The service configuration, or what is wrong with the flags.
    pub fn service_config(&self) -> Result<ServiceConfig, ArgsError> {
        let mut cfg = ServiceConfig::new(self.workers.clone(), self.listen, self.token.clone());
        cfg.tick = Duration::from_micros(self.tick_us);
        cfg.tick_max = Duration::from_micros(self.tick_max_us);
        let s = &mut cfg.scheduler;
        s.default_slo = ms(self.slo_ms, "slo-ms")?;
        s.schedule_ahead = ms(self.schedule_ahead_ms, "schedule-ahead-ms")?;
        s.buffer = ms(self.buffer_ms, "buffer-ms")?;
        s.min_buffer = ms(self.min_buffer_ms, "min-buffer-ms")?;
        if s.min_buffer > s.buffer {
            return Err(ArgsError(
                "--min-buffer-ms must not exceed --buffer-ms".into(),
            ));
        }
        if s.buffer >= s.default_slo {
            return Err(ArgsError(
                "--buffer-ms must be below the default SLO (--slo-ms)".into(),
            ));
        }
        let p = self.estimator_percentile;
        if !(p > 0.0 && p <= 1.0) {
            return Err(ArgsError(format!(
                "--estimator-percentile must be above 0 and at most 1, got {p}"
            )));
        }
        s.estimator_percentile = p;
        if self.max_batch == 0 {
            return Err(ArgsError("--max-batch must be at least 1".into()));
        }
        s.max_batch = self.max_batch;
        if self.max_models == 0 {
            return Err(ArgsError("--max-models must be at least 1".into()));
        }
        s.max_models = self.max_models;
        let share = self.late_failure_share;
        if !(0.0..=1.0).contains(&share) {
            return Err(ArgsError(format!(
                "--late-failure-share must be between 0 and 1, got {share}"
            )));
        }
        s.late_failure_share = share;
        if self.max_loads == 0 {
            return Err(ArgsError("--max-loads must be at least 1".into()));
        }
        s.max_loads_in_flight = self.max_loads;
        s.telemetry = self.log_dir.is_some();
        cfg.reconnect_interval = Duration::from(ms(self.reconnect_ms, "reconnect-ms")?);
        cfg.log_dir.clone_from(&self.log_dir);
        cfg.http = self.http;
        cfg.http_engine = self.http_engine;
        cfg.grpc = self.grpc;
        cfg.model_repository.clone_from(&self.model_repository);
        self.admin_config(&mut cfg)?;
        cfg.liveness = clockwork_net::Liveness {
            heartbeat: Duration::from(ms(self.heartbeat_ms, "heartbeat-ms")?),
            timeout: Duration::from(ms(self.link_timeout_ms, "link-timeout-ms")?),
        };
        cfg.liveness
            .validate()
            .map_err(|e| ArgsError(format!("--heartbeat-ms / --link-timeout-ms: {e}")))?;
        cfg.result_grace = Duration::from(ms(self.result_grace_ms, "result-grace-ms")?);
        if self.max_connections == 0 {
            return Err(ArgsError("--max-connections must be at least 1".into()));
        }
        cfg.max_client_connections = self.max_connections;
        Ok(cfg)
    }

    /// The admin surface's flags into `cfg`: who may use the admin endpoints, the
    /// state directory, the SLO bound and the HTTP connection limits.
    fn admin_config(&self, cfg: &mut ServiceConfig) -> Result<(), ArgsError> {
        cfg.http_admin = if let Some(t) = &self.admin_token {
            AdminAccess::token(t.expose()).map_err(|e| ArgsError(format!("--admin-token: {e}")))?
        } else if let Some(path) = &self.admin_token_file {
            AdminAccess::token_file(path)
                .map_err(|e| ArgsError(format!("--admin-token-file: {e}")))?
        } else if self.admin_open {
            let loopback = |a: Option<SocketAddr>| a.is_none_or(|a| a.ip().is_loopback());
            let served = self.http.is_some() || self.grpc.is_some();
            if !served || !loopback(self.http) || !loopback(self.grpc) {
                return Err(ArgsError(
                    "--admin-open serves the admin endpoints without a token and is allowed \
                     only with loopback --http and --grpc addresses (127.0.0.1 or ::1); use \
                     --admin-token-file otherwise"
                        .into(),
                ));
            }
            AdminAccess::Open
        } else {
            AdminAccess::Closed
        };
        cfg.api_token = if let Some(t) = &self.api_token {
            Some(BearerToken::new(t.expose()).map_err(|e| ArgsError(format!("--api-token: {e}")))?)
        } else if let Some(path) = &self.api_token_file {
            Some(
                BearerToken::from_file(path)
                    .map_err(|e| ArgsError(format!("--api-token-file: {e}")))?,
            )
        } else {
            None
        };
        if self.metrics_need_token && cfg.api_token.is_none() {
            return Err(ArgsError(
                "--metrics-need-token needs --api-token-file or --api-token".into(),
            ));
        }
        cfg.metrics_need_token = self.metrics_need_token;
        if let (Some(cert), Some(key)) = (&self.http_tls_cert, &self.http_tls_key) {
            let tls = TlsServer::from_pem_files(cert, key, &[])
                .map_err(|e| ArgsError(format!("--http-tls-cert / --http-tls-key: {e}")))?;
            cfg.http_tls = Some(tls);
        }
        if let (Some(cert), Some(key)) = (&self.grpc_tls_cert, &self.grpc_tls_key) {
            let tls = TlsServer::from_pem_files(cert, key, &[b"h2"])
                .map_err(|e| ArgsError(format!("--grpc-tls-cert / --grpc-tls-key: {e}")))?;
            cfg.grpc_tls = Some(tls);
        }
        if let Some(ca) = &self.worker_tls_ca {
            let tls = TlsClient::from_ca_file(ca)
                .map_err(|e| ArgsError(format!("--worker-tls-ca: {e}")))?;
            cfg.worker_tls = Some(tls);
        }
        cfg.state_dir.clone_from(&self.state_dir);
        cfg.http_limits.max_slo = Duration::from(ms(self.max_slo_ms, "max-slo-ms")?);
        if self.http_max_connections == 0 {
            return Err(ArgsError(
                "--http-max-connections must be at least 1".into(),
            ));
        }
        cfg.http_limits.max_connections = self.http_max_connections;
        cfg.http_limits.request_timeout =
            Duration::from(ms(self.http_request_timeout_ms, "http-request-timeout-ms")?);
        cfg.http_limits.idle_timeout =
            Duration::from(ms(self.http_idle_timeout_ms, "http-idle-timeout-ms")?);
        cfg.http_limits.grpc_keepalive = if self.grpc_keepalive_ms == 0.0 {
            None
        } else {
            Some(Duration::from(ms(
                self.grpc_keepalive_ms,
                "grpc-keepalive-ms",
            )?))
        };
        Ok(())
    }

    /// The executor the service runs on (`--cpu`, `--spin-us`).
    pub fn executor_config(&self) -> ExecutorConfig {
        let mut exec =
            ExecutorConfig::named("controller").with_tick(Duration::from_micros(self.tick_us));
        if let Some(cpu) = self.cpu {
            exec = exec.with_cpu(cpu);
        }
        if self.spin_us > 0 {
            exec = exec.with_spin_before_park(Duration::from_micros(self.spin_us));
        }
        exec
    }
}

/// Serve on this thread, on an executor built from `executor`, until `shutdown`
/// resolves; then stop gracefully (every pending request answered, logs flushed).
pub fn run(
    service: ServiceConfig,
    executor: ExecutorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    runtime::run_here(executor, serve(service, shutdown))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn config(flags: &[&str]) -> Result<ServiceConfig, String> {
        let mut argv = vec!["controller", "--workers", "127.0.0.1:1,127.0.0.1:2"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.args.service_config().map_err(|e| e.to_string())
    }

    #[test]
    fn the_http_engine_is_native_unless_asked_and_a_bad_name_is_refused() {
        assert_eq!(config(&[]).unwrap().http_engine, HttpEngine::Native);
        let c = config(&["--http", "127.0.0.1:8000", "--http-engine", "native"]).unwrap();
        assert_eq!(c.http_engine, HttpEngine::Native);
        let c = config(&["--http-engine", "hyper"]).unwrap();
        assert_eq!(c.http_engine, HttpEngine::Hyper);
        let e = config(&["--http-engine", "tokio"]).unwrap_err();
        assert!(
            e.contains("--http-engine") && e.contains("native or hyper"),
            "{e}"
        );
    }

    #[test]
    fn grpc_tls_needs_both_files_and_says_which_flag_failed() {
        let e = config(&["--grpc", "127.0.0.1:8001", "--grpc-tls-cert", "c.pem"]).unwrap_err();
        assert!(e.contains("--grpc-tls-key"), "{e}");
        let e = config(&[
            "--grpc",
            "127.0.0.1:8001",
            "--grpc-tls-cert",
            "/nonexistent/c.pem",
            "--grpc-tls-key",
            "/nonexistent/k.pem",
        ])
        .unwrap_err();
        assert!(e.contains("--grpc-tls-cert / --grpc-tls-key"), "{e}");
        assert!(config(&["--grpc", "127.0.0.1:8001"])
            .unwrap()
            .grpc_tls
            .is_none());
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let argv = [
            "controller",
            "--workers",
            "127.0.0.1:1",
            "--token",
            "cluster-s3cret",
            "--api-token",
            "api-s3cret",
            "--admin-token",
            "admin-s3cret",
        ];
        let cli = Cli::try_parse_from(argv).unwrap();
        let cfg = cli.args.service_config().unwrap();
        let shown = format!("{cli:?} {cfg:?}");
        assert!(!shown.contains("s3cret"), "a token leaks: {shown}");
        assert_eq!(cfg.token.expose(), "cluster-s3cret");
    }

    #[test]
    fn flags_make_the_service_config() {
        let c = config(&[
            "--slo-ms",
            "50",
            "--buffer-ms",
            "4",
            "--min-buffer-ms",
            "4",
            "--max-batch",
            "8",
            "--estimator-percentile",
            "0.8",
            "--max-models",
            "5000",
            "--late-failure-share",
            "0",
            "--tick-us",
            "500",
            "--tick-max-us",
            "2000",
            "--reconnect-ms",
            "50",
            "--log-dir",
            "/tmp/x",
            "--model-repository",
            "/srv/models",
            "--grpc-keepalive-ms",
            "0",
        ])
        .unwrap();
        assert_eq!(c.http_limits.grpc_keepalive, None);
        let k = config(&["--grpc-keepalive-ms", "1500"]).unwrap();
        assert_eq!(
            k.http_limits.grpc_keepalive,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            c.model_repository.as_deref(),
            Some(std::path::Path::new("/srv/models"))
        );
        assert_eq!(c.workers.len(), 2);
        assert_eq!(c.scheduler.default_slo, Nanos::from_millis(50));
        assert_eq!(c.scheduler.buffer, c.scheduler.min_buffer);
        assert_eq!(c.scheduler.max_batch, 8);
        assert_eq!(c.scheduler.estimator_percentile, 0.8);
        assert_eq!(c.scheduler.max_models, 5000);
        assert_eq!(c.scheduler.late_failure_share, 0.0);
        assert_eq!(c.tick, Duration::from_micros(500));
        assert_eq!(c.tick_max, Duration::from_millis(2));
        assert_eq!(c.reconnect_interval, Duration::from_millis(50));
        assert!(c.scheduler.telemetry);
        assert!(c.http.is_none());
        assert!(c.grpc.is_none());
        let d = config(&[]).unwrap();
        assert!(!d.scheduler.telemetry);
        assert_eq!(d.scheduler.estimator_percentile, 0.9);
        assert_eq!(d.scheduler.max_models, 1 << 20);
        assert_eq!(d.scheduler.late_failure_share, 0.1);
        assert_eq!(d.tick, Duration::from_millis(1));
        assert_eq!(d.tick_max, Duration::from_millis(5));
        assert!(d.model_repository.is_none());
        assert_eq!(d.reconnect_interval, Duration::from_millis(200));
        assert_eq!(d.http_limits.grpc_keepalive, Some(Duration::from_secs(30)));
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (flags, says) in [
            (
                &["--reconnect-ms", "0"][..],
                "--reconnect-ms must be a positive",
            ),
            (&["--slo-ms", "nan"][..], "--slo-ms must be a positive"),
            (&["--max-loads", "0"][..], "--max-loads must be at least 1"),
            (
                &["--max-models", "0"][..],
                "--max-models must be at least 1",
            ),
            (
                &["--late-failure-share", "1.5"][..],
                "--late-failure-share must be between 0 and 1",
            ),
            (
                &["--estimator-percentile", "0"][..],
                "--estimator-percentile must be above 0",
            ),
            (
                &["--estimator-percentile", "1.5"][..],
                "--estimator-percentile must be above 0",
            ),
            (
                &["--schedule-ahead-ms", "3600000"][..],
                "--schedule-ahead-ms must be a positive",
            ),
            (
                &["--grpc-keepalive-ms", "nan"][..],
                "--grpc-keepalive-ms must be a positive",
            ),
        ] {
            let e = config(flags).unwrap_err();
            assert!(e.contains(says), "{flags:?}: {e}");
        }
        let e = Cli::try_parse_from(["controller"]).unwrap_err().to_string();
        assert!(e.contains("--workers"), "{e}");
        // Clap's own range check: a tick ceiling outside 100 us..=100 ms.
        let e = config(&["--tick-max-us", "50"]).unwrap_err();
        assert!(e.contains("--tick-max-us"), "{e}");
    }

    #[test]
    fn admin_flags() {
        assert_eq!(config(&[]).unwrap().http_admin, AdminAccess::Closed);
        let c = config(&["--admin-token", "t0ken", "--max-slo-ms", "5000"]).unwrap();
        assert_eq!(c.http_admin, AdminAccess::token("t0ken").unwrap());
        assert_eq!(c.http_limits.max_slo, Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = config(&["--admin-token-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(c.http_admin, AdminAccess::token("from-file").unwrap());
        let c = config(&["--http", "127.0.0.1:8000", "--admin-open"]).unwrap();
        assert_eq!(c.http_admin, AdminAccess::Open);
        let e = config(&["--http", "0.0.0.0:8000", "--admin-open"]).unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        // The gRPC front end shares the guard: open only on loopback addresses.
        let c = config(&["--grpc", "127.0.0.1:8001", "--admin-open"]).unwrap();
        assert_eq!(c.grpc, Some("127.0.0.1:8001".parse().unwrap()));
        assert_eq!(c.http_admin, AdminAccess::Open);
        let e = config(&[
            "--http",
            "127.0.0.1:8000",
            "--grpc",
            "0.0.0.0:8001",
            "--admin-open",
        ])
        .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(config(&["--admin-open"]).is_err());
        assert!(config(&["--admin-token", "a b"]).is_err());
        assert!(config(&["--admin-token", "x", "--admin-open"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api");
        std::fs::write(&file, "api-from-file\n").unwrap();
        let c = config(&["--api-token-file", file.to_str().unwrap()]).unwrap();
        assert!(c.api_token.unwrap().matches("api-from-file"));
        assert!(!c.metrics_need_token);
        let c = config(&["--api-token", "t", "--metrics-need-token"]).unwrap();
        assert!(c.metrics_need_token);
        assert!(config(&["--api-token", "a b"]).is_err());
        let e = config(&["--metrics-need-token"]).unwrap_err();
        assert!(e.contains("--api-token"), "{e}");
        let e = config(&["--api-token-file", "/nonexistent/token"]).unwrap_err();
        assert!(e.contains("--api-token-file"), "{e}");
        let e = config(&["--http-tls-cert", "/nonexistent/cert.pem"]).unwrap_err();
        assert!(e.contains("--http-tls-key"), "{e}");
        let e = config(&[
            "--http-tls-cert",
            "/nonexistent/cert.pem",
            "--http-tls-key",
            "/nonexistent/key.pem",
        ])
        .unwrap_err();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
        let e = config(&["--worker-tls-ca", "/nonexistent/ca.pem"]).unwrap_err();
        assert!(
            e.contains("--worker-tls-ca") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let e = config(&["--http-max-connections", "0"]).unwrap_err();
        assert!(e.contains("--http-max-connections"), "{e}");
    }
}
