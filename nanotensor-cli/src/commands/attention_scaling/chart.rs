//! The SVG chart of the sweep: time and scratch memory against N, both axes logarithmic.
//!
//! Drawn with plotters' SVG backend only (no font rasteriser: text becomes SVG `<text>`).
//! In the memory panel the naive path's refused sizes are drawn too, at the bytes it would have
//! needed, dashed: that is the N² wall.

use std::path::Path;

use nanotensor::{AttentionAlgo, Error, Result};
use plotters::prelude::*;

use super::{Outcome, Row};

const NAIVE: RGBColor = RGBColor(214, 39, 40);
const FLASH: RGBColor = RGBColor(31, 119, 180);

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::invalid_arg("attention-scaling", format!("cannot write the chart: {e}"))
}

fn color(algo: AttentionAlgo) -> RGBColor {
    if algo == AttentionAlgo::Materialized {
        NAIVE
    } else {
        FLASH
    }
}

/// Writes the two-panel chart of `rows` to `path`.
///
/// The SVG is rendered in memory, written to a temporary file beside `path` and renamed over it,
/// so a failed write never leaves a partial chart behind.
pub fn write(path: &Path, rows: &[Row], backend: &str, heads: u64, head_dim: u64) -> Result<()> {
    let mut svg = String::new();
    draw(&mut svg, rows, backend, heads, head_dim)?;
    write_whole(path, svg.as_bytes())
}

/// Checks, before the sweep runs, that `path` can be a chart file: not a directory, and in a
/// directory that exists.
///
/// # Errors
/// [`Error::Io`] naming `path` and the problem.
pub fn check_destination(path: &Path) -> Result<()> {
    let io = |kind, msg: String| Error::Io {
        op: "attention-scaling",
        path: path.display().to_string(),
        source: std::io::Error::new(kind, msg),
    };
    if path.is_dir() {
        return Err(io(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a file path".into(),
        ));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(io(
            std::io::ErrorKind::NotFound,
            format!("the directory {} does not exist", parent.display()),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename.
///
/// Only a new path or a regular file is replaced that way. A path that names something else —
/// `/dev/null`, `/dev/stdout`, a FIFO — is written in place: renaming over it would replace the
/// device node itself with a regular file (run as root, `--out /dev/null` once did exactly that to
/// a whole machine's `/dev/null`).
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    check_destination(path)?;
    let io = |source| Error::Io {
        op: "attention-scaling",
        path: path.display().to_string(),
        source,
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return std::fs::write(path, bytes).map_err(io);
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Draws the chart into `svg`.
fn draw(svg: &mut String, rows: &[Row], backend: &str, heads: u64, head_dim: u64) -> Result<()> {
    let root = SVGBackend::with_string(svg, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root
        .titled(
            &format!("attention scaling — backend {backend}, H={heads}, d={head_dim}, f32"),
            ("sans-serif", 20),
        )
        .map_err(plot_err)?;
    let (left, right) = root.split_horizontally(550);
    let n_max = rows.iter().map(|r| r.n).max().unwrap_or(128).max(256) as f64;
    let x_range = (100.0..n_max * 1.3).log_scale();

    // Time panel.
    let times: Vec<(AttentionAlgo, f64, f64)> = rows
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::Ran { seconds, .. } => Some((r.algo, r.n as f64, seconds.max(1e-7))),
            _ => None,
        })
        .collect();
    let (t_lo, t_hi) = bounds(times.iter().map(|t| t.2), 1e-5, 1.0);
    let mut chart = ChartBuilder::on(&left)
        .caption("time per call", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), (t_lo..t_hi).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("N (sequence length)")
        .y_desc("seconds")
        .draw()
        .map_err(plot_err)?;
    for algo in [AttentionAlgo::Materialized, AttentionAlgo::Flash] {
        let pts: Vec<(f64, f64)> = times
            .iter()
            .filter(|t| t.0 == algo)
            .map(|t| (t.1, t.2))
            .collect();
        let c = color(algo);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(algo.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;

    // Memory panel: scratch of the runs, plus what the refused naive calls would have needed.
    let mems: Vec<(AttentionAlgo, f64, f64, bool)> = rows
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::Ran { scratch_bytes, .. } => {
                Some((r.algo, r.n as f64, scratch_bytes.max(1) as f64, false))
            }
            Outcome::Refused { needed, .. } => Some((r.algo, r.n as f64, needed as f64, true)),
            Outcome::Unsupported(_) => None,
        })
        .collect();
    let (m_lo, m_hi) = bounds(mems.iter().map(|m| m.2), 1e3, 1e9);
    let mut chart = ChartBuilder::on(&right)
        .caption("scratch memory per call", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, (m_lo..m_hi).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("N (sequence length)")
        .y_desc("bytes")
        .y_label_formatter(&|b| nanotensor::error::human_bytes(*b as u64))
        .draw()
        .map_err(plot_err)?;
    for algo in [AttentionAlgo::Materialized, AttentionAlgo::Flash] {
        let c = color(algo);
        let ran: Vec<(f64, f64)> = mems
            .iter()
            .filter(|m| m.0 == algo && !m.3)
            .map(|m| (m.1, m.2))
            .collect();
        chart
            .draw_series(LineSeries::new(ran.clone(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(algo.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(ran.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(plot_err)?;
        // Refused points: hollow markers joined to the last run by a dashed line.
        let mut refused: Vec<(f64, f64)> = ran.last().copied().into_iter().collect();
        refused.extend(
            mems.iter()
                .filter(|m| m.0 == algo && m.3)
                .map(|m| (m.1, m.2)),
        );
        if refused.len() > 1 || (ran.is_empty() && !refused.is_empty()) {
            chart
                .draw_series(DashedLineSeries::new(
                    refused.clone(),
                    6,
                    4,
                    c.stroke_width(2),
                ))
                .map_err(plot_err)?;
            chart
                .draw_series(
                    refused
                        .iter()
                        .skip(usize::from(!ran.is_empty()))
                        .map(|&p| Cross::new(p, 6, c.stroke_width(2))),
                )
                .map_err(plot_err)?
                .label(format!("{} (refused: bytes it would need)", algo.name()))
                .legend(move |(x, y)| Cross::new((x + 10, y), 6, c.stroke_width(2)));
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Log-axis bounds around the values, a decade of room on each side when empty.
fn bounds(xs: impl Iterator<Item = f64>, lo: f64, hi: f64) -> (f64, f64) {
    let (mut a, mut b) = (f64::INFINITY, 0.0f64);
    for x in xs {
        a = a.min(x);
        b = b.max(x);
    }
    if a.is_finite() && b > 0.0 {
        (a / 3.0, b * 3.0)
    } else {
        (lo, hi)
    }
}
