//! Who may use the admin endpoints of the HTTP front end: registering, loading and
//! unloading models and custom profiles (`POST /v2/repository/models/{m}/load` and
//! `.../unload`). Inference, health, metadata, the repository index and `/metrics`
//! stay open.
//!
//! Three settings ([`AdminAccess`]): closed (the default: every admin request is
//! refused with 403 saying how to enable them), a token (`Authorization: Bearer
//! <token>`, compared in constant time), or open (`--admin-open`, which the command
//! line allows only on a loopback HTTP address, for local development).

use super::wire::{Request, Response};
use std::path::Path;
use subtle::ConstantTimeEq;

/// Who may use the admin endpoints.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum AdminAccess {
    /// Nobody: admin requests get 403 with how to enable them.
    #[default]
    Closed,
    /// Whoever sends `Authorization: Bearer <token>`.
    Token(String),
    /// Everybody (local development only).
    Open,
}

impl std::fmt::Debug for AdminAccess {
    // The token is a secret: never in logs or panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("Closed"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::Open => f.write_str("Open"),
        }
    }
}

/// Why an admin token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The token file could not be read.
    #[error("cannot read the admin token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty or holds characters a header cannot carry.
    #[error("the admin token must be 1 to 4096 visible ASCII characters without spaces")]
    Invalid,
}

impl AdminAccess {
    /// A token given on the command line or in a file, checked for use in a header.
    pub fn token(token: &str) -> Result<Self, AdminTokenError> {
        let ok =
            !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self::Token(token.to_owned()))
        } else {
            Err(AdminTokenError::Invalid)
        }
    }

    /// The token in `path`: its content without surrounding whitespace (a trailing
    /// newline, typically).
    pub fn token_file(path: &Path) -> Result<Self, AdminTokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| AdminTokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::token(text.trim())
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
                let token = given
                    .strip_prefix("Bearer ")
                    .or_else(|| given.strip_prefix("bearer "))
                    .unwrap_or("")
                    .trim();
                if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) {
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
            "Token(<redacted>)"
        );
    }
}
