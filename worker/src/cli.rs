//! The worker's command line: its flags ([`WorkerArgs`]), their parsers (sizes with
//! binary suffixes, noise models), the checks clap cannot do itself, and the
//! [`WorkerConfig`] they make.
//!
//! The `clockwork-worker` binary and the main job's emulated worker processes
//! (`clockwork-bench local`, which flattens these flags into a hidden subcommand) both
//! start this way, so they accept the same flags and refuse the same bad values.

use crate::{WorkerConfig, DEFAULT_LISTEN, DEFAULT_NAME, DEFAULT_TOKEN};
use clap::ArgGroup;
use clockwork_core::Secret;
use clockwork_gpu::{Backend, DeviceConfig, NoiseModel, DEFAULT_CACHE_BYTES};
use clockwork_net::runtime::ExecutorConfig;
use clockwork_net::{LinkConfig, Liveness};
use std::net::SocketAddr;
use std::time::Duration;

/// The worker's flags. Exactly one backend: `--emulate N`, `--cpu N`, or `--cuda` /
/// `--cuda-devices`.
#[derive(clap::Args, Debug, Clone)]
#[command(group(ArgGroup::new("backend").required(true).multiple(true).args(["emulate", "cpu", "cuda", "cuda_devices"])))]
pub struct WorkerArgs {
    /// Address to listen on for the controller.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Emulate N GPUs (no GPU needed; timing from the model profiles).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          conflicts_with_all = ["cpu", "cuda", "cuda_devices"])]
    pub emulate: Option<u32>,

    /// Run N CPU devices that really compute (not emulated): ONNX models through
    /// tract, one INFER at a time per device, each device pinned to its own core (the
    /// last N cores, leaving core 0 to the network executor when there are more cores
    /// than devices; `--engine-cpus` chooses them). On a 2-core machine use `--cpu 1`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          conflicts_with_all = ["cuda", "cuda_devices"])]
    pub cpu: Option<u32>,

    /// Use every real CUDA GPU of this machine (needs a build with `--features cuda`).
    #[arg(long)]
    pub cuda: bool,

    /// Use these CUDA device ordinals (implies --cuda), e.g. `0,1`.
    #[arg(long, value_name = "ORDINALS", value_delimiter = ',')]
    pub cuda_devices: Option<Vec<usize>>,

    /// Weights-cache page size: bytes, or with a binary suffix (KiB, MiB, GiB; K, M, G
    /// mean the same).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub page_size: u64,

    /// Weights-cache size per GPU, like --page-size (default 21.5GiB = 1376 pages of
    /// 16 MiB, as the original); rounded down to whole pages.
    #[arg(long, value_parser = parse_size)]
    pub cache_size: Option<u64>,

    /// Cluster token the controller must present.
    #[arg(long, default_value = DEFAULT_TOKEN)]
    pub token: Secret,

    /// PEM certificate chain (leaf first) for the controller link: with it and
    /// --tls-key the link port speaks TLS only, and the controller must trust the
    /// certificate's CA (its --worker-tls-ca). Read at start; restart to change it.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Timing noise of emulated GPUs: `none`, `normal:REL_SIGMA` or `uniform:REL`
    /// (e.g. `normal:0.02`). Only with --emulate.
    #[arg(long, value_parser = parse_noise)]
    pub noise: Option<NoiseModel>,

    /// Seed of the emulated timing noise. Only with --emulate.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Threads driving the emulated GPUs (GPU d runs on thread d % N). Only with
    /// --emulate; CUDA GPUs get one thread each.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub engine_threads: Option<u32>,

    /// Pin engine thread i to the i-th of these CPUs, e.g. `2,3` (with --cpu N: the
    /// N devices' cores).
    #[arg(long, value_name = "CPUS", value_delimiter = ',')]
    pub engine_cpus: Vec<usize>,

    /// Pin the network executor to this CPU.
    #[arg(long, value_name = "CPU")]
    pub net_cpu: Option<usize>,

    /// Let the network executor spin this many microseconds before it sleeps: results
    /// leave sooner after a completion (a foreign wake-up costs tens of µs on a VM), at
    /// the cost of CPU. 0 (default): sleep at once.
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub spin_us: u64,
    /// Period of the network executor's tick guard in microseconds (see the
    /// controller's --tick-us).
    #[arg(long, default_value_t = clockwork_net::runtime::DEFAULT_TICK_US,
          value_parser = clap::value_parser!(u64).range(clockwork_net::runtime::TICK_US_RANGE))]
    pub tick_us: u64,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log: tracing::Level,

    /// This worker's name, shown in the controller's logs.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,

    /// Send the controller a heartbeat this often (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub heartbeat_ms: u64,

    /// Close the controller link after this long without a frame from the controller
    /// (milliseconds; at least twice the controller's --heartbeat-ms). A second
    /// controller is refused until the connected one has been silent this long.
    #[arg(long, value_name = "MS", default_value_t = 800)]
    pub link_timeout_ms: u64,

    /// On SIGINT or SIGTERM, wait at most this long (milliseconds) for in-flight
    /// actions before stopping.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub drain_ms: u64,

    /// Most connections the controller port holds at once (in the handshake or open);
    /// more are refused in words.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
}

impl WorkerArgs {
    /// The worker configuration, or what is wrong with the flags.
    pub fn config(&self) -> Result<WorkerConfig, String> {
        if self.page_size == 0 {
            return Err("--page-size must be at least 1 byte".into());
        }
        let cache = self.cache_size.unwrap_or(DEFAULT_CACHE_BYTES);
        if cache < self.page_size {
            return Err(format!(
                "--cache-size ({cache} bytes) is smaller than one page (--page-size {} bytes)",
                self.page_size
            ));
        }
        if cache / self.page_size > u64::from(u32::MAX) {
            return Err("--cache-size / --page-size is over 2^32 pages".into());
        }
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let backend = match (self.emulate, self.cpu) {
            (Some(devices), _) => Backend::Emulated {
                devices,
                engine_threads: self.engine_threads.map_or(1, |n| n as usize),
                noise: self.noise.unwrap_or_default(),
                seed: self.seed.unwrap_or(0),
            },
            (None, Some(n)) => {
                self.only_emulated_flags_absent()?;
                let n = n as usize;
                let cores = if self.engine_cpus.is_empty() {
                    if n > cpus {
                        return Err(format!(
                            "--cpu {n}: this machine has {cpus} cores, one per CPU device at most"
                        ));
                    }
                    (cpus - n..cpus).collect()
                } else if self.engine_cpus.len() == n {
                    self.engine_cpus.clone()
                } else {
                    return Err(format!(
                        "--cpu {n} needs {n} --engine-cpus, {} given",
                        self.engine_cpus.len()
                    ));
                };
                Backend::Cpu { cores }
            }
            (None, None) => {
                self.only_emulated_flags_absent()?;
                let ordinals = match &self.cuda_devices {
                    Some(o) if o.is_empty() => {
                        return Err("--cuda-devices needs at least one ordinal".into())
                    }
                    Some(o) => o.clone(),
                    None => match clockwork_gpu::cuda_device_count() {
                        Ok(n) => (0..n).collect(),
                        Err(e) => return Err(format!("--cuda: {e}")),
                    },
                };
                Backend::Cuda { ordinals }
            }
        };
        let mut devices = DeviceConfig::emulated(1);
        devices.backend = backend;
        devices.page_size = self.page_size;
        devices.cache_bytes = cache;
        devices.cpus.clone_from(&self.engine_cpus);
        devices
            .validate()
            .map_err(|e| format!("device configuration: {e}"))?;
        for &cpu in self.net_cpu.iter().chain(&self.engine_cpus) {
            if cpu >= cpus {
                return Err(format!(
                    "CPU {cpu} does not exist (this machine has {cpus})"
                ));
            }
        }
        let mut executor = ExecutorConfig::named("cw-worker");
        executor.cpu = self.net_cpu;
        executor.tick = Duration::from_micros(self.tick_us);
        if self.spin_us > 0 {
            executor.spin_before_park = Some(Duration::from_micros(self.spin_us));
        }
        let liveness = Liveness {
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            timeout: Duration::from_millis(self.link_timeout_ms),
        };
        liveness
            .validate()
            .map_err(|e| format!("--heartbeat-ms / --link-timeout-ms: {e}"))?;
        let mut link = LinkConfig::new(self.token.expose(), self.name.clone());
        link.max_connections = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let tls = clockwork_net::tls::TlsServer::from_pem_files(cert, key, &[])
                .map_err(|e| format!("--tls-cert / --tls-key: {e}"))?;
            link.tls_server = Some(tls);
        }
        Ok(WorkerConfig {
            listen: self.listen,
            link,
            devices,
            executor,
            liveness,
            drain_timeout: Duration::from_millis(self.drain_ms),
        })
    }
}

impl WorkerArgs {
    /// Refuse the emulation-only flags without `--emulate`.
    fn only_emulated_flags_absent(&self) -> Result<(), String> {
        for (given, flag) in [
            (self.noise.is_some(), "--noise"),
            (self.seed.is_some(), "--seed"),
            (self.engine_threads.is_some(), "--engine-threads"),
        ] {
            if given {
                return Err(format!("{flag} applies only to --emulate"));
            }
        }
        Ok(())
    }
}

/// Banner lines describing the devices, saying clearly when they are emulated.
pub fn describe(args: &WorkerArgs, config: &WorkerConfig) -> Vec<String> {
    let d = &config.devices;
    let pages = d.total_pages();
    let mut lines = Vec::new();
    match &d.backend {
        Backend::Emulated {
            devices,
            engine_threads,
            noise,
            seed,
        } => lines.push(format!(
            "devices: {devices} EMULATED GPU(s) -- no GPU is used; execution times come from the \
             model profiles (noise {}, seed {seed}); {engine_threads} engine thread(s)",
            noise_name(*noise)
        )),
        Backend::Cuda { ordinals } => lines.push(format!(
            "devices: {} CUDA GPU(s), ordinals {ordinals:?}",
            ordinals.len()
        )),
        Backend::Cpu { cores } => lines.push(format!(
            "devices: {} CPU device(s) -- REAL compute, not emulated: ONNX models run through \
             tract, one INFER at a time per device; device i pinned to core {cores:?}[i]; \
             models are measured at registration",
            cores.len()
        )),
    }
    lines.push(format!(
        "weights cache per GPU: {pages} pages x {} = {}",
        human(d.page_size),
        human(u64::from(pages) * d.page_size)
    ));
    if let Some(cpu) = args.net_cpu {
        lines.push(format!("network executor pinned to CPU {cpu}"));
    }
    if args.spin_us > 0 {
        lines.push(format!(
            "network executor spins {} us before sleeping",
            args.spin_us
        ));
    }
    lines
}

fn noise_name(n: NoiseModel) -> String {
    match n {
        NoiseModel::None => "none".into(),
        NoiseModel::Normal { rel_sigma } => format!("normal:{rel_sigma}"),
        NoiseModel::Uniform { rel } => format!("uniform:{rel}"),
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {name}", bytes / size)
            } else {
                format!("{:.2} {name}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

/// A byte count: `16777216`, `16MiB`, `16M`, `21.5GiB`, `512 KiB`. Suffixes are powers
/// of 1024; `KB`/`MB`/`GB` are refused as ambiguous.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" | "mb" | "gb" | "tb" => {
            return Err(format!(
                "`{unit}` is ambiguous; use {}iB (powers of 1024) or plain bytes",
                &unit[..1].to_ascii_uppercase()
            ))
        }
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    if num.is_empty() {
        return Err(format!("`{s}` is not a size (e.g. 16MiB or 16777216)"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("`{s}` is too large"));
    }
    let x: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 16MiB or 16777216)"))?;
    let bytes = x * mult as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{s}` is out of range"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!("`{s}` is not a whole number of bytes"));
    }
    // Finite, non-negative, below 2^64 and whole: the conversion is exact.
    Ok(bytes as u64)
}

/// `none`, `normal:REL_SIGMA` or `uniform:REL`, with a finite, non-negative number.
pub fn parse_noise(s: &str) -> Result<NoiseModel, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(NoiseModel::None);
    }
    let (kind, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected none, normal:REL_SIGMA or uniform:REL"))?;
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("noise `{value}` must be finite and non-negative"));
    }
    match kind.trim().to_ascii_lowercase().as_str() {
        "normal" => Ok(NoiseModel::Normal { rel_sigma: v }),
        "uniform" => Ok(NoiseModel::Uniform { rel: v }),
        other => Err(format!(
            "unknown noise model `{other}`: expected none, normal:REL_SIGMA or uniform:REL"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The flags as the binary parses them.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: WorkerArgs,
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("16777216"), Ok(16 << 20));
        assert_eq!(parse_size("21.5GiB"), Ok(DEFAULT_CACHE_BYTES));
        assert_eq!(parse_size("512 kib"), Ok(512 << 10));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("16MB").unwrap_err().contains("ambiguous"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("16XB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn noise() {
        assert_eq!(parse_noise("none"), Ok(NoiseModel::None));
        assert_eq!(
            parse_noise("normal:0.02"),
            Ok(NoiseModel::Normal { rel_sigma: 0.02 })
        );
        assert_eq!(
            parse_noise("uniform:0.05"),
            Ok(NoiseModel::Uniform { rel: 0.05 })
        );
        assert!(parse_noise("normal:-1").is_err());
        assert!(parse_noise("normal:nan").is_err());
        assert!(parse_noise("gauss:0.1").is_err());
        assert!(parse_noise("normal").is_err());
    }

    #[test]
    fn default_cache_is_1376_pages() {
        let cli = Cli::try_parse_from(["clockwork-worker", "--emulate", "2"]).unwrap();
        let c = cli.args.config().unwrap();
        assert_eq!(c.devices.total_pages(), 1376);
        assert_eq!(c.link.token, DEFAULT_TOKEN);
    }

    #[test]
    fn flag_checks() {
        let bad = |args: &[&str]| {
            let mut v = vec!["clockwork-worker"];
            v.extend_from_slice(args);
            match Cli::try_parse_from(v) {
                Err(e) => e.to_string(),
                Ok(c) => c.args.config().err().unwrap_or_default(),
            }
        };
        assert!(bad(&["--emulate", "1", "--page-size", "0"]).contains("--page-size"));
        assert!(bad(&["--emulate", "1", "--cache-size", "1MiB"]).contains("smaller than one page"));
        assert!(bad(&["--cuda", "--noise", "none"]).contains("only to --emulate"));
        assert!(bad(&["--emulate", "0"]).contains("0"));
        assert!(bad(&[]).contains("required"));
        assert!(bad(&["--emulate", "1", "--cuda"]).contains("cannot be used"));
        assert!(bad(&["--emulate", "1", "--cpu", "1"]).contains("cannot be used"));
        assert!(bad(&["--cpu", "1", "--cuda"]).contains("cannot be used"));
        assert!(bad(&["--cpu", "0"]).contains("0"));
        assert!(bad(&["--cpu", "100000"]).contains("one per CPU device"));
        assert!(bad(&["--cpu", "2", "--engine-cpus", "0"]).contains("needs 2 --engine-cpus"));
        assert!(bad(&["--cpu", "1", "--seed", "1"]).contains("only to --emulate"));
        assert!(bad(&["--emulate", "1", "--tls-cert", "c.pem"]).contains("--tls-key"));
        let e = bad(&[
            "--emulate",
            "1",
            "--tls-cert",
            "/no/c.pem",
            "--tls-key",
            "/no/k.pem",
        ]);
        assert!(
            e.contains("--tls-cert / --tls-key") && e.contains("/no/c.pem"),
            "{e}"
        );
    }

    #[test]
    fn cpu_devices_take_the_last_cores() {
        let cli = Cli::try_parse_from(["clockwork-worker", "--cpu", "1"]).unwrap();
        let c = cli.args.config().unwrap();
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(c.devices.backend, Backend::Cpu { cores: vec![n - 1] });
        let banner = describe(&cli.args, &c).join("\n");
        assert!(banner.contains("REAL compute, not emulated"), "{banner}");

        let cli =
            Cli::try_parse_from(["clockwork-worker", "--cpu", "1", "--engine-cpus", "0"]).unwrap();
        let c = cli.args.config().unwrap();
        assert_eq!(c.devices.backend, Backend::Cpu { cores: vec![0] });
    }
}
