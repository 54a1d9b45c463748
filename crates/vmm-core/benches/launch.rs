//! Launch, memory and idle cost, kvmbus vs a bare kvm-ioctls runner vs QEMU microvm:
//!
//! * launch: process start → first KVM_RUN (kvmbus and bare, from the processes' own
//!   `STARTUP` trace, see `vmm_core::startup`), and → the `hello` guest's exit (wall time
//!   until the launcher's wait4 returns), plus each start-up and shutdown step's cost;
//! * memory: peak RSS (wait4's ru_maxrss) of the same runs; every system runs the same
//!   guest, which touches the same pages, so the difference to the bare runner is what a
//!   VMM adds beyond the guest RAM it touched;
//! * idle: CPU time and wake-ups (context switches of every thread) per second of a VMM
//!   whose `idle` guest halts with interrupts off, over 10 s.
//!
//! Runs alternate (kvmbus, bare, QEMU, kvmbus, ...). `cargo bench -p vmm-core --bench
//! launch` (env `ROUNDS`, `IDLE_ROUNDS`, `IDLE_SECS`; `BENCH_SCALE=tiny` runs one quick
//! round of each).

#[path = "common/bare.rs"]
mod bare;
mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vmm_core::startup::monotonic_ns;

/// Values per system.
type Series = BTreeMap<&'static str, Vec<f64>>;

/// The environment variable that makes this binary the bare runner.
const BARE_ENV: &str = "KVMBUS_BENCH_BARE_RUNNER";

/// One launch: wall ms, peak RSS MB, the STARTUP marks (step, ms since T0).
struct Launch {
    wall_ms: f64,
    /// Until stderr closed: for kvmbus, when its background teardown process ended too.
    done_ms: f64,
    rss_mb: f64,
    marks: Vec<(String, f64)>,
}

// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn launch(cmd: &mut Command) -> Launch {
    let t0 = monotonic_ns();
    let mut child = cmd
        .env("KVMBUS_T0_NS", t0.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our unwaited child; `status` and `ru` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall_ms = (monotonic_ns() - t0) as f64 / 1e6;
    assert_eq!(pid, child.id() as i32, "wait4");
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let done_ms = (monotonic_ns() - t0) as f64 / 1e6;
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1,
        "{cmd:?} ended with status {status:#x}:\n{out}\n{err}"
    );
    assert!(
        out.contains("Hello from a kvmbus guest!"),
        "{cmd:?} printed:\n{out}"
    );
    let marks = err
        .lines()
        .filter_map(|l| l.strip_prefix("STARTUP "))
        .filter_map(|l| {
            let (step, us) = l.rsplit_once(' ')?;
            Some((step.to_string(), us.parse::<f64>().ok()? / 1000.0))
        })
        .collect();
    Launch {
        wall_ms,
        done_ms,
        rss_mb: ru.ru_maxrss as f64 / 1024.0,
        marks,
    }
}

fn qemu_cmd(elf: &Path) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-M",
        "microvm",
        "-enable-kvm",
        "-cpu",
        "host,-arch-capabilities",
    ])
    .args(["-m", "64", "-display", "none", "-nodefaults", "-no-reboot"])
    .args(["-serial", "stdio", "-kernel"])
    .arg(elf)
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=1"]);
    c
}

/// The first KVM_RUN's time since T0 (ms).
fn first_run(l: &Launch) -> f64 {
    l.marks
        .iter()
        .find(|(s, _)| s == "first KVM_RUN")
        .unwrap_or_else(|| panic!("no first-KVM_RUN mark in {:?}", l.marks))
        .1
}

/// Each step's own cost: the time since the previous mark; the last step is the exit
/// (from the last mark until wait4 returned).
fn steps(l: &Launch, into: &mut BTreeMap<(usize, String), Vec<f64>>) {
    let mut prev = 0.0;
    for (i, (s, t)) in l.marks.iter().enumerate() {
        into.entry((i, s.clone())).or_default().push(t - prev);
        prev = *t;
    }
    into.entry((l.marks.len(), "process exit".into()))
        .or_default()
        .push(l.wall_ms - prev);
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Sum over `pid`'s threads of (CPU ns, context switches).
fn cpu_and_switches(pid: u32) -> (u64, u64) {
    let (mut ns, mut sw) = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for t in tasks.flatten() {
        let p = t.path();
        if let Ok(s) = std::fs::read_to_string(p.join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(p.join("status")) {
            for l in s.lines() {
                if l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
                {
                    sw += l
                        .split_whitespace()
                        .last()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    (ns, sw)
}

/// Runs an idle VM for `secs` after a warm-up; returns (CPU ms per s, wake-ups per s).
fn idle(mut child: Child, secs: u64) -> (f64, f64) {
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id();
    let (c0, s0) = cpu_and_switches(pid);
    let t0 = monotonic_ns();
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, s1) = cpu_and_switches(pid);
    let dt = (monotonic_ns() - t0) as f64 / 1e9;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the idle VM ended early"
    );
    let _ = child.kill();
    let _ = child.wait();
    ((c1 - c0) as f64 / 1e6 / dt, (s1 - s0) as f64 / dt)
}

fn main() {
    if let Ok(guest) = std::env::var(BARE_ENV) {
        bare::run(&guest, "");
    }
    let rounds = scaled("ROUNDS", 10, 1) as usize;
    let idle_rounds = scaled("IDLE_ROUNDS", 5, 1) as usize;
    let idle_secs = scaled("IDLE_SECS", 10, 1);
    let dir = scratch("launch");
    let cfg = builtin_config(&dir, "hello", 1, "", "");
    let elf = image(&dir, "hello");
    let me = std::env::current_exe().unwrap();
    let kvmbus_cmd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kvmbus"));
        c.arg("run").arg(&cfg);
        c
    };
    let bare_cmd = || {
        let mut c = Command::new(&me);
        c.env(BARE_ENV, "hello");
        c
    };

    println!("launch: hello guest, 64 MiB, {rounds} alternating rounds (kvmbus, bare, qemu)");
    let mut wall: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut rss: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let (mut first_k, mut first_b, mut over_k, mut over_q) = (vec![], vec![], vec![], vec![]);
    let mut done_k = vec![];
    let (mut steps_k, mut steps_b) = (BTreeMap::new(), BTreeMap::new());
    for r in 0..rounds {
        let k = launch(&mut kvmbus_cmd());
        let b = launch(&mut bare_cmd());
        let q = launch(&mut qemu_cmd(&elf));
        println!(
            "  round {}: wall kvmbus {:.2} bare {:.2} qemu {:.2} ms; first KVM_RUN kvmbus {:.2} bare {:.2} ms; \
             peak RSS kvmbus {:.2} bare {:.2} qemu {:.2} MB",
            r + 1,
            k.wall_ms,
            b.wall_ms,
            q.wall_ms,
            first_run(&k),
            first_run(&b),
            k.rss_mb,
            b.rss_mb,
            q.rss_mb
        );
        for (sys, l) in [("kvmbus", &k), ("bare", &b), ("qemu", &q)] {
            wall.entry(sys).or_default().push(l.wall_ms);
            rss.entry(sys).or_default().push(l.rss_mb);
        }
        first_k.push(first_run(&k));
        done_k.push(k.done_ms);
        first_b.push(first_run(&b));
        over_k.push(k.rss_mb - b.rss_mb);
        over_q.push(q.rss_mb - b.rss_mb);
        steps(&k, &mut steps_k);
        steps(&b, &mut steps_b);
    }
    for sys in ["kvmbus", "bare", "qemu"] {
        bench("launch", sys, "to-hello-exit", "ms", &wall[sys]);
    }
    // kvmbus exits before the kernel has torn its VM down (see vmm_core::teardown);
    // this is when that background teardown ended.
    bench("launch", "kvmbus", "to-teardown-done", "ms", &done_k);
    bench("launch", "kvmbus", "to-first-KVM_RUN", "ms", &first_k);
    bench("launch", "bare", "to-first-KVM_RUN", "ms", &first_b);
    goal(
        "launch",
        "to-hello-exit",
        "kvmbus",
        "bare",
        "<=",
        2.0,
        "kvmbus run of hello <= 2x the bare runner's wall",
    );
    goal(
        "launch",
        "to-hello-exit",
        "kvmbus",
        "-",
        "<=",
        15.0,
        "kvmbus run of hello <= 15 ms",
    );
    goal(
        "launch",
        "to-hello-exit",
        "kvmbus",
        "qemu",
        "<=",
        0.25,
        "kvmbus run of hello <= 0.25x QEMU microvm's",
    );
    goal(
        "launch",
        "to-first-KVM_RUN",
        "kvmbus",
        "-",
        "<=",
        5.0,
        "first guest instruction <= 5 ms after exec",
    );
    for sys in ["kvmbus", "bare", "qemu"] {
        bench("memory", sys, "peak-rss", "MB", &rss[sys]);
    }
    bench("memory", "kvmbus", "rss-beyond-bare", "MB", &over_k);
    bench("memory", "qemu", "rss-beyond-bare", "MB", &over_q);
    goal(
        "memory",
        "rss-beyond-bare",
        "kvmbus",
        "-",
        "<=",
        2.0,
        "peak RSS <= 2 MB beyond the bare runner's",
    );
    for (sys, st) in [("kvmbus", &steps_k), ("bare", &steps_b)] {
        for ((i, s), v) in st {
            bench("launch-steps", sys, &format!("{i:02}-{}", slug(s)), "ms", v);
        }
    }

    println!("idle: idle guest halted with interrupts off, {idle_rounds} alternating rounds of {idle_secs} s");
    let idle_cfg = builtin_config(&dir, "idle", 1, "", "");
    let idle_elf = image(&dir, "idle");
    let (mut cpu, mut wake) = (Series::new(), Series::new());
    for r in 0..idle_rounds {
        let k = Command::new(env!("CARGO_BIN_EXE_kvmbus"))
            .arg("run")
            .arg(&idle_cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (kc, kw) = idle(k, idle_secs);
        let q = qemu_cmd(&idle_elf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (qc, qw) = idle(q, idle_secs);
        println!(
            "  round {}: kvmbus {kc:.3} ms CPU/s {kw:.1} wake-ups/s; qemu {qc:.3} ms CPU/s {qw:.1} wake-ups/s",
            r + 1
        );
        for (sys, c, w) in [("kvmbus", kc, kw), ("qemu", qc, qw)] {
            cpu.entry(sys).or_default().push(c);
            wake.entry(sys).or_default().push(w);
        }
    }
    for sys in ["kvmbus", "qemu"] {
        bench("idle", sys, "cpu", "ms/s", &cpu[sys]);
        bench("idle", sys, "wake-ups", "1/s", &wake[sys]);
    }
    goal(
        "idle",
        "cpu",
        "kvmbus",
        "qemu",
        "<=",
        1.0,
        "idle CPU time no more than QEMU's",
    );
    goal(
        "idle",
        "wake-ups",
        "kvmbus",
        "qemu",
        "<=",
        1.0,
        "idle wake-ups no more than QEMU's",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
