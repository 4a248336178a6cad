//! The request and action logs, as TSV files: the records and their format are
//! `clockwork_core::telemetry`'s, which the run report reads back with the same types.

use clockwork_core::telemetry::{
    ActionLog, LogRecord, RequestLog, TsvRecord, ACTION_LOG_FILE, REQUEST_LOG_FILE,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The two log files.
#[derive(Debug)]
pub struct LogFiles {
    requests: BufWriter<File>,
    actions: BufWriter<File>,
    /// One row's text, reused.
    row: String,
    failed: bool,
}

impl LogFiles {
    /// Create (truncate) [`REQUEST_LOG_FILE`] and [`ACTION_LOG_FILE`] in `dir`, with their
    /// header lines.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut requests = BufWriter::new(File::create(dir.join(REQUEST_LOG_FILE))?);
        let mut actions = BufWriter::new(File::create(dir.join(ACTION_LOG_FILE))?);
        writeln!(requests, "{}", RequestLog::TSV_HEADER)?;
        writeln!(actions, "{}", ActionLog::TSV_HEADER)?;
        Ok(Self {
            requests,
            actions,
            row: String::with_capacity(256),
            failed: false,
        })
    }

    /// Append one record. A write error is logged once and logging stops; serving
    /// goes on.
    pub(crate) fn write(&mut self, rec: &LogRecord) {
        if self.failed {
            return;
        }
        self.row.clear();
        let file = match rec {
            LogRecord::Request(r) => {
                r.write_tsv(&mut self.row);
                &mut self.requests
            }
            LogRecord::Action(a) => {
                a.write_tsv(&mut self.row);
                &mut self.actions
            }
        };
        self.row.push('\n');
        if let Err(e) = file.write_all(self.row.as_bytes()) {
            tracing::error!(error = %e, "request/action log write failed; logging stops");
            self.failed = true;
        }
    }

    /// Flush both files.
    pub fn flush(&mut self) -> io::Result<()> {
        self.requests.flush()?;
        self.actions.flush()
    }
}
