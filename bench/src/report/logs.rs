//! Readers for the controller's telemetry logs (`clockwork_scheduler::telemetry`):
//! `clockwork_request_log.tsv` and `clockwork_action_log.tsv`.
//!
//! Columns are found by their header names, so a reordered file still reads right and a
//! renamed or missing column is an error naming it. Extra columns are ignored. Blank
//! lines are skipped. Every other problem is an error with the file and line.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use thiserror::Error;

/// The request log's file name in a run's log directory.
pub const REQUEST_LOG_FILE: &str = "clockwork_request_log.tsv";
/// The action log's file name in a run's log directory.
pub const ACTION_LOG_FILE: &str = "clockwork_action_log.tsv";

/// The columns [`RequestRecord`] needs (as `RequestLog::TSV_HEADER` names them).
pub const REQUEST_COLUMNS: [&str; 12] = [
    "t",
    "request_id",
    "result",
    "user_id",
    "model_id",
    "slo",
    "latency",
    "deadline",
    "deadline_met",
    "arrival_count",
    "departure_count",
    "is_coldstart",
];

/// The columns [`ActionRecord`] needs (as `ActionLog::TSV_HEADER` names them).
pub const ACTION_COLUMNS: [&str; 23] = [
    "t",
    "action_id",
    "action_type",
    "status",
    "worker_id",
    "gpu_id",
    "model_id",
    "batch_size",
    "expected_exec_duration",
    "worker_exec_duration",
    "expected_exec_complete",
    "worker_exec_complete",
    "expected_gpu_clock",
    "worker_gpu_clock_before",
    "worker_gpu_clock",
    "worker_copy_output_complete",
    "worker_action_received",
    "worker_result_sent",
    "controller_result_enqueue",
    "controller_action_duration",
    "goodput",
    "requests_queued",
    "copies_loaded",
];

/// `action_type` of a LOAD.
pub const ACTION_LOAD: u8 = 1;
/// `action_type` of an INFER.
pub const ACTION_INFER: u8 = 2;
/// `action_type` of an UNLOAD (the original's "evict").
pub const ACTION_UNLOAD: u8 = 3;

/// One row of `clockwork_request_log.tsv`. Times are ns on the controller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When the answer left.
    pub t: u64,
    /// The client's request id.
    pub request_id: u64,
    /// `ClientStatus::code`.
    pub result: u16,
    /// The client key.
    pub user_id: u64,
    /// The model.
    pub model_id: u32,
    /// The resolved SLO.
    pub slo: u64,
    /// Answer time − arrival.
    pub latency: u64,
    /// Arrival + SLO.
    pub deadline: u64,
    /// Answered with success by the deadline.
    pub deadline_met: bool,
    /// Requests received so far.
    pub arrival_count: u64,
    /// Requests answered so far (this one included).
    pub departure_count: u64,
    /// Arrived while no GPU had the model ready.
    pub is_coldstart: bool,
}

impl RequestRecord {
    /// When the request arrived at the controller: `t − latency`.
    pub fn arrival(&self) -> u64 {
        self.t.saturating_sub(self.latency)
    }
}

/// One row of `clockwork_action_log.tsv`. Times are ns on the controller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActionRecord {
    /// When the result was handled.
    pub t: u64,
    /// The action.
    pub action_id: u64,
    /// [`ACTION_LOAD`], [`ACTION_INFER`] or [`ACTION_UNLOAD`].
    pub action_type: u8,
    /// `WorkerStatus::code` (0 success).
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
    pub expected_exec_duration: u64,
    /// The worker-measured duration (0 on failure).
    pub worker_exec_duration: u64,
    /// Predicted end.
    pub expected_exec_complete: u64,
    /// Worker-reported end (0 on failure).
    pub worker_exec_complete: u64,
    /// Expected SM clock (0: not tracked).
    pub expected_gpu_clock: u32,
    /// SM clock before (INFER).
    pub worker_gpu_clock_before: u32,
    /// SM clock after (INFER).
    pub worker_gpu_clock: u32,
    /// End of the output copy (INFER).
    pub worker_copy_output_complete: u64,
    /// When the worker received the action.
    pub worker_action_received: u64,
    /// When the worker sent the result.
    pub worker_result_sent: u64,
    /// When the controller handled the result.
    pub controller_result_enqueue: u64,
    /// Controller-observed send-to-result time.
    pub controller_action_duration: u64,
    /// Requests of the batch answered with success.
    pub goodput: u32,
    /// The model's queued requests after this result.
    pub requests_queued: u32,
    /// GPUs holding the model after this result.
    pub copies_loaded: u32,
}

impl ActionRecord {
    /// True when the worker reported success.
    pub fn succeeded(&self) -> bool {
        self.status == 0
    }

    /// When the controller sent it: `t − controller_action_duration`.
    pub fn sent(&self) -> u64 {
        self.t.saturating_sub(self.controller_action_duration)
    }

    /// `worker_exec_duration − expected_exec_duration` in ns (the paper's Fig 10
    /// prediction error); `None` unless the action succeeded.
    pub fn prediction_error_ns(&self) -> Option<i64> {
        self.succeeded()
            .then(|| signed_diff(self.worker_exec_duration, self.expected_exec_duration))
    }

    /// `worker_exec_complete − expected_exec_complete` in ns (the completion error);
    /// `None` unless the action succeeded.
    pub fn completion_error_ns(&self) -> Option<i64> {
        self.succeeded()
            .then(|| signed_diff(self.worker_exec_complete, self.expected_exec_complete))
    }
}

fn signed_diff(a: u64, b: u64) -> i64 {
    (i128::from(a) - i128::from(b)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A problem reading a log.
#[derive(Debug, Error)]
pub enum LogError {
    /// The file could not be opened.
    #[error("{}: cannot open: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line could not be read (an I/O error, or bytes that are not UTF-8).
    #[error("{}:{line}: cannot read: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The cause.
        source: io::Error,
    },
    /// The file has no header line.
    #[error("{}: empty file, expected a header line", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The header lacks a column the reader needs, or names one twice.
    #[error("{}:1: header {problem} column `{column}` (header: {header:?})", .path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// "has no" or "repeats".
        problem: &'static str,
        /// The header line as read.
        header: String,
    },
    /// A row has a different number of fields than the header.
    #[error("{}:{line}: expected {expected} tab-separated fields (as the header), found {found}", .path.display())]
    FieldCount {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A field does not parse as its column's type.
    #[error("{}:{line}: column `{column}`: cannot parse {value:?} as {ty}", .path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The column.
        column: &'static str,
        /// The field as read.
        value: String,
        /// The expected type.
        ty: &'static str,
    },
}

/// Both logs of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLogs {
    /// The request log's rows, in file order.
    pub requests: Vec<RequestRecord>,
    /// The action log's rows, in file order.
    pub actions: Vec<ActionRecord>,
}

impl RunLogs {
    /// Read [`REQUEST_LOG_FILE`] and [`ACTION_LOG_FILE`] from `dir`; both must exist.
    pub fn read_dir(dir: &Path) -> Result<Self, LogError> {
        Ok(Self {
            requests: read_request_log(&dir.join(REQUEST_LOG_FILE))?,
            actions: read_action_log(&dir.join(ACTION_LOG_FILE))?,
        })
    }
}

/// Read a request log file.
pub fn read_request_log(path: &Path) -> Result<Vec<RequestRecord>, LogError> {
    parse_request_log(open(path)?, path)
}

/// Read an action log file.
pub fn read_action_log(path: &Path) -> Result<Vec<ActionRecord>, LogError> {
    parse_action_log(open(path)?, path)
}

/// Parse a request log from `reader`; `path` only names it in errors.
pub fn parse_request_log<R: BufRead>(
    reader: R,
    path: &Path,
) -> Result<Vec<RequestRecord>, LogError> {
    parse_tsv(reader, path, &REQUEST_COLUMNS, |r| {
        Ok(RequestRecord {
            t: r.get("t")?,
            request_id: r.get("request_id")?,
            result: r.get("result")?,
            user_id: r.get("user_id")?,
            model_id: r.get("model_id")?,
            slo: r.get("slo")?,
            latency: r.get("latency")?,
            deadline: r.get("deadline")?,
            deadline_met: r.flag("deadline_met")?,
            arrival_count: r.get("arrival_count")?,
            departure_count: r.get("departure_count")?,
            is_coldstart: r.flag("is_coldstart")?,
        })
    })
}

/// Parse an action log from `reader`; `path` only names it in errors.
pub fn parse_action_log<R: BufRead>(reader: R, path: &Path) -> Result<Vec<ActionRecord>, LogError> {
    parse_tsv(reader, path, &ACTION_COLUMNS, |r| {
        Ok(ActionRecord {
            t: r.get("t")?,
            action_id: r.get("action_id")?,
            action_type: r.get("action_type")?,
            status: r.get("status")?,
            worker_id: r.get("worker_id")?,
            gpu_id: r.get("gpu_id")?,
            model_id: r.get("model_id")?,
            batch_size: r.get("batch_size")?,
            expected_exec_duration: r.get("expected_exec_duration")?,
            worker_exec_duration: r.get("worker_exec_duration")?,
            expected_exec_complete: r.get("expected_exec_complete")?,
            worker_exec_complete: r.get("worker_exec_complete")?,
            expected_gpu_clock: r.get("expected_gpu_clock")?,
            worker_gpu_clock_before: r.get("worker_gpu_clock_before")?,
            worker_gpu_clock: r.get("worker_gpu_clock")?,
            worker_copy_output_complete: r.get("worker_copy_output_complete")?,
            worker_action_received: r.get("worker_action_received")?,
            worker_result_sent: r.get("worker_result_sent")?,
            controller_result_enqueue: r.get("controller_result_enqueue")?,
            controller_action_duration: r.get("controller_action_duration")?,
            goodput: r.get("goodput")?,
            requests_queued: r.get("requests_queued")?,
            copies_loaded: r.get("copies_loaded")?,
        })
    })
}

fn open(path: &Path) -> Result<BufReader<File>, LogError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 16, f))
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })
}

/// One data row, with the header's column positions.
struct Row<'a> {
    path: &'a Path,
    line: usize,
    names: &'static [&'static str],
    positions: &'a [usize],
    fields: &'a [&'a str],
}

impl Row<'_> {
    fn field(&self, column: &'static str) -> (&'static str, &str) {
        // `column` is one of `names` by construction (the readers above ask only for
        // their own columns); a miss would be a reader bug, answered with an empty field
        // that then fails to parse with the column named.
        match self.names.iter().position(|n| *n == column) {
            Some(i) => (self.names[i], self.fields[self.positions[i]]),
            None => (column, ""),
        }
    }

    fn bad(&self, column: &'static str, value: &str, ty: &'static str) -> LogError {
        LogError::BadValue {
            path: self.path.to_owned(),
            line: self.line,
            column,
            value: value.to_owned(),
            ty,
        }
    }

    fn get<T: FromStr>(&self, column: &'static str) -> Result<T, LogError> {
        let (column, value) = self.field(column);
        value
            .trim()
            .parse()
            .map_err(|_| self.bad(column, value, std::any::type_name::<T>()))
    }

    fn flag(&self, column: &'static str) -> Result<bool, LogError> {
        let (column, value) = self.field(column);
        match value.trim() {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(self.bad(column, value, "0 or 1")),
        }
    }
}

fn parse_tsv<R: BufRead, T>(
    mut reader: R,
    path: &Path,
    names: &'static [&'static str],
    mut build: impl FnMut(&Row<'_>) -> Result<T, LogError>,
) -> Result<Vec<T>, LogError> {
    let mut buf = String::new();
    let mut line = 0usize;
    let mut read_line = |buf: &mut String, line: &mut usize| -> Result<bool, LogError> {
        buf.clear();
        *line += 1;
        match reader.read_line(buf) {
            Ok(0) => Ok(false),
            Ok(_) => {
                let trimmed = buf.trim_end_matches(['\n', '\r']).len();
                buf.truncate(trimmed);
                Ok(true)
            }
            Err(source) => Err(LogError::Read {
                path: path.to_owned(),
                line: *line,
                source,
            }),
        }
    };

    if !read_line(&mut buf, &mut line)? {
        return Err(LogError::Empty {
            path: path.to_owned(),
        });
    }
    let header: Vec<String> = buf.split('\t').map(|s| s.trim().to_owned()).collect();
    let header_err = |column: &str, problem| LogError::Header {
        path: path.to_owned(),
        column: column.to_owned(),
        problem,
        header: buf.clone(),
    };
    for (i, h) in header.iter().enumerate() {
        if header[..i].contains(h) {
            return Err(header_err(h, "repeats"));
        }
    }
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        match header.iter().position(|h| h == name) {
            Some(p) => positions.push(p),
            None => return Err(header_err(name, "has no")),
        }
    }

    let mut out = Vec::new();
    while read_line(&mut buf, &mut line)? {
        if buf.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = buf.split('\t').collect();
        if fields.len() != header.len() {
            return Err(LogError::FieldCount {
                path: path.to_owned(),
                line,
                expected: header.len(),
                found: fields.len(),
            });
        }
        let row = Row {
            path,
            line,
            names,
            positions: &positions,
            fields: &fields,
        };
        out.push(build(&row)?);
    }
    Ok(out)
}
