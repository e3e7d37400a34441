//! The report's charts as SVG files: devices by phase over time, bytes
//! downloaded over time, and the share of each link profile's devices
//! settled over time.

use super::Report;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// File names of the charts written, with their titles.
pub struct Charts {
    pub files: Vec<(String, String)>,
}

const SIZE: (u32, u32) = (860, 360);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line of a chart.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Draws every chart into `dir`.
pub fn draw(r: &Report, dir: &Path) -> Result<Charts> {
    let mut files = Vec::new();
    let mut chart = |file: &str, title: &str, y: &str, lines: Vec<Line>| -> Result<()> {
        plot(&dir.join(file), title, y, &lines)?;
        files.push((file.to_string(), title.to_string()));
        Ok(())
    };
    chart("phases.svg", "Devices by phase", "devices", phase_lines(r))?;
    let bytes = Line {
        name: "downloaded (MB)".into(),
        points: r
            .samples
            .iter()
            .map(|s| (s.t_s, s.http_down_bytes as f64 / 1e6))
            .collect(),
    };
    chart("bytes.svg", "Bytes downloaded", "MB", vec![bytes])?;
    chart(
        "convergence.svg",
        "Settled devices by link profile",
        "% of the profile's devices",
        profile_lines(r),
    )?;
    Ok(Charts { files })
}

fn phase_lines(r: &Report) -> Vec<Line> {
    let mut names: Vec<String> = Vec::new();
    for s in &r.samples {
        for p in s.phases.keys() {
            if !names.contains(p) {
                names.push(p.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| Line {
            points: r
                .samples
                .iter()
                .map(|s| (s.t_s, *s.phases.get(&name).unwrap_or(&0) as f64))
                .collect(),
            name,
        })
        .collect()
}

/// Per profile: the share of its devices settled for good by each time.
fn profile_lines(r: &Report) -> Vec<Line> {
    let mut by: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    for d in &r.per_device {
        by.entry(&d.profile).or_default().push(d.settled_at_s);
    }
    by.into_iter()
        .map(|(name, times)| Line {
            name: name.to_string(),
            points: r
                .samples
                .iter()
                .map(|s| {
                    let done = times
                        .iter()
                        .filter(|t| t.is_some_and(|t| t <= s.t_s))
                        .count();
                    (s.t_s, done as f64 * 100.0 / times.len().max(1) as f64)
                })
                .collect(),
        })
        .collect()
}

fn plot(path: &Path, title: &str, y_desc: &str, lines: &[Line]) -> Result<()> {
    let err = |e: String| anyhow!("drawing {}: {e}", path.display());
    let all = lines.iter().flat_map(|l| l.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all.map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("seconds into the rollout")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (k, line) in lines.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
