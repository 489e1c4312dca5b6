//! Reads criterion's estimates back after a run and prints each benchmark as a ratio of the
//! baseline measured in the same run.

use std::path::PathBuf;

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("criterion")
}

/// Mean time per iteration of `group/bench` in nanoseconds, from this run's estimates.
pub fn mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path = criterion_dir().join(group).join(bench).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    // Criterion reports the slope when it sampled linearly, the mean otherwise.
    value["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| value["mean"]["point_estimate"].as_f64())
}

/// Prints `bench` against `baseline` (both in `group`) and whether it meets `target`.
/// `higher_is_better` flips the ratio for throughput comparisons of time-per-item.
pub fn report(group: &str, baseline: &str, bench: &str, target: f64, throughput: bool) {
    let (Some(base), Some(this)) = (mean_ns(group, baseline), mean_ns(group, bench)) else {
        println!("{group}: no estimates for {baseline} / {bench} (filtered out?)");
        return;
    };
    // Time ratios: lower is better. Throughput ratios: baseline time over this time.
    let (ratio, ok) = if throughput {
        (base / this, base / this >= target)
    } else {
        (this / base, this / base <= target)
    };
    let verdict = if ok { "meets" } else { "MISSES" };
    let kind = if throughput { "throughput" } else { "time" };
    println!(
        "RATIO {group}: {bench} {this:.1} ns vs {baseline} {base:.1} ns -> {kind} ratio {ratio:.2} ({verdict} target {}{target})",
        if throughput { ">= " } else { "<= " }
    );
}
