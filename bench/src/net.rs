//! `clockwork-bench net`: the transport's round trip against the loopback floor.
//!
//! (a) Our transport: a client executor sends a framed rkyv INFER action, a server
//! executor validates it in place and answers with a framed INFER result, which the
//! client validates; both executors are pinned, on glommio TCP with TCP_NODELAY.
//! Measured with glommio's default parking and with spin-before-park.
//! (b) The floor: the same frame bytes over blocking `std::net` TCP with TCP_NODELAY
//! between two pinned threads, with no serialization and no validation; and, stricter,
//! the same bytes over busy-polling non-blocking `std::net` sockets (no sleeping at all).

use crate::stats::{histogram, median, ratio, Summary};
use anyhow::{anyhow, bail, Context as _};
use clockwork_core::result::{Inferred, Outcome, Timing};
use clockwork_core::wire::{ArchivedFromWorker, ArchivedToWorker, FromWorker, PeerRole, ToWorker};
use clockwork_core::*;
use clockwork_net::frame::{FrameEncoder, RecvBuffer, DEFAULT_MAX_FRAME};
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_net::{connect, LinkConfig, Listener};
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Arguments of `net`.
#[derive(clap::Args, Debug)]
pub(crate) struct NetArgs {
    /// Measured round trips per run.
    #[arg(long, default_value_t = 50_000)]
    round_trips: u64,
    /// Unmeasured round trips before each run.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// Spin-before-park of the tuned glommio variant, in microseconds.
    #[arg(long, default_value_t = 200)]
    spin_us: u64,
    /// Busy-poll budget of the tuned variant's links, in microseconds (`ReadNow`).
    #[arg(long, default_value_t = 200)]
    busy_poll_us: u64,
    /// Runs of each variant, interleaved; medians across runs are reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// CPU of the server side (default 0).
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU of the client side (default 1).
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
}

const TOKEN: &str = "bench";

fn infer_action(id: u64) -> ToWorker {
    ToWorker::Actions(vec![Action {
        id: ActionId(id),
        window: Window::new(Nanos(1_000_000_000), Nanos(1_010_000_000)),
        kind: ActionKind::Infer {
            model: ModelId(17),
            gpu: GpuId(0),
            batch_size: 4,
            expected_duration: Nanos(7_500_000),
            input_sizes: vec![0, 0, 0, 0],
            inputs: Default::default(),
        },
    }])
}

fn infer_result(id: u64) -> FromWorker {
    let t = |b: u64| Timing {
        begin: Nanos(b),
        end: Nanos(b + 7_500_000),
        duration: Nanos(7_400_000),
    };
    FromWorker::Result(ActionResult {
        action_id: ActionId(id),
        status: WorkerStatus::Success,
        received: Nanos(1_000_000_000),
        sent: Nanos(1_009_000_000),
        outcome: Outcome::Inferred(Inferred {
            gpu: GpuId(0),
            padded_batch: 4,
            copy_input: t(1_000_100_000),
            exec: t(1_000_200_000),
            copy_output: t(1_008_000_000),
            gpu_clock_before_mhz: 1380,
            gpu_clock_mhz: 1380,
            outputs: Vec::new(),
        }),
    })
}

fn action_id(a: &ArchivedToWorker) -> Option<u64> {
    match a {
        ArchivedToWorker::Actions(v) => v.first().map(|a| a.id.to_native().get()),
        ArchivedToWorker::Heartbeat => None,
    }
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// One glommio run: returns the round-trip histogram and the client's clock estimate.
fn glommio_run(
    args: &NetArgs,
    spin: Option<Duration>,
    busy_poll: Duration,
) -> anyhow::Result<(Histogram<u64>, Option<u64>)> {
    let mut server_cfg = ExecutorConfig::named("bench-net-server").with_cpu(args.server_cpu);
    let mut client_cfg = ExecutorConfig::named("bench-net-client").with_cpu(args.client_cpu);
    if let Some(s) = spin {
        server_cfg = server_cfg.with_spin_before_park(s);
        client_cfg = client_cfg.with_spin_before_park(s);
    }
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let server = runtime::spawn(server_cfg, move || async move {
        let listener = Listener::bind(
            "127.0.0.1:0".parse().map_err(|e| anyhow!("{e}"))?,
            PeerRole::Controller,
            LinkConfig::new(TOKEN, "bench-server"),
        )?;
        addr_tx.send(listener.local_addr()?)?;
        let stream = listener.accept().await?;
        let (mut conn, _) = listener.handshake(stream).await?;
        conn.set_busy_poll(busy_poll);
        loop {
            let id = match conn.recv_msg::<ToWorker>().await {
                Ok(a) => action_id(a).ok_or_else(|| anyhow!("empty action batch"))?,
                Err(e) if e.is_disconnect() => return Ok::<_, anyhow::Error>(()),
                Err(e) => return Err(e.into()),
            };
            conn.send(&infer_result(id)).await?;
        }
    })?;
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .context("server did not start")?;
    let total = args.warmup + args.round_trips;
    let warmup = args.warmup;
    let client = runtime::spawn(client_cfg, move || async move {
        let (mut conn, _) = connect(
            addr,
            PeerRole::Controller,
            &LinkConfig::new(TOKEN, "bench-client"),
        )
        .await?;
        let mut h = histogram();
        for i in 0..total {
            let t0 = Instant::now();
            conn.send(&infer_action(i)).await?;
            let r = conn.recv_msg::<FromWorker>().await?;
            let ArchivedFromWorker::Result(r) = r else {
                bail!("a heartbeat where a result was expected");
            };
            if r.action_id.to_native().get() != i {
                bail!("result for the wrong action");
            }
            let dt = t0.elapsed().as_nanos() as u64;
            if i >= warmup {
                h.saturating_record(dt);
            }
        }
        Ok::<_, anyhow::Error>((h, conn.clock().rtt_ns()))
    })?;
    let out = client.join()??;
    server.join()??;
    Ok(out)
}

/// Read exactly `buf.len()` bytes; with `busy`, poll a non-blocking socket instead of
/// sleeping in the kernel.
fn read_full(s: &mut TcpStream, buf: &mut [u8], busy: bool) -> std::io::Result<()> {
    if !busy {
        return s.read_exact(buf);
    }
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write all of `buf`, retrying on `WouldBlock` (non-blocking sockets).
fn write_full(s: &mut TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One run of a floor: the same frame bytes over std TCP, blocking or busy-polling.
fn std_run(
    args: &NetArgs,
    action: &[u8],
    result: &[u8],
    busy: bool,
) -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (alen, result_owned) = (action.len(), result.to_vec());
    let server_cpu = args.server_cpu;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        pin(server_cpu);
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(busy)?;
        let mut buf = vec![0u8; alen];
        loop {
            if let Err(e) = read_full(&mut s, &mut buf, busy) {
                return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            write_full(&mut s, &result_owned)?;
        }
    });
    let (action_owned, rlen) = (action.to_vec(), result.len());
    let (client_cpu, total, warmup) =
        (args.client_cpu, args.warmup + args.round_trips, args.warmup);
    let client = std::thread::spawn(move || -> std::io::Result<Histogram<u64>> {
        pin(client_cpu);
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(busy)?;
        let mut buf = vec![0u8; rlen];
        let mut h = histogram();
        for i in 0..total {
            let t0 = Instant::now();
            write_full(&mut s, &action_owned)?;
            read_full(&mut s, &mut buf, busy)?;
            if i >= warmup {
                h.saturating_record(t0.elapsed().as_nanos() as u64);
            }
        }
        Ok(h)
    });
    let h = client
        .join()
        .map_err(|_| anyhow!("std client panicked"))??;
    server
        .join()
        .map_err(|_| anyhow!("std server panicked"))??;
    Ok(h)
}

/// Per-message CPU cost of encoding, and of checking + validating a received frame.
fn codec_costs() -> anyhow::Result<(f64, f64, f64)> {
    const N: u32 = 200_000;
    let mut enc = FrameEncoder::new();
    let t0 = Instant::now();
    let mut len = 0;
    for i in 0..N {
        len += enc.encode(&infer_action(u64::from(i)), 1, 0)?.len();
    }
    let encode_ns = t0.elapsed().as_nanos() as f64 / f64::from(N);
    std::hint::black_box(len);
    let frame = enc.encode(&infer_action(7), 1, 0)?.to_vec();
    let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
    let t0 = Instant::now();
    for _ in 0..N {
        let spare = rb.spare();
        spare[..frame.len()].copy_from_slice(&frame);
        rb.commit(frame.len());
        let f = rb.next_frame()?.ok_or_else(|| anyhow!("no frame"))?;
        std::hint::black_box(f.access::<ToWorker>()?);
    }
    let decode_ns = t0.elapsed().as_nanos() as f64 / f64::from(N);
    let payload = &frame[clockwork_net::frame::HEADER_LEN..];
    let payload_len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
    let mut aligned = rkyv::util::AlignedVec::<16>::new();
    aligned.extend_from_slice(&payload[..payload_len]);
    let t0 = Instant::now();
    for _ in 0..N {
        std::hint::black_box(rkyv::access::<ArchivedToWorker, rkyv::rancor::BoxedError>(
            &aligned,
        )?);
    }
    let access_ns = t0.elapsed().as_nanos() as f64 / f64::from(N);
    Ok((encode_ns, decode_ns, access_ns))
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn row(name: &str, s: &Summary, rt_per_s: f64) {
    println!(
        "{name:<28} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>12.0}",
        us(s.p50),
        us(s.p99),
        us(s.p999),
        us(s.max),
        rt_per_s
    );
}

/// Medians across runs of each percentile and of the round-trip rate.
fn median_of_runs(v: &[(Summary, f64)]) -> (Summary, f64) {
    let pick = |f: fn(&Summary) -> u64| median(v.iter().map(|(s, _)| f(s) as f64).collect()) as u64;
    let s = Summary {
        p50: pick(|s| s.p50),
        p99: pick(|s| s.p99),
        p999: pick(|s| s.p999),
        max: pick(|s| s.max),
        count: v.iter().map(|(s, _)| s.count).sum(),
    };
    (s, median(v.iter().map(|&(_, r)| r).collect()))
}

/// Run the benchmark.
pub(crate) fn run(args: &NetArgs) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if args.server_cpu >= cpus || args.client_cpu >= cpus {
        bail!("--server-cpu/--client-cpu must be below the {cpus} CPUs of this machine");
    }
    if args.round_trips == 0 || args.repeats == 0 {
        bail!("--round-trips and --repeats must be at least 1");
    }
    let mut enc = FrameEncoder::new();
    let action = enc.encode(&infer_action(0), 0, 0)?.to_vec();
    let result = enc.encode(&infer_result(0), 0, 0)?.to_vec();
    println!(
        "net: INFER action frame {} B, result frame {} B; server CPU {}, client CPU {}; {} round trips x {} runs per variant",
        action.len(),
        result.len(),
        args.server_cpu,
        args.client_cpu,
        args.round_trips,
        args.repeats
    );
    let spin = Duration::from_micros(args.spin_us);
    let mut park = Vec::new();
    let mut spun = Vec::new();
    let mut tuned = Vec::new();
    let busy = Duration::from_micros(args.busy_poll_us);
    let mut floor = Vec::new();
    let mut busy_floor = Vec::new();
    let mut rtt_est = None;
    for rep in 0..args.repeats {
        eprintln!(
            "  run {}/{}: glommio (park), glommio (spin {} us), std floor",
            rep + 1,
            args.repeats,
            args.spin_us
        );
        let t = Instant::now();
        let (h, _) = glommio_run(args, None, Duration::ZERO)?;
        park.push((Summary::of(&h), h.len() as f64 / t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let (h, rtt) = glommio_run(args, Some(spin), Duration::ZERO)?;
        spun.push((Summary::of(&h), h.len() as f64 / t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let (h, _) = glommio_run(args, Some(spin), busy)?;
        tuned.push((Summary::of(&h), h.len() as f64 / t.elapsed().as_secs_f64()));
        rtt_est = rtt.or(rtt_est);
        let t = Instant::now();
        let h = std_run(args, &action, &result, false)?;
        floor.push((Summary::of(&h), h.len() as f64 / t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let h = std_run(args, &action, &result, true)?;
        busy_floor.push((Summary::of(&h), h.len() as f64 / t.elapsed().as_secs_f64()));
    }
    let (park, park_w) = median_of_runs(&park);
    let (spun, spun_w) = median_of_runs(&spun);
    let (tuned, tuned_w) = median_of_runs(&tuned);
    let (floor, floor_w) = median_of_runs(&floor);
    let (busy_fl, busy_w) = median_of_runs(&busy_floor);
    println!(
        "\n{:<28} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "variant (median of runs)", "p50 us", "p99 us", "p99.9 us", "max us", "rt/s"
    );
    row("glommio, park when idle", &park, park_w);
    row(&format!("glommio, spin {} us", args.spin_us), &spun, spun_w);
    row(
        &format!("  + busy-poll {} us", args.busy_poll_us),
        &tuned,
        tuned_w,
    );
    row("std::net floor (blocking)", &floor, floor_w);
    row("std::net busy-poll", &busy_fl, busy_w);
    let (encode_ns, decode_ns, access_ns) = codec_costs()?;
    println!(
        "\nper message: encode (rkyv + header + crc) {encode_ns:.0} ns; receive (parse + crc + validate) {decode_ns:.0} ns; rkyv validation alone {access_ns:.0} ns"
    );
    if let Some(rtt) = rtt_est {
        println!("in-band clock sync: minimum RTT estimate {:.1} us", us(rtt));
    }
    let p50_ratio = ratio(tuned.p50, floor.p50);
    let p99_ratio = ratio(tuned.p99, floor.p99);
    println!(
        "\nratio to the blocking floor (goal <= 1.1x): spin+busy-poll p50 {p50_ratio:.2}x p99 {p99_ratio:.2}x; spin p50 {:.2}x p99 {:.2}x; park p50 {:.2}x p99 {:.2}x",
        ratio(spun.p50, floor.p50),
        ratio(spun.p99, floor.p99),
        ratio(park.p50, floor.p50),
        ratio(park.p99, floor.p99)
    );
    println!(
        "ratio to the busy-polling floor: spin+busy-poll p50 {:.2}x p99 {:.2}x; spin p50 {:.2}x p99 {:.2}x",
        ratio(tuned.p50, busy_fl.p50),
        ratio(tuned.p99, busy_fl.p99),
        ratio(spun.p50, busy_fl.p50),
        ratio(spun.p99, busy_fl.p99)
    );
    let json = serde_json::json!({
        "bench": "net",
        "p50_ratio": p50_ratio,
        "p99_ratio": p99_ratio,
        "park_p50_ratio": ratio(park.p50, floor.p50),
        "park_p99_ratio": ratio(park.p99, floor.p99),
        "spin_us": args.spin_us,
        "glommio_spin_p50_ns": spun.p50, "glommio_spin_p99_ns": spun.p99, "glommio_spin_p999_ns": spun.p999,
        "glommio_park_p50_ns": park.p50, "glommio_park_p99_ns": park.p99, "glommio_park_p999_ns": park.p999,
        "variant": "glommio spin + busy-poll vs blocking std floor",
        "spin_p50_ratio": ratio(spun.p50, floor.p50),
        "spin_p99_ratio": ratio(spun.p99, floor.p99),
        "busy_floor_p50_ratio": ratio(tuned.p50, busy_fl.p50),
        "busy_floor_p99_ratio": ratio(tuned.p99, busy_fl.p99),
        "busy_floor_p50_ns": busy_fl.p50, "busy_floor_p99_ns": busy_fl.p99, "busy_floor_rt_per_s": busy_w,
        "tuned_p50_ns": tuned.p50, "tuned_p99_ns": tuned.p99, "tuned_p999_ns": tuned.p999, "tuned_rt_per_s": tuned_w,
        "busy_poll_us": args.busy_poll_us,
        "floor_p50_ns": floor.p50, "floor_p99_ns": floor.p99, "floor_p999_ns": floor.p999,
        "glommio_spin_rt_per_s": spun_w,
        "floor_rt_per_s": floor_w, "glommio_park_rt_per_s": park_w,
        "encode_ns": encode_ns, "decode_ns": decode_ns, "validate_ns": access_ns,
        "action_frame_bytes": action.len(), "result_frame_bytes": result.len(),
        "round_trips": args.round_trips, "repeats": args.repeats,
    });
    println!("{json}");
    Ok(())
}
