//! The fleet source: every kvmbus series from a Prometheus server's HTTP API (one PromQL
//! instant query per refresh), turned into the same [`Snapshot`] a scrape gives, so the
//! dashboard's views work unchanged across hosts.
//!
//! Prometheus adds target labels (`job`, `instance`, SD labels such as `vcpus`) and renames
//! scraped labels that clash with them (`exported_vm`); the source keeps only the labels
//! kvmbus itself exports, so series look as they do on the endpoint. Two VMs of the same
//! name on different endpoints are told apart as `name@instance`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{Sample, Snapshot};
use crate::{http_client, Error, Result};

/// Labels kvmbus exports (docs/metrics.md), plus `le` of histogram buckets.
const KVMBUS_LABELS: &[&str] = &[
    "vm",
    "vcpu",
    "reason",
    "space",
    "dir",
    "mechanism",
    "device",
    "bdf",
    "bar",
    "kind",
    "cap",
    "offset",
    "vector",
    "gsi",
    "source",
    "dest",
    "masked",
    "nr",
    "path",
    "status",
    "state",
    "vendor_id",
    "device_id",
    "class",
    "le",
];

/// A Prometheus server and the selector that picks VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromQuery {
    /// `http://host:port` (a path prefix is kept, for servers behind a proxy).
    pub base: String,
    /// Label matchers without braces, e.g. `host=~"a|b"`; empty for all.
    pub matchers: String,
}

impl PromQuery {
    /// Checks `url` and `selector` (`{...}` of label matchers, or empty).
    pub fn new(url: &str, selector: Option<&str>) -> Result<PromQuery> {
        let base = url.trim_end_matches('/');
        let parsed = http_client::parse_url(&format!("{base}/"))?;
        if parsed.authority.is_empty() {
            return Err(Error::BadUrl(url.to_owned()));
        }
        let matchers = match selector.map(str::trim) {
            None | Some("") => String::new(),
            Some(s) => s
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|s| s.trim().trim_end_matches(',').to_owned())
                .filter(|m| !m.contains(['{', '}']))
                .ok_or_else(|| Error::BadSelector(s.to_owned()))?,
        };
        let base = if base.contains("://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        Ok(PromQuery { base, matchers })
    }

    /// The PromQL selector of every kvmbus series of the chosen VMs.
    pub fn selector(&self) -> String {
        if self.matchers.is_empty() {
            r#"{__name__=~"kvmbus_.+"}"#.to_owned()
        } else {
            format!(r#"{{__name__=~"kvmbus_.+",{}}}"#, self.matchers)
        }
    }

    /// The instant-query URL for `expr`.
    pub fn url(&self, expr: &str) -> String {
        format!("{}/api/v1/query?query={}", self.base, percent_encode(expr))
    }

    /// Runs the query and converts the answer.
    pub fn fetch(&self) -> Result<Snapshot> {
        let body = http_client::get(&self.url(&self.selector()))?;
        let samples = parse_vector(&body)?;
        Ok(Snapshot::from_samples(samples))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Samples of an instant-query answer (`resultType` `vector`), labels reduced to kvmbus's.
pub(crate) fn parse_vector(body: &str) -> Result<Vec<Sample>> {
    let bad = |msg: String| Error::Prometheus(msg);
    let v: Value = serde_json::from_str(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    if v["status"] != "success" {
        let msg = v["error"].as_str().unwrap_or("status is not success");
        return Err(bad(format!("query failed: {msg}")));
    }
    if v["data"]["resultType"] != "vector" {
        return Err(bad("answer is not an instant vector".into()));
    }
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| bad("no result array".into()))?;
    // Which instances each VM name appears on, to tell same-named VMs apart.
    let mut instances: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in result {
        if let (Some(vm), Some(inst)) =
            (r["metric"]["vm"].as_str(), r["metric"]["instance"].as_str())
        {
            instances.entry(vm).or_default().insert(inst);
        }
    }
    let mut out = Vec::with_capacity(result.len());
    for r in result {
        let metric = r["metric"]
            .as_object()
            .ok_or_else(|| bad("a result has no metric".into()))?;
        let name = metric
            .get("__name__")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a result has no __name__".into()))?;
        let value = r["value"][1]
            .as_str()
            .and_then(parse_value)
            .ok_or_else(|| bad(format!("bad value for {name}")))?;
        let mut labels: Vec<(String, String)> = metric
            .iter()
            .filter(|(k, _)| KVMBUS_LABELS.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        let instance = metric.get("instance").and_then(Value::as_str);
        for (k, v) in &mut labels {
            if k == "vm" && instances.get(v.as_str()).is_some_and(|s| s.len() > 1) {
                *v = format!("{v}@{}", instance.unwrap_or("?"));
            }
        }
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_selectors_and_urls() {
        let q = PromQuery::new("127.0.0.1:9090/", None).unwrap();
        assert_eq!(q.base, "http://127.0.0.1:9090");
        assert_eq!(q.selector(), r#"{__name__=~"kvmbus_.+"}"#);
        let q = PromQuery::new("http://p:9090", Some(r#"{host=~"a|b", }"#)).unwrap();
        assert_eq!(q.selector(), r#"{__name__=~"kvmbus_.+",host=~"a|b"}"#);
        assert_eq!(
            q.url("{a=\"b c\"}"),
            "http://p:9090/api/v1/query?query=%7Ba%3D%22b%20c%22%7D"
        );
        for bad in [r#"host="a""#, "{a=\"}\"", "{"] {
            assert!(
                matches!(PromQuery::new("p:1", Some(bad)), Err(Error::BadSelector(_))),
                "{bad}"
            );
        }
        assert!(PromQuery::new("https://p:1", None).is_err());
    }

    #[test]
    fn converts_an_instant_vector() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
          {"metric":{"__name__":"kvmbus_vcpu_exits_total","vm":"a","vcpu":"0","reason":"io_out",
             "instance":"h1:9464","job":"kvmbus","vcpus":"2","exported_vm":"a"},"value":[1.5,"42"]},
          {"metric":{"__name__":"kvmbus_vm_vcpus","vm":"b","instance":"h1:9464"},"value":[1.5,"2"]},
          {"metric":{"__name__":"kvmbus_vm_vcpus","vm":"b","instance":"h2:9464"},"value":[1.5,"4"]},
          {"metric":{"__name__":"kvmbus_hypercall_seconds_bucket","vm":"a","le":"+Inf"},"value":[1.5,"+Inf"]}
        ]}}"#;
        let s = Snapshot::from_samples(parse_vector(body).unwrap());
        assert_eq!(
            s.get(
                "kvmbus_vcpu_exits_total",
                &[("vm", "a"), ("vcpu", "0"), ("reason", "io_out")]
            ),
            Some(42.0),
            "target labels dropped"
        );
        assert_eq!(s.get("kvmbus_vm_vcpus", &[("vm", "b@h2:9464")]), Some(4.0));
        assert_eq!(s.vms(), vec!["a", "b@h1:9464", "b@h2:9464"]);
        assert_eq!(s.histograms("kvmbus_hypercall_seconds").len(), 1);
    }

    #[test]
    fn fetches_from_a_server() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The whole request head, as a server reads it before answering.
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early: {req:?}");
                req.extend_from_slice(&buf[..n]);
            }
            let n = req.len();
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[
              {"metric":{"__name__":"kvmbus_vm_vcpus","vm":"a","instance":"h:1"},"value":[1,"3"]}]}}"#;
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let q = PromQuery::new(&format!("http://{addr}"), Some(r#"{job="kvmbus"}"#)).unwrap();
        let snap = q.fetch().unwrap();
        assert_eq!(snap.get("kvmbus_vm_vcpus", &[("vm", "a")]), Some(3.0));
        let request = server.join().unwrap();
        assert!(
            request.starts_with(
                "GET /api/v1/query?query=%7B__name__%3D~%22kvmbus_.%2B%22%2Cjob%3D%22kvmbus%22%7D "
            ),
            "{request}"
        );
    }

    #[test]
    fn reports_errors() {
        for (body, want) in [
            ("nope", "not JSON"),
            (
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
                "parse error",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "instant vector",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"x"},"value":[1,"z"]}]}}"#,
                "bad value",
            ),
        ] {
            let e = parse_vector(body).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_vector(empty).unwrap().is_empty());
    }
}
