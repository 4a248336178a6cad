//! Reading a run's telemetry logs (`clockwork_request_log.tsv`,
//! `clockwork_action_log.tsv`) from disk.
//!
//! The records and their TSV format are `clockwork_core::telemetry`'s, the same types
//! the controller writes: columns are found by their header names (a reordered file
//! reads right; a renamed or missing column is an error naming it), extra columns are
//! ignored, blank lines are skipped, and every other problem is an error with the file
//! and line. This module only opens the files.

use clockwork_core::telemetry::{parse_log, ActionLog, LogError, RequestLog, TsvRecord};
pub use clockwork_core::telemetry::{ACTION_LOG_FILE, REQUEST_LOG_FILE};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Both logs of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLogs {
    /// The request log's rows, in file order.
    pub requests: Vec<RequestLog>,
    /// The action log's rows, in file order.
    pub actions: Vec<ActionLog>,
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
pub fn read_request_log(path: &Path) -> Result<Vec<RequestLog>, LogError> {
    read_log(path)
}

/// Read an action log file.
pub fn read_action_log(path: &Path) -> Result<Vec<ActionLog>, LogError> {
    read_log(path)
}

/// Parse a request log from `reader`; `path` only names it in errors.
pub fn parse_request_log(reader: impl BufRead, path: &Path) -> Result<Vec<RequestLog>, LogError> {
    parse_log(reader, path)
}

/// Parse an action log from `reader`; `path` only names it in errors.
pub fn parse_action_log(reader: impl BufRead, path: &Path) -> Result<Vec<ActionLog>, LogError> {
    parse_log(reader, path)
}

fn read_log<T: TsvRecord>(path: &Path) -> Result<Vec<T>, LogError> {
    let file = File::open(path).map_err(|source| LogError::Open {
        path: path.to_owned(),
        source,
    })?;
    parse_log(BufReader::with_capacity(1 << 16, file), path)
}
