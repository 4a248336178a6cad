//! The TSV format of the telemetry logs: how one record is written as a row, how a file
//! is read back (columns found by their header names), and what goes wrong when it
//! cannot be.
//!
//! A record type lists its fields once, in the [`tsv_record!`] macro; the macro makes the
//! struct, its column names (in field order), the header line, the row writer and the
//! row parser from that one list, so the writer and the reader cannot drift apart.
//!
//! Reading rules: columns are found by their header names, so a reordered file still
//! reads right and a renamed or missing column is an error naming it; extra columns are
//! ignored; blank lines are skipped (but counted); every other problem is an error with
//! the file and line. Nothing here opens files: callers pass a [`BufRead`] and the path
//! it came from, which only names it in errors.

use crate::time::Nanos;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One field type of a log record: how it is written and read back.
pub trait TsvField: Sized {
    /// What a bad value should have been, for errors.
    const EXPECTED: &'static str;
    /// Append the field's text.
    fn write_field(&self, out: &mut String);
    /// Read the field's text (already trimmed); `None` if it is not one.
    fn parse_field(text: &str) -> Option<Self>;
}

macro_rules! integer_fields {
    ($($ty:ty),*) => {$(
        impl TsvField for $ty {
            const EXPECTED: &'static str = stringify!($ty);
            fn write_field(&self, out: &mut String) {
                use std::fmt::Write as _;
                // Writing to a String cannot fail.
                let _ = write!(out, "{self}");
            }
            fn parse_field(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}
integer_fields!(u8, u16, u32, u64);

/// Nanoseconds are written as their raw count.
impl TsvField for Nanos {
    const EXPECTED: &'static str = "u64 (nanoseconds)";
    fn write_field(&self, out: &mut String) {
        self.0.write_field(out);
    }
    fn parse_field(text: &str) -> Option<Self> {
        u64::parse_field(text).map(Self)
    }
}

/// Flags are written `0` or `1`; `false` and `true` read too.
impl TsvField for bool {
    const EXPECTED: &'static str = "0 or 1";
    fn write_field(&self, out: &mut String) {
        out.push(if *self { '1' } else { '0' });
    }
    fn parse_field(text: &str) -> Option<Self> {
        match text {
            "0" | "false" => Some(false),
            "1" | "true" => Some(true),
            _ => None,
        }
    }
}

/// A record that is one row of a TSV log. Implemented by the `tsv_record!` macro.
pub trait TsvRecord: Sized {
    /// The column names, in field order.
    const COLUMNS: &'static [&'static str];
    /// The header line: [`TsvRecord::COLUMNS`] joined by tabs (no newline).
    const TSV_HEADER: &'static str;
    /// Append this record as one row (no newline).
    fn write_tsv(&self, out: &mut String);
    /// Build a record from its fields, given in [`TsvRecord::COLUMNS`] order; `at` names
    /// the row in errors.
    fn from_fields(fields: &[&str], at: &RowAt<'_>) -> Result<Self, LogError>;

    /// This record as one row (no newline).
    fn to_tsv(&self) -> String {
        let mut s = String::with_capacity(16 * Self::COLUMNS.len());
        self.write_tsv(&mut s);
        s
    }
}

/// Where a row is, for errors.
#[derive(Debug, Clone, Copy)]
pub struct RowAt<'a> {
    /// The file.
    pub path: &'a Path,
    /// 1-based line number.
    pub line: usize,
}

impl RowAt<'_> {
    /// Parse `text` as the field of `column`.
    pub fn field<T: TsvField>(&self, column: &'static str, text: &str) -> Result<T, LogError> {
        T::parse_field(text.trim()).ok_or_else(|| LogError::BadValue {
            path: self.path.to_owned(),
            line: self.line,
            column,
            value: text.to_owned(),
            ty: T::EXPECTED,
        })
    }
}

/// Hands out a row's fields in column order, parsed as each field's type.
#[derive(Debug)]
pub struct FieldCursor<'f, 'a> {
    fields: std::slice::Iter<'f, &'f str>,
    at: RowAt<'a>,
}

impl<'f, 'a> FieldCursor<'f, 'a> {
    /// The fields of the row at `at`, in [`TsvRecord::COLUMNS`] order.
    pub fn new(fields: &'f [&'f str], at: RowAt<'a>) -> Self {
        Self {
            fields: fields.iter(),
            at,
        }
    }

    /// The next field, which is `column`'s. A row with too few fields reads as empty
    /// fields, which fail to parse with the column named.
    pub fn next<T: TsvField>(&mut self, column: &'static str) -> Result<T, LogError> {
        let text = self.fields.next().copied().unwrap_or("");
        self.at.field(column, text)
    }
}

/// Declares a log record: the struct, and its [`TsvRecord`] implementation from the same
/// field list (column names are the field names, in order).
macro_rules! tsv_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(#[$first_meta:meta])* pub $first:ident: $first_ty:ty,
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(#[$first_meta])* pub $first: $first_ty,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $crate::telemetry::TsvRecord for $name {
            const COLUMNS: &'static [&'static str] =
                &[stringify!($first), $(stringify!($field)),*];
            const TSV_HEADER: &'static str =
                concat!(stringify!($first), $("\t", stringify!($field)),*);

            fn write_tsv(&self, out: &mut String) {
                $crate::telemetry::TsvField::write_field(&self.$first, out);
                $(
                    out.push('\t');
                    $crate::telemetry::TsvField::write_field(&self.$field, out);
                )*
            }

            fn from_fields(
                fields: &[&str],
                at: &$crate::telemetry::RowAt<'_>,
            ) -> Result<Self, $crate::telemetry::LogError> {
                let mut fields = $crate::telemetry::FieldCursor::new(fields, *at);
                Ok(Self {
                    $first: fields.next(stringify!($first))?,
                    $($field: fields.next(stringify!($field))?,)*
                })
            }
        }
    };
}
pub(crate) use tsv_record;

/// A problem reading a log.
#[derive(Debug, Error)]
pub enum LogError {
    /// The file could not be opened (for readers that open files; nothing here does).
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

/// Reads the rows of one log file after its header: where each of `T`'s columns is.
#[derive(Debug, Clone)]
pub struct TsvReader<'a, T> {
    path: &'a Path,
    /// Position in the file's rows of each of `T::COLUMNS`.
    positions: Vec<usize>,
    /// Fields per row (the header's count).
    width: usize,
    record: std::marker::PhantomData<fn() -> T>,
}

impl<'a, T: TsvRecord> TsvReader<'a, T> {
    /// Read the header line (without its newline) of the file at `path`.
    pub fn new(header: &str, path: &'a Path) -> Result<Self, LogError> {
        let names: Vec<&str> = header.split('\t').map(str::trim).collect();
        let header_err = |column: &str, problem| LogError::Header {
            path: path.to_owned(),
            column: column.to_owned(),
            problem,
            header: header.to_owned(),
        };
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(header_err(name, "repeats"));
            }
        }
        let positions = T::COLUMNS
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| header_err(c, "has no"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path,
            positions,
            width: names.len(),
            record: std::marker::PhantomData,
        })
    }

    /// Parse one row (without its newline), line `line` of the file.
    pub fn parse_row(&self, line: usize, row: &str) -> Result<T, LogError> {
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() != self.width {
            return Err(LogError::FieldCount {
                path: self.path.to_owned(),
                line,
                expected: self.width,
                found: fields.len(),
            });
        }
        let ordered: Vec<&str> = self.positions.iter().map(|&p| fields[p]).collect();
        T::from_fields(
            &ordered,
            &RowAt {
                path: self.path,
                line,
            },
        )
    }
}

/// Parse a whole log of `T` records from `reader`; `path` only names it in errors.
pub fn parse_log<T: TsvRecord>(mut reader: impl BufRead, path: &Path) -> Result<Vec<T>, LogError> {
    let mut buf = String::new();
    let mut line = 0usize;
    let mut next_line = |buf: &mut String, line: &mut usize| -> Result<bool, LogError> {
        buf.clear();
        *line += 1;
        match reader.read_line(buf) {
            Ok(0) => Ok(false),
            Ok(_) => {
                let kept = buf.trim_end_matches(['\n', '\r']).len();
                buf.truncate(kept);
                Ok(true)
            }
            Err(source) => Err(LogError::Read {
                path: path.to_owned(),
                line: *line,
                source,
            }),
        }
    };
    if !next_line(&mut buf, &mut line)? {
        return Err(LogError::Empty {
            path: path.to_owned(),
        });
    }
    let rows = TsvReader::<T>::new(&buf, path)?;
    let mut out = Vec::new();
    while next_line(&mut buf, &mut line)? {
        if !buf.trim().is_empty() {
            out.push(rows.parse_row(line, &buf)?);
        }
    }
    Ok(out)
}
