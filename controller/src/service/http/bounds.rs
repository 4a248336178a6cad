//! The bounds on what the HTTP front end accepts from a caller: the values of a model
//! profile given over the repository API, the copies one load may register, and the
//! SLO of an inference request.
//!
//! They exist so that no single request can take the cluster away from everyone
//! else: a profile whose INFER takes hours, or a request whose SLO lets it wait for
//! hours, would park GPUs that every other request needs. Each refusal names the
//! bound it broke. The numbers are in `docs/http.md` ("Bounds").

use clockwork_core::{ModelProfile, Nanos, Slo};
use std::time::Duration;

/// Longest execution time of one batch in a profile given over HTTP.
pub(super) const MAX_EXEC: Nanos = Nanos(10_000_000_000);
/// Longest LOAD time in a profile given over HTTP.
pub(super) const MAX_LOAD: Nanos = Nanos(60_000_000_000);
/// Most weights bytes of a profile given over HTTP (64 GiB).
pub(super) const MAX_WEIGHTS_BYTES: u64 = 64 << 30;
/// Most input or output bytes per request of a profile given over HTTP (16 MiB, the
/// default body limit).
pub(super) const MAX_TENSOR_BYTES: u32 = 16 << 20;
/// Most batch sizes one profile may list.
pub(super) const MAX_BATCH_ENTRIES: usize = 32;
/// Most copies one repository load may register. Registration runs on the
/// scheduler's thread: a thousand copies take a few milliseconds, a hundred thousand
/// took half a second in which most other requests were refused.
pub(super) const MAX_COPIES: u64 = 1_000;
/// The default longest SLO an inference request may ask for (`--max-slo-ms`).
pub const DEFAULT_MAX_SLO: Duration = Duration::from_secs(60);

/// Checks a profile given over the repository API against the bounds above; the
/// error names the value and its bound. (The scheduler checks the rest: batch sizes
/// ascending, execution times positive.)
pub(super) fn check_profile(p: &ModelProfile) -> Result<(), String> {
    if p.batches.len() > MAX_BATCH_ENTRIES {
        return Err(format!(
            "profile lists {} batch sizes; at most {MAX_BATCH_ENTRIES} are allowed",
            p.batches.len()
        ));
    }
    for b in &p.batches {
        if b.exec_time > MAX_EXEC {
            return Err(format!(
                "exec_time_us {} of batch size {} exceeds the bound of {} µs (10 s)",
                b.exec_time.get() / 1_000,
                b.batch_size,
                MAX_EXEC.get() / 1_000
            ));
        }
        if b.exec_time == Nanos::ZERO {
            return Err(format!(
                "exec_time_us of batch size {} must be at least 1",
                b.batch_size
            ));
        }
    }
    if p.load_time > MAX_LOAD {
        return Err(format!(
            "load_time_us {} exceeds the bound of {} µs (60 s)",
            p.load_time.get() / 1_000,
            MAX_LOAD.get() / 1_000
        ));
    }
    if p.weights_bytes > MAX_WEIGHTS_BYTES {
        return Err(format!(
            "weights_bytes {} exceeds the bound of {MAX_WEIGHTS_BYTES} (64 GiB)",
            p.weights_bytes
        ));
    }
    for (what, n) in [
        ("input_bytes", p.input_bytes),
        ("output_bytes", p.output_bytes),
    ] {
        if n > MAX_TENSOR_BYTES {
            return Err(format!(
                "{what} {n} exceeds the bound of {MAX_TENSOR_BYTES} (16 MiB)"
            ));
        }
    }
    Ok(())
}

/// The SLO a request asks for, checked against `max_slo`. A factor is resolved with
/// the model's profiled batch-1 time (`b1`); the scheduler resolves it again with its
/// current estimate, which moves only as far as the worker's measurements do.
/// Returns the SLO as resolved here (`default` for [`Slo::Default`]).
pub(super) fn check_slo(
    slo: Slo,
    default: Nanos,
    b1: Nanos,
    max_slo: Duration,
) -> Result<Nanos, String> {
    let max = Nanos::from(max_slo);
    let max_ms = max.get() as f64 / 1e6;
    let resolved = match slo {
        Slo::Default => default,
        Slo::Absolute(n) => {
            if n > max {
                return Err(format!(
                    "the SLO of {} ms exceeds the bound of {max_ms} ms (--max-slo-ms)",
                    n.get() as f64 / 1e6
                ));
            }
            n
        }
        Slo::Factor(f) => {
            let ns = b1.get() as f64 * f64::from(f);
            if !ns.is_finite() || ns > max.get() as f64 {
                return Err(format!(
                    "clockwork_slo_factor {f} times the model's batch-1 time of {} ms exceeds \
                     the SLO bound of {max_ms} ms (--max-slo-ms)",
                    b1.get() as f64 / 1e6
                ));
            }
            Nanos(ns as u64)
        }
    };
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::BatchProfile;

    fn profile(exec: Nanos, load: Nanos) -> ModelProfile {
        ModelProfile {
            name: "p".into(),
            weights_bytes: 1_000,
            input_bytes: 16,
            output_bytes: 8,
            load_time: load,
            batches: vec![BatchProfile {
                batch_size: 1,
                exec_time: exec,
            }],
            source: clockwork_core::ModelSource::Emulated,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    #[test]
    fn profiles_inside_the_bounds_pass_and_outside_name_the_bound() {
        assert!(check_profile(&profile(MAX_EXEC, MAX_LOAD)).is_ok());
        let e =
            check_profile(&profile(Nanos::from_micros(1_000_000_000_000), MAX_LOAD)).unwrap_err();
        assert!(e.contains("exec_time_us") && e.contains("10 s"), "{e}");
        let e = check_profile(&profile(MAX_EXEC, MAX_LOAD + Nanos(1))).unwrap_err();
        assert!(e.contains("load_time_us"), "{e}");
        let mut p = profile(MAX_EXEC, MAX_LOAD);
        p.weights_bytes = MAX_WEIGHTS_BYTES + 1;
        assert!(check_profile(&p).unwrap_err().contains("weights_bytes"));
        let mut p = profile(MAX_EXEC, MAX_LOAD);
        p.input_bytes = MAX_TENSOR_BYTES + 1;
        assert!(check_profile(&p).unwrap_err().contains("input_bytes"));
    }

    #[test]
    fn slos_beyond_the_bound_are_refused() {
        let max = Duration::from_secs(60);
        let d = Nanos::from_millis(100);
        let b1 = Nanos::from_millis(2);
        assert_eq!(check_slo(Slo::Default, d, b1, max), Ok(d));
        assert_eq!(
            check_slo(Slo::Absolute(Nanos::from_secs(60)), d, b1, max),
            Ok(Nanos::from_secs(60))
        );
        let e = check_slo(Slo::Absolute(Nanos::from_secs(3_599)), d, b1, max).unwrap_err();
        assert!(e.contains("--max-slo-ms"), "{e}");
        assert_eq!(
            check_slo(Slo::Factor(10.0), d, b1, max),
            Ok(Nanos::from_millis(20))
        );
        let e = check_slo(Slo::Factor(1e9), d, b1, max).unwrap_err();
        assert!(e.contains("clockwork_slo_factor"), "{e}");
        assert!(check_slo(Slo::Factor(f32::INFINITY), d, b1, max).is_err());
    }
}
