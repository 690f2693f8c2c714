//! A PNG timeline per proxy: every request as a dot at (time sent, latency), failures in red,
//! phase boundaries as labelled lines, so the difference between proxies is seen at a glance.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use crate::load::Sample;
use crate::scenario::Phase;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the font once; plotters draws no text without one. Debian's fonts-dejavu-core.
pub(crate) fn font() -> anyhow::Result<()> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT)
                .map_err(|e| format!("{FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT} is not a usable font"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

pub fn timeline(
    path: &Path,
    title: &str,
    phases: &[Phase],
    samples: &[Sample],
    timeout_ms: f64,
) -> anyhow::Result<()> {
    font()?;
    let end_s = phases.last().map_or(1.0, |p| p.end_ms / 1000.0).max(1.0);
    let max_ms = samples
        .iter()
        .map(|s| s.latency_ms)
        .fold(timeout_ms, f64::max)
        * 1.5;
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..end_s, (0.1..max_ms).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("time since the load started (s)")
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for p in phases {
        let x = p.start_ms / 1000.0;
        chart
            .draw_series(LineSeries::new([(x, 0.1), (x, max_ms)], BLACK.mix(0.3)))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series([Text::new(
                p.name.to_owned(),
                (x + 0.2, max_ms / 2.0),
                ("sans-serif", 16),
            )])
            .map_err(|e| anyhow!("{e}"))?;
    }
    let dot = |s: &Sample, color: RGBColor| {
        Circle::new(
            (s.sent_ms / 1000.0, s.latency_ms.max(0.1)),
            2,
            color.filled(),
        )
    };
    chart
        .draw_series(
            samples
                .iter()
                .filter(|s| s.outcome.kind().is_none())
                .map(|s| dot(s, RGBColor(40, 90, 200))),
        )
        .map_err(|e| anyhow!("{e}"))?
        .label("answered")
        .legend(|(x, y)| Circle::new((x, y), 3, RGBColor(40, 90, 200).filled()));
    chart
        .draw_series(
            samples
                .iter()
                .filter(|s| s.outcome.kind().is_some())
                .map(|s| dot(s, RED)),
        )
        .map_err(|e| anyhow!("{e}"))?
        .label("failed")
        .legend(|(x, y)| Circle::new((x, y), 3, RED.filled()));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}
