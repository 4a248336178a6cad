//! Durations on the command line: `60s`, `500ms`, `250us`, `2m`, `1h`, or a bare number
//! of seconds.

use clockwork_core::Nanos;
use std::time::Duration;

/// Parse a positive duration of at most 24 hours.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit_s) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix("us") {
        (v, 1e-6)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else if let Some(v) = s.strip_suffix('h') {
        (v, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 60s, 2m, 500ms)"))?;
    let secs = v * unit_s;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("duration `{s}` must be positive and at most 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// [`parse_duration`] as [`Nanos`].
pub(crate) fn parse_nanos(s: &str) -> Result<Nanos, String> {
    parse_duration(s).map(Nanos::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_nanos("1ms"), Ok(Nanos::from_millis(1)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("25h").is_err());
    }
}
