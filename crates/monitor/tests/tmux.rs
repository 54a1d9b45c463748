//! Drives the dashboard in a real terminal: tmux runs this test binary again as a child
//! (`MONITOR_TUI_CHILD` set) that shows the dashboard over a synthetic in-process source;
//! the parent sends keys, resizes the window and reads the screen, then checks the
//! terminal is restored after `q` and after a panic.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor::{run_tui, Source, TuiOptions};

const CHILD: &str = "MONITOR_TUI_CHILD";

fn text(step: u64) -> String {
    format!(
        "kvmbus_vm_state{{vm=\"demo\",state=\"running\"}} 1\n\
         kvmbus_vm_uptime_seconds{{vm=\"demo\"}} {step}\n\
         kvmbus_vcpu_exits_total{{vm=\"demo\",vcpu=\"0\",reason=\"io_out\"}} {}\n\
         kvmbus_kvm_vcpu_exits_total{{vm=\"demo\",vcpu=\"0\"}} {}\n\
         kvmbus_kvm_vcpu_halt_exits_total{{vm=\"demo\",vcpu=\"0\"}} {}\n",
        step * 100,
        step * 900,
        step * 7
    )
}

/// The child: not a test of its own, it returns at once unless tmux started it.
#[test]
fn child_dashboard() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let step = Arc::new(AtomicU64::new(0));
    let panics = mode == "panic";
    let source = Source::in_process(move || {
        let n = step.fetch_add(1, Ordering::SeqCst);
        assert!(!panics || n < 3, "synthetic panic in the fetcher");
        text(n)
    });
    let opts = TuiOptions {
        refresh: Duration::from_millis(200),
    };
    let stop = if mode == "signal" {
        monitor::stop_on_signals().unwrap()
    } else {
        crossbeam_channel::never()
    };
    let result = run_tui(source, opts, stop);
    println!("run_tui returned {result:?}");
}

struct Session(String);

impl Session {
    fn start(mode: &str) -> Session {
        let name = format!("monitor-tui-{}-{mode}", std::process::id());
        let exe = std::env::current_exe().unwrap();
        let cmd = format!(
            "env {CHILD}={mode} RUST_BACKTRACE=0 {} child_dashboard --exact --nocapture --test-threads=1; \
             stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; echo EXITED; sleep 60",
            exe.display()
        );
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "80",
                "-y",
                "24",
                &cmd,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session failed");
        Session(name)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.0])
    }

    fn history(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-100", "-t", &self.0])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn alternate(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", &self.0, "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn have_tmux(test: &str) -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIP (no tmux): {test}");
    }
    ok
}

#[test]
fn tmux_drives_the_dashboard() {
    if !have_tmux("tmux_drives_the_dashboard") {
        return;
    }
    let s = Session::start("run");
    s.wait_for("the overview", |t| {
        t.contains("kvmbus top") && t.contains("exits user")
    });
    assert!(s.alternate(), "the dashboard uses the alternate screen");
    s.wait_for("rates", |t| {
        t.contains("exits user 500/s") || t.contains("exits user 5")
    });
    s.keys(&["Tab"]);
    s.wait_for("the exits view", |t| {
        t.contains("Reason") && t.contains("halt")
    });
    s.keys(&["f", "h", "a", "l", "t", "Enter"]);
    let t = s.wait_for("the filter", |t| t.contains("filter \"halt\""));
    assert!(!t.lines().any(|l| l.contains(" io ")), "{t}");
    s.tmux(&["resize-window", "-t", &s.0, "-x", "100", "-y", "30"]);
    let t = s.wait_for("the resize", |t| {
        t.lines().count() >= 30 && t.lines().nth(29).is_some_and(|l| l.contains("q quit"))
    });
    assert!(t.lines().next().unwrap().contains("kvmbus top"));
    s.keys(&["p"]);
    s.wait_for("pause", |t| t.contains("PAUSED"));
    s.keys(&["q"]);
    let t = s.wait_for("exit", |t| t.contains("EXITED"));
    assert!(!s.alternate(), "alternate screen left:\n{t}");
    assert!(t.lines().any(|l| l == "icanon"), "raw mode left:\n{t}");
    assert!(s.history().contains("run_tui returned Ok(())"));
}

#[test]
fn tmux_panic_restores_the_terminal() {
    if !have_tmux("tmux_panic_restores_the_terminal") {
        return;
    }
    let s = Session::start("panic");
    let t = s.wait_for("exit after the panic", |t| t.contains("EXITED"));
    assert!(!s.alternate(), "alternate screen left:\n{t}");
    assert!(t.lines().any(|l| l == "icanon"), "raw mode left:\n{t}");
    let h = s.history();
    assert!(h.contains("synthetic panic"), "{h}");
    assert!(h.contains("run_tui returned Err(Panicked)"), "{h}");
}

#[test]
fn tmux_sigterm_restores_the_terminal() {
    if !have_tmux("tmux_sigterm_restores_the_terminal") {
        return;
    }
    let s = Session::start("signal");
    s.wait_for("the overview", |t| t.contains("kvmbus top"));
    let shell = s.tmux(&["display-message", "-p", "-t", &s.0, "#{pane_pid}"]);
    let out = Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .unwrap();
    let child = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!child.is_empty(), "no child of the pane shell {shell}");
    assert!(Command::new("kill")
        .args(["-TERM", &child])
        .status()
        .unwrap()
        .success());
    let t = s.wait_for("exit after SIGTERM", |t| t.contains("EXITED"));
    assert!(!s.alternate(), "alternate screen left:\n{t}");
    assert!(t.lines().any(|l| l == "icanon"), "raw mode left:\n{t}");
    assert!(s.history().contains("run_tui returned Ok(())"));
}
