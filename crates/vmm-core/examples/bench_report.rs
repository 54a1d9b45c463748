//! Turns benchmark logs into the body of BENCHMARKS.md: per workload a table of every
//! system's min / median / max and the ratio of medians to the workload's first system,
//! the goals with "met" or "missed by X%", and one SVG dot plot per workload and metric
//! (every round's value, the median marked) written next to the report.
//!
//! `bench_report <report-dir> <log>...` prints the Markdown on stdout and writes
//! `<report-dir>/bench-plots/*.svg`. It fails when a log holds a malformed BENCH/GOAL line
//! or no BENCH line at all. `scripts/bench.sh` runs it; the line format is in
//! `benches/common/result.rs`.

#[path = "../benches/common/result.rs"]
mod result;

use result::{summary, Results, Series};
use std::fmt::Write as _;
use std::path::Path;

fn fmt(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A dot plot: one row per series, every value a dot, the median a bar.
fn svg(title: &str, rows: &[&Series]) -> String {
    let (w, left, right, top, row_h) = (720.0, 150.0, 30.0, 40.0, 36.0);
    let h = top + row_h * rows.len() as f64 + 40.0;
    let min = rows
        .iter()
        .flat_map(|s| &s.values)
        .cloned()
        .fold(f64::INFINITY, f64::min);
    let max = rows
        .iter()
        .flat_map(|s| &s.values)
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let lo = if min >= 0.0 { 0.0 } else { min };
    let hi = if max > lo { max * 1.05 } else { lo + 1.0 };
    let x = |v: f64| left + (v - lo) / (hi - lo) * (w - left - right);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{}</text>",
        esc(title)
    );
    let axis_y = top + row_h * rows.len() as f64;
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#ddd\"/>\
             <text x=\"{0:.1}\" y=\"{1}\" text-anchor=\"middle\">{2}</text>",
            x(v),
            axis_y + 16.0,
            fmt(v)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let cy = top + row_h * (i as f64 + 0.5);
        let (mn, med, mx) = summary(&r.values);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <line x1=\"{:.1}\" y1=\"{cy}\" x2=\"{:.1}\" y2=\"{cy}\" stroke=\"#888\"/>\n",
            left - 8.0,
            cy + 4.0,
            esc(&r.system),
            x(mn),
            x(mx)
        );
        for (j, v) in r.values.iter().enumerate() {
            let jitter = ((j * 7919) % 13) as f64 - 6.0;
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#1f77b4\" fill-opacity=\"0.5\"/>",
                x(*v),
                cy + jitter
            );
        }
        let _ = writeln!(
            s,
            "\n<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#d62728\" stroke-width=\"3\"/>",
            x(med),
            cy - 12.0,
            cy + 12.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} (dots: every value; red bar: median)</text>\n</svg>",
        (left + w - right) / 2.0,
        h - 6.0,
        esc(&rows[0].unit)
    );
    s
}

/// The report body for `r`; SVGs go to `dir/bench-plots`.
fn report(r: &Results, dir: &Path) -> std::io::Result<String> {
    let plots = dir.join("bench-plots");
    std::fs::create_dir_all(&plots)?;
    let mut md = String::new();
    let mut workloads: Vec<&str> = Vec::new();
    for s in &r.series {
        if !workloads.contains(&s.workload.as_str()) {
            workloads.push(&s.workload);
        }
    }
    for w in workloads {
        let _ = writeln!(md, "### {w}\n");
        let _ = writeln!(
            md,
            "| system | metric | unit | n | min | median | max | ratio of medians |\n|---|---|---|---:|---:|---:|---:|---|"
        );
        let series: Vec<&Series> = r.series.iter().filter(|s| s.workload == w).collect();
        let mut metrics: Vec<&str> = Vec::new();
        for s in &series {
            if !metrics.contains(&s.metric.as_str()) {
                metrics.push(&s.metric);
            }
        }
        let mut links = Vec::new();
        for m in metrics {
            let rows: Vec<&Series> = series.iter().copied().filter(|s| s.metric == m).collect();
            let base = summary(&rows[0].values).1;
            for s in &rows {
                let (mn, med, mx) = summary(&s.values);
                let ratio = if rows.len() > 1 && s.system != rows[0].system && base != 0.0 {
                    format!("{:.3}x {}", med / base, rows[0].system)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    s.system,
                    s.metric,
                    s.unit,
                    s.values.len(),
                    fmt(mn),
                    fmt(med),
                    fmt(mx),
                    ratio
                );
            }
            if rows.len() > 1 || rows[0].values.len() >= 5 {
                let name = format!("{w}-{m}.svg").replace(['/', ' '], "_");
                std::fs::write(plots.join(&name), svg(&format!("{w}: {m}"), &rows))?;
                links.push(format!("[{m}](bench-plots/{name})"));
            }
        }
        if !links.is_empty() {
            let _ = writeln!(md, "\nPlots: {}", links.join(", "));
        }
        md.push('\n');
    }
    if !r.goals.is_empty() {
        let _ = writeln!(
            md,
            "### Goals\n\n| goal | measured | limit | outcome |\n|---|---:|---:|---|"
        );
        for g in &r.goals {
            let what = match &g.vs {
                Some(vs) => format!("{} / {} {}", g.system, vs, g.metric),
                None => format!("{} {}", g.system, g.metric),
            };
            let op = if g.at_most { "<=" } else { ">=" };
            let (measured, outcome) = match r.check(g) {
                Some((x, true)) => (fmt(x), "met".to_string()),
                Some((x, false)) => {
                    let by = if g.at_most {
                        x / g.limit - 1.0
                    } else {
                        1.0 - x / g.limit
                    };
                    (fmt(x), format!("**missed by {:.1}%**", by * 100.0))
                }
                None => ("-".into(), "not measured".into()),
            };
            let _ = writeln!(
                md,
                "| {} ({what}) | {measured} | {op} {} | {outcome} |",
                g.text,
                fmt(g.limit)
            );
        }
        md.push('\n');
    }
    Ok(md)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: bench_report <report-dir> <log>...");
    let mut log = String::new();
    for p in args {
        log += &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        log.push('\n');
    }
    let r = match result::parse(&log) {
        Ok(r) if !r.series.is_empty() => r,
        Ok(_) => {
            eprintln!("bench_report: no BENCH lines");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("bench_report: {e}");
            std::process::exit(1);
        }
    };
    match report(&r, Path::new(&dir)) {
        Ok(md) => print!("{md}"),
        Err(e) => {
            eprintln!("bench_report: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_tables_ratios_goals_and_plots() {
        let r = result::parse(
            "BENCH launch kvmbus wall ms 4 2 3\nBENCH launch bare wall ms 1 1 1\n\
             GOAL launch wall kvmbus bare <= 2 twice\n",
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        let md = report(&r, &dir).unwrap();
        assert!(
            md.contains("| kvmbus | wall | ms | 3 | 2.00 | 3.00 | 4.00 |"),
            "{md}"
        );
        assert!(md.contains("| 0.333x kvmbus |"), "{md}");
        assert!(md.contains("**missed by 50.0%**"), "{md}");
        let svg = std::fs::read_to_string(dir.join("bench-plots/launch-wall.svg")).unwrap();
        assert_eq!(svg.matches("<circle").count(), 6);
        let _ = std::fs::remove_dir_all(&dir);
    }

    // The line format's parser (benches/common/result.rs).
    #[test]
    fn parses_merges_and_checks_goals() {
        let log = "noise\nBENCH launch kvmbus wall ms 3 1 2\nBENCH launch bare wall ms 1 1 1\n\
                   BENCH launch kvmbus wall ms 5\nGOAL launch wall kvmbus bare <= 2 at most 2x\n\
                   GOAL launch wall kvmbus - <= 1.5 absolute\n";
        let r = result::parse(log).unwrap();
        assert_eq!(r.series.len(), 2);
        assert_eq!(r.series[0].values, vec![3.0, 1.0, 2.0, 5.0]);
        assert_eq!(result::summary(&r.series[0].values), (1.0, 3.0, 5.0));
        assert_eq!(r.goals[0].text, "at most 2x");
        assert_eq!(r.check(&r.goals[0]), Some((3.0, false)));
        assert_eq!(r.check(&r.goals[1]), Some((3.0, false)));
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(result::parse("BENCH a b c d\n")
            .unwrap_err()
            .starts_with("line 1"));
        assert!(result::parse("BENCH a b c d 1 x\n").is_err());
        assert!(result::parse("BENCH a b c d 1 inf\n").is_err());
        assert!(result::parse("x\nGOAL a b c d == 1\n")
            .unwrap_err()
            .starts_with("line 2"));
    }
}
