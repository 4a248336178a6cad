//! Who may use the controller's client APIs: bearer tokens (`Authorization: Bearer
//! TOKEN`), read from the command line or a file, checked in constant time.
//!
//! It owns the token rules (what a token may hold, how a token file is read, how a
//! header value is compared) and [`ApiAuth`], the check every client front end runs
//! on a request's `Authorization` value: the HTTP front end on its header, the gRPC
//! front end on its `authorization` metadata. The HTTP admin endpoints use the same
//! rules for their own token (`http::admin`).
//!
//! A token is a secret: it never appears in `Debug` output, logs or answers.

use std::path::Path;
use subtle::ConstantTimeEq;

/// The longest token accepted, bytes.
const MAX_TOKEN: usize = 4096;

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty or holds characters a header cannot carry.
    #[error("a token must be 1 to 4096 visible ASCII characters without spaces")]
    Invalid,
}

/// A bearer token: 1 to 4096 visible ASCII characters. Its `Debug` output is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token given on the command line, checked for use in a header.
    pub fn new(token: &str) -> Result<Self, TokenError> {
        let ok = !token.is_empty()
            && token.len() <= MAX_TOKEN
            && token.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(token.to_owned()))
        } else {
            Err(TokenError::Invalid)
        }
    }

    /// The token in `path`: its content without surrounding whitespace (a trailing
    /// newline, typically).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(text.trim())
    }

    /// The token itself (to send it; never to log it).
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// The token in an `Authorization` value (`Bearer TOKEN`, the scheme's case
/// ignored); `None` for another scheme.
pub fn bearer_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a request was refused by [`ApiAuth::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` value (HTTP: 401 with `WWW-Authenticate: Bearer`; gRPC:
    /// `UNAUTHENTICATED`).
    Missing,
    /// An `Authorization` value that is not `Bearer TOKEN` (401 / `UNAUTHENTICATED`).
    NotBearer,
    /// A bearer token that is not accepted (401 / `UNAUTHENTICATED`).
    Wrong,
}

impl Refusal {
    /// What the client is told (never the expected token).
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "this server needs a token: send Authorization: Bearer TOKEN (the API token)"
            }
            Self::NotBearer => "the Authorization header must be Bearer TOKEN",
            Self::Wrong => "wrong token",
        }
    }

    /// A short label for metrics (`missing`, `not_bearer`, `wrong`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotBearer => "not_bearer",
            Self::Wrong => "wrong",
        }
    }
}

/// Who may use the client APIs (inference, metadata, the repository index): with no
/// API token, everybody; with one, whoever sends it or the admin token (an admin may
/// do everything a client may). Health endpoints are the caller's to leave open.
#[derive(Debug, Clone, Default)]
pub struct ApiAuth {
    api: Option<BearerToken>,
    admin: Option<BearerToken>,
}

impl ApiAuth {
    /// The check for `api` (`None`: open), also accepting `admin` when there is one.
    pub fn new(api: Option<BearerToken>, admin: Option<BearerToken>) -> Self {
        Self { api, admin }
    }

    /// Whether every request passes (no API token configured).
    pub fn is_open(&self) -> bool {
        self.api.is_none()
    }

    /// `Ok` when a request with this `Authorization` value (HTTP header or gRPC
    /// `authorization` metadata) may use the client APIs.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let Some(api) = &self.api else {
            return Ok(());
        };
        let given = authorization.ok_or(Refusal::Missing)?;
        let token = bearer_of(given).ok_or(Refusal::NotBearer)?;
        // Both compared, whichever matches, so the time does not say which.
        let api_ok = api.matches(token);
        let admin_ok = self.admin.as_ref().is_some_and(|a| a.matches(token));
        if api_ok | admin_ok {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_fit_a_header() {
        assert!(BearerToken::new("s3cret-token").is_ok());
        assert!(BearerToken::new("").is_err());
        assert!(BearerToken::new("two words").is_err());
        assert!(BearerToken::new("new\nline").is_err());
        assert!(BearerToken::new(&"x".repeat(4097)).is_err());
        assert_eq!(
            format!("{:?}", BearerToken::new("s3cret").unwrap()),
            "BearerToken(<redacted>)"
        );
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_of("Bearer abc"), Some("abc"));
        assert_eq!(bearer_of("bearer abc"), Some("abc"));
        assert_eq!(bearer_of("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_of("Basic abc"), None);
        assert_eq!(bearer_of("abc"), None);
    }

    #[test]
    fn api_check() {
        let t = |s| Some(BearerToken::new(s).unwrap());
        assert_eq!(ApiAuth::default().check(None), Ok(()));
        let auth = ApiAuth::new(t("api"), t("admin"));
        assert_eq!(auth.check(Some("Bearer api")), Ok(()));
        assert_eq!(auth.check(Some("Bearer admin")), Ok(()));
        assert_eq!(auth.check(None), Err(Refusal::Missing));
        assert_eq!(auth.check(Some("Basic api")), Err(Refusal::NotBearer));
        assert_eq!(auth.check(Some("Bearer apx")), Err(Refusal::Wrong));
        assert_eq!(auth.check(Some("Bearer ap")), Err(Refusal::Wrong));
        let no_admin = ApiAuth::new(t("api"), None);
        assert_eq!(no_admin.check(Some("Bearer admin")), Err(Refusal::Wrong));
    }
}
