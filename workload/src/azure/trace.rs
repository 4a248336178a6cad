//! The in-memory form of one day of the Azure Functions 2019 invocation trace.

use super::source::TraceSource;
use std::fmt;

/// Minutes in a trace day: the number of count columns per row.
pub const MINUTES_PER_DAY: usize = 1440;

/// Days in the public trace (`d01` … `d14`).
pub const DAYS: u8 = 14;

/// The identifier columns before the counts.
pub const ID_COLUMNS: [&str; 4] = ["HashOwner", "HashApp", "HashFunction", "Trigger"];

/// The file name of day `day` (1–14) of the public release.
pub fn file_name(day: u8) -> String {
    format!("invocations_per_function_md.anon.d{day:02}.csv")
}

/// The file name of day `day` in the pre-release ("preview") naming.
pub fn preview_file_name(day: u8) -> String {
    format!("invocations_per_function_md.svls.anon.d{day:02}.csv")
}

/// A function's trigger group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    /// `http`.
    Http,
    /// `timer`: periodic.
    Timer,
    /// `event` (Event Hub, Event Grid).
    Event,
    /// `queue`.
    Queue,
    /// `storage` (blob).
    Storage,
    /// `orchestration` (Durable Functions).
    Orchestration,
    /// `others`.
    Others,
    /// Any other label, kept verbatim.
    Unknown(String),
}

impl Trigger {
    /// Parse a trigger label (case-insensitive); unknown labels are kept.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "http" => Self::Http,
            "timer" => Self::Timer,
            "event" => Self::Event,
            "queue" => Self::Queue,
            "storage" => Self::Storage,
            "orchestration" => Self::Orchestration,
            "others" => Self::Others,
            _ => Self::Unknown(s.to_owned()),
        }
    }

    /// The label as written in the trace.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Http => "http",
            Self::Timer => "timer",
            Self::Event => "event",
            Self::Queue => "queue",
            Self::Storage => "storage",
            Self::Orchestration => "orchestration",
            Self::Others => "others",
            Self::Unknown(s) => s,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One function's invocations per minute of the day, stored sparsely (most functions
/// are idle in most minutes).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MinuteCounts {
    nonzero: Vec<(u16, u32)>,
    total: u64,
}

impl MinuteCounts {
    /// From a dense slice of up to [`MINUTES_PER_DAY`] counts (extra entries ignored).
    pub fn from_dense(counts: &[u32]) -> Self {
        let mut this = Self::default();
        for (m, &c) in counts.iter().take(MINUTES_PER_DAY).enumerate() {
            if c > 0 {
                // m < 1440 fits u16.
                this.nonzero.push((m as u16, c));
                this.total += u64::from(c);
            }
        }
        this
    }

    /// Invocations in minute `minute` (0-based; 0 outside the day).
    pub fn get(&self, minute: usize) -> u32 {
        let Ok(m) = u16::try_from(minute) else {
            return 0;
        };
        self.nonzero
            .binary_search_by_key(&m, |&(k, _)| k)
            .map_or(0, |i| self.nonzero[i].1)
    }

    /// The non-zero minutes and their counts, in minute order.
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.nonzero.iter().map(|&(m, c)| (usize::from(m), c))
    }

    /// All [`MINUTES_PER_DAY`] counts.
    pub fn to_dense(&self) -> Vec<u32> {
        let mut out = vec![0; MINUTES_PER_DAY];
        for (m, c) in self.nonzero() {
            out[m] = c;
        }
        out
    }

    /// Invocations over the day.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Minutes with at least one invocation.
    pub fn active_minutes(&self) -> usize {
        self.nonzero.len()
    }
}

/// One row of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionTrace {
    /// `HashOwner`.
    pub owner: String,
    /// `HashApp`.
    pub app: String,
    /// `HashFunction`.
    pub function: String,
    /// `Trigger`.
    pub trigger: Trigger,
    /// Invocations per minute.
    pub counts: MinuteCounts,
}

/// One day of the trace: its rows in file order, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct AzureTrace {
    /// Where the data came from (for reports: real and synthetic results differ).
    pub source: TraceSource,
    /// Day number, 1–14.
    pub day: u8,
    /// The rows, in file order.
    pub functions: Vec<FunctionTrace>,
}

impl AzureTrace {
    /// Invocations over all functions and minutes.
    pub fn total_invocations(&self) -> u64 {
        self.functions.iter().map(|f| f.counts.total()).sum()
    }

    /// Function indices sorted by daily invocations, descending; ties keep file order.
    /// Rank `i` of this list is "function rank `i`" of the replay mapping.
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.functions.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.functions[i].counts.total()));
        order
    }

    /// Invocations per minute summed over all functions.
    pub fn minute_totals(&self) -> Vec<u64> {
        let mut out = vec![0u64; MINUTES_PER_DAY];
        for f in &self.functions {
            for (m, c) in f.counts.nonzero() {
                out[m] += u64::from(c);
            }
        }
        out
    }
}
