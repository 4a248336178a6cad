//! Reader of `invocations_per_function_md.anon.dNN.csv`: a header
//! `HashOwner,HashApp,HashFunction,Trigger,1,…,1440`, then one row per function with
//! four id columns and exactly 1,440 per-minute invocation counts. Every malformed input
//! is an error naming the file and line; nothing panics.

use super::source::TraceSource;
use super::trace::{
    file_name, preview_file_name, AzureTrace, FunctionTrace, MinuteCounts, Trigger, DAYS,
    ID_COLUMNS, MINUTES_PER_DAY,
};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Columns per row: the ids and the minutes.
pub const COLUMNS: usize = ID_COLUMNS.len() + MINUTES_PER_DAY;

/// Why a trace could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A day outside 1–14.
    #[error("Azure trace day {0} is out of range: the trace has days 1 to 14")]
    BadDay(u8),
    /// Neither the public nor the preview file name exists in the directory.
    #[error(
        "Azure trace day {day}: no file {} (nor the preview name {}) in {}; the real trace is \
         not shipped with Clockwork-RS: download the 2019 Azure Functions dataset, or use the \
         synthetic generator",
        file_name(*day),
        preview_file_name(*day),
        dir.display()
    )]
    NotFound {
        /// The day asked for.
        day: u8,
        /// The directory searched.
        dir: PathBuf,
    },
    /// An I/O error while opening or reading.
    #[error("{origin}: {source}")]
    Io {
        /// File (or stream) name.
        origin: String,
        /// The error.
        source: io::Error,
    },
    /// No header line.
    #[error("{origin}: empty file, expected the header `HashOwner,HashApp,HashFunction,Trigger,1,...,1440`")]
    Empty {
        /// File name.
        origin: String,
    },
    /// The header is not the expected one.
    #[error("{origin}:1: bad header: {why}")]
    Header {
        /// File name.
        origin: String,
        /// What differs.
        why: String,
    },
    /// A row without exactly 4 + 1440 columns.
    #[error(
        "{origin}:{line}: expected {COLUMNS} columns (4 ids and 1440 minute counts), found {found}"
    )]
    ColumnCount {
        /// File name.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// Columns found.
        found: usize,
    },
    /// A count that is not a non-negative integer below 2^32.
    #[error("{origin}:{line}: minute {minute} (column {column}): `{value}` is not a count")]
    BadCount {
        /// File name.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// 1-based minute (the header's label).
        minute: usize,
        /// The text found.
        value: String,
    },
    /// The synthetic generator's parameters are unusable.
    #[error("synthetic trace: {0}")]
    Synthetic(#[from] crate::error::SpecError),
    /// An in-memory trace has nothing to reload from.
    #[error("an in-memory trace cannot be reloaded")]
    NotReloadable,
    /// A header but no rows.
    #[error("{origin}: the header is not followed by any function row")]
    NoRows {
        /// File name.
        origin: String,
    },
}

/// The path of day `day` in `dir`: the public name, else the preview name.
pub fn day_path(dir: &Path, day: u8) -> Result<PathBuf, TraceError> {
    if !(1..=DAYS).contains(&day) {
        return Err(TraceError::BadDay(day));
    }
    for name in [file_name(day), preview_file_name(day)] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(TraceError::NotFound {
        day,
        dir: dir.to_owned(),
    })
}

/// Read day `day` (1–14) from the trace directory `dir`.
pub fn read_day(dir: &Path, day: u8) -> Result<AzureTrace, TraceError> {
    let path = day_path(dir, day)?;
    read_file(&path, day)
}

/// Read one trace file; `day` is recorded in the result.
pub fn read_file(path: &Path, day: u8) -> Result<AzureTrace, TraceError> {
    let origin = path.display().to_string();
    let file = File::open(path).map_err(|source| TraceError::Io {
        origin: origin.clone(),
        source,
    })?;
    let functions = parse(BufReader::with_capacity(1 << 20, file), &origin)?;
    Ok(AzureTrace {
        source: TraceSource::Real(path.to_owned()),
        day,
        functions,
    })
}

/// Parse trace CSV text; `origin` names it in errors.
pub fn parse<R: BufRead>(mut reader: R, origin: &str) -> Result<Vec<FunctionTrace>, TraceError> {
    let io_err = |source| TraceError::Io {
        origin: origin.to_owned(),
        source,
    };
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
        return Err(TraceError::Empty {
            origin: origin.to_owned(),
        });
    }
    let header = String::from_utf8_lossy(&line);
    check_header(header.trim_start_matches('\u{feff}'), origin)?;
    let mut functions = Vec::new();
    let mut dense = vec![0u32; MINUTES_PER_DAY];
    let mut line_no = 1;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
            break;
        }
        line_no += 1;
        let mut row = line.as_slice();
        while let [rest @ .., b'\n' | b'\r'] = row {
            row = rest;
        }
        if row.is_empty() {
            continue;
        }
        functions.push(parse_row(row, &mut dense, origin, line_no)?);
    }
    if functions.is_empty() {
        return Err(TraceError::NoRows {
            origin: origin.to_owned(),
        });
    }
    Ok(functions)
}

fn check_header(line: &str, origin: &str) -> Result<(), TraceError> {
    let bad = |why: String| TraceError::Header {
        origin: origin.to_owned(),
        why,
    };
    let fields: Vec<&str> = line.trim_end_matches(['\n', '\r']).split(',').collect();
    if fields.len() != COLUMNS {
        return Err(bad(format!(
            "expected {COLUMNS} columns (4 ids and minutes 1 to 1440), found {}",
            fields.len()
        )));
    }
    for (i, want) in ID_COLUMNS.iter().enumerate() {
        if !fields[i].trim().eq_ignore_ascii_case(want) {
            return Err(bad(format!(
                "column {} is `{}`, expected `{want}`",
                i + 1,
                fields[i]
            )));
        }
    }
    for (m, field) in fields[ID_COLUMNS.len()..].iter().enumerate() {
        if field.trim() != (m + 1).to_string() {
            return Err(bad(format!(
                "column {} is `{field}`, expected the minute label `{}`",
                ID_COLUMNS.len() + m + 1,
                m + 1
            )));
        }
    }
    Ok(())
}

fn parse_row(
    row: &[u8],
    dense: &mut [u32],
    origin: &str,
    line: usize,
) -> Result<FunctionTrace, TraceError> {
    let columns = row.iter().filter(|&&b| b == b',').count() + 1;
    if columns != COLUMNS {
        return Err(TraceError::ColumnCount {
            origin: origin.to_owned(),
            line,
            found: columns,
        });
    }
    let mut fields = row.split(|&b| b == b',');
    let mut ids: [String; 4] = Default::default();
    for id in &mut ids {
        // Exactly COLUMNS fields, checked above.
        *id = String::from_utf8_lossy(fields.next().unwrap_or_default())
            .trim()
            .to_owned();
    }
    for (minute, field) in fields.enumerate() {
        dense[minute] = parse_count(field).ok_or_else(|| TraceError::BadCount {
            origin: origin.to_owned(),
            line,
            column: ID_COLUMNS.len() + minute + 1,
            minute: minute + 1,
            value: String::from_utf8_lossy(field).into_owned(),
        })?;
    }
    let [owner, app, function, trigger] = ids;
    Ok(FunctionTrace {
        owner,
        app,
        function,
        trigger: Trigger::parse(&trigger),
        counts: MinuteCounts::from_dense(dense),
    })
}

/// A decimal count: digits only (surrounding spaces allowed), below 2^32.
fn parse_count(field: &[u8]) -> Option<u32> {
    if field == b"0" {
        return Some(0);
    }
    let s = field.trim_ascii();
    if s.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(d))?;
    }
    Some(v)
}
