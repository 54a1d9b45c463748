//! Drives the dashboard in a real terminal: tmux runs this test binary again as a child
//! (`MONITOR_TUI_CHILD` set) that shows the dashboard over a synthetic in-process source;
//! the parent sends keys, resizes the window and reads the screen, then checks the
//! terminal is restored after `q` and after a panic. Golden captures of every view at
//! 80x24 and 200x50 live in `tests/golden/` (numbers masked; `UPDATE_GOLDEN=1` rewrites
//! them).

#[path = "tmux/fleet_text.rs"]
mod fleet_text;

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
    let golden = mode == "golden";
    let source = Source::in_process(move || {
        let n = step.fetch_add(1, Ordering::SeqCst);
        assert!(!panics || n < 3, "synthetic panic in the fetcher");
        if golden {
            fleet_text::text(n)
        } else {
            text(n)
        }
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
        Session::start_sized(mode, 80, 24)
    }

    fn start_sized(mode: &str, w: u16, h: u16) -> Session {
        let name = format!("monitor-tui-{}-{mode}-{w}x{h}", std::process::id());
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
                &w.to_string(),
                "-y",
                &h.to_string(),
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
        t.lines()
            .any(|l| l.contains("exits user") && !l.contains("-/s") && l.contains("/s"))
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

/// The screen with changing figures masked: a word that is a number (with a unit such
/// as `µs` or `/s`, a `(`, or a `name:` prefix), or a time `h:mm:ss`, becomes `#`; sparkline
/// bars (heights follow timing) are dropped; runs of spaces collapse, since numbers change
/// width.
fn mask(screen: &str) -> String {
    let mut out = String::new();
    for line in screen.lines() {
        let mut words = Vec::new();
        for w in line.split(' ').filter(|w| !w.is_empty()) {
            let bars: String = w
                .chars()
                .map(|c| {
                    if ('▁'..='█').contains(&c) {
                        '▆'
                    } else {
                        c
                    }
                })
                .collect();
            words.push(mask_word(&bars));
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

fn mask_word(w: &str) -> String {
    let (head, rest) = match w.rsplit_once(':') {
        Some((h, r)) if h.chars().any(|c| c.is_ascii_alphabetic()) => (format!("{h}:"), r),
        _ => (String::new(), w),
    };
    let body = rest.trim_start_matches('(');
    let lead = &rest[..rest.len() - body.len()];
    let unit_at = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(unit_at);
    let units = ["", "µs", "ms", "ns", "s", "/s", "/s)", ")", "M", "G", "T"];
    if !num.is_empty() && num.starts_with(|c: char| c.is_ascii_digit()) && units.contains(&unit) {
        format!("{head}{lead}#{unit}")
    } else {
        w.to_owned()
    }
}

fn golden(name: &str, screen: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    let masked = mask(screen);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &masked).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        masked,
        want,
        "{name} differs from {}; screen:\n{screen}",
        path.display()
    );
}

/// What a person must never see on any view.
fn assert_clean(name: &str, screen: &str) {
    for bad in ["{ ", "Some(", "None", "prefetchable", "GSI none", "-1 "] {
        assert!(
            !screen.contains(bad),
            "{name}: {bad:?} on screen:\n{screen}"
        );
    }
}

fn views_match_golden(w: u16, h: u16) {
    let s = Session::start_sized("golden", w, h);
    // Two samples give rates; then pause so the screen holds still.
    s.wait_for("rates", |t| {
        t.contains("exits user") && t.contains("/s") && !t.contains("    -/s")
    });
    s.keys(&["p"]);
    s.wait_for("pause", |t| t.contains("PAUSED"));
    let views: [(&str, &str, &str); 5] = [
        ("1", "overview", "top exits"),
        ("2", "exits", "Reason"),
        ("3", "interrupts", "GSI"),
        ("4", "pci", "class"),
        ("5", "hypercalls", "p99"),
    ];
    for (key, view, marker) in views {
        s.keys(&[key]);
        // Paused, the screen settles once the view is drawn: two equal captures in a row.
        let mut t = s.wait_for(view, |t| {
            t.contains(marker) && t.lines().count() == h as usize
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let again = s.screen();
            if again == t {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{view}: the paused screen keeps changing"
            );
            t = again;
        }
        assert!(
            t.lines().all(|l| l.chars().count() <= w as usize),
            "{view}: a line wider than the terminal"
        );
        assert_clean(view, &t);
        golden(&format!("{view}-{w}x{h}"), &t);
    }
    s.keys(&["q"]);
    s.wait_for("exit", |t| t.contains("EXITED"));
}

#[test]
fn tmux_golden_views_80x24() {
    if !have_tmux("tmux_golden_views_80x24") {
        return;
    }
    views_match_golden(80, 24);
}

#[test]
fn tmux_golden_views_200x50() {
    if !have_tmux("tmux_golden_views_200x50") {
        return;
    }
    views_match_golden(200, 50);
}
