//! Human-readable progress lines and end-of-job summaries.

use std::time::Duration;

use watershed_engine::metrics::RowSummary;
use watershed_engine::runtime::JobResult;
use watershed_engine::runtime::checkpointing::CheckpointStats;
use watershed_engine::time::format_timestamp;

/// Formats a count with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One progress line: rows in and out, the watermark and the input rate.
pub fn progress_line(name: &str, rows: &RowSummary, elapsed: Duration) -> String {
    let rate = rows.read as f64 / elapsed.as_secs_f64().max(1e-9);
    format!(
        "[{:>6.1}s] {name}: read {} | written {} | late {} | rejected {} | watermark {} | {:.0} rows/s",
        elapsed.as_secs_f64(),
        thousands(rows.read),
        thousands(rows.written),
        thousands(rows.late),
        thousands(rows.rejected),
        format_timestamp(rows.watermark),
        rate
    )
}

/// The end-of-job summary. Its first block adds up:
/// `read = emitted + aggregated + filtered + late + rejected`.
pub fn summary_text(result: &JobResult, elapsed: Duration) -> String {
    let r = &result.rows;
    let rate = r.read as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut lines = vec![
        format!(
            "Job '{}' finished in {:.2} s",
            result.name,
            elapsed.as_secs_f64()
        ),
        format!("  rows read        {:>14}", thousands(r.read)),
        format!("    emitted        {:>14}", thousands(r.emitted)),
        format!("    aggregated     {:>14}", thousands(r.aggregated)),
        format!("    filtered       {:>14}", thousands(r.filtered)),
        format!("    late (dropped) {:>14}", thousands(r.late)),
        format!("    rejected       {:>14}", thousands(r.rejected)),
        format!("  rows written     {:>14}", thousands(r.written)),
    ];
    if r.results_filtered > 0 {
        lines.push(format!(
            "  results dropped  {:>14}  (HAVING)",
            thousands(r.results_filtered)
        ));
    }
    lines.push(format!(
        "  throughput       {:>14} rows/s",
        thousands(rate as u64)
    ));
    if !r.adds_up() {
        lines.push("  WARNING: the row counts do not add up; please report this".into());
    }
    lines.extend(checkpoint_lines(&result.checkpoints));
    lines.join("\n")
}

/// One line per completed checkpoint (the last ten), after a count and the
/// place they were written.
pub fn checkpoint_lines(checkpoints: &[CheckpointStats]) -> Vec<String> {
    let Some(last) = checkpoints.last() else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "  checkpoints      {:>14}  in {}",
        thousands(checkpoints.len() as u64),
        last.location
    )];
    let shown = checkpoints.len().saturating_sub(10);
    lines.extend(checkpoints[shown..].iter().map(checkpoint_line));
    lines
}

/// `#7: 12 ms (alignment 1 ms), 48,213 bytes`
pub fn checkpoint_line(stats: &CheckpointStats) -> String {
    format!(
        "    #{}: {} ms (alignment {} ms), {} bytes",
        stats.id,
        stats.duration.as_millis(),
        stats.alignment.as_millis(),
        thousands(stats.bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
