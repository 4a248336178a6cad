//! Per-model scheduler state: profile and usable batch sizes, estimators, the request
//! queue (earliest target first), and where the model is resident.

use crate::arena::Key;
use crate::config::Config;
use crate::error::RegisterError;
use crate::estimator::Estimator;
use clockwork_core::{MeasuredTimes, ModelProfile, Nanos};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::sync::Arc;

/// A queued request: its completion target and its arena key. The queue is sorted by
/// target; entries whose request was answered meanwhile (timed out) are tombstones,
/// skipped when they reach the front. The front is always live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueEntry {
    pub(crate) target: Nanos,
    pub(crate) key: Key,
}

/// The model on one GPU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replica {
    /// The GPU (scheduler GPU key).
    pub(crate) gpu: u32,
    /// Weights resident (LOAD confirmed); `false` while loading.
    pub(crate) ready: bool,
    /// While loading: its predicted end.
    pub(crate) ready_at: Nanos,
    /// Last batch sent to or completed on this GPU (eviction order).
    pub(crate) last_used: Nanos,
    /// INFERs sent to this GPU and not yet answered (pins the weights).
    pub(crate) inflight: u32,
    /// Key of this model's live entry in the GPU's dispatch heap, if any. Entries with
    /// another key are superseded duplicates; an entry whose key is earlier than the
    /// model's current urgency is re-pushed when popped (lazy decrease of priority).
    pub(crate) heap_key: Option<Nanos>,
}

/// What copies of one registered model share: the profile and the usable batch
/// sizes (one allocation for all copies, hot in cache however many there are).
#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) profile: ModelProfile,
    /// Usable batch sizes, ascending; the first is 1.
    pub(crate) sizes: Vec<u32>,
    /// Pages at the configured page size.
    pages: u32,
    page_size: u64,
}

/// One registered model instance. Laid out for the per-request path: the queue, the
/// (usually single, inline) replica and the cached batch-1 estimate sit in the struct;
/// estimators live in one side allocation touched once per result.
#[derive(Debug, Clone)]
pub(crate) struct ModelState {
    pub(crate) shape: Arc<Shape>,
    pub(crate) queue: VecDeque<QueueEntry>,
    pub(crate) replicas: SmallVec<[Replica; 1]>,
    /// Batch size 1 (the most frequent batch, and read on every request), inline.
    b1: Estimator,
    /// `estimators[0]`: LOAD; `estimators[k]`: usable size `k` for `k >= 1`.
    estimators: Vec<Estimator>,
    /// Live (not tombstoned) queue entries.
    pub(crate) live: u32,
    /// Sum of the batch-1 work of the live queued requests (load demand).
    pub(crate) queued_work: u64,
    /// Share of `queued_work` credited to each replica's GPU.
    pub(crate) credited: u64,
    /// Load demand of a cold model whose requests were refused because no plan
    /// through a LOAD met their SLO (work of one such request; cleared when a LOAD is
    /// sent). Without it, a model whose SLO needs it warm would never be loaded.
    pub(crate) warm_demand: u64,
    /// Rotates the replica offered a new head first (load spreading).
    pub(crate) rotation: u32,
    /// Has an entry in the LOAD candidate heap.
    pub(crate) in_load_heap: bool,
    /// Last time the load tracker re-evaluated this (replicated) model.
    pub(crate) demand_checked: Option<Nanos>,
    /// Armed expiry timer of the queue's front, if any.
    pub(crate) expiry_armed: Option<Nanos>,
    /// Armed rescue check of the queue's front, if any (see `Scheduler::rescue_front`).
    pub(crate) rescue_armed: Option<Nanos>,
}

impl Shape {
    /// Usable batch sizes: the profile's, up to `max_batch`, without sizes above 1
    /// whose profiled time exceeds `max_exec` (reference 1.5) or whose inputs or
    /// outputs would not fit a frame of the worker link (`max_batch_bytes`).
    pub(crate) fn new(profile: ModelProfile, cfg: &Config) -> Result<Self, RegisterError> {
        let per_request = u64::from(profile.input_bytes.max(profile.output_bytes));
        if per_request > cfg.max_batch_bytes {
            return Err(RegisterError::TooLargeForLink {
                name: profile.name,
                bytes: per_request,
                max: cfg.max_batch_bytes,
            });
        }
        let sizes: Vec<u32> = profile
            .batches
            .iter()
            .filter(|b| {
                b.batch_size <= cfg.max_batch
                    && (b.batch_size == 1
                        || (b.exec_time <= cfg.max_exec
                            && u64::from(b.batch_size) * per_request <= cfg.max_batch_bytes))
            })
            .map(|b| b.batch_size)
            .collect();
        if sizes.first() != Some(&1) {
            return Err(RegisterError::NoBatchOne(profile.name));
        }
        Ok(Self {
            pages: profile.pages(cfg.page_size),
            page_size: cfg.page_size,
            sizes,
            profile,
        })
    }
}

impl ModelState {
    /// A fresh instance of `shape`, estimators seeded from its profile.
    pub(crate) fn new(shape: Arc<Shape>, cfg: &Config) -> Self {
        let p = &shape.profile;
        let seed = |b: u32| {
            let t = p.exec_time(b).unwrap_or(Nanos::from_micros(100));
            Estimator::new(t, cfg.estimator_window)
        };
        let mut estimators = vec![Estimator::new(p.load_time, cfg.estimator_window)];
        estimators.extend(shape.sizes.iter().skip(1).map(|&b| seed(b)));
        Self {
            b1: seed(1),
            estimators,
            shape,
            queue: VecDeque::new(),
            replicas: SmallVec::new(),
            live: 0,
            queued_work: 0,
            warm_demand: 0,
            credited: 0,
            rotation: 0,
            in_load_heap: false,
            demand_checked: None,
            expiry_armed: None,
            rescue_armed: None,
        }
    }

    /// Seeds the estimators again from times a worker measured for this model on its
    /// own device when it registered it (real models: the profile's times were only a
    /// placeholder). Telemetry goes on refining them from there.
    pub(crate) fn reseed(&mut self, m: &MeasuredTimes, cfg: &Config) {
        let exec = |b: u32| {
            m.batches
                .iter()
                .find(|x| x.batch_size >= b)
                .map(|x| x.exec_time)
        };
        let Some(b1) = exec(1) else {
            return;
        };
        self.b1 = Estimator::new(b1, cfg.estimator_window);
        self.estimators[0] = Estimator::new(m.load_time, cfg.estimator_window);
        for (k, &b) in self.shape.sizes.iter().enumerate().skip(1) {
            if let (Some(e), Some(t)) = (self.estimators.get_mut(k), exec(b)) {
                *e = Estimator::new(t, cfg.estimator_window);
            }
        }
    }

    /// The profile.
    pub(crate) fn profile(&self) -> &ModelProfile {
        &self.shape.profile
    }

    /// Usable batch sizes, ascending.
    pub(crate) fn sizes(&self) -> &[u32] {
        &self.shape.sizes
    }

    /// Execution estimate of usable size `k`: the largest estimate of the sizes up to
    /// `k`, so that estimates never decrease with the batch size (`Nanos::MAX` past
    /// the usable sizes). Measured estimates can: batch 2 of a ResNet-50 on an H200
    /// runs 1.3 % longer than batch 1, less than the 2 % noise between runs, so the
    /// windows' percentiles often put batch 2 below batch 1. Then INFER4's rule (the
    /// most pressing strategy, [`crate::batching`]) ranked batch 1 as more pressing
    /// and ran one request of two queued; on issue 13's H200 rows that was one batch
    /// in thirteen, and the capacity lost at 98 % load cost more requests than any margin.
    /// A larger batch is not faster than a smaller one in any plan.
    pub(crate) fn est(&self, k: usize) -> Nanos {
        if k >= self.estimators.len().max(1) {
            return Nanos::MAX;
        }
        self.estimators[1..=k]
            .iter()
            .fold(self.b1.estimate(), |e, x| e.max(x.estimate()))
    }

    /// LOAD estimate.
    pub(crate) fn load_estimate(&self) -> Nanos {
        self.estimators[0].estimate()
    }

    /// Records a measured LOAD time; returns the estimate it is compared with.
    pub(crate) fn record_load(&mut self, duration: Nanos, percentile: f64) -> Nanos {
        let e = &mut self.estimators[0];
        let before = e.estimate();
        e.record(duration, percentile);
        before
    }

    /// Batch-1 execution estimate.
    pub(crate) const fn b1(&self) -> Nanos {
        self.b1.estimate()
    }

    /// Records a measured execution time of usable size `k`.
    pub(crate) fn record_exec(&mut self, k: usize, duration: Nanos, percentile: f64) {
        if k == 0 {
            self.b1.record(duration, percentile);
        } else if let Some(e) = self.estimators.get_mut(k) {
            e.record(duration, percentile);
        }
    }

    /// Pages on a GPU with `page_size`.
    pub(crate) fn pages_at(&self, page_size: u64) -> u32 {
        if page_size == self.shape.page_size {
            self.shape.pages
        } else {
            self.shape.profile.pages(page_size)
        }
    }

    /// Pages at the configured page size.
    pub(crate) fn pages(&self) -> u32 {
        self.shape.pages
    }

    pub(crate) fn replica(&self, gpu: u32) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.gpu == gpu)
    }

    pub(crate) fn replica_mut(&mut self, gpu: u32) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.gpu == gpu)
    }

    pub(crate) fn has_ready_replica(&self) -> bool {
        self.replicas.iter().any(|r| r.ready)
    }

    /// Inserts in target order; returns whether the head changed.
    pub(crate) fn enqueue(&mut self, entry: QueueEntry) -> bool {
        self.live += 1;
        match self.queue.back() {
            None => {
                self.queue.push_back(entry);
                true
            }
            Some(back) if entry.target >= back.target => {
                self.queue.push_back(entry);
                false
            }
            Some(_) => {
                let pos = self.queue.partition_point(|e| e.target <= entry.target);
                self.queue.insert(pos, entry);
                pos == 0
            }
        }
    }

    /// The least GPU time one request can take: the smallest estimate per request over
    /// the usable batch sizes (a lower bound of a backlog's drain time per request).
    pub(crate) fn best_per_request(&self) -> Nanos {
        self.sizes()
            .iter()
            .enumerate()
            .map(|(k, &b)| Nanos(self.est(k).get() / u64::from(b.max(1))))
            .min()
            .unwrap_or(Nanos::ZERO)
    }

    /// Queued entries (tombstones included) whose target is at or before `target`.
    pub(crate) fn queued_until(&self, target: Nanos) -> u64 {
        self.queue.partition_point(|e| e.target <= target) as u64
    }

    /// Replicas ready to run INFERs.
    pub(crate) fn ready_replicas(&self) -> u64 {
        self.replicas.iter().filter(|r| r.ready).count() as u64
    }

    /// The GPU of the model's one ready replica; `None` with none or several.
    pub(crate) fn only_ready_replica(&self) -> Option<u32> {
        let mut ready = self.replicas.iter().filter(|r| r.ready);
        match (ready.next(), ready.next()) {
            (Some(r), None) => Some(r.gpu),
            _ => None,
        }
    }

    /// Priority of the model in a GPU's dispatch heap: the latest start of its head
    /// at batch size 1 (smaller is more urgent).
    pub(crate) fn urgency(&self) -> Option<Nanos> {
        self.queue.front().map(|e| e.target - self.b1())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::model::resnet50;

    fn with_tensors(input: u32, output: u32) -> ModelProfile {
        ModelProfile {
            input_bytes: input,
            output_bytes: output,
            ..resnet50()
        }
    }

    #[test]
    fn batches_that_would_not_fit_a_link_frame_are_not_used() {
        let cfg = Config {
            max_batch_bytes: 4_500,
            ..Config::default()
        };
        let all = Shape::new(resnet50(), &Config::default()).unwrap().sizes;
        assert!(all.len() > 3, "{all:?}");
        // 1,000 bytes per request: batches of up to 4 fit 4,500 bytes.
        let s = Shape::new(with_tensors(1_000, 16), &cfg).unwrap();
        assert!(s.sizes.iter().all(|&b| b <= 4), "{:?}", s.sizes);
        assert_eq!(
            s.sizes,
            all.iter().copied().filter(|&b| b <= 4).collect::<Vec<_>>()
        );
        // Outputs count as well.
        let s = Shape::new(with_tensors(16, 2_000), &cfg).unwrap();
        assert_eq!(
            s.sizes,
            all.iter().copied().filter(|&b| b <= 2).collect::<Vec<_>>()
        );
        // A request that alone passes the bound: refused, in words.
        let e = Shape::new(with_tensors(4_501, 16), &cfg).unwrap_err();
        assert!(matches!(
            e,
            RegisterError::TooLargeForLink {
                bytes: 4_501,
                max: 4_500,
                ..
            }
        ));
        assert!(e.to_string().contains("worker link"), "{e}");
    }
}
