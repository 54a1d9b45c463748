//! The machine-readable result lines every benchmark prints, and their parser
//! (`scripts/bench.sh` collects them into BENCHMARKS.md with `examples/bench_report.rs`).
//!
//! ```text
//! BENCH <workload> <system> <metric> <unit> <v1> <v2> ...   every round's (or sample's) value
//! GOAL <workload> <metric> <system> <vs> <op> <limit> <text...>
//! ```
//! Names contain no spaces. A GOAL compares the median of `<system>`'s values with
//! `<limit>` times the median of `<vs>`'s (or with `<limit>` itself when `<vs>` is `-`);
//! `<op>` is `<=` or `>=`; the text says what the goal is, for the report.
#![allow(dead_code)]

/// Prints one BENCH line.
pub fn bench(workload: &str, system: &str, metric: &str, unit: &str, values: &[f64]) {
    let vals: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
    println!(
        "BENCH {workload} {system} {metric} {unit} {}",
        vals.join(" ")
    );
}

/// Prints one GOAL line.
pub fn goal(
    workload: &str,
    metric: &str,
    system: &str,
    vs: &str,
    op: &str,
    limit: f64,
    text: &str,
) {
    println!("GOAL {workload} {metric} {system} {vs} {op} {limit} {text}");
}

/// One BENCH line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The workload (a table in the report).
    pub workload: String,
    /// The system measured (kvmbus, bare, qemu, ...).
    pub system: String,
    /// What was measured.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// Every round's value.
    pub values: Vec<f64>,
}

/// One GOAL line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// The workload.
    pub workload: String,
    /// The metric.
    pub metric: String,
    /// The system held to the goal.
    pub system: String,
    /// The system it is compared with, or `None` for an absolute limit.
    pub vs: Option<String>,
    /// `true` for `<=`, `false` for `>=`.
    pub at_most: bool,
    /// The ratio (or absolute value) limit.
    pub limit: f64,
    /// What the goal is.
    pub text: String,
}

/// What a log holds: its series (same key on several lines merged in order) and goals.
#[derive(Debug, Default)]
pub struct Results {
    /// BENCH series in first-seen order.
    pub series: Vec<Series>,
    /// GOAL lines.
    pub goals: Vec<Goal>,
}

/// Parses every BENCH and GOAL line of `log`; other lines are ignored. A malformed
/// BENCH or GOAL line is an error naming its line number.
pub fn parse(log: &str) -> Result<Results, String> {
    let mut r = Results::default();
    for (n, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = |what: &str| format!("line {}: {what}: {line}", n + 1);
        match f.first() {
            Some(&"BENCH") => {
                if f.len() < 6 {
                    return Err(bad("BENCH needs workload system metric unit and values"));
                }
                let values = f[5..]
                    .iter()
                    .map(|v| v.parse::<f64>().ok().filter(|v| v.is_finite()))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| bad("a value is not a finite number"))?;
                let key = (f[1], f[2], f[3]);
                match r
                    .series
                    .iter_mut()
                    .find(|s| (&*s.workload, &*s.system, &*s.metric) == key)
                {
                    Some(s) => s.values.extend(values),
                    None => r.series.push(Series {
                        workload: f[1].into(),
                        system: f[2].into(),
                        metric: f[3].into(),
                        unit: f[4].into(),
                        values,
                    }),
                }
            }
            Some(&"GOAL") => {
                if f.len() < 7 || !matches!(f[5], "<=" | ">=") {
                    return Err(bad("GOAL needs workload metric system vs <=|>= limit"));
                }
                r.goals.push(Goal {
                    workload: f[1].into(),
                    metric: f[2].into(),
                    system: f[3].into(),
                    vs: (f[4] != "-").then(|| f[4].to_string()),
                    at_most: f[5] == "<=",
                    limit: f[6].parse().map_err(|_| bad("the limit is not a number"))?,
                    text: f[7..].join(" "),
                });
            }
            _ => {}
        }
    }
    Ok(r)
}

/// (min, median, max) of `v` (non-empty).
pub fn summary(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[0], s[s.len() / 2], s[s.len() - 1])
}

impl Results {
    /// The series of `workload`/`system`/`metric`.
    pub fn get(&self, workload: &str, system: &str, metric: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.workload == workload && s.system == system && s.metric == metric)
    }

    /// A goal's outcome: (the measured ratio or value, met).
    pub fn check(&self, g: &Goal) -> Option<(f64, bool)> {
        let m = summary(&self.get(&g.workload, &g.system, &g.metric)?.values).1;
        let x = match &g.vs {
            Some(vs) => m / summary(&self.get(&g.workload, vs, &g.metric)?.values).1,
            None => m,
        };
        Some((
            x,
            if g.at_most {
                x <= g.limit
            } else {
                x >= g.limit
            },
        ))
    }
}
