//! The telemetry logs' records: one row per answered request and one per finished
//! action, with the original Clockwork's columns (reference section 5) plus ours, and
//! their TSV format ([`TsvRecord`], [`parse_log`]).
//!
//! This is the one definition of the logs' contract. The scheduler produces these
//! records (when its telemetry is on), the controller service writes them to
//! [`REQUEST_LOG_FILE`] and [`ACTION_LOG_FILE`], and the run report reads those files
//! back into the same types with [`parse_log`]. Times are [`Nanos`] on the controller's
//! clock. Nothing here opens files.

mod tsv;

use tsv::tsv_record;
pub use tsv::{parse_log, FieldCursor, LogError, RowAt, TsvField, TsvReader, TsvRecord};

use crate::status::WorkerStatus;
use crate::time::Nanos;

/// The request log's file name in a log directory.
pub const REQUEST_LOG_FILE: &str = "clockwork_request_log.tsv";
/// The action log's file name in a log directory.
pub const ACTION_LOG_FILE: &str = "clockwork_action_log.tsv";

tsv_record! {
    /// One answered request: a row of [`REQUEST_LOG_FILE`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RequestLog {
        /// When the answer left (controller clock).
        pub t: Nanos,
        /// The client's request id.
        pub request_id: u64,
        /// [`crate::ClientStatus::code`].
        pub result: u16,
        /// The client key.
        pub user_id: u64,
        /// The model.
        pub model_id: u32,
        /// The resolved SLO (the original logged the factor; we log what it became).
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
}

impl RequestLog {
    /// When the request arrived at the controller: `t − latency`.
    pub fn arrival(&self) -> Nanos {
        self.t.saturating_sub(self.latency)
    }

    /// Answered with success, but after its deadline.
    pub fn late_success(&self) -> bool {
        self.result == crate::ClientStatus::Success.code() && !self.deadline_met
    }
}

tsv_record! {
    /// One finished action (LOAD, INFER or UNLOAD): a row of [`ACTION_LOG_FILE`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ActionLog {
        /// When the result was handled (controller clock).
        pub t: Nanos,
        /// The action.
        pub action_id: u64,
        /// [`ActionLog::LOAD`], [`ActionLog::INFER`] or [`ActionLog::UNLOAD`] (the
        /// original's numbering).
        pub action_type: u8,
        /// [`WorkerStatus::code`] (0 success).
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
        /// Predicted end (absolute controller time).
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
}

impl ActionLog {
    /// `action_type` of a LOAD.
    pub const LOAD: u8 = 1;
    /// `action_type` of an INFER.
    pub const INFER: u8 = 2;
    /// `action_type` of an UNLOAD (the original's "evict").
    pub const UNLOAD: u8 = 3;

    /// True when the worker reported success.
    pub fn succeeded(&self) -> bool {
        self.status == WorkerStatus::Success.code()
    }

    /// When the controller sent it: `t − controller_action_duration`.
    pub fn sent(&self) -> Nanos {
        self.t.saturating_sub(self.controller_action_duration)
    }

    /// `worker_exec_duration − expected_exec_duration` in ns (the paper's Fig 10
    /// prediction error); `None` unless the action succeeded.
    pub fn prediction_error_ns(&self) -> Option<i64> {
        self.succeeded().then(|| {
            self.worker_exec_duration
                .signed_diff(self.expected_exec_duration)
        })
    }

    /// `worker_exec_complete − expected_exec_complete` in ns (the completion error);
    /// `None` unless the action succeeded.
    pub fn completion_error_ns(&self) -> Option<i64> {
        self.succeeded().then(|| {
            self.worker_exec_complete
                .signed_diff(self.expected_exec_complete)
        })
    }
}

/// A log record, as the scheduler buffers them.
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
    use std::path::Path;

    fn sample_request(i: u64) -> RequestLog {
        RequestLog {
            t: Nanos(5_000_000_000 + i),
            request_id: i,
            result: 104,
            user_id: u64::MAX,
            model_id: u32::MAX,
            slo: Nanos(100_000_000),
            latency: Nanos(3_000_000 + i),
            deadline: Nanos(u64::MAX),
            deadline_met: i.is_multiple_of(2),
            arrival_count: i + 1,
            departure_count: i,
            is_coldstart: i.is_multiple_of(3),
        }
    }

    fn sample_action(i: u64) -> ActionLog {
        ActionLog {
            t: Nanos(7_000_000_000 + i),
            action_id: i,
            action_type: ActionLog::INFER,
            status: WorkerStatus::ExecTooLate.code(),
            worker_id: 1,
            gpu_id: 2,
            model_id: 3,
            batch_size: 4,
            expected_exec_duration: Nanos(5),
            worker_exec_duration: Nanos(6),
            expected_exec_complete: Nanos(7),
            worker_exec_complete: Nanos(8),
            expected_gpu_clock: 9,
            worker_gpu_clock_before: 10,
            worker_gpu_clock: 11,
            worker_copy_output_complete: Nanos(12),
            worker_action_received: Nanos(13),
            worker_result_sent: Nanos(14),
            controller_result_enqueue: Nanos(15),
            controller_action_duration: Nanos(16),
            goodput: 17,
            requests_queued: 18,
            copies_loaded: u32::MAX,
        }
    }

    fn file<T: TsvRecord>(records: &[T]) -> String {
        let mut s = format!("{}\n", T::TSV_HEADER);
        for r in records {
            r.write_tsv(&mut s);
            s.push('\n');
        }
        s
    }

    #[test]
    fn headers_are_the_on_disk_format() {
        // The files' first lines, as every log ever written has them.
        assert_eq!(
            RequestLog::TSV_HEADER,
            "t\trequest_id\tresult\tuser_id\tmodel_id\tslo\tlatency\tdeadline\tdeadline_met\tarrival_count\tdeparture_count\tis_coldstart"
        );
        assert_eq!(
            ActionLog::TSV_HEADER,
            "t\taction_id\taction_type\tstatus\tworker_id\tgpu_id\tmodel_id\tbatch_size\texpected_exec_duration\tworker_exec_duration\texpected_exec_complete\tworker_exec_complete\texpected_gpu_clock\tworker_gpu_clock_before\tworker_gpu_clock\tworker_copy_output_complete\tworker_action_received\tworker_result_sent\tcontroller_result_enqueue\tcontroller_action_duration\tgoodput\trequests_queued\tcopies_loaded"
        );
        assert_eq!(RequestLog::COLUMNS.join("\t"), RequestLog::TSV_HEADER);
        assert_eq!(ActionLog::COLUMNS.join("\t"), ActionLog::TSV_HEADER);
    }

    #[test]
    fn rows_are_the_on_disk_format() {
        assert_eq!(
            sample_request(3).to_tsv(),
            "5000000003\t3\t104\t18446744073709551615\t4294967295\t100000000\t3000003\t18446744073709551615\t0\t4\t3\t1"
        );
        assert_eq!(
            sample_action(1).to_tsv(),
            "7000000001\t1\t2\t81\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t16\t17\t18\t4294967295"
        );
    }

    #[test]
    fn records_round_trip() {
        let reqs: Vec<RequestLog> = (0..50).map(sample_request).collect();
        let acts: Vec<ActionLog> = (0..50).map(sample_action).collect();
        let p = Path::new("x.tsv");
        assert_eq!(
            parse_log::<RequestLog>(file(&reqs).as_bytes(), p).unwrap(),
            reqs
        );
        assert_eq!(
            parse_log::<ActionLog>(file(&acts).as_bytes(), p).unwrap(),
            acts
        );
        let default = [ActionLog::default()];
        assert_eq!(
            parse_log::<ActionLog>(file(&default).as_bytes(), p).unwrap(),
            default
        );
    }

    #[test]
    fn one_row_parses_against_a_reordered_header() {
        let p = Path::new("r.tsv");
        let mut cols: Vec<&str> = RequestLog::COLUMNS.to_vec();
        cols.reverse();
        let reader = TsvReader::<RequestLog>::new(&cols.join("\t"), p).unwrap();
        let r = sample_request(7);
        let text = r.to_tsv();
        let mut fields: Vec<&str> = text.split('\t').collect();
        fields.reverse();
        assert_eq!(reader.parse_row(2, &fields.join("\t")).unwrap(), r);
        let e = reader.parse_row(9, "1\t2").unwrap_err();
        assert!(
            matches!(
                e,
                LogError::FieldCount {
                    line: 9,
                    expected: 12,
                    found: 2,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn bad_fields_name_file_line_and_column() {
        let p = Path::new("logs/a.tsv");
        let good = sample_action(1).to_tsv();
        let bad = good.replacen("\t81\t", "\t300\t", 1);
        let text = format!("{}\n{good}\n\n{bad}\n", ActionLog::TSV_HEADER);
        let e = parse_log::<ActionLog>(text.as_bytes(), p).unwrap_err();
        assert!(
            matches!(
                e,
                LogError::BadValue {
                    line: 4,
                    column: "status",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "logs/a.tsv:4: column `status`: cannot parse \"300\" as u8"
        );
        let e = parse_log::<RequestLog>(
            format!("{}\n", RequestLog::TSV_HEADER.replace("latency", "lat")).as_bytes(),
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("has no column `latency`"), "{e}");
    }

    #[test]
    fn derived_views() {
        let r = sample_request(0);
        assert_eq!(r.arrival(), Nanos(5_000_000_000 - 3_000_000));
        assert!(!r.late_success()); // not a success
        let a = ActionLog {
            status: WorkerStatus::Success.code(),
            ..sample_action(0)
        };
        assert_eq!(a.sent(), Nanos(7_000_000_000 - 16));
        assert_eq!(a.prediction_error_ns(), Some(1));
        assert_eq!(a.completion_error_ns(), Some(1));
        assert_eq!(sample_action(0).prediction_error_ns(), None);
    }
}
