//! Counters the scheduler keeps as it runs, read with [`crate::Scheduler::stats`].
//! Cheap enough to be always on (plain integer increments).

use clockwork_core::ClientStatus;

/// Signed prediction errors (actual − expected), in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorStats {
    /// Samples.
    pub count: u64,
    /// Sum of errors.
    pub sum: i128,
    /// Sum of absolute errors.
    pub sum_abs: u128,
    /// Largest overrun (actual above expected); 0 if never.
    pub max_over: i64,
    /// Largest underrun (actual below expected), as a positive number; 0 if never.
    pub max_under: i64,
}

impl ErrorStats {
    /// Adds one sample.
    pub fn record(&mut self, err: i64) {
        self.count += 1;
        self.sum += i128::from(err);
        self.sum_abs += u128::from(err.unsigned_abs());
        self.max_over = self.max_over.max(err);
        self.max_under = self.max_under.max(err.saturating_neg());
    }

    /// Mean error in ns (NaN with no samples).
    pub fn mean(&self) -> f64 {
        self.sum as f64 / self.count as f64
    }

    /// Mean absolute error in ns (NaN with no samples).
    pub fn mean_abs(&self) -> f64 {
        self.sum_abs as f64 / self.count as f64
    }
}

/// Scheduler counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Inference requests received.
    pub offered: u64,
    /// Inference requests answered (every status).
    pub answered: u64,
    /// Answered [`ClientStatus::Success`] (always within the deadline).
    pub success: u64,
    /// Refused at admission: no plan meets the SLO ([`ClientStatus::Rejected`]).
    pub rejected: u64,
    /// Still queued at their last feasible start ([`ClientStatus::Timeout`]).
    pub timeout_queued: u64,
    /// Dropped by the dispatcher because no GPU could start them in time
    /// ([`ClientStatus::CouldNotStartInTime`]).
    pub could_not_start: u64,
    /// Skipped so a more pressing larger batch could run
    /// ([`ClientStatus::ControllerSkipped`]).
    pub skipped: u64,
    /// Dispatched, but the deadline passed before the result came back: answered
    /// [`ClientStatus::Timeout`] at the deadline.
    pub timeout_in_flight: u64,
    /// Requests whose INFER succeeded after their deadline (answered `Timeout`, never
    /// `Success`). A subset of `timeout_in_flight` plus results that beat the timer.
    pub late_successes: u64,
    /// Unknown model id.
    pub unknown_model: u64,
    /// No GPU to serve them (no workers, or their worker was lost).
    pub unavailable: u64,
    /// Malformed (bad SLO).
    pub invalid: u64,
    /// Their INFER failed on the worker.
    pub worker_failed: u64,
    /// Requests that arrived while no GPU had their model ready.
    pub cold_starts: u64,
    /// Requests the rollout of a GPU under pressure said would miss, queued anyway
    /// because that GPU's admitted requests were mostly served ([`crate::doubt`]).
    pub doubtful_admitted: u64,
    /// Requests the rollout said would miss, refused (`Rejected`, counted in
    /// `rejected` too) because too many admitted requests failed there.
    pub doubtful_refused: u64,
    /// Answers by [`ClientStatus::code`] (codes 0..=255).
    pub by_code: Vec<u64>,
    /// INFER actions sent.
    pub infers: u64,
    /// Requests carried by those INFERs (mean batch = this / `infers`).
    pub batched_requests: u64,
    /// INFER results with a failure status.
    pub infer_failures: u64,
    /// LOAD actions sent.
    pub loads: u64,
    /// LOAD results with a failure status.
    pub load_failures: u64,
    /// UNLOAD actions sent.
    pub unloads: u64,
    /// UNLOAD results with a failure status.
    pub unload_failures: u64,
    /// RegisterModel actions sent.
    pub registrations: u64,
    /// GET STATE resyncs started after an unexpected result.
    pub resyncs: u64,
    /// Results for actions the scheduler no longer tracks (worker lost, duplicates).
    pub stale_results: u64,
    /// Requests re-queued after their worker was lost.
    pub requeued: u64,
    /// INFER duration prediction error (worker exec duration − estimate).
    pub exec_error: ErrorStats,
    /// INFER completion prediction error (worker exec end − predicted end).
    pub completion_error: ErrorStats,
    /// LOAD duration prediction error.
    pub load_error: ErrorStats,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            offered: 0,
            answered: 0,
            success: 0,
            rejected: 0,
            timeout_queued: 0,
            could_not_start: 0,
            skipped: 0,
            timeout_in_flight: 0,
            late_successes: 0,
            unknown_model: 0,
            unavailable: 0,
            invalid: 0,
            worker_failed: 0,
            cold_starts: 0,
            doubtful_admitted: 0,
            doubtful_refused: 0,
            by_code: vec![0; 256],
            infers: 0,
            batched_requests: 0,
            infer_failures: 0,
            loads: 0,
            load_failures: 0,
            unloads: 0,
            unload_failures: 0,
            registrations: 0,
            resyncs: 0,
            stale_results: 0,
            requeued: 0,
            exec_error: ErrorStats::default(),
            completion_error: ErrorStats::default(),
            load_error: ErrorStats::default(),
        }
    }
}

impl Stats {
    /// Counts one answer.
    pub(crate) fn answer(&mut self, status: ClientStatus) {
        self.answered += 1;
        if let Some(c) = self.by_code.get_mut(usize::from(status.code())) {
            *c += 1;
        }
        match status {
            ClientStatus::Success => self.success += 1,
            ClientStatus::Rejected => self.rejected += 1,
            ClientStatus::CouldNotStartInTime => self.could_not_start += 1,
            ClientStatus::UnknownModel => self.unknown_model += 1,
            ClientStatus::Unavailable => self.unavailable += 1,
            ClientStatus::InvalidRequest => self.invalid += 1,
            ClientStatus::WorkerFailed(_) => self.worker_failed += 1,
            // Timeouts are split by the caller into queued / in flight.
            _ => {}
        }
    }

    /// Requests not yet answered.
    pub const fn outstanding(&self) -> u64 {
        self.offered - self.answered
    }

    /// Mean batch size of the INFERs sent.
    pub fn mean_batch(&self) -> f64 {
        self.batched_requests as f64 / self.infers as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stats() {
        let mut e = ErrorStats::default();
        e.record(10);
        e.record(-30);
        assert_eq!(e.count, 2);
        assert_eq!(e.mean(), -10.0);
        assert_eq!(e.mean_abs(), 20.0);
        assert_eq!(e.max_over, 10);
        assert_eq!(e.max_under, 30);
    }
}
