//! The figures as the Markdown tables print them.

use crate::meter::{CpuUse, Percentiles};
use std::fmt::Write as _;

pub(super) fn ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else {
        format!("{:.2}×", a / b)
    }
}

pub(super) fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.0}%"))
}

pub(super) fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Markdown table's head: the column names, then the line under them.
pub(super) fn table(out: &mut String, columns: &[&str]) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
}

/// The p50, p99 and max cells of a latency distribution.
pub(super) fn latency_cells(p: &Percentiles) -> String {
    format!("{} | {} | {}", ms(p.p50), ms(p.p99), ms(p.max))
}

/// The generator's and the server's CPU cells.
pub(super) fn cpu_cells(c: &CpuUse) -> String {
    format!("{} | {}", pct(Some(c.generator)), pct(c.server))
}

/// A section's Markdown, begun with its heading.
pub(super) fn heading(title: std::fmt::Arguments) -> String {
    format!("\n### {title}\n\n")
}
