//! Number formatting shared by the views and `top --once`.

/// A count: exact below a million, then `1.23M`, `4.56G`.
pub(crate) fn count(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() < 1e6 => format!("{}", v.round() as i64),
        Some(v) if v.abs() < 1e9 => format!("{:.2}M", v / 1e6),
        Some(v) if v.abs() < 1e12 => format!("{:.2}G", v / 1e9),
        Some(v) => format!("{:.2}T", v / 1e12),
    }
}

/// A rate per second: one decimal below 10.
pub(crate) fn rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() < 10.0 => format!("{v:.1}"),
        other => count(other),
    }
}

/// A duration in seconds, scaled to ns/µs/ms/s.
pub(crate) fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 1e-6 => format!("{:.0}ns", v * 1e9),
        Some(v) if v < 1e-3 => format!("{:.1}µs", v * 1e6),
        Some(v) if v < 1.0 => format!("{:.1}ms", v * 1e3),
        Some(v) => format!("{v:.2}s"),
    }
}

/// Seconds as `h:mm:ss` (days prefixed).
pub(crate) fn uptime(v: Option<f64>) -> String {
    let Some(v) = v else { return "-".into() };
    let s = v.max(0.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

/// Bytes as MiB/GiB.
pub(crate) fn bytes(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= (1u64 << 30) as f64 => format!("{:.1} GiB", v / (1u64 << 30) as f64),
        Some(v) => format!("{:.0} MiB", v / (1u64 << 20) as f64),
    }
}

/// `s` cut to `width` columns, the cut marked with `…`.
pub(crate) fn ellipsize(s: &str, width: u16) -> String {
    let width = width as usize;
    if s.chars().count() <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(Some(999_999.0)), "999999");
        assert_eq!(count(Some(1_234_567.0)), "1.23M");
        assert_eq!(rate(Some(2.25)), "2.2");
        assert_eq!(rate(None), "-");
        assert_eq!(secs(Some(3e-6)), "3.0µs");
        assert_eq!(secs(Some(5e-7)), "500ns");
        assert_eq!(uptime(Some(3723.0)), "1:02:03");
        assert_eq!(uptime(Some(90000.0)), "1d 1:00:00");
        assert_eq!(bytes(Some(67108864.0)), "64 MiB");
        assert_eq!(ellipsize("hypercall-gateway", 8), "hyperca…");
        assert_eq!(ellipsize("hypercall-gateway", 8).chars().count(), 8);
        assert_eq!(ellipsize("gw", 8), "gw");
        assert_eq!(ellipsize("gw", 0), "");
    }
}
