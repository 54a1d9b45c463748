//! Cumulative-bucket histograms and their quantiles, as Prometheus' `histogram_quantile`.

/// One histogram series: cumulative buckets sorted by upper bound (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Labels without `le`.
    pub labels: Vec<(String, String)>,
    /// `(upper bound, cumulative count)`, ascending.
    pub buckets: Vec<(f64, f64)>,
    /// `_sum`.
    pub sum: f64,
    /// `_count`.
    pub count: f64,
}

impl Histogram {
    /// What was observed since `older` (bucket by bucket); a reset counts from zero.
    pub fn since(&self, older: &Histogram) -> Histogram {
        if self.count < older.count || self.buckets.len() != older.buckets.len() {
            return self.clone();
        }
        let buckets = self
            .buckets
            .iter()
            .zip(&older.buckets)
            .map(|(&(le, n), &(_, o))| (le, (n - o).max(0.0)))
            .collect();
        Histogram {
            labels: self.labels.clone(),
            buckets,
            sum: self.sum - older.sum,
            count: self.count - older.count,
        }
    }

    /// Mean observation, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q` quantile (0..=1), interpolated linearly inside the bucket it falls in.
    /// Falling into `+Inf` returns the highest finite bound. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let mut prev_bound = 0.0;
        let mut prev_count = 0.0;
        for &(le, count) in &self.buckets {
            if count >= rank && count > prev_count {
                if le.is_infinite() {
                    return Some(prev_bound);
                }
                let within = (rank - prev_count) / (count - prev_count);
                return Some(prev_bound + (le - prev_bound) * within);
            }
            prev_bound = le;
            prev_count = count;
        }
        Some(prev_bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(buckets: &[(f64, f64)]) -> Histogram {
        let count = buckets.last().map_or(0.0, |b| b.1);
        Histogram {
            labels: vec![],
            buckets: buckets.to_vec(),
            sum: count * 0.5,
            count,
        }
    }

    #[test]
    fn interpolates_inside_a_bucket() {
        let x = h(&[(1.0, 0.0), (2.0, 100.0), (f64::INFINITY, 100.0)]);
        assert_eq!(x.quantile(0.5), Some(1.5));
        assert_eq!(x.quantile(0.99), Some(1.99));
        let first = h(&[(1e-6, 10.0), (1e-5, 10.0), (f64::INFINITY, 10.0)]);
        assert_eq!(first.quantile(0.5), Some(5e-7));
    }

    #[test]
    fn inf_bucket_returns_highest_bound() {
        let x = h(&[(1.0, 1.0), (f64::INFINITY, 10.0)]);
        assert_eq!(x.quantile(0.99), Some(1.0));
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(h(&[(1.0, 0.0), (f64::INFINITY, 0.0)]).quantile(0.5), None);
        assert_eq!(h(&[]).quantile(0.5), None);
        assert_eq!(h(&[]).mean(), None);
    }

    #[test]
    fn delta_since_older() {
        let old = h(&[(1.0, 4.0), (2.0, 4.0), (f64::INFINITY, 4.0)]);
        let new = h(&[(1.0, 4.0), (2.0, 14.0), (f64::INFINITY, 14.0)]);
        let d = new.since(&old);
        assert_eq!(d.count, 10.0);
        assert_eq!(d.buckets[0].1, 0.0);
        assert_eq!(d.quantile(0.5), Some(1.5));
        assert_eq!(old.since(&new), old, "a reset counts from zero");
    }
}
