//! Who may use the admin endpoints of the HTTP front end: registering, loading and
//! unloading models and custom profiles (`POST /v2/repository/models/{m}/load` and
//! `.../unload`). The other endpoints need only the API token, when one is set
//! (`service::auth`); an admin token is accepted there too.
//!
//! Three settings ([`AdminAccess`]): closed (the default: every admin request is
//! refused with 403 saying how to enable them), a token (`Authorization: Bearer
//! <token>`, compared in constant time by `service::auth`), or open (`--admin-open`, which the command
//! line allows only on a loopback HTTP address, for local development).

use super::super::auth::{bearer_of, BearerToken, TokenError};
use super::wire::{Request, Response};
use std::path::Path;

/// Why an admin token cannot be used (the token rules are `auth`'s).
pub type AdminTokenError = TokenError;

/// Who may use the admin endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AdminAccess {
    /// Nobody: admin requests get 403 with how to enable them.
    #[default]
    Closed,
    /// Whoever sends `Authorization: Bearer <token>` (redacted in `Debug`).
    Token(BearerToken),
    /// Everybody (local development only).
    Open,
}

impl AdminAccess {
    /// A token given on the command line, checked for use in a header.
    pub fn token(token: &str) -> Result<Self, AdminTokenError> {
        BearerToken::new(token).map(Self::Token)
    }

    /// The token in `path`: its content without surrounding whitespace (a trailing
    /// newline, typically).
    pub fn token_file(path: &Path) -> Result<Self, AdminTokenError> {
        BearerToken::from_file(path).map(Self::Token)
    }

    /// The admin token, when admin endpoints need one.
    pub fn bearer(&self) -> Option<&BearerToken> {
        match self {
            Self::Token(t) => Some(t),
            Self::Closed | Self::Open => None,
        }
    }

    /// `Ok` when `req` may use an admin endpoint; otherwise the refusal to send.
    pub(super) fn check(&self, req: &Request) -> Result<(), Response> {
        match self {
            Self::Open => Ok(()),
            Self::Closed => Err(Response::error(
                403,
                "admin endpoints are disabled: start the controller with --admin-token TOKEN \
                 or --admin-token-file PATH and send Authorization: Bearer TOKEN \
                 (or --admin-open on a loopback --http address, for local development)",
            )),
            Self::Token(expected) => {
                let Some(given) = req.authorization.as_deref() else {
                    return Err(Response::error(
                        401,
                        "admin endpoint: send the admin token as Authorization: Bearer TOKEN",
                    )
                    .with("WWW-Authenticate", "Bearer"));
                };
                if expected.matches(bearer_of(given).unwrap_or("")) {
                    Ok(())
                } else {
                    Err(Response::error(403, "admin endpoint: wrong admin token"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_fit_a_header() {
        assert!(AdminAccess::token("s3cret-token").is_ok());
        assert!(AdminAccess::token("").is_err());
        assert!(AdminAccess::token("two words").is_err());
        assert!(AdminAccess::token("new\nline").is_err());
        assert_eq!(
            format!("{:?}", AdminAccess::token("s3cret").unwrap()),
            "Token(BearerToken(<redacted>))"
        );
    }
}
