//! The run report: what a run of the main job (or an experiment preset) did, from the
//! load driver's samples and the controller's telemetry logs.
//!
//! - [`logs`]: reading `clockwork_request_log.tsv` and `clockwork_action_log.tsv` (the
//!   records and their format are `clockwork_core::telemetry`'s).
//! - [`ClientSample`]: what the driver records per request, so a report needs no logs.
//! - [`RunReport::compute`]: the summary (counts, goodput, SLO attainment, late
//!   successes, latency percentiles, statuses, cold starts, actions, prediction
//!   errors (overall and per batch size), a per-second timeline).
//! - [`write_report_json`], [`print_report`], [`write_plots`] (SVG figures), and
//!   [`write_outputs`] for all of them.
//! - [`Progress`]: the once-a-second progress line.
//! - [`chart`]: a two-axis line chart for the experiments' summary figures, and the
//!   palette every figure uses.
//!
//! ```no_run
//! use clockwork_bench::report::{self, RunData, RunLogs, RunMeta, RunReport};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let samples = Vec::new();
//! # let dir = std::path::Path::new("out");
//! let meta = RunMeta { workload: "poisson".into(), emulated: true, ..RunMeta::default() };
//! let data = RunData { client: Some(samples), logs: Some(RunLogs::read_dir(dir)?) };
//! let report = RunReport::compute(&meta, &data);
//! report::print_report(&report);
//! let files = report::write_outputs(dir, &report, &data)?;
//! # let _ = files; Ok(()) }
//! ```

pub mod chart;
pub mod logs;
mod plots;
mod print;
mod progress;
pub mod status;
mod summary;

pub use clockwork_core::telemetry::{ActionLog, LogError, RequestLog};
pub use logs::{read_action_log, read_request_log, RunLogs, ACTION_LOG_FILE, REQUEST_LOG_FILE};
pub use plots::{
    figure_title, render_figures, Figure, BATCH_SIZES_SVG, COLD_STARTS_SVG, LATENCY_CDF_SVG,
    PREDICTION_ERROR_CDF_SVG, TIMELINE_SVG,
};
pub use print::{format_report, print_report};
pub use progress::Progress;
pub use status::{status_name, UNANSWERED};
pub use summary::{
    ClientSample, ErrorStats, LatencyStats, OutputCheck, PredictionStats, RunData, RunMeta,
    RunReport, SecondStats, MAX_LISTED_SLOS, MAX_TIMELINE_SECONDS,
};

use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The report's file name.
pub const REPORT_JSON: &str = "report.json";

/// A problem writing the report's files.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Writing a file (or creating the directory) failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The report could not be serialised.
    #[error("{}: {source}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A figure could not be drawn.
    #[error("{}: drawing failed: {message}", .path.display())]
    Plot {
        /// The file it was for.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

fn write_file(path: PathBuf, bytes: &[u8]) -> Result<PathBuf, ReportError> {
    match std::fs::write(&path, bytes) {
        Ok(()) => Ok(path),
        Err(source) => Err(ReportError::Io { path, source }),
    }
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Write `report` as pretty-printed `dir/report.json` (creating `dir`); returns its path.
pub fn write_report_json(dir: &Path, report: &RunReport) -> Result<PathBuf, ReportError> {
    create_dir(dir)?;
    let path = dir.join(REPORT_JSON);
    let mut json = match serde_json::to_vec_pretty(report) {
        Ok(j) => j,
        Err(source) => return Err(ReportError::Json { path, source }),
    };
    json.push(b'\n');
    write_file(path, &json)
}

/// Draw the figures the data allows (see [`render_figures`]) into `dir` as SVG
/// (creating `dir`); returns the files written.
pub fn write_plots(
    dir: &Path,
    report: &RunReport,
    data: &RunData,
) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    let figures = render_figures(report, data).map_err(|(name, message)| ReportError::Plot {
        path: dir.join(name),
        message,
    })?;
    figures
        .into_iter()
        .map(|f| write_file(dir.join(f.name), f.svg.as_bytes()))
        .collect()
}

/// [`write_report_json`] then [`write_plots`]; returns every file written.
pub fn write_outputs(
    dir: &Path,
    report: &RunReport,
    data: &RunData,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut files = vec![write_report_json(dir, report)?];
    files.extend(write_plots(dir, report, data)?);
    Ok(files)
}
