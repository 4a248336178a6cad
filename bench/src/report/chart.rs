//! A line chart with a second y axis, as SVG text: offered load, goodput and a third
//! quantity over time or over a sweep. The experiments' summary figures (6.2's ramp in
//! virtual time, 6.6's ramp at one GPU count) are drawn with it; the run report's own
//! figures are in `plots`.

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

/// The palette of every figure (matplotlib's first colours).
pub mod palette {
    use plotters::style::RGBColor;
    /// Blue.
    pub const BLUE: RGBColor = RGBColor(31, 119, 180);
    /// Orange.
    pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
    /// Green.
    pub const GREEN: RGBColor = RGBColor(44, 160, 44);
    /// Red.
    pub const RED: RGBColor = RGBColor(214, 39, 40);
    /// Purple.
    pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
    /// Grey.
    pub const GREY: RGBColor = RGBColor(90, 90, 90);
    /// Font family.
    pub const FONT: &str = "sans-serif";
}

/// Draws the legend of `chart`'s labelled series at `pos`, in the figures' style.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    use palette::{FONT, GREY};
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

/// One line: its legend label, colour and points.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend label.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// Points (x, y); non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
}

impl Line {
    /// A line labelled `label`.
    pub fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            color,
            points: points
                .into_iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect(),
        }
    }
}

/// A chart with lines on a left and a right y axis.
#[derive(Debug, Clone)]
pub struct DualAxisChart {
    /// Caption.
    pub caption: String,
    /// x axis description.
    pub x_desc: String,
    /// Left axis description.
    pub y_desc: String,
    /// Right axis description.
    pub y2_desc: String,
    /// Lines on the left axis.
    pub left: Vec<Line>,
    /// Lines on the right axis.
    pub right: Vec<Line>,
    /// The right axis goes at least this high (e.g. 1.2 for a share of a core).
    pub y2_min_top: f64,
}

impl DualAxisChart {
    /// The chart as an SVG document (1200 x 750).
    pub fn render(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1200, 750)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            self.draw(&root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        use palette::FONT;
        let all = || self.left.iter().chain(&self.right).flat_map(|l| &l.points);
        let x_hi = all().map(|p| p.0).fold(1e-3, f64::max);
        let top = |lines: &[Line], min: f64| {
            lines
                .iter()
                .flat_map(|l| &l.points)
                .map(|p| p.1)
                .fold(min, f64::max)
                * 1.1
        };
        let (y_hi, y2_hi) = (top(&self.left, 1.0), top(&self.right, self.y2_min_top));
        let mut chart = ChartBuilder::on(root)
            .margin(16)
            .caption(&self.caption, (FONT, 24))
            .x_label_area_size(50)
            .y_label_area_size(80)
            .right_y_label_area_size(70)
            .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?
            .set_secondary_coord(0.0..x_hi, 0.0..y2_hi);
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc(self.y2_desc.as_str())
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        for l in &self.left {
            let c = l.color;
            chart
                .draw_series(LineSeries::new(l.points.clone(), c.stroke_width(2)))?
                .label(l.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        for l in &self.right {
            let c = l.color;
            chart
                .draw_secondary_series(LineSeries::new(l.points.clone(), c.stroke_width(2)))?
                .label(format!("{} (right)", l.label))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_axes_and_every_label() {
        let c = DualAxisChart {
            caption: "ramp (virtual time)".into(),
            x_desc: "minutes".into(),
            y_desc: "requests/s".into(),
            y2_desc: "models".into(),
            left: vec![Line::new(
                "goodput",
                palette::GREEN,
                vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)],
            )],
            right: vec![Line::new(
                "active",
                palette::GREY,
                vec![(0.0, 0.0), (2.0, 10.0)],
            )],
            y2_min_top: 1.0,
        };
        assert_eq!(c.left[0].points.len(), 2, "non-finite points are left out");
        let svg = c.render().unwrap();
        for text in [
            "ramp (virtual time)",
            "minutes",
            "requests/s",
            "goodput",
            "active (right)",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }
}
