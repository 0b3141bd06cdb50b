//! Reading the canisters' `/metrics` pages (Prometheus text format) in
//! tests: each sample line is `series value [timestamp]`, where the series
//! is the metric's name with its labels as written.

/// One sample of a page.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric's name and labels as written, e.g. `escrow_locks` or
    /// `escrow_liabilities{ledger="…",symbol="ICP"}`.
    pub series: String,
    /// The sample's value.
    pub value: f64,
}

/// Splits a sample line into its series, value and timestamp.
fn parse(line: &str) -> Option<(&str, f64, Option<i64>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut from_right = line.rsplitn(3, ' ');
    let last = from_right.next()?;
    let before = from_right.next()?;
    match (from_right.next(), before.parse(), last.parse()) {
        (Some(series), Ok(value), Ok(timestamp)) => Some((series, value, Some(timestamp))),
        _ => {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series, value.parse().ok()?, None))
        }
    }
}

/// Every sample of a page, in order.
pub fn samples(page: &str) -> Vec<Sample> {
    page.lines()
        .filter_map(parse)
        .map(|(series, value, _)| Sample {
            series: series.to_string(),
            value,
        })
        .collect()
}

/// The value of the first sample of `series` on a page: a metric's name
/// (with no labels, or all of them as written), or a name with the start of
/// its labels (`escrow_liabilities{ledger="…"`).
pub fn metric_value(page: &str, series: &str) -> Option<f64> {
    samples(page)
        .into_iter()
        .find(|s| s.series == series || (series.contains('{') && s.series.starts_with(series)))
        .map(|s| s.value)
}

/// The page with each sample's timestamp dropped: what stays the same
/// while the state does, for before-and-after snapshots.
pub fn without_timestamps(page: &str) -> String {
    page.lines()
        .map(|line| match parse(line) {
            Some((series, value, _)) => format!("{series} {value}\n"),
            None => format!("{line}\n"),
        })
        .collect()
}

/// Whether a line of a page (a sample, or its `# HELP` or `# TYPE`
/// header) is about the canister's cycles (`<canister>_cycle_balance`,
/// `<canister>_cycles_burned_per_day`, ...).
fn is_cycles_line(line: &str) -> bool {
    let name = line
        .trim_start_matches("# HELP ")
        .trim_start_matches("# TYPE ")
        .split(['{', ' '])
        .next()
        .unwrap_or_default();
    name.contains("_cycle_") || name.contains("_cycles_")
}

/// The page without the canister's cycles: every message it executes,
/// refused ones too, burns some, so before-and-after snapshots of what a
/// call changed leave them out.
pub fn without_cycles(page: &str) -> String {
    page.lines()
        .filter(|line| !is_cycles_line(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP escrow_locks Job locks.\n# TYPE escrow_locks gauge\n\
        escrow_locks 3 1735689600000\n\
        escrow_liabilities{ledger=\"l1\",symbol=\"T K\"} 1100000 1735689600000\n\
        untimed 7\n";

    #[test]
    fn values_by_name_or_label_prefix() {
        assert_eq!(metric_value(PAGE, "escrow_locks"), Some(3.0));
        assert_eq!(metric_value(PAGE, "escrow_lock"), None);
        assert_eq!(
            metric_value(PAGE, "escrow_liabilities{ledger=\"l1\""),
            Some(1_100_000.0)
        );
        assert_eq!(metric_value(PAGE, "untimed"), Some(7.0));
        assert_eq!(samples(PAGE).len(), 3);
    }

    #[test]
    fn cycles_lines_are_dropped_with_their_headers() {
        let page = format!(
            "{PAGE}# HELP escrow_cycle_balance The balance.\n# TYPE escrow_cycle_balance gauge\n\
             escrow_cycle_balance 5 1735689600000\n\
             escrow_cycles_burned_per_day 2 1735689600000\n\
             escrow_liabilities{{ledger=\"l2\",symbol=\"TCYCLES\"}} 1 1735689600000\n"
        );
        let kept = without_cycles(&page);
        assert!(kept.starts_with(PAGE), "{kept}");
        assert!(!kept.contains("escrow_cycle"), "{kept}");
        assert!(kept.contains("symbol=\"TCYCLES\""), "{kept}");
        assert_eq!(samples(&kept).len(), 4);
    }

    #[test]
    fn snapshots_drop_only_timestamps() {
        let later = PAGE.replace("1735689600000", "1735689700000");
        assert_eq!(without_timestamps(PAGE), without_timestamps(&later));
        assert!(without_timestamps(PAGE).contains("escrow_locks 3\n"));
        assert_ne!(
            without_timestamps(PAGE),
            without_timestamps(&PAGE.replace("escrow_locks 3", "escrow_locks 4"))
        );
    }
}
