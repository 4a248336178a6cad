//! The one classification of client statuses: for each [`ClientStatus`], its group
//! ([`StatusGroup`]), its metric label, the HTTP status a front end answers with,
//! whether the client is told to retry later (`Retry-After`), and a reason in words.
//! Also the way back from a numeric code to its status.
//!
//! Everything is read from one table ([`class`]), one row per status, so the metrics,
//! the HTTP front end and the run report cannot group a status two ways.

use super::{ClientStatus, WorkerStatus};

/// What kind of answer a status is. Every status is in exactly one group.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum StatusGroup {
    /// Served ([`ClientStatus::Success`]).
    Success,
    /// Accepted, but the controller could not serve it in time: it gave up at the
    /// deadline ([`ClientStatus::Timeout`]), dropped it for a batch of later requests
    /// ([`ClientStatus::ControllerSkipped`]), or no GPU could start it in time
    /// ([`ClientStatus::CouldNotStartInTime`]).
    Late,
    /// Refused up front, without trying: no plan meets its SLO, unknown model, no GPU,
    /// malformed, or the controller is starting.
    Refused,
    /// Failed: the INFER carrying it failed on a worker, or a generic error.
    Failed,
}

impl StatusGroup {
    /// Every group, in declaration order (so `group as usize` indexes it).
    pub const ALL: [Self; 4] = [Self::Success, Self::Late, Self::Refused, Self::Failed];

    /// A stable lowercase label (metrics, reports).
    pub const fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Late => "late",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// Everything said about one status: a row of the table.
#[derive(Clone, Copy, Debug)]
struct Class {
    group: StatusGroup,
    label: &'static str,
    http: u16,
    retry_after: bool,
    reason: &'static str,
}

const fn row(
    group: StatusGroup,
    label: &'static str,
    http: u16,
    retry_after: bool,
    reason: &'static str,
) -> Class {
    Class {
        group,
        label,
        http,
        retry_after,
        reason,
    }
}

/// The table.
const fn class(s: ClientStatus) -> Class {
    use StatusGroup::{Failed, Late, Refused, Success};
    match s {
        ClientStatus::Success => row(Success, "success", 200, false, ""),
        ClientStatus::Timeout => row(
            Late,
            "timeout",
            429,
            true,
            "timeout: the request could not be served within its SLO",
        ),
        ClientStatus::ControllerSkipped => row(
            Late,
            "skipped",
            429,
            true,
            "skipped: dropped so that a batch of later requests could meet their SLO",
        ),
        ClientStatus::CouldNotStartInTime => row(
            Late,
            "could_not_start",
            429,
            true,
            "could not start: no GPU could start the request in time",
        ),
        ClientStatus::Rejected => row(
            Refused,
            "rejected",
            429,
            true,
            "rejected: no plan can meet the SLO under the current load",
        ),
        ClientStatus::UnknownModel => row(
            Refused,
            "unknown_model",
            404,
            false,
            "unknown model: the model is not registered",
        ),
        ClientStatus::Unavailable => row(
            Refused,
            "unavailable",
            503,
            true,
            "unavailable: no GPU can serve this model now",
        ),
        ClientStatus::InvalidRequest => row(Refused, "invalid", 400, false, "invalid"),
        ClientStatus::Initializing => row(
            Refused,
            "initializing",
            503,
            true,
            "initializing: the controller is starting",
        ),
        ClientStatus::Error => row(Failed, "error", 500, false, "error"),
        // A worker that could not run it inside its window: worth retrying, like a
        // timeout; still a worker failure.
        ClientStatus::WorkerFailed(w) if w.is_window_miss() => row(
            Failed,
            "worker_failed",
            429,
            true,
            "window missed: the worker could not run the request in time",
        ),
        ClientStatus::WorkerFailed(_) => row(Failed, "worker_failed", 500, false, "worker failed"),
    }
}

/// Every status but [`ClientStatus::WorkerFailed`], in code order.
const CONTROLLER_STATUSES: [ClientStatus; 10] = [
    ClientStatus::Success,
    ClientStatus::Error,
    ClientStatus::Timeout,
    ClientStatus::Initializing,
    ClientStatus::InvalidRequest,
    ClientStatus::ControllerSkipped,
    ClientStatus::CouldNotStartInTime,
    ClientStatus::Rejected,
    ClientStatus::UnknownModel,
    ClientStatus::Unavailable,
];

impl ClientStatus {
    /// Its group.
    pub const fn group(self) -> StatusGroup {
        class(self).group
    }

    /// A stable lowercase label for metrics (`success`, `timeout`, `worker_failed`, ...).
    pub const fn label(self) -> &'static str {
        class(self).label
    }

    /// The HTTP status code a front end answers with.
    pub const fn http_status(self) -> u16 {
        class(self).http
    }

    /// True when the same request may well succeed later, so the client is told to
    /// retry (`Retry-After`): overload, no GPU yet, a missed window.
    pub const fn retry_after(self) -> bool {
        class(self).retry_after
    }

    /// Why it was not served, in words with a stable prefix (`timeout: ...`); empty for
    /// success.
    pub const fn reason(self) -> &'static str {
        class(self).reason
    }

    /// The status whose [`ClientStatus::code`] is `code`, if any.
    pub fn from_code(code: u16) -> Option<Self> {
        match code.checked_sub(100) {
            Some(w) => u8::try_from(w)
                .ok()
                .and_then(WorkerStatus::from_code)
                .map(Self::WorkerFailed),
            None => CONTROLLER_STATUSES.into_iter().find(|s| s.code() == code),
        }
    }

    /// Every status, [`ClientStatus::WorkerFailed`] once with each worker status.
    pub fn all() -> impl Iterator<Item = Self> {
        CONTROLLER_STATUSES
            .into_iter()
            .chain(WorkerStatus::all().map(Self::WorkerFailed))
    }
}

impl WorkerStatus {
    /// The status whose [`WorkerStatus::code`] is `code`, if any.
    ///
    /// The code is the archived enum tag, so this reads it back through rkyv's
    /// validation, which stays in step with the enum by construction.
    pub fn from_code(code: u8) -> Option<Self> {
        rkyv::from_bytes::<Self, rkyv::rancor::Error>(&[code]).ok()
    }

    /// Every worker status, in code order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..=u8::MAX).filter_map(Self::from_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which variant a status is, as an index; the match is exhaustive, so a new variant
    /// fails to compile here until it is listed.
    fn variant(s: ClientStatus) -> usize {
        match s {
            ClientStatus::Success => 0,
            ClientStatus::Error => 1,
            ClientStatus::Timeout => 2,
            ClientStatus::Initializing => 3,
            ClientStatus::InvalidRequest => 4,
            ClientStatus::ControllerSkipped => 5,
            ClientStatus::CouldNotStartInTime => 6,
            ClientStatus::Rejected => 7,
            ClientStatus::UnknownModel => 8,
            ClientStatus::Unavailable => 9,
            ClientStatus::WorkerFailed(_) => 10,
        }
    }

    #[test]
    fn every_variant_is_enumerated_and_codes_round_trip() {
        let mut seen = [false; 11];
        let mut n = 0;
        for s in ClientStatus::all() {
            seen[variant(s)] = true;
            assert_eq!(ClientStatus::from_code(s.code()), Some(s), "{s}");
            n += 1;
        }
        assert!(seen.iter().all(|&v| v), "{seen:?}");
        // Every code that reads back is one of them, and reads back to itself.
        let readable = (0..=u16::MAX)
            .filter(|&c| ClientStatus::from_code(c).is_some_and(|s| s.code() == c))
            .count();
        assert_eq!(readable, n);
        assert_eq!(
            (0..=u16::MAX).filter_map(ClientStatus::from_code).count(),
            n
        );
    }

    #[test]
    fn worker_codes_round_trip() {
        let all: Vec<WorkerStatus> = WorkerStatus::all().collect();
        assert!(all.len() >= 40, "{}", all.len());
        assert!(all.windows(2).all(|p| p[0].code() < p[1].code()));
        for w in &all {
            assert_eq!(WorkerStatus::from_code(w.code()), Some(*w));
        }
        assert_eq!(WorkerStatus::from_code(4), None);
        assert_eq!(WorkerStatus::from_code(81), Some(WorkerStatus::ExecTooLate));
        assert_eq!(
            ClientStatus::from_code(181),
            Some(ClientStatus::WorkerFailed(WorkerStatus::ExecTooLate))
        );
        assert_eq!(ClientStatus::from_code(2), None);
        assert_eq!(ClientStatus::from_code(104), None);
        assert_eq!(ClientStatus::from_code(356), None);
    }

    #[test]
    fn groups() {
        for s in ClientStatus::all() {
            // Success is its own group, and only success.
            assert_eq!(s.is_success(), s.group() == StatusGroup::Success, "{s}");
            // Success is the only 2xx and the only empty reason.
            assert_eq!(s.is_success(), s.http_status() == 200, "{s}");
            assert_eq!(s.is_success(), s.reason().is_empty(), "{s}");
            // Retry-After goes only with 429 and 503, and every 429 and 503 has one.
            assert_eq!(s.retry_after(), matches!(s.http_status(), 429 | 503), "{s}");
            // Labels are lowercase snake case, fit for a metric label value.
            assert!(
                !s.label().is_empty()
                    && s.label()
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
        }
        let group = |s: ClientStatus| s.group();
        assert_eq!(group(ClientStatus::Timeout), StatusGroup::Late);
        assert_eq!(group(ClientStatus::ControllerSkipped), StatusGroup::Late);
        assert_eq!(group(ClientStatus::CouldNotStartInTime), StatusGroup::Late);
        for s in [
            ClientStatus::Rejected,
            ClientStatus::UnknownModel,
            ClientStatus::Unavailable,
            ClientStatus::InvalidRequest,
            ClientStatus::Initializing,
        ] {
            assert_eq!(group(s), StatusGroup::Refused, "{s}");
        }
        assert_eq!(group(ClientStatus::Error), StatusGroup::Failed);
        for w in WorkerStatus::all() {
            assert_eq!(group(ClientStatus::WorkerFailed(w)), StatusGroup::Failed);
        }
        for (i, g) in StatusGroup::ALL.into_iter().enumerate() {
            assert_eq!(
                g as usize, i,
                "ALL is in declaration order, so `as usize` indexes it"
            );
        }
        let labels: Vec<&str> = StatusGroup::ALL.iter().map(|g| g.label()).collect();
        assert_eq!(labels, ["success", "late", "refused", "failed"]);
    }

    #[test]
    fn http_answers() {
        let s = ClientStatus::WorkerFailed(WorkerStatus::ExecTooLate);
        assert_eq!((s.http_status(), s.retry_after()), (429, true));
        assert!(s.reason().starts_with("window missed:"));
        let s = ClientStatus::WorkerFailed(WorkerStatus::RuntimeError);
        assert_eq!((s.http_status(), s.retry_after()), (500, false));
        assert_eq!(ClientStatus::UnknownModel.http_status(), 404);
        assert_eq!(ClientStatus::InvalidRequest.http_status(), 400);
        assert_eq!(ClientStatus::Unavailable.http_status(), 503);
        assert_eq!(ClientStatus::Rejected.label(), "rejected");
        assert_eq!(s.label(), "worker_failed");
    }
}
