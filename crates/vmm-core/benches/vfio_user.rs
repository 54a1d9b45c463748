//! vfio-user: the cost of a BAR register read and of an interrupt when the device lives
//! in another process, against the same irq-test device in-process, in one run.
//!
//! * bar-bench guest: one read of the ID register through BAR0 (I/O) and BAR1 (MMIO):
//!   in-process vs forwarded to `kvmbus device-server` (REGION_READ round trip); and a
//!   read of BAR4, a region the server hands over as an mmap-able fd (a KVM memory slot:
//!   no exit at all).
//! * irq-bench guest, mode 0 (irqfd): trigger-to-handler latency; with the server, the
//!   FIRE write that asks for the interrupt is itself forwarded, so the figure includes
//!   one REGION_WRITE round trip before the server thread writes the irqfd.
//!
//! Each BAR gets a timed loop (the mean per read: BENCH lines and the goal) and a
//! per-read median (printed; it resists the host preempting the vCPU on a busy machine).
//!
//! Run: `cargo bench -p vmm-core --bench vfio_user` (env `READS`, default 2000 per BAR;
//! `ROUNDS`, default 1000 interrupts per path).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vmm_core::devices::vfio_user::attach::attach;
use vmm_core::vm::{RunOptions, Vm};

/// A device-server process, killed when dropped (also when the bench panics).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(sock: &Path) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_kvmbus"))
            .args(["device-server", "--device", "irq-test", "--shared-bar"])
            .arg("--socket")
            .arg(sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kvmbus device-server"),
    )
}

/// Runs `guest` with the irq-test in-process (`sock` None) or served over `sock`;
/// returns the serial output.
fn run(dir: &Path, guest: &str, cmdline: &str, sock: Option<&Path>) -> String {
    let serial: PathBuf = dir.join(format!("{guest}-{}.txt", sock.is_some()));
    let _ = std::fs::remove_file(&serial);
    let device = if sock.is_some() {
        ""
    } else {
        "[[device]]\nkind = \"irq-test\"\nbdf = \"00:04.0\"\n"
    };
    let extra = format!("[serial]\noutput = \"file:{}\"\n{device}", serial.display());
    let cfg = builtin_config(dir, guest, 1, cmdline, &extra);
    let vm = Vm::new(vmm_core::config::load(&cfg).expect("config")).expect("vm");
    if let Some(s) = sock {
        attach(
            &vm,
            s,
            Some("00:04.0".parse().unwrap()),
            Duration::from_secs(10),
            Duration::from_secs(2),
        )
        .expect("attach");
    }
    let reason = vm.run(&RunOptions::default()).expect("run");
    let out = std::fs::read_to_string(&serial).unwrap_or_default();
    assert_eq!(
        reason,
        vmm_core::control::StopReason::DebugExit(0),
        "{guest}: {out}"
    );
    out
}

fn p50_lat(out: &str, khz: f64) -> f64 {
    let mut lat: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("irq-bench: mode 0 lat"))
        .flat_map(|l| l.split_whitespace().map(|v| v.parse::<f64>().unwrap()))
        .map(|c| c / khz * 1000.0)
        .collect();
    assert!(!lat.is_empty(), "{out}");
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    lat[lat.len() / 2]
}

fn main() {
    let reads = env_or("READS", 2000);
    let rounds = env_or("ROUNDS", 1000);
    let dir = scratch("vfio-user");
    // One server per VM: a server takes one client at a time, and a finished VM's
    // devices are not torn down before the process exits.
    let sock = dir.join("irq.sock");
    let _srv = server(&sock);

    let local = run(&dir, "bar-bench", &format!("n={reads}"), None);
    let remote = run(&dir, "bar-bench", &format!("n={reads}"), Some(&sock));
    let khz = figure(&local, "bar-bench: tsc", " kHz");
    let us = |c: f64| c / khz * 1000.0;
    let cyc = |out: &str, what: &str| figure(out, &format!("bar-bench: {what} "), " cycles each");
    let (lio, lmm) = (cyc(&local, "io"), cyc(&local, "mmio"));
    let (rio, rmm, map) = (
        cyc(&remote, "io"),
        cyc(&remote, "mmio"),
        cyc(&remote, "mapped"),
    );
    let med = |out: &str, what: &str| figure(out, &format!("bar-bench: {what} median "), " cycles");
    let (mlio, mrio) = (med(&local, "io"), med(&remote, "io"));
    let (mlmm, mrmm, mmap) = (
        med(&local, "mmio"),
        med(&remote, "mmio"),
        med(&remote, "mapped"),
    );
    common::bench("vfio-user", "in-process", "io-read", "cycles", &[lio]);
    common::bench("vfio-user", "forwarded", "io-read", "cycles", &[rio]);
    common::bench("vfio-user", "in-process", "mmio-read", "cycles", &[lmm]);
    common::bench("vfio-user", "forwarded", "mmio-read", "cycles", &[rmm]);
    common::bench("vfio-user", "mapped", "mmio-read", "cycles", &[map]);
    common::goal(
        "vfio-user",
        "io-read",
        "forwarded",
        "in-process",
        "<=",
        2.0,
        "a forwarded BAR read costs at most 2x an in-process one",
    );
    println!("vfio-user bench: {reads} reads per BAR (guest TSC, {khz:.0} kHz)");
    println!("{:<34} {:>10} {:>10}", "BAR read", "cycles", "µs");
    for (name, c) in [
        ("in-process, I/O BAR0", lio),
        ("in-process, MMIO BAR1", lmm),
        ("vfio-user forwarded, I/O BAR0", rio),
        ("vfio-user forwarded, MMIO BAR1", rmm),
        ("vfio-user mapped, BAR4", map),
    ] {
        println!("{name:<34} {c:>10.0} {:>10.2}", us(c));
    }
    println!(
        "forwarded / in-process: I/O {:.2}x, MMIO {:.2}x (goal: at most 2x)",
        rio / lio,
        rmm / lmm
    );
    println!(
        "per-read medians (cycles): in-process I/O {mlio:.0}, MMIO {mlmm:.0}; forwarded I/O {mrio:.0}, MMIO {mrmm:.0}; mapped {mmap:.0}"
    );
    println!(
        "forwarded / in-process, medians: I/O {:.2}x, MMIO {:.2}x",
        mrio / mlio,
        mrmm / mlmm
    );
    println!(
        "mapped / in-process MMIO: {:.3}x (goal: no exit; an exit costs ~{:.0} cycles here)",
        map / lmm,
        lmm
    );

    let sock2 = dir.join("irq2.sock");
    let _srv2 = server(&sock2);
    let local = run(&dir, "irq-bench", &format!("n={rounds}"), None);
    let remote = run(&dir, "irq-bench", &format!("n={rounds}"), Some(&sock2));
    let (l, r) = (p50_lat(&local, khz), p50_lat(&remote, khz));
    println!("interrupt trigger-to-handler, irqfd, {rounds} rounds: p50 in-process {l:.1} µs, vfio-user server {r:.1} µs");
    println!(
        "in-process / vfio-user latency ratio: {:.2} (goal >= 0.95; the vfio-user figure includes the forwarded FIRE write: forwarded minus in-process I/O read {:+.1} µs this run)",
        l / r,
        us(rio - lio)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
