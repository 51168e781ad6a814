//! Sizes for people, in one style everywhere: binary units with one decimal (`512 B`,
//! `1.5 KiB`, `22.8 MiB`, `1.1 GiB`).

/// `b` bytes as `512 B`, `1.5 KiB`, `22.8 MiB`, ...
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A rate: `human_bytes(bytes / secs) + "/s"`.
pub fn human_rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_style() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(23_907_532), "22.8 MiB");
        assert_eq!(human_bytes(1_181_116_006), "1.1 GiB");
        assert_eq!(human_rate(2048, 2.0), "1.0 KiB/s");
    }
}
