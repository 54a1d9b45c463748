//! The exporter against real consumers: promtool's linter on a live scrape, and a real
//! Prometheus server scraping it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusRecorder;
use monitor::names::*;
use monitor::{Exporter, Kind, CATALOG};

fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("SKIP (no {tool}): {test}");
    }
    ok
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// Records one series of every catalog metric (and KVM's stats when /dev/kvm exists).
fn record_everything(rec: &PrometheusRecorder) {
    metrics::with_local_recorder(rec, || {
        for &(name, kind, _) in CATALOG {
            let labels = [("vm", "demo"), ("vcpu", "0"), ("reason", "io_out")];
            match kind {
                Kind::Counter => metrics::counter!(name, &labels).increment(7),
                Kind::Gauge => metrics::gauge!(name, &labels).set(1.0),
                Kind::Histogram => metrics::histogram!(name, &labels).record(4e-6),
            }
        }
        metrics::counter!(HYPERCALLS, "vm" => "demo", "nr" => "1", "path" => "sync",
            "status" => "ok")
        .increment(1);
        if std::path::Path::new("/dev/kvm").exists() {
            let kvm = kvm_ioctls::Kvm::new().unwrap();
            let vm = kvm.create_vm().unwrap();
            let vcpu = vm.create_vcpu(0).unwrap();
            for (scope, fd) in [
                (monitor::StatsScope::Vm, monitor::get_stats_fd(&vm).unwrap()),
                (
                    monitor::StatsScope::Vcpu(0),
                    monitor::get_stats_fd(&vcpu).unwrap(),
                ),
            ] {
                monitor::KvmStats::new("demo", scope, fd)
                    .unwrap()
                    .sample()
                    .unwrap();
            }
        }
    });
}

#[test]
fn catalog_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .unwrap();
    for &(name, ..) in CATALOG {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} missing from docs/metrics.md"
        );
    }
    assert!(doc.contains(KVM_VCPU_PREFIX) && doc.contains(KVM_VM_PREFIX));
}

#[test]
fn promtool_accepts_a_live_scrape() {
    if !have("promtool", "promtool_accepts_a_live_scrape") {
        return;
    }
    let (exp, rec) = Exporter::unregistered(Some("127.0.0.1:0".parse().unwrap())).unwrap();
    record_everything(&rec);
    let body = get(exp.local_addr().unwrap(), "/metrics");
    assert!(
        body.contains("kvmbus_vcpu_exit_handle_seconds_bucket"),
        "{body}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n{body}"
    );
}

#[test]
fn prometheus_scrapes_the_exporter() {
    if !have("prometheus", "prometheus_scrapes_the_exporter") {
        return;
    }
    let (exp, rec) = Exporter::unregistered(Some("127.0.0.1:0".parse().unwrap())).unwrap();
    record_everything(&rec);
    let target = exp.local_addr().unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("monitor-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kvmbus\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let found = loop {
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut s) = TcpStream::connect(web) else {
            continue;
        };
        let q = "/api/v1/query?query=kvmbus_vcpu_exits_total";
        if write!(
            s,
            "GET {q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            continue;
        }
        last.clear();
        let _ = s.read_to_string(&mut last);
        if last.contains("\"vm\":\"demo\"") && last.contains("\"7\"") {
            break true;
        }
    };
    let _ = prom.kill();
    let _ = prom.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(found, "Prometheus never returned the series: {last}");
}
