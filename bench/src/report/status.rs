//! Status codes as the logs and the load driver record them (`ClientStatus::code`):
//! their names, and the code the report uses for a request that was never answered.
//! Which group a status is in is `clockwork_core`'s one table
//! ([`ClientStatus::group`]).

use clockwork_core::{ClientStatus, StatusGroup};

/// The status code a [`super::ClientSample`] carries when the request was never
/// answered (the run ended first, or the connection was lost). Not a
/// [`ClientStatus`] code: those stop at 100 + 255.
pub const UNANSWERED: u16 = u16::MAX;

/// A readable name for a client status code: the status's `Display` (`Timeout(4)`,
/// `WorkerFailed(ExecTooLate(81))`), `Unanswered` for [`UNANSWERED`], or
/// `UnknownStatus(code)`.
pub fn status_name(code: u16) -> String {
    if code == UNANSWERED {
        return "Unanswered".to_owned();
    }
    match ClientStatus::from_code(code) {
        Some(s) => s.to_string(),
        None => format!("UnknownStatus({code})"),
    }
}

/// The group of an answered request's status code; a code no status has is a failure
/// (something answered that the report cannot read).
pub fn group(code: u16) -> StatusGroup {
    ClientStatus::from_code(code).map_or(StatusGroup::Failed, ClientStatus::group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::WorkerStatus;

    #[test]
    fn names_and_groups() {
        assert_eq!(status_name(4), "Timeout(4)");
        assert_eq!(status_name(181), "WorkerFailed(ExecTooLate(81))");
        assert_eq!(status_name(2), "UnknownStatus(2)");
        assert_eq!(status_name(UNANSWERED), "Unanswered");
        assert_eq!(group(0), StatusGroup::Success);
        assert_eq!(group(ClientStatus::Timeout.code()), StatusGroup::Late);
        assert_eq!(group(ClientStatus::Rejected.code()), StatusGroup::Refused);
        assert_eq!(
            group(
                ClientStatus::WorkerFailed(WorkerStatus::ExecConcurrentWeightsModification).code()
            ),
            StatusGroup::Failed
        );
        assert_eq!(group(2), StatusGroup::Failed);
    }
}
