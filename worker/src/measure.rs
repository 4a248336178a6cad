//! Measuring a real model at registration, for workers whose devices compute (CPU
//! devices): import the profile's ONNX file, build its plans for the profile's batch
//! sizes (timed: the LOAD time) and time each batch size (a short warm-up, then a few
//! runs; the p99 is what the scheduler plans with).
//!
//! It runs on one **registration thread** per worker, off the network executor and off
//! the devices' engine threads (pinned, when the worker can spare one, to a core no
//! device uses). The core asks for a measurement with `Output::Measure`; the shell hands
//! it to [`Registrations::submit`] and feeds what [`Registrations::next`] yields back to
//! the core, which then answers the REGISTER.

use atomic_waker::AtomicWaker;
use clockwork_core::model::MeasuredTimes;
use clockwork_core::{ModelProfile, ModelSource, WorkerStatus};
use clockwork_models::{
    profile_plans, ImportError, ImportLimits, ImportedModel, ProfileError, ProfileOptions,
};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::task::Poll;

/// Untimed runs per batch size before timing.
pub(crate) const WARMUP_RUNS: usize = 2;
/// Timed runs per batch size.
pub(crate) const TIMED_RUNS: usize = 10;

/// Why a model could not be measured: the REGISTER's status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MeasureError {
    pub(crate) status: WorkerStatus,
    pub(crate) message: String,
}

/// Import, plan and time the model of `profile` on the calling thread.
pub(crate) fn measure(profile: &ModelProfile) -> Result<MeasuredTimes, MeasureError> {
    let ModelSource::Onnx { path } = &profile.source else {
        return Err(MeasureError {
            status: WorkerStatus::InvalidAction,
            message: format!("model `{}` is emulated: nothing to measure", profile.name),
        });
    };
    let imported =
        ImportedModel::import_file(&profile.name, Path::new(path), &ImportLimits::default())
            .map_err(|e| MeasureError {
                status: match e {
                    ImportError::Read { .. } => WorkerStatus::InvalidModelPath,
                    _ => WorkerStatus::InvalidAction,
                },
                message: e.to_string(),
            })?;
    let meta = imported.metadata();
    if meta.input_bytes_per_request() != profile.input_bytes as usize
        || meta.output_bytes_per_request() != profile.output_bytes as usize
    {
        return Err(MeasureError {
            status: WorkerStatus::InvalidAction,
            message: format!(
                "model `{}`: the file takes {} input and {} output bytes per request, the \
                 profile says {} and {}",
                profile.name,
                meta.input_bytes_per_request(),
                meta.output_bytes_per_request(),
                profile.input_bytes,
                profile.output_bytes
            ),
        });
    }
    let sizes: Vec<usize> = profile
        .batches
        .iter()
        .map(|b| b.batch_size as usize)
        .collect();
    let options = ProfileOptions {
        warmup_runs: WARMUP_RUNS,
        timed_runs: TIMED_RUNS,
        seed: 1,
    };
    let (_runner, measured) =
        profile_plans(&imported, &sizes, &options).map_err(|e| MeasureError {
            status: match e {
                ProfileError::Run(_) => WorkerStatus::RuntimeError,
                _ => WorkerStatus::InvalidAction,
            },
            message: e.to_string(),
        })?;
    Ok(measured.measured_times())
}

/// A finished measurement: the core's tag and the result.
pub(crate) type Measured = (u64, Result<MeasuredTimes, MeasureError>);

#[derive(Debug, Default)]
struct Finished {
    queue: Mutex<VecDeque<Measured>>,
    waker: AtomicWaker,
}

/// The registration thread and the measurements it has finished.
#[derive(Debug)]
pub(crate) struct Registrations {
    jobs: Option<mpsc::Sender<(u64, ModelProfile)>>,
    finished: Arc<Finished>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Registrations {
    /// Start the registration thread, pinned to `cpu` when given.
    pub(crate) fn start(cpu: Option<usize>) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<(u64, ModelProfile)>();
        let finished = Arc::new(Finished::default());
        let done = Arc::clone(&finished);
        let thread = std::thread::Builder::new()
            .name("cw-registration".into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin(cpu);
                }
                while let Ok((tag, profile)) = rx.recv() {
                    let result = measure(&profile);
                    done.queue
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_back((tag, result));
                    done.waker.wake();
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            finished,
            thread: Some(thread),
        })
    }

    /// Measure `profile`'s model; its result comes out of [`Self::next`] with `tag`.
    pub(crate) fn submit(&self, tag: u64, profile: ModelProfile) {
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|j| j.send((tag, profile)).is_ok());
        if !sent {
            // The thread is gone (it panicked): answer rather than leave the REGISTER open.
            self.finished
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back((
                    tag,
                    Err(MeasureError {
                        status: WorkerStatus::RuntimeError,
                        message: "the registration thread stopped".into(),
                    }),
                ));
            self.finished.waker.wake();
        }
    }

    /// The next finished measurement.
    pub(crate) async fn next(&self) -> Measured {
        poll_fn(|cx| {
            let pop = || {
                self.finished
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front()
            };
            if let Some(m) = pop() {
                return Poll::Ready(m);
            }
            self.finished.waker.register(cx.waker());
            pop().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }
}

impl Drop for Registrations {
    fn drop(&mut self) {
        // The thread ends after the measurement it is running.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the registration thread panicked");
            }
        }
    }
}

/// Pin the calling thread to `cpu`; a failure is logged and ignored.
fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    let pinned = set
        .set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(e) = pinned {
        tracing::warn!(cpu, error = %e, "could not pin the registration thread");
    }
}
