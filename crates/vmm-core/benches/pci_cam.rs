//! PCI config access cost: the `cam-storm` guest's CAM dword reads of the host bridge's
//! ID register (0xCF8 address write + 0xCFC data read, as an OS does) under kvmbus and
//! under QEMU, the same multiboot ELF, alternating runs, medians.
//!
//! Run: `cargo bench -p vmm-core --bench pci_cam` (env `ACCESSES`, `ROUNDS`).

mod common;
use common::*;

fn main() {
    let n = scaled("ACCESSES", 100_000, 1_000);
    let rounds = scaled("ROUNDS", 9, 1) as usize;
    let dir = scratch("cam");
    let cmdline = format!("n={n}");
    let cfg = builtin_config(&dir, "cam-storm", 1, &cmdline, "");
    let elf = image(&dir, "cam-storm");
    println!("cam-storm: {n} CAM reads per run, {rounds} alternating rounds, medians");
    let (mut k, mut q) = (Vec::new(), Vec::new());
    let mut khz = 0.0;
    for r in 0..rounds {
        let ko = kvmbus(&cfg, &[]);
        let qo = qemu(&elf, &cmdline);
        khz = figure(&ko, "cycles/access", " kHz");
        let (kc, qc) = (
            figure(&ko, "cycles/access", " cycles/access"),
            figure(&qo, "cycles/access", " cycles/access"),
        );
        println!(
            "  round {}: kvmbus {kc:.0}, qemu {qc:.0} cycles/access",
            r + 1
        );
        k.push(kc);
        q.push(qc);
    }
    let rate = |c: &Vec<f64>| c.iter().map(|c| khz * 1000.0 / c).collect::<Vec<_>>();
    bench("cam-read", "kvmbus", "rate", "reads/s", &rate(&k));
    bench("cam-read", "qemu", "rate", "reads/s", &rate(&q));
    goal(
        "cam-read",
        "rate",
        "kvmbus",
        "qemu",
        ">=",
        1.0,
        "CAM reads at least as fast as QEMU",
    );
    let (k, q) = (median(k), median(q));
    let rate = |c: f64| khz * 1000.0 / c;
    println!(
        "kvmbus  {k:>8.0} cycles/access  {:>10.0} accesses/s",
        rate(k)
    );
    println!(
        "qemu    {q:>8.0} cycles/access  {:>10.0} accesses/s",
        rate(q)
    );
    println!(
        "kvmbus / qemu accesses per second: {:.3} (goal >= 1.0)",
        rate(k) / rate(q)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
