//! The monitor from outside: promtool and a real Prometheus server against the running
//! demo VM, and tmux driving the dashboard as a person does.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const T: Duration = Duration::from_secs(60);

/// Starts the demo (2 vCPUs) serving metrics on a free port; kills it on drop.
struct Demo {
    child: Child,
    port: u16,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        let port = free_port();
        let cfg = config(dir, "demo", &builtin("demo", 2, ""));
        let mut child = kvmbus()
            .arg("run")
            .arg(&cfg)
            .args(["--metrics", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_output(&mut child, "demo: t=1s", T);
        Demo { child, port }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", url])
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    assert!(out.status.success(), "GET {url} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn promtool_accepts_a_live_scrape_of_the_demo() {
    if !kvm_or_skip("promtool_accepts_a_live_scrape_of_the_demo") {
        return;
    }
    let d = scratch("promtool");
    let demo = Demo::start(&d);
    std::thread::sleep(Duration::from_millis(1500)); // one KVM stats sample at least
    let body = http_get(&format!("http://127.0.0.1:{}/metrics", demo.port));
    for name in [
        "kvmbus_vcpu_exits_total{",
        "kvmbus_vcpu_exit_handle_seconds_bucket{",
        "kvmbus_vm_state{",
        "kvmbus_vm_uptime_seconds{",
        "kvmbus_kvm_vcpu_exits_total{",
        "kvmbus_pci_function_info{",
    ] {
        assert!(body.contains(name), "{name} missing from the scrape");
    }
    let file = d.join("scrape.txt");
    std::fs::write(&file, &body).unwrap();
    assert_promtool_accepts(&file);
}

/// `promtool check metrics` accepts the exposition in `file`.
fn assert_promtool_accepts(file: &std::path::Path) {
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .expect("promtool (package prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_scrapes_the_demo_and_exit_rate_is_positive() {
    if !kvm_or_skip("prometheus_scrapes_the_demo_and_exit_rate_is_positive") {
        return;
    }
    let d = scratch("prom");
    let demo = Demo::start(&d);
    let web = free_port();
    let yml = d.join("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kvmbus\n    \
             static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            demo.port
        ),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", yml.display()))
        .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/setup.sh installs it)");
    let query = format!(
        "http://127.0.0.1:{web}/api/v1/query?query=sum(rate(kvmbus_vcpu_exits_total%5B5s%5D))"
    );
    let start = Instant::now();
    let mut last = String::new();
    let value = loop {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = prom.kill();
            panic!("no positive rate from Prometheus; last answer: {last}");
        }
        std::thread::sleep(Duration::from_millis(500));
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", &query])
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[t,"123.4"]}]}}
        if let Some(v) = last
            .split("\"value\":[")
            .nth(1)
            .and_then(|r| r.split('"').nth(1))
            .and_then(|v| v.parse::<f64>().ok())
        {
            if v > 0.0 {
                break v;
            }
        }
    };
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(
        value > 1000.0,
        "the demo exits >1000 times a second: {value}"
    );
}

#[test]
fn a_taken_metrics_port_is_an_error_at_start_up() {
    let d = scratch("taken");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = run_with_deadline(
        kvmbus()
            .arg("run")
            .arg(config(&d, "h", &builtin("hello", 1, "")))
            .args(["--metrics", &format!("127.0.0.1:{port}")]),
        T,
    );
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(stdout(&out).is_empty(), "the guest must not have run");
}

#[test]
fn metrics_out_holds_the_final_counts_of_a_finished_run() {
    if !kvm_or_skip("metrics_out_holds_the_final_counts_of_a_finished_run") {
        return;
    }
    let d = scratch("metrics-out");
    let file = d.join("final.prom");
    let out = run_with_deadline(
        kvmbus()
            .arg("run")
            .arg(config(&d, "h", &builtin("hello", 1, "")))
            .arg("--metrics-out")
            .arg(&file),
        T,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).expect("the metrics file");
    assert!(
        text.contains("kvmbus_vm_state{vm=\"demo\",state=\"stopped\"} 1"),
        "the file is written after the VM stopped:\n{text}"
    );
    // Every byte the guest printed was a write to the serial port: one I/O exit at least.
    let io_out: f64 = text
        .lines()
        .find(|l| l.starts_with("kvmbus_vcpu_exits_total{") && l.contains("reason=\"io_out\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no io_out exit count in:\n{text}"));
    let printed = stdout(&out).len() as f64;
    assert!(
        printed > 0.0 && io_out >= printed,
        "{io_out} io_out exits for {printed} bytes printed"
    );
    assert_promtool_accepts(&file);
}

#[test]
fn an_unwritable_metrics_out_is_an_error_before_the_guest_runs() {
    let d = scratch("metrics-out-bad");
    let file = d.join("no-such-dir").join("final.prom");
    let out = run_with_deadline(
        kvmbus()
            .arg("run")
            .arg(config(&d, "h", &builtin("hello", 1, "")))
            .arg("--metrics-out")
            .arg(&file),
        T,
    );
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(stdout(&out).is_empty(), "the guest must not have run");
}

/// A tmux session running `cmd` at 80x24 that stays around after the command exits,
/// on a tmux server of its own (`-L`): sessions of tests running at once never share
/// (or race to start) one server.
pub(crate) struct Tmux(String);

impl Tmux {
    pub(crate) fn start(name: &str, cmd: &str) -> Tmux {
        let s = format!("kvmbus-it-{}-{name}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "-L",
                &s,
                "new-session",
                "-d",
                "-s",
                &s,
                "-x",
                "80",
                "-y",
                "24",
                cmd,
            ])
            .status()
            .expect("tmux (scripts/setup.sh installs it)")
            .success();
        assert!(ok);
        let _ = Command::new("tmux")
            .args(["-L", &s, "set-option", "-t", &s, "remain-on-exit", "on"])
            .status();
        Tmux(s)
    }
    fn capture(&self) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0, "capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.0, "send-keys", "-t", &self.0])
            .args(keys);
        assert!(c.status().unwrap().success());
    }
    fn display(&self, fmt: &str) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.0, "display", "-p", "-t", &self.0, fmt])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
    /// Waits until the screen contains `needle`.
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.capture();
            if s.contains(needle) {
                return s;
            }
            assert!(
                start.elapsed() < T,
                "'{needle}' never appeared; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    /// Like [`Tmux::start`], with `cmd` wrapped so that the shell prints its exit status
    /// when it ends (and keeps the pane): [`Tmux::wait_dead`] reads it from the screen.
    /// tmux 3.3a's own `pane_dead_status` sometimes never appears (seen in CI: the pty
    /// closed, no kvmbus process was left, and the status stayed empty for a minute).
    pub(crate) fn start_reporting(name: &str, cmd: &str) -> Tmux {
        Tmux::start(name, &format!("{cmd}; echo \"{EXIT_MARK}$?\"; sleep 600"))
    }
    /// Waits for the command started by [`Tmux::start_reporting`] to end; its exit
    /// status and whether the alternate screen is still on, as "status alternate_on".
    pub(crate) fn wait_dead(&self) -> String {
        let screen = self.wait_for(EXIT_MARK);
        let status = number_after(&screen, EXIT_MARK).expect("a numeric exit status");
        format!("{status} {}", self.display("#{alternate_on}"))
    }
}

/// What the wrapper of [`Tmux::start_reporting`] prints before the command's status.
const EXIT_MARK: &str = "kvmbus-test-exit-status=";

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

/// The first number after `label` on the screen.
fn number_after(screen: &str, label: &str) -> Option<u64> {
    let rest = &screen[screen.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn drive_dashboard(t: &Tmux) {
    let first = t.wait_for("exits user");
    std::thread::sleep(Duration::from_millis(2500));
    let second = t.capture();
    let (a, b) = (
        number_after(&first, "exits user").unwrap_or(0),
        number_after(&second, "exits user").unwrap_or(0),
    );
    assert!(
        a != b && b > 0,
        "numbers did not change:\n{first}\n{second}"
    );
    assert!(
        second.lines().count() <= 24 && second.contains("q quit"),
        "{second}"
    );
    t.keys(&["Tab"]);
    t.wait_for("Reason");
    t.keys(&["h"]);
    t.wait_for("toggle this help");
    t.keys(&["Escape"]);
    t.keys(&["p"]);
    t.wait_for("PAUSED");
    t.keys(&["p"]);
    t.keys(&["f"]);
    t.keys(&["io", "Enter"]);
    let filtered = t.wait_for("filter \"io\"");
    assert!(
        !filtered.contains("halt"),
        "filter io still shows halt:\n{filtered}"
    );
    t.keys(&["f", "BSpace", "BSpace", "Enter"]);
    t.keys(&["4"]);
    t.wait_for("00:00.0");
}

#[test]
fn tmux_drives_run_tui() {
    if !kvm_or_skip("tmux_drives_run_tui") {
        return;
    }
    let d = scratch("tui");
    let serial = d.join("serial.txt");
    let cfg = config(
        &d,
        "demo",
        &format!(
            "{}[serial]\noutput = \"file:{}\"\n",
            builtin("demo", 2, ""),
            serial.display()
        ),
    );
    let t = Tmux::start_reporting(
        "tui",
        &format!(
            "{} run {} --tui",
            env!("CARGO_BIN_EXE_kvmbus"),
            cfg.display()
        ),
    );
    drive_dashboard(&t);
    t.keys(&["q"]);
    // Quitting the dashboard stops the VM like Ctrl-C and leaves the normal screen.
    assert_eq!(t.wait_dead(), "130 0");
    // The guest kept running while the dashboard drew, its output in the serial file.
    let out = std::fs::read_to_string(&serial).unwrap();
    assert!(out.contains("demo: t=3s cpus=2"), "{out}");
}

#[test]
fn tmux_drives_top_attached_to_a_running_vm() {
    if !kvm_or_skip("tmux_drives_top_attached_to_a_running_vm") {
        return;
    }
    let d = scratch("top");
    let demo = Demo::start(&d);
    let t = Tmux::start_reporting(
        "top",
        &format!(
            "{} top 127.0.0.1:{}",
            env!("CARGO_BIN_EXE_kvmbus"),
            demo.port
        ),
    );
    drive_dashboard(&t);
    t.keys(&["q"]);
    assert_eq!(t.wait_dead(), "0 0");
    // The VM kept running: `top --once` still sees it.
    let out = run_with_deadline(
        kvmbus().args(["top", "--once", &format!("127.0.0.1:{}", demo.port)]),
        T,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("vm demo  state running"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn top_exits_when_its_terminal_goes_away() {
    if !kvm_or_skip("top_exits_when_its_terminal_goes_away") {
        return;
    }
    let d = scratch("tophup");
    let demo = Demo::start(&d);
    let t = Tmux::start(
        "tophup",
        &format!(
            "{} top 127.0.0.1:{}",
            env!("CARGO_BIN_EXE_kvmbus"),
            demo.port
        ),
    );
    t.wait_for("exits user");
    let pid: i32 = t.display("#{pane_pid}").parse().unwrap();
    drop(t); // kill-session: the pty goes away, the process gets SIGHUP
    let start = Instant::now();
    // SAFETY: kill with signal 0 only checks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "kvmbus top outlived its terminal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
