//! The dashboard's data model: a [`Snapshot`] parsed from Prometheus text, rates between
//! two snapshots and quantiles from histogram buckets. It knows nothing of the VMM, so the
//! dashboard works the same in-process and attached to a remote endpoint.
//!
//! ```
//! use monitor::model::Snapshot;
//! let s = Snapshot::parse("# TYPE x_total counter\nx_total{vm=\"a\"} 4\n").unwrap();
//! assert_eq!(s.get("x_total", &[("vm", "a")]), Some(4.0));
//! ```

mod histogram;
mod parse;
mod snapshot;

pub use histogram::Histogram;
pub use snapshot::{rate, Snapshot};

/// The `# TYPE` of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `summary`.
    Summary,
    /// `untyped` or anything else.
    Untyped,
}

impl MetricType {
    fn from_str(s: &str) -> MetricType {
        match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Untyped,
        }
    }
}

/// One sample line: name, labels in order of appearance, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (with `_bucket`/`_sum`/`_count` for histogram parts).
    pub name: String,
    /// Label pairs, unescaped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of label `key`, or `""`.
    pub fn l(&self, key: &str) -> &str {
        self.label(key).unwrap_or("")
    }
}

/// A stable identity of a series: its name and sorted labels, optionally without one label.
pub(crate) fn series_key(name: &str, labels: &[(String, String)], skip: Option<&str>) -> String {
    let mut pairs: Vec<&(String, String)> = labels
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .collect();
    pairs.sort();
    let mut key = name.to_owned();
    for (k, v) in pairs {
        key.push('\0');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}
