//! Writer of the trace CSV format, byte-compatible with the public release's layout, so
//! that generated traces go through the same reader as the real one.

use super::reader::TraceError;
use super::trace::{file_name, AzureTrace, ID_COLUMNS, MINUTES_PER_DAY};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Write `trace` as CSV: the header, then one row per function in order.
pub fn write_csv<W: Write>(trace: &AzureTrace, out: W) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    out.write_all(ID_COLUMNS.join(",").as_bytes())?;
    for m in 1..=MINUTES_PER_DAY {
        write!(out, ",{m}")?;
    }
    out.write_all(b"\n")?;
    let mut row = Vec::with_capacity(4 * MINUTES_PER_DAY);
    for f in &trace.functions {
        row.clear();
        for id in [f.owner.as_str(), f.app.as_str(), f.function.as_str()] {
            row.extend_from_slice(id.as_bytes());
            row.push(b',');
        }
        row.extend_from_slice(f.trigger.as_str().as_bytes());
        let mut next = 0;
        for (m, c) in f.counts.nonzero() {
            for _ in next..m {
                row.extend_from_slice(b",0");
            }
            row.push(b',');
            push_decimal(&mut row, c);
            next = m + 1;
        }
        for _ in next..MINUTES_PER_DAY {
            row.extend_from_slice(b",0");
        }
        row.push(b'\n');
        out.write_all(&row)?;
    }
    out.flush()
}

fn push_decimal(buf: &mut Vec<u8>, mut v: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        // v % 10 < 10 fits u8.
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Write `trace` into `dir` under the public file name of its day; returns the path.
pub fn write_day_file(dir: &Path, trace: &AzureTrace) -> Result<PathBuf, TraceError> {
    let path = dir.join(file_name(trace.day));
    let io_err = |source| TraceError::Io {
        origin: path.display().to_string(),
        source,
    };
    let file = File::create(&path).map_err(io_err)?;
    write_csv(trace, file).map_err(io_err)?;
    Ok(path)
}
