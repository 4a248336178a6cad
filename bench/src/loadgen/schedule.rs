//! When each request is due, for which model and which SLO class: the load
//! generator's arrival schedules.
//!
//! Open loop: Poisson or constant-rate arrivals split evenly over the models, the
//! Azure Functions trace replay (all from `clockwork-workload`, seeded), or a trace
//! file of send offsets. Every arrival takes the next SLO class in turn (round robin),
//! so each class gets an equal share of every model's arrivals over time. Closed
//! loop: a fixed number of clients per model, each sending its next request when the
//! previous one is answered (see `driver`).

use anyhow::{anyhow, bail, Context as _};
use clockwork_core::Nanos;
use clockwork_workload::azure::replay::scale_for_rate;
use clockwork_workload::azure::{ReplayConfig, TraceSource};
use clockwork_workload::{
    Arrival, AzureSpec, Interarrival, Level, OpenLoopSpec, Part, RateSplit, Scripted, Workload,
    WorkloadSpec,
};
use std::path::{Path, PathBuf};

/// One request to send: when (an offset from the start of the run), to which model
/// (an index into the load generator's model list) and in which SLO class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Job {
    /// Scheduled send time, from the start of the run. Latency is measured from it.
    pub(crate) at: Nanos,
    /// Index into the model list.
    pub(crate) model: u32,
    /// Index into the SLO classes.
    pub(crate) class: u8,
}

/// Where open-loop arrivals come from.
#[derive(Debug, Clone)]
pub(crate) enum OpenSource {
    /// Exponential gaps at `rate` r/s in total.
    Poisson { rate: f64 },
    /// Constant gaps at `rate` r/s in total.
    Constant { rate: f64 },
    /// The Azure Functions 2019 trace (synthetic unless `trace_dir` is given), scaled
    /// to `rate` r/s on average, from 10:00 of day 1.
    Azure {
        rate: f64,
        trace_dir: Option<PathBuf>,
    },
    /// Send offsets read from a file (see [`parse_trace_file`]).
    Trace { offsets: Vec<(Nanos, Option<u32>)> },
}

/// An open-loop schedule: arrivals in time order, each with its SLO class.
#[derive(Debug)]
pub(crate) struct OpenSchedule {
    workload: Workload,
    classes: u8,
    next_class: u8,
}

impl OpenSchedule {
    /// Arrivals of `source` over `models` models for `duration`, seeded by `seed`,
    /// spread round robin over `classes` SLO classes (at least 1).
    pub(crate) fn new(
        source: &OpenSource,
        models: usize,
        classes: u8,
        duration: Nanos,
        seed: u64,
    ) -> anyhow::Result<Self> {
        if models == 0 {
            bail!("no models to send to");
        }
        let err = |e: &dyn std::fmt::Display| anyhow!("arrivals: {e}");
        let workload = match source {
            OpenSource::Poisson { rate } | OpenSource::Constant { rate } => {
                let spec = WorkloadSpec::OpenLoop(OpenLoopSpec {
                    models,
                    rate: Level::Constant(*rate),
                    split: RateSplit::Even,
                    interarrival: if matches!(source, OpenSource::Poisson { .. }) {
                        Interarrival::Poisson
                    } else {
                        Interarrival::Fixed
                    },
                    slo: clockwork_workload::SloPlan::default(),
                });
                Workload::new(&spec, seed).map_err(|e| err(&e))?
            }
            OpenSource::Azure { rate, trace_dir } => {
                let trace_source = TraceSource::real_or_synthetic(trace_dir.clone(), seed);
                let trace = trace_source.load(1).map_err(|e| err(&e))?;
                let mut replay = ReplayConfig::new(models);
                replay.scale = Level::Constant(scale_for_rate(&trace, *rate));
                replay.start_minute = 600;
                let spec = WorkloadSpec::Azure(AzureSpec {
                    source: trace_source,
                    day: 1,
                    replay,
                });
                Workload::new(&spec, seed).map_err(|e| err(&e))?
            }
            OpenSource::Trace { offsets } => {
                let mut round_robin = 0usize;
                let arrivals = offsets
                    .iter()
                    .map(|&(at, model)| {
                        let model = match model {
                            Some(m) => m as usize,
                            None => {
                                round_robin += 1;
                                (round_robin - 1) % models
                            }
                        };
                        Arrival {
                            at,
                            model,
                            slo: clockwork_core::Slo::Default,
                        }
                    })
                    .collect::<Vec<_>>();
                if let Some(a) = arrivals.iter().find(|a| a.model >= models) {
                    bail!(
                        "the trace file names model index {} but only {models} model(s) are given",
                        a.model
                    );
                }
                Workload::from_parts(vec![Part::Open(Box::new(Scripted::new(arrivals)))])
            }
        };
        Ok(Self {
            workload: workload.with_end(duration),
            classes: classes.max(1),
            next_class: 0,
        })
    }

    /// The next job, or `None` when the schedule has ended.
    pub(crate) fn next_job(&mut self) -> Option<Job> {
        let a = self.workload.next_open()?;
        let class = self.next_class;
        self.next_class = (self.next_class + 1) % self.classes;
        Some(Job {
            at: a.at,
            model: u32::try_from(a.model).unwrap_or(u32::MAX),
            class,
        })
    }
}

/// Read a trace file: one send offset per line, in seconds from the start (`0.0125`),
/// optionally followed by whitespace and a model index into the model list; blank
/// lines and lines starting with `#` are skipped. Offsets need not be sorted.
pub(crate) fn read_trace_file(path: &Path) -> anyhow::Result<Vec<(Nanos, Option<u32>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_trace_file(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// [`read_trace_file`]'s format, from text.
pub(crate) fn parse_trace_file(text: &str) -> Result<Vec<(Nanos, Option<u32>)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let offset = fields.next().unwrap_or_default();
        let secs: f64 = offset
            .parse()
            .map_err(|_| format!("line {}: `{offset}` is not a number of seconds", i + 1))?;
        if !(secs.is_finite() && (0.0..=86_400.0).contains(&secs)) {
            return Err(format!(
                "line {}: offset {secs} s must be in [0, 86400]",
                i + 1
            ));
        }
        let model = match fields.next() {
            None => None,
            Some(m) => Some(
                m.parse::<u32>()
                    .map_err(|_| format!("line {}: `{m}` is not a model index", i + 1))?,
            ),
        };
        if let Some(extra) = fields.next() {
            return Err(format!("line {}: unexpected `{extra}`", i + 1));
        }
        out.push((Nanos((secs * 1e9) as u64), model));
    }
    if out.is_empty() {
        return Err("no send offsets".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_files_parse_and_refuse_garbage() {
        let t = parse_trace_file("# offsets\n0.5 1\n\n0.25\n").unwrap();
        assert_eq!(
            t,
            vec![
                (Nanos::from_millis(500), Some(1)),
                (Nanos::from_millis(250), None)
            ]
        );
        assert!(parse_trace_file("soon").unwrap_err().contains("line 1"));
        assert!(parse_trace_file("1 x").unwrap_err().contains("model index"));
        assert!(parse_trace_file("-1").unwrap_err().contains("[0, 86400]"));
        assert!(parse_trace_file("1 2 3")
            .unwrap_err()
            .contains("unexpected"));
        assert!(parse_trace_file("# nothing\n").is_err());
    }

    #[test]
    fn trace_replay_is_sorted_and_round_robins_models_and_classes() {
        let offsets = parse_trace_file("0.3\n0.1\n0.2 0\n").unwrap();
        let mut s = OpenSchedule::new(&OpenSource::Trace { offsets }, 2, 2, Nanos::from_secs(1), 1)
            .unwrap();
        let jobs: Vec<Job> = std::iter::from_fn(|| s.next_job()).collect();
        let at: Vec<u64> = jobs.iter().map(|j| j.at.get() / 1_000_000).collect();
        assert_eq!(at, vec![100, 200, 300]);
        // Models without an index go round robin in file order: 0.3 -> 0, 0.1 -> 1.
        assert_eq!(
            jobs.iter().map(|j| j.model).collect::<Vec<_>>(),
            vec![1, 0, 0]
        );
        assert_eq!(
            jobs.iter().map(|j| j.class).collect::<Vec<_>>(),
            vec![0, 1, 0]
        );
        let bad = OpenSchedule::new(
            &OpenSource::Trace {
                offsets: vec![(Nanos::ZERO, Some(5))],
            },
            2,
            1,
            Nanos::from_secs(1),
            1,
        );
        assert!(bad.unwrap_err().to_string().contains("model index 5"));
    }

    #[test]
    fn poisson_schedule_ends_at_the_duration_near_its_rate() {
        let mut s = OpenSchedule::new(
            &OpenSource::Poisson { rate: 10_000.0 },
            10,
            3,
            Nanos::from_secs(2),
            7,
        )
        .unwrap();
        let jobs: Vec<Job> = std::iter::from_fn(|| s.next_job()).collect();
        assert!((19_000..21_000).contains(&jobs.len()), "{}", jobs.len());
        assert!(jobs.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(jobs
            .iter()
            .all(|j| j.at < Nanos::from_secs(2) && j.model < 10));
        assert!(jobs.iter().all(|j| j.class < 3));
    }
}
