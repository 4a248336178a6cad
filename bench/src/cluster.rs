//! A local cluster of real processes on loopback: emulated workers and a controller,
//! each a child process of this binary (hidden subcommands `_worker` and
//! `_controller`), and the helpers to start, watch and stop them.
//!
//! The child processes take the real binaries' flags, checked the same way
//! ([`clockwork_worker::cli::WorkerArgs`], [`clockwork_controller::cli::ControllerArgs`]),
//! and start the same library code. Two things differ, both about being a child: each
//! prints `READY <addr>` on stdout once it serves, and stops gracefully when its stdin
//! closes (the parent went away) instead of on a signal.
//!
//! [`WorkerCommand`] and [`ControllerCommand`] hold the flags every benchmark's
//! cluster shares (a loopback port chosen by the kernel, the token, quiet logs, a
//! controller that retries its workers every 50 ms while they start); each benchmark
//! adds its own flags and starts them.

use anyhow::{anyhow, bail, Context as _};
use clockwork_controller::cli::{self as controller_cli, ControllerArgs};
use clockwork_worker::cli::WorkerArgs;
use clockwork_worker::Worker;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run a worker until stdin closes (the parent went away).
pub(crate) fn run_worker(args: &WorkerArgs) -> anyhow::Result<()> {
    let cfg = args.config().map_err(|e| anyhow!("worker: {e}"))?;
    for line in clockwork_worker::cli::describe(args, &cfg) {
        eprintln!("worker: {line}");
    }
    let worker = Worker::serve(cfg).map_err(|e| anyhow!("worker: {e}"))?;
    println!("READY {}", worker.local_addr());
    wait_for_stdin_eof();
    worker.stop().map_err(|e| anyhow!("worker: {e}"))?;
    Ok(())
}

fn wait_for_stdin_eof() {
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        sink.clear();
    }
}

/// Run the controller until stdin closes; then shut down gracefully (every pending
/// request answered, logs flushed).
pub(crate) fn run_controller(args: &ControllerArgs) -> anyhow::Result<()> {
    let service = args
        .service_config()
        .map_err(|e| anyhow!("controller: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        wait_for_stdin_eof();
        let _ = tx.send(());
    });
    let shutdown = async move {
        // Polled every 20 ms: quick enough to stop, and nothing to wake across threads.
        while matches!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    };
    println!("READY {}", args.listen);
    controller_cli::run(service, args.executor_config(), shutdown)
        .map_err(|e| anyhow!("controller: {e}"))
}

/// How a child process ends on an error: the error on one line of stderr (its log file,
/// whose last line the parent quotes, see [`ChildProc::start`]) and exit code 1.
pub(crate) fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// A free loopback address (bound, read and released: the child binds it again).
pub(crate) fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The value of `--noise` for a relative noise `noise` (0: none).
pub(crate) fn noise_flag(noise: f64) -> String {
    if noise > 0.0 {
        format!("normal:{noise}")
    } else {
        "none".to_owned()
    }
}

/// A `_worker` child's command line: a kernel-chosen loopback port, `token`, warnings
/// only; [`WorkerCommand::flag`] adds the devices and the rest.
pub(crate) struct WorkerCommand {
    args: Vec<String>,
}

impl WorkerCommand {
    pub(crate) fn new(token: &str) -> Self {
        let args = [
            "_worker",
            "--listen",
            "127.0.0.1:0",
            "--token",
            token,
            "--log",
            "warn",
        ];
        Self {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// `gpus` emulated GPUs with relative timing noise `noise`, seeded with `seed`.
    pub(crate) fn emulated(token: &str, gpus: u32, noise: f64, seed: u64) -> Self {
        Self::new(token)
            .flag("--emulate", gpus)
            .flag("--noise", noise_flag(noise))
            .flag("--seed", seed)
    }

    /// Adds `--name value`.
    pub(crate) fn flag(mut self, name: &str, value: impl ToString) -> Self {
        self.args.extend([name.to_owned(), value.to_string()]);
        self
    }

    /// Starts it as `label`, its stderr to `log` ([`ChildProc::start`]).
    pub(crate) fn start(&self, label: &str, log: &Path) -> anyhow::Result<ChildProc> {
        ChildProc::start(label, &self.args, log)
    }
}

/// A `_controller` child's command line: clients on `listen`, `workers` (retried every
/// 50 ms while they start), `token`, warnings only; [`ControllerCommand::flag`] and
/// [`ControllerCommand::switch`] add the rest.
pub(crate) struct ControllerCommand {
    args: Vec<String>,
    reconnect_ms: u64,
}

impl ControllerCommand {
    pub(crate) fn new(listen: SocketAddr, workers: &[ChildProc], token: &str) -> Self {
        let workers = workers
            .iter()
            .map(|w| w.addr.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Self {
            args: vec!["_controller".to_owned()],
            reconnect_ms: 50,
        }
        .flag("--listen", listen)
        .flag("--workers", workers)
        .flag("--token", token)
        .flag("--log", "warn")
    }

    /// Retries lost workers every `ms` instead of 50.
    pub(crate) fn reconnect_ms(mut self, ms: u64) -> Self {
        self.reconnect_ms = ms;
        self
    }

    /// Adds `--name value`.
    pub(crate) fn flag(mut self, name: &str, value: impl ToString) -> Self {
        self.args.extend([name.to_owned(), value.to_string()]);
        self
    }

    /// Adds `--name`.
    pub(crate) fn switch(mut self, name: &str) -> Self {
        self.args.push(name.to_owned());
        self
    }

    /// Adds flags as they are (a benchmark's pass-through `--controller-flag`s).
    pub(crate) fn extend(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args.extend(args);
        self
    }

    /// Starts it, its stderr to `log` ([`ChildProc::start`]).
    pub(crate) fn start(&self, log: &Path) -> anyhow::Result<ChildProc> {
        let mut args = self.args.clone();
        args.extend(["--reconnect-ms".to_owned(), self.reconnect_ms.to_string()]);
        ChildProc::start("controller", &args, log)
    }
}

/// A child process that prints `READY <addr>` once serving. Closing its stdin stops
/// it; dropping the handle kills it if it is still running.
pub(crate) struct ChildProc {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    child: Option<Child>,
}

impl ChildProc {
    /// Start this binary with `args` and wait (up to 30 s) for its READY line. If it
    /// does not come, the error quotes the last line of the child's log.
    pub(crate) fn start(name: &str, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("cannot start the {name} process"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("READY ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a
                .parse()
                .with_context(|| format!("{name} printed a bad address {a}"))?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Its last words (e.g. a flag it refused) say more than the file name.
                let last = std::fs::read_to_string(log)
                    .ok()
                    .and_then(|t| {
                        t.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(str::to_owned)
                    })
                    .map_or_else(String::new, |l| format!(": {l}"));
                bail!("{name} did not start{last} (see {})", log.display());
            }
        };
        Ok(Self {
            name: name.to_owned(),
            addr,
            child: Some(child),
        })
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system) the process has used so far, from /proc.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start after ") ".
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // /proc reports these in USER_HZ clock ticks, which Linux fixes at 100 on every
        // architecture this project builds for.
        const USER_HZ: f64 = 100.0;
        Some((utime + stime) / USER_HZ)
    }

    /// Kill the process now with SIGKILL, as a crash would end it, and reap it.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .with_context(|| format!("cannot kill {}", self.name))?;
            child.wait()?;
        }
        Ok(())
    }

    /// Close stdin and wait up to `grace` for a clean exit; kill after that.
    pub(crate) fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        drop(child.stdin.take());
        let t = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status}", self.name);
                }
                return Ok(());
            }
            if t.elapsed() > grace {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not stop within {grace:?}; killed", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
