//! The request and action logs, as TSV files with the original's columns plus ours.

use clockwork_scheduler::telemetry::{ActionLog, LogRecord, RequestLog};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The two log files.
#[derive(Debug)]
pub struct LogFiles {
    requests: BufWriter<File>,
    actions: BufWriter<File>,
    failed: bool,
}

impl LogFiles {
    /// Create (truncate) `clockwork_request_log.tsv` and `clockwork_action_log.tsv` in
    /// `dir`, with their header lines.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut requests = BufWriter::new(File::create(dir.join("clockwork_request_log.tsv"))?);
        let mut actions = BufWriter::new(File::create(dir.join("clockwork_action_log.tsv"))?);
        writeln!(requests, "{}", RequestLog::TSV_HEADER)?;
        writeln!(actions, "{}", ActionLog::TSV_HEADER)?;
        Ok(Self {
            requests,
            actions,
            failed: false,
        })
    }

    /// Append one record. A write error is logged once and logging stops; serving
    /// goes on.
    pub(crate) fn write(&mut self, rec: &LogRecord) {
        if self.failed {
            return;
        }
        let r = match rec {
            LogRecord::Request(r) => writeln!(self.requests, "{}", r.to_tsv()),
            LogRecord::Action(a) => writeln!(self.actions, "{}", a.to_tsv()),
        };
        if let Err(e) = r {
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
