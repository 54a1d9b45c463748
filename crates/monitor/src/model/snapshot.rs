//! [`Snapshot`]: one scrape (or several merged), indexed by series.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::{parse, series_key, Histogram, MetricType, Sample};
use crate::Result;

/// Everything one scrape returned, with the instant it was taken.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Samples in order of appearance.
    pub samples: Vec<Sample>,
    /// `# TYPE` by family name.
    pub types: HashMap<String, MetricType>,
    /// `# HELP` by family name.
    pub help: HashMap<String, String>,
    /// When the scrape was taken.
    pub taken: Instant,
    index: HashMap<String, usize>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::from_parts(Vec::new(), HashMap::new(), HashMap::new(), Instant::now())
    }
}

impl Snapshot {
    /// Parses exposition text, stamped now.
    pub fn parse(text: &str) -> Result<Snapshot> {
        Snapshot::parse_at(text, Instant::now())
    }

    /// Parses exposition text, stamped `taken`.
    pub fn parse_at(text: &str, taken: Instant) -> Result<Snapshot> {
        let (samples, types, help) = parse::parse(text)?;
        Ok(Snapshot::from_parts(samples, types, help, taken))
    }

    /// A snapshot of `samples` (no `# TYPE`/`# HELP`), stamped now.
    pub fn from_samples(samples: Vec<Sample>) -> Snapshot {
        Snapshot::from_parts(samples, HashMap::new(), HashMap::new(), Instant::now())
    }

    fn from_parts(
        samples: Vec<Sample>,
        types: HashMap<String, MetricType>,
        help: HashMap<String, String>,
        taken: Instant,
    ) -> Snapshot {
        let index = samples
            .iter()
            .enumerate()
            .map(|(i, s)| (series_key(&s.name, &s.labels, None), i))
            .collect();
        Snapshot {
            samples,
            types,
            help,
            taken,
            index,
        }
    }

    /// Merges scrapes of several endpoints (several VMs) into one, stamped with the latest.
    pub fn merge(parts: Vec<Snapshot>) -> Snapshot {
        let taken = parts
            .iter()
            .map(|p| p.taken)
            .max()
            .unwrap_or_else(Instant::now);
        let (mut samples, mut types, mut help) = (Vec::new(), HashMap::new(), HashMap::new());
        for p in parts {
            samples.extend(p.samples);
            types.extend(p.types);
            help.extend(p.help);
        }
        Snapshot::from_parts(samples, types, help, taken)
    }

    /// Every sample named exactly `name`.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Whether any sample is named `name` (or, for histograms, `name_count`).
    pub fn has(&self, name: &str) -> bool {
        let count = format!("{name}_count");
        self.samples
            .iter()
            .any(|s| s.name == name || s.name == count)
    }

    /// The value of the series with exactly these labels (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let owned: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.get_sample(name, &owned).map(|s| s.value)
    }

    /// The sample with this name and label set, if present.
    pub fn get_sample(&self, name: &str, labels: &[(String, String)]) -> Option<&Sample> {
        self.index
            .get(&series_key(name, labels, None))
            .map(|&i| &self.samples[i])
    }

    /// The distinct values of the `vm` label, sorted.
    pub fn vms(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.samples.iter().filter_map(|s| s.label("vm")).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// Every histogram of family `name`, one per label set (without `le`).
    pub fn histograms(&self, name: &str) -> Vec<Histogram> {
        let bucket = format!("{name}_bucket");
        let mut order = Vec::new();
        let mut by_key: HashMap<String, Histogram> = HashMap::new();
        for s in self.series(&bucket) {
            let key = series_key(name, &s.labels, Some("le"));
            let le = s.label("le").and_then(parse_le).unwrap_or(f64::INFINITY);
            let h = by_key.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                let labels = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .cloned()
                    .collect();
                Histogram {
                    labels,
                    buckets: Vec::new(),
                    sum: 0.0,
                    count: 0.0,
                }
            });
            h.buckets.push((le, s.value));
        }
        let mut out: Vec<Histogram> = order
            .into_iter()
            .filter_map(|k| by_key.remove(&k))
            .collect();
        for h in &mut out {
            h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            h.sum = self
                .get_sample(&format!("{name}_sum"), &h.labels)
                .map_or(0.0, |s| s.value);
            h.count = self
                .get_sample(&format!("{name}_count"), &h.labels)
                .map_or(0.0, |s| s.value);
        }
        out
    }

    /// The histogram of family `name` with exactly `labels` (without `le`).
    pub fn histogram(&self, name: &str, labels: &[(String, String)]) -> Option<Histogram> {
        let want = series_key(name, labels, None);
        self.histograms(name)
            .into_iter()
            .find(|h| series_key(name, &h.labels, None) == want)
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// Per-second rate of the counter `sample` (taken from `cur`) since `prev`; a counter
/// that went down counts as reset to zero in between. `None` without a previous value
/// or elapsed time.
pub fn rate(prev: &Snapshot, cur: &Snapshot, sample: &Sample) -> Option<f64> {
    let dt = cur.taken.checked_duration_since(prev.taken)?.as_secs_f64();
    let before = prev.get_sample(&sample.name, &sample.labels)?.value;
    if dt <= 0.0 {
        return None;
    }
    let delta = if sample.value >= before {
        sample.value - before
    } else {
        sample.value
    };
    Some(delta / dt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TEXT: &str = "# TYPE c_total counter\nc_total{vm=\"a\",vcpu=\"0\"} 10\n\
        c_total{vm=\"b\",vcpu=\"0\"} 1\n# TYPE h histogram\n\
        h_bucket{vm=\"a\",le=\"0.001\"} 2\nh_bucket{vm=\"a\",le=\"0.01\"} 8\n\
        h_bucket{vm=\"a\",le=\"+Inf\"} 10\nh_sum{vm=\"a\"} 0.05\nh_count{vm=\"a\"} 10\n";

    #[test]
    fn indexes_series_in_any_label_order() {
        let s = Snapshot::parse(TEXT).unwrap();
        assert_eq!(s.get("c_total", &[("vcpu", "0"), ("vm", "a")]), Some(10.0));
        assert_eq!(s.get("c_total", &[("vm", "a")]), None);
        assert_eq!(s.vms(), vec!["a".to_string(), "b".to_string()]);
        assert!(s.has("h") && s.has("c_total") && !s.has("nope"));
    }

    #[test]
    fn groups_histograms() {
        let s = Snapshot::parse(TEXT).unwrap();
        let hs = s.histograms("h");
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].labels, vec![("vm".to_string(), "a".to_string())]);
        assert_eq!(hs[0].buckets.len(), 3);
        assert_eq!((hs[0].sum, hs[0].count), (0.05, 10.0));
        assert!(s.histogram("h", &hs[0].labels).is_some());
    }

    #[test]
    fn rates_between_snapshots() {
        let t0 = Instant::now();
        let a = Snapshot::parse_at("x_total{vm=\"a\"} 10\ny_total 50\n", t0).unwrap();
        let b = Snapshot::parse_at(
            "x_total{vm=\"a\"} 30\ny_total 5\nz_total 1\n",
            t0 + Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(rate(&a, &b, &b.samples[0]), Some(10.0));
        assert_eq!(
            rate(&a, &b, &b.samples[1]),
            Some(2.5),
            "reset counts from zero"
        );
        assert_eq!(rate(&a, &b, &b.samples[2]), None, "no previous value");
        assert_eq!(rate(&b, &a, &a.samples[0]), None, "time went backwards");
    }

    #[test]
    fn merges_endpoints() {
        let a = Snapshot::parse("x{vm=\"a\"} 1\n").unwrap();
        let b = Snapshot::parse("x{vm=\"b\"} 2\n").unwrap();
        let m = Snapshot::merge(vec![a, b]);
        assert_eq!(m.get("x", &[("vm", "b")]), Some(2.0));
        assert_eq!(m.vms().len(), 2);
    }
}
