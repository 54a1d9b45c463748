//! The fleet view end to end: two kvmbus VMs registered for Prometheus' file_sd, a real
//! Prometheus server scraping them (with docs/prometheus/recording.yml loaded), and
//! `kvmbus top --prometheus --once` reading both back through PromQL; a VM that exits
//! disappears. Every query of docs/prometheus/grafana-dashboard.json returns data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(90);

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/prometheus")
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo guest with the interrupt test device and the hypercall gateway, as
/// configs/demo.toml, named `name`.
fn demo_config(name: &str) -> String {
    format!(
        "[vm]\nname = \"{name}\"\nvcpus = 2\nmemory_mib = 64\n\
         [boot]\nkind = \"builtin\"\nimage = \"builtin:demo\"\n\
         [serial]\noutput = \"none\"\n\
         [[device]]\nkind = \"irq-test\"\nbdf = \"00:03.0\"\n\
         [[device]]\nkind = \"hypercall-gateway\"\nbdf = \"00:04.0\"\nqueues = 2\nmsix_vectors = 2\n\
         [[hypercall.service]]\nnr = 0x100\nkind = \"kv\"\n"
    )
}

/// Starts VM `name` serving metrics on a free port, registered in `sd` by kvmbus itself
/// (`--sd-dir`); returns once its SD file is there, with the target it names.
/// `alpha` registers through `[metrics] sd_dir` in its configuration, others through
/// `--sd-dir`.
fn start_vm(dir: &Path, sd: &Path, name: &str) -> (Proc, String) {
    let port = free_port();
    let mut cmd = kvmbus();
    cmd.arg("run");
    if name == "alpha" {
        let body = format!(
            "{}[metrics]\nlisten = \"127.0.0.1:{port}\"\nsd_dir = \"{}\"\n",
            demo_config(name),
            sd.display()
        );
        cmd.arg(config(dir, name, &body));
    } else {
        cmd.arg(config(dir, name, &demo_config(name)))
            .args(["--metrics", &format!("127.0.0.1:{port}")])
            .arg("--sd-dir")
            .arg(sd);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = sd.join(format!("{name}.json"));
    let text = wait(Instant::now() + LIMIT, "the SD file", || {
        let t = std::fs::read_to_string(&file).ok();
        (t.clone(), String::new())
    });
    let v: serde_json::Value = serde_json::from_str(&text).expect("file_sd JSON");
    assert_eq!(v[0]["labels"]["vm"], name);
    assert_eq!(v[0]["labels"]["vcpus"], "2");
    assert!(v[0]["labels"]["kvmbus_version"].is_string());
    let target = v[0]["targets"][0].as_str().unwrap().to_owned();
    assert_eq!(target, format!("127.0.0.1:{port}"));
    (Proc(child), target)
}

fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", url])
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn top_once(web: u16) -> String {
    let out = run_with_deadline(
        kvmbus().args([
            "top",
            "--prometheus",
            &format!("http://127.0.0.1:{web}"),
            "--match",
            r#"{job="kvmbus"}"#,
            "--once",
        ]),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it returns `Some`, panicking with `what` and the last value at `deadline`.
fn wait<T>(deadline: Instant, what: &str, mut f: impl FnMut() -> (Option<T>, String)) -> T {
    loop {
        let (v, last) = f();
        if let Some(v) = v {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {what}; last:\n{last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query strings of every panel target in the Grafana dashboard, `$vm` as "all".
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(docs().join("grafana-dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = v["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "a fuller dashboard");
    let mut out = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            out.push(expr.replace("$vm", ".+"));
        }
    }
    out
}

#[test]
fn prometheus_fleet_view_over_file_sd() {
    if !kvm_or_skip("prometheus_fleet_view_over_file_sd") {
        return;
    }
    let d = scratch("fleet");
    let sd = d.join("sd");
    std::fs::create_dir_all(&sd).unwrap();
    let (_alpha, _) = start_vm(&d, &sd, "alpha");
    let (mut beta, _) = start_vm(&d, &sd, "beta");
    let web = free_port();
    let yml = d.join("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: kvmbus\n    file_sd_configs:\n      \
             - files: ['{}/*.json']\n        refresh_interval: 1s\n",
            docs().join("recording.yml").display(),
            sd.display()
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", yml.display()))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (scripts/setup.sh installs it)"),
    );
    let deadline = Instant::now() + LIMIT;

    // Both VMs, with figures, through PromQL.
    let text = wait(deadline, "top --prometheus shows both VMs", || {
        let t = top_once(web);
        // Rates need both scrapes of `--once` to find the series.
        let rated = t
            .lines()
            .filter(|l| l.trim_start().starts_with("io "))
            .filter(|l| {
                l.split_whitespace()
                    .nth(2)
                    .and_then(|r| r.parse::<f64>().ok())
                    .is_some_and(|r| r > 0.0)
            })
            .count();
        let ok = t.contains("vm alpha  state running")
            && t.contains("vm beta  state running")
            && rated == 2;
        (ok.then(|| t.clone()), t)
    });
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("hypercall-gw") || l.contains("irq-test")),
        "interrupt rows:\n{text}"
    );

    // Every dashboard query returns data from this server (recording rules included).
    for q in dashboard_queries() {
        let url = format!("http://127.0.0.1:{web}/api/v1/query?query={}", encode(&q));
        wait(deadline, &format!("data for {q}"), || {
            let body = curl(&url);
            let ok = body.contains("\"status\":\"success\"") && body.contains("\"metric\":");
            (ok.then_some(()), body)
        });
    }

    // beta exits (SIGTERM) and kvmbus removes its SD file; it disappears, alpha stays.
    let pid = beta.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = beta.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "SIGTERM exit status");
    assert!(!sd.join("beta.json").exists(), "SD file left after SIGTERM");
    assert!(sd.join("alpha.json").exists());
    wait(deadline, "beta disappears", || {
        let t = top_once(web);
        let ok = t.contains("vm alpha  state running") && !t.contains("vm beta");
        (ok.then_some(()), t)
    });
}

/// Reads `child`'s stdout lines until `n` have arrived (or panics after `limit`).
fn read_lines(child: &mut Child, n: usize, limit: Duration) -> Vec<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    while lines.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(l)) => lines.push(l),
            _ => panic!("only {} lines within {limit:?}: {lines:?}", lines.len()),
        }
    }
    lines
}

#[test]
fn top_csv_logs_per_interval_increases_of_a_running_vm() {
    if !kvm_or_skip("top_csv_logs_per_interval_increases_of_a_running_vm") {
        return;
    }
    let d = scratch("top-csv");
    let sd = d.join("sd");
    std::fs::create_dir_all(&sd).unwrap();
    let (_vm, target) = start_vm(&d, &sd, "gamma");
    let mut top = Proc(
        kvmbus()
            .args(["top", &target, "--csv", "--refresh", "0.5", "-z"])
            .args(["--fields", r"\.(exits|exits_io|irqs)$"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = read_lines(&mut top.0, 4, LIMIT);
    assert_eq!(lines[0], "timestamp,gamma.exits,gamma.exits_io,gamma.irqs");
    // Lines come once the endpoint answers and the guest runs: increases are positive.
    let last: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(last.len(), 4, "{lines:?}");
    assert_eq!(
        last[0].len(),
        19,
        "timestamp YYYY-MM-DD HH:MM:SS: {lines:?}"
    );
    let exits: u64 = last[1].parse().unwrap();
    let io: u64 = last[2].parse().unwrap();
    assert!(exits >= io && io > 0, "{lines:?}");
}

/// Runs `guest` with `--sd-dir` to its end; returns the exit status and stderr.
fn run_registered(d: &Path, sd: &Path, guest: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = kvmbus();
    cmd.arg("run")
        .arg(config(d, guest, &builtin(guest, 1, "")))
        .arg("--sd-dir")
        .arg(sd)
        .args(extra);
    let out = run_with_deadline(&mut cmd, LIMIT);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sd_files(sd: &Path) -> Vec<String> {
    std::fs::read_dir(sd)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sd_file_goes_on_guest_exit_fault_and_errors() {
    if !kvm_or_skip("sd_file_goes_on_guest_exit_fault_and_errors") {
        return;
    }
    let d = scratch("sd-exits");
    let sd = d.join("sd");
    std::fs::create_dir_all(&sd).unwrap();
    let metrics = ["--metrics", "127.0.0.1:0"];
    // The guest exits by itself (debug-exit port).
    let (code, err) = run_registered(&d, &sd, "hello", &metrics);
    assert!(code.is_some_and(|c| c % 2 == 1), "{code:?} {err}");
    assert!(
        sd_files(&sd).is_empty(),
        "after guest exit: {:?}",
        sd_files(&sd)
    );
    // The guest faults (triple fault, exit 4).
    let (code, err) = run_registered(&d, &sd, "triple-fault", &metrics);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        sd_files(&sd).is_empty(),
        "after a fault: {:?}",
        sd_files(&sd)
    );
    // No endpoint to register: a configuration error before the guest runs.
    let (code, err) = run_registered(&d, &sd, "hello", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--sd-dir needs a metrics endpoint"), "{err}");
    // The same from the configuration: the error is placed at the key.
    let body = format!(
        "{}[metrics]\nsd_dir = \"{}\"\n",
        builtin("hello", 1, ""),
        sd.display()
    );
    let out = run_with_deadline(kvmbus().arg("run").arg(config(&d, "cfg", &body)), LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cfg.toml:")
            && err.contains(":10: key 'sd_dir' in [metrics] needs a metrics endpoint"),
        "{err}"
    );
    // An SD directory that does not exist: a VMM error naming the file.
    let missing = d.join("missing");
    let (code, err) = run_registered(&d, &missing, "hello", &metrics);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("missing/demo.json"), "{err}");
    assert!(sd_files(&sd).is_empty());
}
