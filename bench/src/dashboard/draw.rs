//! A dashboard panel drawn as Grafana's time series panel draws it: one line per series, its
//! legend, the panel's unit on the y axis, and the demo's phases as labelled lines.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::panels::Line;
use crate::scenario::Phase;

/// Draws `lines` (x: unix seconds) over `[start, end]` into `path`; x is shown as seconds since
/// `start`, the load's start, the same clock as the timeline's.
pub fn panel(
    path: &Path,
    title: &str,
    unit: Option<&str>,
    lines: &[Line],
    phases: &[Phase],
    (start, end): (f64, f64),
) -> anyhow::Result<()> {
    crate::plot::font()?;
    let end_s = (end - start).max(1.0);
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.15 } else { 1.0 };
    let root = BitMapBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    // The legend to the right of the plot, as Grafana's table legend, so it hides no line.
    let (plot, legend_area) = root.split_horizontally(820);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end_s, 0.0..top)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("time since the load started (s)")
        .y_desc(unit_desc(unit))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for p in phases {
        let x = p.start_ms / 1000.0;
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, top)], BLACK.mix(0.25)))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series([Text::new(
                p.name.to_owned(),
                (x + 0.2, top * 0.97),
                ("sans-serif", 13),
            )])
            .map_err(|e| anyhow!("{e}"))?;
    }
    for (i, line) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        // A gap in the samples (a series gone stale, a quantile of nothing) is a gap in the line.
        for run in contiguous(&line.points) {
            chart
                .draw_series(LineSeries::new(
                    run.iter().map(|&(t, v)| (t - start, v)),
                    color.stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?;
        }
        let y = 48 + 20 * i32::try_from(i).unwrap_or(i32::MAX / 40);
        legend_area
            .draw(&Rectangle::new([(6, y - 2), (24, y + 2)], color.filled()))
            .map_err(|e| anyhow!("{e}"))?;
        legend_area
            .draw(&Text::new(
                line.name.clone(),
                (30, y - 7),
                ("sans-serif", 13),
            ))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if lines.is_empty() {
        legend_area
            .draw(&Text::new(
                "no series",
                (6, 41),
                ("sans-serif", 13).into_font().color(&RED),
            ))
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs of points no further apart than twice the usual step.
fn contiguous(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    let step = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(f64::INFINITY, f64::min);
    let mut runs = Vec::new();
    let mut from = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > step * 2.0 {
            runs.push(&points[from..i]);
            from = i;
        }
    }
    if from < points.len() {
        runs.push(&points[from..]);
    }
    runs
}

fn unit_desc(unit: Option<&str>) -> String {
    match unit {
        Some("s") => "seconds".to_owned(),
        Some("reqps") => "requests/s".to_owned(),
        Some("ops") => "per second".to_owned(),
        Some("short") | None => String::new(),
        Some(other) => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_splits_a_line() {
        let points = [(1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (9.0, 2.0), (10.0, 2.0)];
        let runs = contiguous(&points);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].len(), 3);
        assert_eq!(runs[1], &points[3..]);
        assert_eq!(contiguous(&[(1.0, 1.0)]).len(), 1);
        assert!(contiguous(&[]).is_empty());
    }
}
