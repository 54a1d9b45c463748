//! A parser for the Prometheus text exposition format (version 0.0.4): `# HELP`,
//! `# TYPE`, samples with escaped label values, `NaN`/`±Inf`, optional timestamps.

use std::collections::HashMap;

use super::{MetricType, Sample};
use crate::{Error, Result};

/// Samples in order of appearance, `# TYPE` by family name, and `# HELP` by family name.
pub(crate) type Parsed = (
    Vec<Sample>,
    HashMap<String, MetricType>,
    HashMap<String, String>,
);

/// Parses one exposition text.
pub(crate) fn parse(text: &str) -> Result<Parsed> {
    let mut samples = Vec::new();
    let mut types = HashMap::new();
    let mut help = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |msg: &str| Error::Parse {
            line: i + 1,
            msg: msg.to_owned(),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, [' ', '\t']);
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    types.insert(name.to_owned(), MetricType::from_str(kind.trim()));
                }
                (Some("HELP"), Some(name), doc) => {
                    help.insert(name.to_owned(), unescape_help(doc.unwrap_or("")));
                }
                _ => {}
            }
            continue;
        }
        samples.push(parse_sample(line).map_err(|m| err(&m))?);
    }
    Ok((samples, types, help))
}

fn parse_sample(line: &str) -> std::result::Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("expected a metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("missing value")?;
    let value = parse_value(value).ok_or_else(|| format!("bad value {value:?}"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing garbage".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

type Labels = Vec<(String, String)>;

/// Parses `k="v",...}` and returns the labels and the text after the `}`.
fn parse_labels(mut s: &str) -> std::result::Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("expected label=\"value\"")?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {key:?}"));
        }
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_help_and_samples() {
        let text = "# HELP a_total Things\\nmore \\\\ done.\n# TYPE a_total counter\n\
                    a_total{vm=\"x\",vcpu=\"0\"} 12\n\na_total{vm=\"x\",vcpu=\"1\",} 3 1700000000000\n\
                    # a plain comment\nup 1\n";
        let (s, types, help) = parse(text).unwrap();
        assert_eq!(types["a_total"], MetricType::Counter);
        assert_eq!(help["a_total"], "Things\nmore \\ done.");
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0].labels,
            vec![("vm".into(), "x".into()), ("vcpu".into(), "0".into())]
        );
        assert_eq!(s[1].value, 3.0);
        assert_eq!(s[2].name, "up");
        assert!(s[2].labels.is_empty());
    }

    #[test]
    fn unescapes_label_values() {
        let (s, _, _) = parse(r#"m{path="a\"b\\c\nd",e="",sp = "x y" } -1.5e-3"#).unwrap();
        assert_eq!(s[0].labels[0].1, "a\"b\\c\nd");
        assert_eq!(s[0].labels[1].1, "");
        assert_eq!(s[0].labels[2], ("sp".into(), "x y".into()));
        assert_eq!(s[0].value, -1.5e-3);
    }

    #[test]
    fn parses_special_values_and_histograms() {
        let text = "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                    h_sum 0.7\nh_count 2\ng NaN\nn -Inf\n";
        let (s, types, _) = parse(text).unwrap();
        assert_eq!(types["h"], MetricType::Histogram);
        assert_eq!(s[1].labels[0].1, "+Inf");
        assert!(s[4].value.is_nan());
        assert_eq!(s[5].value, f64::NEG_INFINITY);
    }

    #[test]
    fn reports_the_bad_line() {
        for bad in [
            "m{a=\"x} 1",
            "m{a=x} 1",
            "m 1 2 3",
            "m{a=\"x\"",
            "m abc",
            "{a=\"b\"} 1",
            "m",
        ] {
            let text = format!("ok 1\n{bad}\n");
            match parse(&text) {
                Err(Error::Parse { line: 2, .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
