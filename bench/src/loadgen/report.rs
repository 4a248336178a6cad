//! What the load generator prints: a progress line every second, then a table per
//! SLO class (goodput, attainment, refused rate, errors, latency percentiles) and one
//! JSON line with the same figures.

use super::accounting::{ClassTally, Tally, Totals};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latency percentiles of the 200 answers, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let max = h.max() as f64 / 1e6;
        let q = |q: f64| (h.value_at_quantile(q) as f64 / 1e6).min(max);
        Self {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max,
        }
    }

    fn json(&self) -> Value {
        json!({
            "p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99,
            "p999_ms": self.p999, "max_ms": self.max,
        })
    }
}

/// `a / b`, 0 when `b` is 0.
fn frac(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn slo_label(c: &ClassTally) -> String {
    c.slo
        .map_or_else(|| "none".into(), |s| format!("{} ms", s.get() as f64 / 1e6))
}

/// One class's figures for a run of `secs` seconds.
fn class_json(c: &ClassTally, secs: f64) -> Value {
    let mut v = json!({
        "slo_ms": c.slo.map(|s| s.get() as f64 / 1e6),
        "sent": c.sent,
        "ok": c.ok,
        "within_slo": c.within_slo,
        "refused": c.refused,
        "errors": c.errors,
        "attempts": c.attempts,
        "attainment": frac(c.within_slo, c.sent),
        "goodput_rps": c.within_slo as f64 / secs,
        "refused_rps": c.refused as f64 / secs,
    });
    if let (Value::Object(m), Value::Object(p)) = (&mut v, Percentiles::of(&c.ok_latency).json()) {
        m.extend(p);
    }
    v
}

/// The classes' histograms merged.
fn all_latency(t: &Tally) -> Histogram<u64> {
    let mut all = crate::stats::histogram();
    for c in &t.classes {
        // Same bounds, so adding cannot fail.
        let _ = all.add(&c.ok_latency);
    }
    all
}

/// The per-class table and a totals row.
pub(crate) fn print_table(t: &Tally, secs: f64) {
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "SLO",
        "sent",
        "ok",
        "in SLO",
        "attain",
        "goodput/s",
        "429/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    let row = |label: &str,
               sent: u64,
               ok: u64,
               within: u64,
               refused: u64,
               errors: u64,
               p: Percentiles| {
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>6.2}% {:>10.1} {:>9.1} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            label,
            sent,
            ok,
            within,
            100.0 * frac(within, sent),
            within as f64 / secs,
            refused as f64 / secs,
            errors,
            p.p50,
            p.p90,
            p.p99,
            p.p999,
            p.max
        );
    };
    for c in &t.classes {
        row(
            &slo_label(c),
            c.sent,
            c.ok,
            c.within_slo,
            c.refused,
            c.errors,
            Percentiles::of(&c.ok_latency),
        );
    }
    if t.classes.len() > 1 {
        let s = t.totals();
        row(
            "all",
            s.sent,
            s.ok,
            s.within_slo,
            s.refused,
            s.errors,
            Percentiles::of(&all_latency(t)),
        );
    }
    if !t.errors_by_kind.is_empty() {
        let kinds: Vec<String> = t
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!("errors by kind: {}", kinds.join(", "));
    }
}

/// The JSON figures of a run of `secs` seconds (the caller adds its settings).
pub(crate) fn json_figures(t: &Tally, secs: f64) -> Value {
    let s = t.totals();
    let mut v = json!({
        "sent": s.sent,
        "ok": s.ok,
        "within_slo": s.within_slo,
        "refused": s.refused,
        "errors": s.errors,
        "attempts": s.attempts,
        "attainment": frac(s.within_slo, s.sent),
        "goodput_rps": s.within_slo as f64 / secs,
        "answered_rps": (s.ok + s.refused) as f64 / secs,
        "errors_by_kind": t.errors_by_kind,
        "classes": t.classes.iter().map(|c| class_json(c, secs)).collect::<Vec<_>>(),
    });
    if let (Value::Object(m), Value::Object(p)) = (&mut v, Percentiles::of(&all_latency(t)).json())
    {
        m.extend(p);
    }
    v
}

/// The once-a-second progress line: what ended in the last second, and the totals.
pub(crate) fn progress_line(t_s: u64, now: &Totals, last: &Totals) -> String {
    let ended = now.ended() - last.ended();
    let within = now.within_slo - last.within_slo;
    format!(
        "[{t_s:>4} s] sent {:>7}/s  ended {:>7}/s  within SLO {:>6.2}%  429 {:>6}/s  errors {:>4}/s  in flight {:>5}  (total sent {})",
        now.sent - last.sent,
        ended,
        100.0 * frac(within, ended),
        now.refused - last.refused,
        now.errors - last.errors,
        now.sent - now.ended(),
        now.sent
    )
}

#[cfg(test)]
mod tests {
    use super::super::accounting::Outcome;
    use super::*;
    use clockwork_core::Nanos;

    #[test]
    fn figures_are_per_class_and_percentiles_rise() {
        let mut t = Tally::new(&[Some(Nanos::from_millis(10)), Some(Nanos::from_millis(5))]);
        for i in 1..=100u64 {
            t.started(0);
            t.ended(0, &Outcome::Ok, Nanos::from_micros(i * 100), 1);
        }
        t.started(1);
        t.ended(1, &Outcome::Refused, Nanos::from_millis(1), 2);
        let v = json_figures(&t, 2.0);
        assert_eq!(v["sent"], 101);
        assert_eq!(v["classes"][0]["within_slo"], 100);
        assert_eq!(v["classes"][0]["goodput_rps"], 50.0);
        assert_eq!(v["classes"][1]["refused_rps"], 0.5);
        assert_eq!(v["classes"][1]["attainment"], 0.0);
        let p: Vec<f64> = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]
            .iter()
            .map(|k| v[*k].as_f64().unwrap())
            .collect();
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{p:?}");
        assert!(
            (p[0] - 5.0).abs() < 0.01 && (p[4] - 10.0).abs() < 0.01,
            "{p:?}"
        );
    }
}
