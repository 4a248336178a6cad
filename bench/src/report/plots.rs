//! SVG figures of a run, drawn with plotters' SVG backend.
//!
//! Text is written as SVG `<text>` elements (font family `sans-serif`) and laid out by
//! whatever displays the file; plotters is built without its font features, so no font
//! files or system font libraries are involved (its layout estimates text widths from
//! the character count).

use super::summary::{latency_histograms, rank, RunData, RunMeta, RunReport, SecondStats};
use clockwork_core::telemetry::ActionLog;
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

/// File name of the latency CDF.
pub const LATENCY_CDF_SVG: &str = "latency_cdf.svg";
/// File name of the per-second throughput / goodput / latency figure.
pub const TIMELINE_SVG: &str = "timeline.svg";
/// File name of the cold starts / LOADs per second figure.
pub const COLD_STARTS_SVG: &str = "cold_starts.svg";
/// File name of the batch size figure.
pub const BATCH_SIZES_SVG: &str = "batch_sizes.svg";
/// File name of the prediction / completion error CDFs (the paper's Fig 10).
pub const PREDICTION_ERROR_CDF_SVG: &str = "prediction_error_cdf.svg";

type DrawResult = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A named, coloured line of points.
type Series<'a> = (&'a str, &'a [(f64, f64)], RGBColor);
/// A named, coloured line over the timeline: the value of a second, if any.
type TimeLine<'a> = (&'a str, RGBColor, &'a dyn Fn(&SecondStats) -> Option<f64>);

use super::chart::legend;
use super::chart::palette::{
    BLUE as BLUE_, FONT, GREEN as GREEN_, GREY, ORANGE, PURPLE, RED as RED_,
};

/// The most SLOs marked on a figure; with more, none are.
const MAX_MARKED_SLOS: usize = 6;
/// The most points drawn per CDF line.
const CDF_POINTS: usize = 2000;

/// One figure, ready to write: its file name and SVG text.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File name (e.g. [`LATENCY_CDF_SVG`]).
    pub name: &'static str,
    /// The SVG document.
    pub svg: String,
}

/// Draw every figure the data allows: the latency CDF and the timeline when there are
/// requests, cold starts with a request or action log, batch sizes with INFERs, and the
/// error CDFs with successful INFERs or LOADs.
pub fn render_figures(
    report: &RunReport,
    data: &RunData,
) -> Result<Vec<Figure>, (&'static str, String)> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, f: &dyn Fn(&Area<'_>) -> DrawResult| {
        render(f)
            .map(|svg| out.push(Figure { name, svg }))
            .map_err(|e| (name, e))
    };
    if report.offered > 0 {
        let (success, all) = latency_histograms(&RunMeta::default(), data);
        add(LATENCY_CDF_SVG, &|a| latency_cdf(a, report, &success, &all))?;
        add(TIMELINE_SVG, &|a| timeline(a, report))?;
    }
    if report.cold_starts.is_some() || report.loads.is_some() {
        add(COLD_STARTS_SVG, &|a| cold_starts(a, report))?;
    }
    if report.infer_actions.unwrap_or(0) > 0 {
        add(BATCH_SIZES_SVG, &|a| batch_sizes(a, report))?;
    }
    if let Some(logs) = &data.logs {
        let errors = |ty: u8, completion: bool| -> Vec<i64> {
            let mut v: Vec<i64> = logs
                .actions
                .iter()
                .filter(|a| a.action_type == ty)
                .filter_map(|a| {
                    if completion {
                        a.completion_error_ns()
                    } else {
                        a.prediction_error_ns()
                    }
                })
                .collect();
            v.sort_unstable();
            v
        };
        let sets = ErrorSets {
            infer_pred: errors(ActionLog::INFER, false),
            load_pred: errors(ActionLog::LOAD, false),
            infer_done: errors(ActionLog::INFER, true),
            load_done: errors(ActionLog::LOAD, true),
        };
        if !(sets.infer_pred.is_empty() && sets.load_pred.is_empty()) {
            add(PREDICTION_ERROR_CDF_SVG, &|a| error_cdfs(a, report, &sets))?;
        }
    }
    Ok(out)
}

fn render(draw: &dyn Fn(&Area<'_>) -> DrawResult) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 750)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The figure title: `what: workload`, with "(emulated GPUs)" when so, or the devices
/// the driver named (e.g. "(real (CPU, tract))").
pub fn figure_title(what: &str, report: &RunReport) -> String {
    let mut t = what.to_owned();
    if !report.workload.is_empty() {
        t.push_str(": ");
        t.push_str(&report.workload);
    }
    if report.emulated {
        t.push_str(" (emulated GPUs)");
    } else if !report.devices.is_empty() && report.devices != "real GPUs" {
        t.push_str(&format!(" ({})", report.devices));
    }
    t
}

fn titled<'a>(root: &Area<'a>, what: &str, report: &RunReport) -> Result<Area<'a>, Box<dyn Error>> {
    Ok(root.titled(&figure_title(what, report), (FONT, 26))?)
}

fn line_style(c: RGBColor) -> ShapeStyle {
    c.stroke_width(2)
}

fn legend_mark(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line_style(c))
}

/// The SLOs to mark, in ms (none when there are too many to read).
fn marked_slos(report: &RunReport) -> &[f64] {
    if report.slos_ms.len() <= MAX_MARKED_SLOS {
        &report.slos_ms
    } else {
        &[]
    }
}

/// `(x, cumulative fraction)` of a histogram in ms, thinned to visible steps.
fn hist_cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len() as f64;
    let mut pts: Vec<(f64, f64)> = Vec::new();
    let mut cum = 0u64;
    let mut iter = h.iter_recorded().peekable();
    while let Some(v) = iter.next() {
        cum += v.count_at_value();
        let x = v.value_iterated_to() as f64 / 1e6;
        let y = cum as f64 / n;
        let keep = match pts.last() {
            None => true,
            Some(&(lx, ly)) => x > lx * 1.002 || y - ly > 0.002 || iter.peek().is_none(),
        };
        if keep {
            pts.push((x, y));
        }
    }
    pts
}

/// A CDF's points as a staircase from 0: each value rises from the previous fraction.
fn steps(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(pts.len() * 2);
    let mut prev = 0.0;
    for &(x, y) in pts {
        out.push((x, prev));
        out.push((x, y));
        prev = y;
    }
    out
}

/// Red text at `pos` anchored by `anchor`.
fn red_label(text: String, pos: (f64, f64), anchor: Pos) -> Text<'static, (f64, f64), String> {
    Text::new(text, pos, (FONT, 15).into_font().color(&RED_).pos(anchor))
}

fn latency_cdf(
    root: &Area<'_>,
    report: &RunReport,
    success: &Histogram<u64>,
    all: &Histogram<u64>,
) -> DrawResult {
    let area = titled(root, "Latency CDF", report)?;
    let panels = area.split_evenly((1, 2));
    let s_pts = steps(&hist_cdf(success));
    let a_pts = steps(&hist_cdf(all));
    let slos = marked_slos(report);
    let xs = s_pts
        .iter()
        .chain(&a_pts)
        .map(|p| p.0)
        .chain(slos.iter().copied());
    let (mut lo, mut hi) = xs.fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if lo > hi {
        (lo, hi) = (0.1, 1000.0);
    }
    let (lo, hi) = ((lo / 1.5).max(1e-4), (hi * 1.5).max(lo * 10.0));
    let min_frac = 1.0 / (all.len().max(1) as f64);
    let y_lo = 10f64.powf(min_frac.log10().floor()).min(0.1);

    for (i, panel) in panels.iter().enumerate() {
        let tail = i == 1;
        let caption = if tail {
            "tail: 1 - CDF (log scale)"
        } else {
            "CDF"
        };
        let y_desc = if tail {
            "fraction slower than x"
        } else {
            "fraction of requests"
        };
        let series: [Series<'_>; 2] = [
            ("successful requests", &s_pts, BLUE_),
            ("all answered requests", &a_pts, ORANGE),
        ];
        macro_rules! draw_panel {
            ($y_range:expr, $y_lo:expr, $y_hi:expr, $label_y:expr, $map:expr) => {{
                let mut chart = ChartBuilder::on(panel)
                    .margin(12)
                    .caption(caption, (FONT, 18))
                    .x_label_area_size(45)
                    .y_label_area_size(70)
                    .build_cartesian_2d((lo..hi).log_scale(), $y_range)?;
                chart
                    .configure_mesh()
                    .x_desc("latency (ms, log scale)")
                    .y_desc(y_desc)
                    .label_style((FONT, 14))
                    .axis_desc_style((FONT, 16))
                    .draw()?;
                for &slo in slos {
                    chart.draw_series(DashedLineSeries::new(
                        vec![(slo, $y_lo), (slo, $y_hi)],
                        6,
                        4,
                        line_style(RED_),
                    ))?;
                    chart.draw_series(std::iter::once(red_label(
                        format!("SLO {slo} ms "),
                        (slo, $label_y),
                        Pos::new(HPos::Right, VPos::Top),
                    )))?;
                }
                for (label, pts, c) in series {
                    let pts: Vec<(f64, f64)> = pts.iter().filter_map($map).collect();
                    chart
                        .draw_series(LineSeries::new(pts, line_style(c)))?
                        .label(label)
                        .legend(legend_mark(c));
                }
                legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            }};
        }
        if tail {
            let ccdf = |&(x, y): &(f64, f64)| (1.0 - y > 1e-12).then_some((x, 1.0 - y));
            draw_panel!((y_lo..1.0).log_scale(), y_lo, 1.0, 1.0, ccdf);
        } else {
            draw_panel!(0.0..1.02, 0.0, 1.0, 0.5, |&p: &(f64, f64)| Some(p));
        }
    }
    Ok(())
}

/// Time unit for a timeline of `len` seconds: seconds up to 2 h, minutes beyond.
fn time_unit(len: usize) -> (f64, &'static str) {
    if len > 7200 {
        (60.0, "time (min)")
    } else {
        (1.0, "time (s)")
    }
}

/// One panel of lines over time.
fn time_panel(
    area: &Area<'_>,
    caption: &str,
    y_desc: &str,
    timeline: &[SecondStats],
    lines: &[TimeLine<'_>],
    hlines: &[(String, f64)],
) -> DrawResult {
    let (div, x_desc) = time_unit(timeline.len());
    let x_hi = (timeline.len().max(1) as f64 / div).max(1.0 / div);
    let y_hi = lines
        .iter()
        .flat_map(|(_, _, f)| timeline.iter().filter_map(f))
        .chain(hlines.iter().map(|h| h.1))
        .fold(0f64, f64::max);
    let y_hi = if y_hi > 0.0 { y_hi * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(caption, (FONT, 18))
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    for (label, y) in hlines {
        chart.draw_series(DashedLineSeries::new(
            vec![(0.0, *y), (x_hi, *y)],
            6,
            4,
            line_style(RED_),
        ))?;
        chart.draw_series(std::iter::once(red_label(
            format!(" {label}"),
            (0.0, *y),
            Pos::new(HPos::Left, VPos::Bottom),
        )))?;
    }
    for &(label, c, f) in lines {
        let pts: Vec<(f64, f64)> = timeline
            .iter()
            .filter_map(|t| f(t).map(|y| ((t.t_s as f64 + 0.5) / div, y)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, line_style(c)))?
            .label(label)
            .legend(legend_mark(c));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

fn slo_lines(report: &RunReport) -> Vec<(String, f64)> {
    marked_slos(report)
        .iter()
        .map(|&s| (format!("SLO {s} ms"), s))
        .collect()
}

fn timeline(root: &Area<'_>, report: &RunReport) -> DrawResult {
    let area = titled(root, "Throughput and latency over time", report)?;
    let panels = area.split_evenly((2, 1));
    let t = &report.timeline;
    time_panel(
        &panels[0],
        "requests per second",
        "requests / s",
        t,
        &[
            ("offered", GREY, &|s| Some(s.offered as f64)),
            ("throughput (successes)", BLUE_, &|s| {
                Some(s.succeeded as f64)
            }),
            ("goodput (within SLO)", GREEN_, &|s| Some(s.goodput as f64)),
        ],
        &[],
    )?;
    time_panel(
        &panels[1],
        "latency of successful requests, per second",
        "latency (ms)",
        t,
        &[
            ("p50", BLUE_, &|s| (s.succeeded > 0).then_some(s.p50_ms)),
            ("p99", ORANGE, &|s| (s.succeeded > 0).then_some(s.p99_ms)),
        ],
        &slo_lines(report),
    )
}

fn cold_starts(root: &Area<'_>, report: &RunReport) -> DrawResult {
    let area = titled(root, "Cold starts and LOADs over time", report)?;
    time_panel(
        &area,
        "per second",
        "count / s",
        &report.timeline,
        &[
            ("cold starts (requests)", RED_, &|s| {
                Some(s.cold_starts as f64)
            }),
            ("LOADs", BLUE_, &|s| Some(s.loads as f64)),
            ("UNLOADs", PURPLE, &|s| Some(s.unloads as f64)),
        ],
        &[],
    )
}

fn batch_sizes(root: &Area<'_>, report: &RunReport) -> DrawResult {
    let area = titled(root, "Batch sizes over time", report)?;
    let panels = area.split_evenly((2, 1));
    time_panel(
        &panels[0],
        "mean batch size of successful INFERs, per second",
        "batch size",
        &report.timeline,
        &[("mean batch", BLUE_, &|s| {
            (s.infers > 0).then_some(s.mean_batch)
        })],
        &[],
    )?;
    time_panel(
        &panels[1],
        "successful INFERs per second",
        "INFERs / s",
        &report.timeline,
        &[("INFERs", GREEN_, &|s| Some(s.infers as f64))],
        &[],
    )
}

/// Sorted error samples in ns.
struct ErrorSets {
    infer_pred: Vec<i64>,
    load_pred: Vec<i64>,
    infer_done: Vec<i64>,
    load_done: Vec<i64>,
}

/// `(value in µs, cumulative fraction)` of sorted samples, at most [`CDF_POINTS`].
fn sorted_cdf(v: &[i64]) -> Vec<(f64, f64)> {
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(CDF_POINTS).max(1);
    let mut idx: Vec<usize> = (0..n).step_by(step).collect();
    if idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    idx.into_iter()
        .map(|i| (v[i] as f64 / 1e3, (i + 1) as f64 / n as f64))
        .collect()
}

/// The x range (µs) showing the 0.1–99.9th percentiles of sorted samples.
fn error_range(v: &[i64]) -> (f64, f64) {
    if v.is_empty() {
        return (-1.0, 1.0);
    }
    let lo = v[rank(v.len(), 0.001)] as f64 / 1e3;
    let hi = v[rank(v.len(), 0.999)] as f64 / 1e3;
    let pad = ((hi - lo) * 0.05).max(1.0);
    (lo - pad, hi + pad)
}

fn error_cdfs(root: &Area<'_>, report: &RunReport, sets: &ErrorSets) -> DrawResult {
    let area = titled(root, "Prediction error CDF (Fig 10)", report)?;
    let panels = area.split_evenly((2, 2));
    let panes: [(&str, &[i64], RGBColor); 4] = [
        (
            "INFER prediction error: measured - expected duration",
            &sets.infer_pred,
            BLUE_,
        ),
        (
            "INFER completion error: measured - expected end",
            &sets.infer_done,
            BLUE_,
        ),
        (
            "LOAD prediction error: measured - expected duration",
            &sets.load_pred,
            ORANGE,
        ),
        (
            "LOAD completion error: measured - expected end",
            &sets.load_done,
            ORANGE,
        ),
    ];
    for (panel, (caption, v, c)) in panels.iter().zip(panes) {
        let (lo, hi) = error_range(v);
        let mut chart = ChartBuilder::on(panel)
            .margin(10)
            .caption(caption, (FONT, 16))
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..1.02)?;
        chart
            .configure_mesh()
            .x_desc("error (us; axis shows the 0.1-99.9th percentile)")
            .y_desc("fraction of actions")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        if lo < 0.0 && hi > 0.0 {
            chart.draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (0.0, 1.0)],
                4,
                4,
                GREY.stroke_width(1),
            ))?;
        }
        if v.is_empty() {
            chart.draw_series(std::iter::once(Text::new(
                "no successful actions".to_owned(),
                ((lo + hi) / 2.0, 0.5),
                TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
            )))?;
            continue;
        }
        let pts: Vec<(f64, f64)> = steps(&sorted_cdf(v))
            .into_iter()
            .map(|(x, y)| (x.clamp(lo, hi), y))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, line_style(c)))?
            .label(format!("n {}", v.len()))
            .legend(legend_mark(c));
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}
