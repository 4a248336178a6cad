//! gRPC over HTTP/2: the length-prefixed message framing (one compressed-flag byte,
//! a big-endian `u32` length, the protobuf bytes), status codes, the `grpc-timeout`
//! header, and the response body (one message, then the `grpc-status` /
//! `grpc-message` trailers).

use hyper::body::Bytes;
use hyper::body::{Body, Frame};
use hyper::header::HeaderValue;
use hyper::HeaderMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// gRPC status codes (the ones this front end answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    Ok = 0,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The code for what the HTTP front end would answer with `status`: 429 (late or
    /// refused under load) is `RESOURCE_EXHAUSTED`, 503 (no GPU, initializing)
    /// `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`.
    pub(super) fn of_http(status: u16) -> Self {
        match status {
            200..=299 => Self::Ok,
            400 | 405 | 422 => Self::InvalidArgument,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            408 | 504 => Self::DeadlineExceeded,
            413 | 429 => Self::ResourceExhausted,
            501 => Self::Unimplemented,
            503 => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// The HTTP status counted in the metrics for an answer with this code.
    pub(super) fn http_equivalent(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::InvalidArgument => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::DeadlineExceeded => 504,
            Self::ResourceExhausted => 429,
            Self::Unimplemented => 501,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

/// A failed call: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Status {
    pub(super) code: Code,
    pub(super) message: String,
}

impl Status {
    pub(super) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The one message of a unary call's request body. A compressed message is
/// `UNIMPLEMENTED`, one longer than `max` bytes `RESOURCE_EXHAUSTED`, a body that is
/// not exactly one message `INVALID_ARGUMENT`.
pub(super) fn unframe(body: &[u8], max: usize) -> Result<&[u8], Status> {
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        return Err(Status::new(
            Code::InvalidArgument,
            format!(
                "the request body ({} bytes) holds no gRPC message",
                body.len()
            ),
        ));
    };
    if head[0] != 0 {
        return Err(Status::new(
            Code::Unimplemented,
            "compressed messages are not supported; send them uncompressed (grpc-encoding identity)",
        ));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("message of {len} bytes exceeds the limit of {max} bytes"),
        ));
    }
    if rest.len() < len {
        return Err(Status::new(
            Code::InvalidArgument,
            format!(
                "the body ends {} bytes into a {len}-byte message",
                rest.len()
            ),
        ));
    }
    if rest.len() > len {
        return Err(Status::new(
            Code::InvalidArgument,
            "a unary call takes one message; more follow it",
        ));
    }
    Ok(rest)
}

/// `message` with its 5-byte prefix (uncompressed).
pub(super) fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// The `grpc-timeout` header's value: up to 8 digits and a unit (`H`, `M`, `S`, `m`,
/// `u`, `n`). `None` when malformed.
pub(super) fn parse_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `grpc-message` percent-encoded as the gRPC spec asks (everything outside
/// printable ASCII, and `%`).
fn encode_message(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    for b in m.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A unary call's response body: the message (none when the call failed), then the
/// trailers with the status.
#[derive(Debug)]
pub(super) struct GrpcBody {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl GrpcBody {
    /// A successful answer carrying `message` (encoded protobuf).
    pub(super) fn ok(message: &[u8]) -> Self {
        Self {
            message: Some(frame(message)),
            trailers: Some(trailers(Code::Ok, "")),
        }
    }

    /// A failed call.
    pub(super) fn error(status: &Status) -> Self {
        Self {
            message: None,
            trailers: Some(trailers(status.code, &status.message)),
        }
    }
}

fn trailers(code: Code, message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(code as i32));
    if !message.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&encode_message(message)) {
            t.insert("grpc-message", v);
        }
    }
    t
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(m) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(m))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_frames_and_unframes() {
        let f = frame(b"abc");
        assert_eq!(&f[..], [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(unframe(&f, 16).unwrap(), b"abc");
        let code = |b: &[u8], max| unframe(b, max).unwrap_err().code;
        // Too short, a compressed message, over the limit, trailing or missing bytes.
        assert_eq!(code(&[0, 0, 0], 16), Code::InvalidArgument);
        assert_eq!(code(&[1, 0, 0, 0, 1, 7], 16), Code::Unimplemented);
        assert_eq!(code(&f, 2), Code::ResourceExhausted);
        assert_eq!(code(&[0, 0, 0, 0, 1, 7, 7], 16), Code::InvalidArgument);
        assert_eq!(code(&[0, 0, 0, 0, 2, 7], 16), Code::InvalidArgument);
        assert_eq!(unframe(&[0, 0, 0, 0, 0], 16).unwrap(), b"");
    }

    #[test]
    fn timeouts_and_messages() {
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_timeout("123456789n"), None);
        assert_eq!(parse_timeout("m"), None);
        assert_eq!(parse_timeout("10x"), None);
        assert_eq!(parse_timeout(""), None);
        assert_eq!(encode_message("50% é\n"), "50%25 %C3%A9%0A");
        assert_eq!(Code::of_http(429), Code::ResourceExhausted);
        assert_eq!(Code::of_http(503), Code::Unavailable);
        assert_eq!(Code::of_http(404), Code::NotFound);
    }
}
