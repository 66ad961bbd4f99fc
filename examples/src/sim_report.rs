//! What `whisk-sim report` prints and draws: the comparison table of every scheduler and
//! keep-alive policy, the warm-aware vs sharding summary lines, and the SVG chart.
//!
//! Rows are [`SimReport`]s as [`compare`](crate::sim::compare) returns them, labelled
//! `"<scheduler> / <keep-alive policy>"`.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use whisk_core::sim::simulate::{SimConfig, SimReport};

/// The results of one platform configuration: a table block and a row of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// What the configuration is, e.g. `4 invokers × 2048 MB, ...` (see [`config_title`]).
    pub title: String,
    /// One report per scheduler / keep-alive policy, in [`compare`](crate::sim::compare)'s
    /// order.
    pub reports: Vec<SimReport>,
}

/// A one-line description of a platform configuration: invokers, memory, container creation
/// time and idle timeout.
pub fn config_title(config: &SimConfig) -> String {
    format!(
        "{} invoker{} × {} MB, container create {} ms, idle timeout {}",
        config.invokers,
        if config.invokers == 1 { "" } else { "s" },
        config.invoker_memory_mb,
        config.container_create.as_millis(),
        humantime_secs(config.idle_timeout.as_secs()),
    )
}

/// `600` → `10m`, `90` → `90s`, `7200` → `2h`.
fn humantime_secs(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Splits a report label `"<scheduler> / <policy>"` into its two names (the policy is empty
/// when the label has no ` / `).
pub fn split_label(label: &str) -> (&str, &str) {
    label.split_once(" / ").unwrap_or((label, ""))
}

/// The table's column headers, after the first (`scheduler / keep-alive`) column.
pub const COLUMNS: [&str; 13] = [
    "invocations",
    "cold",
    "cold %",
    "prewarm",
    "warm",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "slow p50",
    "slow p99",
    "thru/s",
    "idle GB·s",
    "failed",
];

/// The cells of one table row (the label, then [`COLUMNS`]).
fn row_cells(r: &SimReport) -> Vec<String> {
    vec![
        r.label.clone(),
        r.invocations.to_string(),
        r.cold_starts.to_string(),
        format!("{:.2}", 100.0 * r.cold_start_rate()),
        r.action_prewarms.to_string(),
        r.warm_starts.to_string(),
        format!("{:.0}", r.latency_ms[0]),
        format!("{:.0}", r.latency_ms[1]),
        format!("{:.0}", r.latency_ms[2]),
        format!("{:.2}", r.slowdown[0]),
        format!("{:.2}", r.slowdown[2]),
        format!("{:.2}", r.throughput),
        format!("{:.1}", r.idle_memory_gb_s),
        r.failed.to_string(),
    ]
}

/// Formats reports as an aligned text table: a header line, a rule, one line per report
/// (first column left-aligned, numbers right-aligned). Every line ends with `\n`. Every
/// cell is a pure function of the trace and the configuration (no wall time), so equal runs
/// print equal tables.
pub fn format_table(reports: &[SimReport]) -> String {
    let ncols = COLUMNS.len() + 1;
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("scheduler / keep-alive")
        .chain(COLUMNS)
        .map(str::to_string)
        .collect()];
    rows.extend(reports.iter().map(row_cells));
    let widths: Vec<usize> = (0..ncols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if c == 0 {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str("  ");
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (ncols - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

/// One line per keep-alive policy comparing the warm-aware scheduler with OpenWhisk's
/// sharding balancer on it: the change in cold starts and the ratio of p99 latencies, e.g.
/// `fixed-10m: warm-aware vs sharding: cold starts 812 → 301 (-62.9%), p99 latency 4210 → 2950 ms (0.70×)`.
/// Policies lacking either scheduler get no line.
pub fn comparisons(reports: &[SimReport]) -> Vec<String> {
    let mut policies: Vec<&str> = Vec::new();
    for r in reports {
        let (_, policy) = split_label(&r.label);
        if !policies.contains(&policy) {
            policies.push(policy);
        }
    }
    let find = |scheduler: &str, policy: &str| {
        reports
            .iter()
            .find(|r| split_label(&r.label) == (scheduler, policy))
    };
    policies
        .into_iter()
        .filter_map(|policy| {
            let base = find("sharding", policy)?;
            let warm = find("warm-aware", policy)?;
            let cold = if base.cold_starts == 0 {
                "n/a".to_string()
            } else {
                format!(
                    "{:+.1}%",
                    100.0 * (warm.cold_starts as f64 - base.cold_starts as f64)
                        / base.cold_starts as f64
                )
            };
            let ratio = if base.latency_ms[2] > 0.0 {
                format!("{:.2}×", warm.latency_ms[2] / base.latency_ms[2])
            } else {
                "n/a".to_string()
            };
            Some(format!(
                "{policy}: warm-aware vs sharding: cold starts {} → {} ({cold}), \
                 p99 latency {:.0} → {:.0} ms ({ratio})",
                base.cold_starts, warm.cold_starts, base.latency_ms[2], warm.latency_ms[2],
            ))
        })
        .collect()
}

/// Formats one block: its title, the table and the comparison lines.
pub fn format_block(block: &Block) -> String {
    let mut out = format!("== {} ==\n", block.title);
    out.push_str(&format_table(&block.reports));
    for line in comparisons(&block.reports) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Colours of the schedulers' bars, in [`schedulers`](crate::sim::schedulers)' order; other
/// schedulers cycle through them.
const PALETTE: [RGBColor; 4] = [
    RGBColor(76, 114, 176),
    RGBColor(221, 132, 82),
    RGBColor(85, 168, 104),
    RGBColor(196, 78, 82),
];

/// Width of the chart, px.
pub const SVG_WIDTH: u32 = 1200;
/// Height of one block's row of the chart, px.
pub const SVG_ROW_HEIGHT: u32 = 440;

/// Renders the chart as an SVG document: one row per block (titled with the configuration),
/// each with two panels of grouped bars — cold-start rate (%) and p99 latency (ms) — one group
/// per keep-alive policy, one coloured bar per scheduler with its value on top, and a legend
/// naming the schedulers. Text is SVG `<text>` (no font files needed; the browser lays it
/// out).
pub fn render_svg(blocks: &[Block]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let height = SVG_ROW_HEIGHT * (blocks.len().max(1) as u32);
        let root = SVGBackend::with_string(&mut svg, (SVG_WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let rows = root.split_evenly((blocks.len().max(1), 1));
        for (block, row) in blocks.iter().zip(rows) {
            let row = row
                .titled(&block.title, ("sans-serif", 26))
                .map_err(|e| e.to_string())?;
            let panels = row.split_evenly((1, 2));
            draw_panel(
                &panels[0],
                "cold-start rate (% of invocations)",
                &block.reports,
                |r| 100.0 * r.cold_start_rate(),
                |v| format!("{v:.2}%"),
            )?;
            draw_panel(
                &panels[1],
                "p99 latency (ms)",
                &block.reports,
                |r| r.latency_ms[2],
                |v| format!("{v:.0}"),
            )?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One panel: grouped bars of `value` per keep-alive policy (groups) and scheduler (bars).
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    reports: &[SimReport],
    value: impl Fn(&SimReport) -> f64,
    label: impl Fn(f64) -> String,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut schedulers: Vec<&str> = Vec::new();
    let mut policies: Vec<&str> = Vec::new();
    for r in reports {
        let (s, p) = split_label(&r.label);
        if !schedulers.contains(&s) {
            schedulers.push(s);
        }
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    let groups = policies.len().max(1);
    let max = reports
        .iter()
        .map(&value)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    // Headroom above the bars for their value labels and the legend.
    let top = if max > 0.0 { max * 1.6 } else { 1.0 };
    let x = GroupAxis(groups);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x, 0.0..top)
        .map_err(|e| err(&e))?;
    let names: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
    let x_label = move |x: &f64| {
        let i = (x - 0.5).round();
        if i >= 0.0 && (i as usize) < names.len() {
            format!("keep-alive: {}", names[i as usize])
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&x_label)
        .x_label_style(("sans-serif", 19))
        .y_label_style(("sans-serif", 16))
        .y_labels(8)
        .y_label_formatter(&|y: &f64| {
            if top >= 20.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| err(&e))?;
    let slot = 0.8 / schedulers.len().max(1) as f64;
    let value_style = TextStyle::from(("sans-serif", 16))
        .pos(Pos::new(HPos::Center, VPos::Bottom))
        .color(&BLACK);
    for (si, scheduler) in schedulers.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let bars: Vec<(f64, f64)> = policies
            .iter()
            .enumerate()
            .filter_map(|(pi, policy)| {
                let r = reports
                    .iter()
                    .find(|r| split_label(&r.label) == (*scheduler, *policy))?;
                let v = value(r);
                let x0 = pi as f64 + 0.1 + si as f64 * slot;
                Some((x0, if v.is_finite() { v } else { 0.0 }))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x0, v)| {
                Rectangle::new(
                    [(x0 + slot * 0.05, 0.0), (x0 + slot * 0.95, v)],
                    color.filled(),
                )
            }))
            .map_err(|e| err(&e))?
            .label(*scheduler)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x0, v)| Text::new(label(v), (x0 + slot * 0.5, v), value_style.clone())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

/// The x axis of a panel: `n` groups, group `g` spanning `g..g + 1`, its tick (and label) at
/// the centre `g + 0.5`.
struct GroupAxis(usize);

impl Ranged for GroupAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * value / self.0 as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            return Vec::new();
        }
        (0..self.0).map(|g| g as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0 as f64
    }
}
