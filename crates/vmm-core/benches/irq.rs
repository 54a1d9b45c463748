//! Interrupt delivery: rate and trigger-to-handler latency (p50/p99) through irqfd (the
//! device thread writes the vector's eventfd), through KVM_SIGNAL_MSI from the device
//! thread, and through the userspace exit path (the VMM kicks the destination vCPU out
//! of KVM_RUN and its thread injects before re-entering), interleaved in one guest run,
//! with ratios.
//!
//! Run: `cargo bench -p vmm-core --bench irq` (env `ROUNDS`, default 2000 per path).

mod common;
use common::*;

const PATHS: [&str; 3] = ["irqfd", "KVM_SIGNAL_MSI", "userspace exit path"];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rounds = scaled("ROUNDS", 2000, 20);
    let dir = scratch("irq");
    let cfg = builtin_config(
        &dir,
        "irq-bench",
        1,
        &format!("n={rounds}"),
        "[[device]]\nkind = \"irq-test\"\n",
    );
    let out = kvmbus(&cfg, &[]);
    let khz = figure(&out, "irq-bench: tsc", " kHz");
    println!("irq-bench: {rounds} rounds per path, interleaved; one interrupt in flight at a time");
    println!(
        "{:<30} {:>12} {:>10} {:>10}",
        "path", "interrupts/s", "p50 µs", "p99 µs"
    );
    let mut rows = Vec::new();
    for (m, name) in PATHS.iter().enumerate() {
        let prefix = format!("irq-bench: mode {m} lat");
        let mut lat: Vec<f64> = out
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .flat_map(|l| l.split_whitespace().map(|v| v.parse::<f64>().unwrap()))
            .map(|c| c / khz * 1000.0)
            .collect();
        assert_eq!(lat.len() as u64, rounds, "latencies of path {name}");
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let total_cycles = figure(&out, &format!("irq-bench: mode {m} rounds"), " cycles");
        let rate = rounds as f64 / (total_cycles / (khz * 1000.0));
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        println!("{name:<30} {rate:>12.0} {p50:>10.1} {p99:>10.1}");
        let sys = ["irqfd", "signal-msi", "userspace-exit"][m];
        bench("irq", sys, "rate", "irqs/s", &[rate]);
        bench("irq", sys, "latency", "µs", &lat);
        bench("irq", sys, "p99", "µs", &[p99]);
        rows.push((rate, p50, p99));
    }
    goal(
        "irq",
        "rate",
        "irqfd",
        "userspace-exit",
        ">=",
        1.0,
        "irqfd beats the userspace exit path",
    );
    let (irqfd, msi, user) = (rows[0], rows[1], rows[2]);
    println!(
        "irqfd vs userspace path: {:.2}x the rate, p50 latency {:.2}x (goal: irqfd beats the userspace path)",
        irqfd.0 / user.0,
        irqfd.1 / user.1
    );
    println!(
        "irqfd vs KVM_SIGNAL_MSI: {:.2}x the rate, p50 latency {:.2}x",
        irqfd.0 / msi.0,
        irqfd.1 / msi.1
    );
    let _ = std::fs::remove_dir_all(&dir);
}
