//! Reads criterion's estimates back after a benchmark run and prints each benchmark as a ratio
//! of the baseline measured in the same run: the project reports performance as ratios, never
//! as absolute times of one machine.
//!
//! ```
//! // After `criterion_group!`'s function ran, in the bench's own `main`:
//! audit_bench_support::report("writer", "build_serialize_sha256", "audit_writer", Some(0.7), true);
//! // prints `RATIO writer: ...`, or says the estimates are missing (filtered out)
//! ```

use std::path::PathBuf;

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// Time per iteration of `group/bench` in nanoseconds, from this run's estimates: the slope
/// when criterion sampled linearly, the mean otherwise.
pub fn mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path = criterion_dir().join(group).join(bench).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| value["mean"]["point_estimate"].as_f64())
}

/// Prints `bench` against `baseline` (both in `group`) as one `RATIO` line. With `throughput`
/// the ratio is the baseline's time over this one's (higher is better), otherwise this time
/// over the baseline's (lower is better); `target`, if any, says whether it is met.
pub fn report(group: &str, baseline: &str, bench: &str, target: Option<f64>, throughput: bool) {
    let (Some(base), Some(this)) = (mean_ns(group, baseline), mean_ns(group, bench)) else {
        println!("RATIO {group}: no estimates for {baseline} / {bench} (filtered out?)");
        return;
    };
    let ratio = if throughput { base / this } else { this / base };
    let kind = if throughput { "throughput" } else { "time" };
    let verdict = match target {
        Some(t) if throughput => format!("{} target >= {t}", if ratio >= t { "meets" } else { "MISSES" }),
        Some(t) => format!("{} target <= {t}", if ratio <= t { "meets" } else { "MISSES" }),
        None => "reported".to_owned(),
    };
    println!("RATIO {group}: {bench} {this:.1} ns vs {baseline} {base:.1} ns -> {kind} ratio {ratio:.2} ({verdict})");
}
