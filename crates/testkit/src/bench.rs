//! What the benchmark examples share: the median of repeated runs, the machine's load at a
//! run's start, and a cold cache before it.

/// The median of `v` (the mean of the middle two for an even count); NaN for none.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The load averages over 1, 5 and 15 minutes, as `/proc/loadavg` gives them ("?" when it
/// cannot be read).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Writes dirty pages out (`sync`): a timed run does not pay for the previous one's writes.
pub fn sync() {
    let _ = std::process::Command::new("sync").status();
}

/// [`sync`], then drops the page, folder and inode caches; false when they cannot be dropped
/// (not root): the caller says its runs are warm, or refuses.
pub fn drop_caches() -> bool {
    sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
