//! Grouped bar charts: one group per scenario, one bar per contestant, one panel per measure
//! (req/s above p99, say), so a result is seen at a glance.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One measure: its axis label and, per contestant, one value per group.
pub struct Panel<'a> {
    pub y_desc: &'a str,
    pub series: Vec<(&'a str, Vec<f64>)>,
}

/// One colour per contestant in every chart: ours orange, nginx green, HAProxy blue.
fn color(name: &str) -> RGBColor {
    match name {
        "direct" => RGBColor(120, 120, 120),
        "nginx" => RGBColor(40, 160, 60),
        "haproxy" => RGBColor(30, 100, 200),
        "ours" | "pgbalancer" => RGBColor(220, 90, 30),
        "baseline" => RGBColor(150, 60, 170),
        _ => RGBColor(200, 170, 0),
    }
}

pub fn bars(
    path: &Path,
    title: &str,
    groups: &[String],
    panels: &[Panel<'_>],
) -> anyhow::Result<()> {
    crate::plot::font()?;
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
    let height = 80 + 360 * panels.len() as u32;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(e)?;
    let n = groups.len().max(1);
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let max = panel
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.15;
        // Group names go in a strip below zero: plotters puts axis labels at round numbers, not
        // at group centres.
        let strip = max * 0.08;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..n as f64, -strip..max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| {
                if max > 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .y_desc(panel.y_desc)
            .draw()
            .map_err(e)?;
        let label = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(groups.iter().enumerate().map(|(g, name)| {
                Text::new(name.clone(), (g as f64 + 0.5, -strip / 2.0), label.clone())
            }))
            .map_err(e)?;
        let k = panel.series.len().max(1) as f64;
        let width = 0.8 / k;
        for (s, (name, values)) in panel.series.iter().enumerate() {
            let color = color(name);
            let left = |g: usize| g as f64 + 0.1 + s as f64 * width;
            chart
                .draw_series(values.iter().enumerate().map(|(g, &v)| {
                    Rectangle::new([(left(g), 0.0), (left(g) + width * 0.9, v)], color.filled())
                }))
                .map_err(e)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(e)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}
