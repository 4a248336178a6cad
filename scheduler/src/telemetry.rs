//! Per-request and per-action log records with the original's telemetry columns
//! (reference section 5), buffered by the scheduler when
//! [`crate::Config::telemetry`] is on and drained by the driver, which writes them as
//! TSV (`clockwork_request_log.tsv`, `clockwork_action_log.tsv`).

use clockwork_core::Nanos;
use std::fmt::Write as _;

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    /// When the answer left (controller clock).
    pub t: Nanos,
    /// The client's request id.
    pub request_id: u64,
    /// [`clockwork_core::ClientStatus::code`].
    pub result: u16,
    /// The client key.
    pub user_id: u64,
    /// The model.
    pub model_id: u32,
    /// The resolved SLO in ns (the original logged the factor; we log what it became).
    pub slo: Nanos,
    /// Answer time − arrival.
    pub latency: Nanos,
    /// Arrival + SLO.
    pub deadline: Nanos,
    /// Answered with success by the deadline.
    pub deadline_met: bool,
    /// Requests received so far.
    pub arrival_count: u64,
    /// Requests answered so far (this one included).
    pub departure_count: u64,
    /// Arrived while no GPU had the model ready.
    pub is_coldstart: bool,
}

impl RequestLog {
    /// Column names, tab-separated.
    pub const TSV_HEADER: &'static str = "t\trequest_id\tresult\tuser_id\tmodel_id\tslo\tlatency\tdeadline\tdeadline_met\tarrival_count\tdeparture_count\tis_coldstart";

    /// This record as one TSV row (no newline).
    pub fn to_tsv(&self) -> String {
        let mut s = String::with_capacity(96);
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.t.get(),
            self.request_id,
            self.result,
            self.user_id,
            self.model_id,
            self.slo.get(),
            self.latency.get(),
            self.deadline.get(),
            u8::from(self.deadline_met),
            self.arrival_count,
            self.departure_count,
            u8::from(self.is_coldstart)
        );
        s
    }
}

/// One finished action (LOAD, INFER or UNLOAD).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionLog {
    /// When the result was handled (controller clock).
    pub t: Nanos,
    /// The action.
    pub action_id: u64,
    /// 1 load, 2 infer, 3 unload (the original's numbering).
    pub action_type: u8,
    /// [`clockwork_core::WorkerStatus::code`].
    pub status: u8,
    /// The worker.
    pub worker_id: u32,
    /// The GPU.
    pub gpu_id: u32,
    /// The model.
    pub model_id: u32,
    /// Requests in the batch (INFER; 0 otherwise).
    pub batch_size: u32,
    /// The controller's estimate of the duration.
    pub expected_exec_duration: Nanos,
    /// The worker-measured duration (0 on failure).
    pub worker_exec_duration: Nanos,
    /// Predicted end, relative to `t`'s clock (absolute controller time).
    pub expected_exec_complete: Nanos,
    /// Worker-reported end (0 on failure).
    pub worker_exec_complete: Nanos,
    /// Expected SM clock (0: not tracked).
    pub expected_gpu_clock: u32,
    /// SM clock before (INFER).
    pub worker_gpu_clock_before: u32,
    /// SM clock after (INFER).
    pub worker_gpu_clock: u32,
    /// End of the output copy (INFER).
    pub worker_copy_output_complete: Nanos,
    /// When the worker received the action.
    pub worker_action_received: Nanos,
    /// When the worker sent the result.
    pub worker_result_sent: Nanos,
    /// When the controller handled the result.
    pub controller_result_enqueue: Nanos,
    /// Controller-observed send-to-result time.
    pub controller_action_duration: Nanos,
    /// Requests of the batch answered with success.
    pub goodput: u32,
    /// The model's queued requests after this result.
    pub requests_queued: u32,
    /// GPUs holding the model after this result.
    pub copies_loaded: u32,
}

impl ActionLog {
    /// Column names, tab-separated.
    pub const TSV_HEADER: &'static str = "t\taction_id\taction_type\tstatus\tworker_id\tgpu_id\tmodel_id\tbatch_size\texpected_exec_duration\tworker_exec_duration\texpected_exec_complete\tworker_exec_complete\texpected_gpu_clock\tworker_gpu_clock_before\tworker_gpu_clock\tworker_copy_output_complete\tworker_action_received\tworker_result_sent\tcontroller_result_enqueue\tcontroller_action_duration\tgoodput\trequests_queued\tcopies_loaded";

    /// This record as one TSV row (no newline).
    pub fn to_tsv(&self) -> String {
        let mut s = String::with_capacity(192);
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.t.get(),
            self.action_id,
            self.action_type,
            self.status,
            self.worker_id,
            self.gpu_id,
            self.model_id,
            self.batch_size,
            self.expected_exec_duration.get(),
            self.worker_exec_duration.get(),
            self.expected_exec_complete.get(),
            self.worker_exec_complete.get(),
            self.expected_gpu_clock,
            self.worker_gpu_clock_before,
            self.worker_gpu_clock,
            self.worker_copy_output_complete.get(),
            self.worker_action_received.get(),
            self.worker_result_sent.get(),
            self.controller_result_enqueue.get(),
            self.controller_action_duration.get(),
            self.goodput,
            self.requests_queued,
            self.copies_loaded
        );
        s
    }
}

/// A buffered log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// A request was answered.
    Request(RequestLog),
    /// An action's result was handled.
    Action(ActionLog),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_as_many_columns_as_headers() {
        let r = RequestLog {
            t: Nanos(1),
            request_id: 2,
            result: 0,
            user_id: 3,
            model_id: 4,
            slo: Nanos(5),
            latency: Nanos(6),
            deadline: Nanos(7),
            deadline_met: true,
            arrival_count: 8,
            departure_count: 9,
            is_coldstart: false,
        };
        assert_eq!(
            r.to_tsv().split('\t').count(),
            RequestLog::TSV_HEADER.split('\t').count()
        );
        let a = ActionLog::default();
        assert_eq!(
            a.to_tsv().split('\t').count(),
            ActionLog::TSV_HEADER.split('\t').count()
        );
    }
}
