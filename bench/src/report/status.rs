//! Status codes as the logs and the load driver record them (`ClientStatus::code`), back
//! to the statuses and their names.

use clockwork_core::{ClientStatus, WorkerStatus};

/// The status code a [`super::ClientSample`] carries when the request was never
/// answered (the run ended first, or the connection was lost). Not a
/// [`ClientStatus`] code: those stop at 100 + 255.
pub const UNANSWERED: u16 = u16::MAX;

/// The [`WorkerStatus`] whose [`WorkerStatus::code`] is `code`, if any.
///
/// The code is the archived enum tag (see `clockwork_core::status`), so this reads it
/// back through rkyv's validation, which stays in step with the enum by construction.
pub fn worker_status_from_code(code: u8) -> Option<WorkerStatus> {
    rkyv::from_bytes::<WorkerStatus, rkyv::rancor::Error>(&[code]).ok()
}

/// The [`ClientStatus`] whose [`ClientStatus::code`] is `code`, if any.
pub fn client_status_from_code(code: u16) -> Option<ClientStatus> {
    Some(match code {
        0 => ClientStatus::Success,
        1 => ClientStatus::Error,
        4 => ClientStatus::Timeout,
        5 => ClientStatus::Initializing,
        6 => ClientStatus::InvalidRequest,
        7 => ClientStatus::ControllerSkipped,
        8 => ClientStatus::CouldNotStartInTime,
        9 => ClientStatus::Rejected,
        10 => ClientStatus::UnknownModel,
        11 => ClientStatus::Unavailable,
        100..=355 => ClientStatus::WorkerFailed(worker_status_from_code((code - 100) as u8)?),
        _ => return None,
    })
}

/// A readable name for a client status code: the status's `Display` (`Timeout(4)`,
/// `WorkerFailed(ExecTooLate(81))`), `Unanswered` for [`UNANSWERED`], or
/// `UnknownStatus(code)`.
pub fn status_name(code: u16) -> String {
    if code == UNANSWERED {
        return "Unanswered".to_owned();
    }
    match client_status_from_code(code) {
        Some(s) => s.to_string(),
        None => format!("UnknownStatus({code})"),
    }
}

/// What kind of outcome a status code is, for the report's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Code 0.
    Success,
    /// The controller answered without running it: codes 1–11 (timeout, rejection,
    /// skipped, unavailable, ...).
    Rejected,
    /// The INFER carrying it failed on a worker (100 + worker code), or an unknown code.
    Failed,
    /// Never answered.
    Unanswered,
}

/// Classify a client status code.
pub fn outcome(code: u16) -> Outcome {
    match code {
        0 => Outcome::Success,
        UNANSWERED => Outcome::Unanswered,
        1..=99 => Outcome::Rejected,
        _ => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        let mut known = 0;
        for code in 0..=400u16 {
            if let Some(s) = client_status_from_code(code) {
                assert_eq!(s.code(), code);
                known += 1;
            }
        }
        // 10 client statuses and at least the 40-odd worker statuses.
        assert!(known > 50, "{known}");
        assert_eq!(
            client_status_from_code(181),
            Some(ClientStatus::WorkerFailed(WorkerStatus::ExecTooLate))
        );
        assert_eq!(worker_status_from_code(4), None);
        assert_eq!(status_name(4), "Timeout(4)");
        assert_eq!(status_name(181), "WorkerFailed(ExecTooLate(81))");
        assert_eq!(status_name(2), "UnknownStatus(2)");
        assert_eq!(status_name(UNANSWERED), "Unanswered");
        assert_eq!(outcome(9), Outcome::Rejected);
        assert_eq!(outcome(184), Outcome::Failed);
    }
}
