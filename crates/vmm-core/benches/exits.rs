//! PIO exit cost: `kvmbus run` on the `pio-storm` guest vs the same guest under a bare
//! kvm-ioctls exit loop, and kvmbus with metrics on vs off, in one run.
//!
//! Run: `cargo bench -p vmm-core --bench exits` (env `EXITS=n` sets exits per run,
//! `ROUNDS=n` the alternating rounds). The guest times its own exits with the TSC and
//! prints cycles per exit; each figure is the median over the rounds, and the runs of
//! the compared variants alternate (A B A B ...) so machine drift hits both alike.

mod common;
use common::*;
use std::io::Write;

use kvm_ioctls::VcpuExit;
use vmm_core::config;
use vmm_core::vm::Vm;

/// (cycles per exit, TSC kHz) from the guest's result line.
fn parse(out: &str) -> (f64, f64) {
    (
        figure(out, "cycles/exit", " cycles/exit"),
        figure(out, "cycles/exit", " kHz"),
    )
}

fn run_kvmbus(cfg: &std::path::Path, extra: &[&str]) -> (f64, f64) {
    parse(&kvmbus(cfg, extra))
}

/// The same VM (memory, irqchip, CPUID, loaded guest) driven by a minimal loop: no bus,
/// no metrics, no devices beyond what the guest needs to print and exit.
fn bare(cfg: &std::path::Path) -> (f64, f64) {
    let config = config::load(cfg).unwrap();
    let mut vm = Vm::new(config).unwrap();
    let mut vcpu = vm.take_vcpus().remove(0);
    let mut serial = Vec::new();
    loop {
        match vcpu.run().expect("KVM_RUN") {
            VcpuExit::IoOut(0x80, _) => {}
            VcpuExit::IoOut(0x3f8, d) => serial.push(d[0]),
            VcpuExit::IoOut(0xf4, _) => break,
            VcpuExit::IoIn(0x3fd, d) => d[0] = 0x60,
            VcpuExit::IoIn(_, d) => d.fill(0xff),
            VcpuExit::IoOut(..) => {}
            e => panic!("unexpected exit {e:?}"),
        }
    }
    parse(&String::from_utf8_lossy(&serial))
}

fn main() {
    let n = scaled("EXITS", 300_000, 2_000);
    let rounds = scaled("ROUNDS", 9, 1) as usize;
    let dir = scratch("exits");
    let cfg = builtin_config(&dir, "pio-storm", 1, &format!("n={n}"), "");

    println!("pio-storm: {n} PIO exits per run, {rounds} alternating rounds, medians");
    let (mut k, mut b, mut on) = (Vec::new(), Vec::new(), Vec::new());
    let mut khz = 0.0;
    for r in 0..rounds {
        let (c1, f) = run_kvmbus(&cfg, &[]);
        let (c2, _) = bare(&cfg);
        let (c3, _) = run_kvmbus(&cfg, &["--metrics", "127.0.0.1:0"]);
        khz = f;
        k.push(c1);
        b.push(c2);
        on.push(c3);
        print!(
            "  round {}: kvmbus {c1:.0}, bare {c2:.0}, kvmbus+metrics {c3:.0} cycles/exit\r\n",
            r + 1
        );
        std::io::stdout().flush().unwrap();
    }
    bench("pio-exit", "bare", "cost", "cycles/exit", &b);
    bench("pio-exit", "kvmbus", "cost", "cycles/exit", &k);
    bench("pio-exit", "kvmbus+metrics", "cost", "cycles/exit", &on);
    goal(
        "pio-exit",
        "cost",
        "kvmbus+metrics",
        "bare",
        "<=",
        1.01,
        "PIO exit with metrics on <= 1.01x the bare loop",
    );
    goal(
        "pio-exit",
        "cost",
        "kvmbus+metrics",
        "kvmbus",
        "<=",
        1.02,
        "metrics on <= 1.02x metrics off",
    );
    let (k, b, on) = (median(k), median(b), median(on));
    let rate = |c: f64| khz * 1000.0 / c;
    println!(
        "bare kvm-ioctls loop   {b:>8.0} cycles/exit  {:>10.0} exits/s",
        rate(b)
    );
    println!(
        "kvmbus (metrics off)   {k:>8.0} cycles/exit  {:>10.0} exits/s",
        rate(k)
    );
    println!(
        "kvmbus (metrics on)    {on:>8.0} cycles/exit  {:>10.0} exits/s",
        rate(on)
    );
    println!(
        "kvmbus / bare cost per exit: {:.4}  ({:+.2}%; goal <= +5%, aim +2%)",
        k / b,
        (k / b - 1.0) * 100.0
    );
    println!(
        "metrics on / off cost per exit: {:.4}  ({:+.2}%; goal <= +2%)",
        on / k,
        (on / k - 1.0) * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
