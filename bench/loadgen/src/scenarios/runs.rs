//! Repeated runs: each target in turn, and each target's median run.

use super::Target;

/// The index of the median of `values` (the lower one for an even count).
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[(order.len() - 1) / 2]
}

/// `run` `repeats` times per target, alternating between the targets so that each sees the
/// machine in the same state. Returns each target's runs, in the targets' order.
pub(super) async fn alternating<T>(
    targets: &[Target],
    repeats: usize,
    mut run: impl AsyncFnMut(&Target) -> Result<T, String>,
) -> Result<Vec<Vec<T>>, String> {
    let mut all: Vec<Vec<T>> = targets.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeats {
        for (t, runs) in targets.iter().zip(all.iter_mut()) {
            runs.push(run(t).await?);
        }
    }
    Ok(all)
}

/// Each target's figures by `figure`, and its median run by that figure.
pub(super) fn medians<T>(all: &[Vec<T>], figure: impl Fn(&T) -> f64) -> (Vec<Vec<f64>>, Vec<&T>) {
    let figures: Vec<Vec<f64>> = all
        .iter()
        .map(|runs| runs.iter().map(&figure).collect())
        .collect();
    let median = all
        .iter()
        .zip(&figures)
        .map(|(runs, f)| &runs[median_index(f)])
        .collect();
    (figures, median)
}
