//! Per-exit costs, kvm-unit-tests `vmexit`-style, under kvmbus and under QEMU 7.2 in one
//! run: the `exit-bench` guest times each path with the TSC (O(1) guest work per exit)
//! in 8 batches and prints the fastest batch's cycles per exit (the least disturbed by
//! other load on the host); the same image boots on both (QEMU with `-device
//! pc-testdev -device pci-testdev`), rounds alternate kvmbus, QEMU, kvmbus, ...
//!
//! Paths: a userspace PIO round trip (`inl` from pc-testdev's port 0xE0), in-kernel PIO
//! (`inb` from the ELCR, answered by KVM's PIC), a userspace MMIO read (pc-testdev's
//! iomem), and pci-testdev's doorbells on its memory and I/O BARs: no-eventfd (an exit
//! to the VMM) against the wildcard and datamatch ioeventfds (no exit to userspace).
//!
//! Run: `cargo bench -p vmm-core --bench exit_costs` (env `EXITS=n` exits per path and
//! run, `ROUNDS=n` rounds, at least 5, default 9: on the nested test host a whole run
//! lands in a fast or a slow mode about 20% apart, under either VMM, so a median of 5
//! flips with the mode count). Prints min/median/max per path and VMM, the
//! kvmbus/QEMU ratio of medians, and the ioeventfd/no-eventfd ratio on each VMM.

mod common;
use common::*;
use std::io::Write;

const PATHS: [&str; 9] = [
    "pio-user",
    "pio-kernel",
    "mmio-user",
    "mmio-no-eventfd",
    "mmio-wildcard-eventfd",
    "mmio-datamatch-eventfd",
    "portio-no-eventfd",
    "portio-wildcard-eventfd",
    "portio-datamatch-eventfd",
];

/// Cycles per exit of every path, in `PATHS` order.
fn parse(out: &str) -> Vec<f64> {
    PATHS
        .iter()
        .map(|p| figure(out, &format!("exit-bench: {p} "), " cycles/exit"))
        .collect()
}

struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

fn stats(v: &[f64]) -> Stats {
    Stats {
        min: v.iter().cloned().fold(f64::INFINITY, f64::min),
        median: median(v.to_vec()),
        max: v.iter().cloned().fold(0.0, f64::max),
    }
}

fn main() {
    let n = scaled("EXITS", 16384, 256);
    let rounds = (scaled("ROUNDS", 9, 1) as usize).max(if tiny() { 1 } else { 5 });
    let dir = scratch("exit-costs");
    let cmdline = format!("n={n}");
    let cfg = builtin_config(
        &dir,
        "exit-bench",
        1,
        &cmdline,
        "[pc_testdev]\nenabled = true\n[[device]]\nkind = \"pci-testdev\"\n",
    );
    let elf = image(&dir, "exit-bench");
    let qemu_devices = ["-device", "pc-testdev", "-device", "pci-testdev"];

    println!(
        "exit-bench: {n} exits per path and run, {rounds} rounds alternating kvmbus and QEMU 7.2"
    );
    let (mut k, mut q) = (vec![Vec::new(); PATHS.len()], vec![Vec::new(); PATHS.len()]);
    for r in 0..rounds {
        let a = parse(&kvmbus(&cfg, &[]));
        let b = parse(&qemu_with(&elf, &cmdline, &qemu_devices));
        for i in 0..PATHS.len() {
            k[i].push(a[i]);
            q[i].push(b[i]);
        }
        print!(
            "  round {}: pio-user kvmbus {:.0} QEMU {:.0}; portio-wildcard kvmbus {:.0} QEMU {:.0} cycles/exit\r\n",
            r + 1,
            a[0],
            b[0],
            a[7],
            b[7]
        );
        std::io::stdout().flush().unwrap();
    }
    for (i, p) in PATHS.iter().enumerate() {
        bench("exit-costs", "kvmbus", p, "cycles/exit", &k[i]);
        bench("exit-costs", "qemu", p, "cycles/exit", &q[i]);
        goal(
            "exit-costs",
            p,
            "kvmbus",
            "qemu",
            "<=",
            1.0,
            "at least as fast as QEMU",
        );
    }
    let (k, q): (Vec<Stats>, Vec<Stats>) = (
        k.iter().map(|v| stats(v)).collect(),
        q.iter().map(|v| stats(v)).collect(),
    );
    println!(
        "{:<26} {:>27} {:>27} {:>13} {:>9}",
        "cycles/exit (min/med/max)", "kvmbus", "QEMU 7.2", "kvmbus/QEMU", "(of mins)"
    );
    for (i, p) in PATHS.iter().enumerate() {
        println!(
            "{p:<26} {:>8.0} {:>8.0} {:>9.0} {:>8.0} {:>8.0} {:>9.0} {:>13.3} {:>9.3}",
            k[i].min,
            k[i].median,
            k[i].max,
            q[i].min,
            q[i].median,
            q[i].max,
            k[i].median / q[i].median,
            k[i].min / q[i].min
        );
    }
    println!("ioeventfd / no-eventfd cost per doorbell (medians): \"a doorbell is an fd\" against \"a doorbell is an exit\"");
    for (bar, base) in [("mmio", 3), ("portio", 6)] {
        for (kind, off) in [("wildcard", 1), ("datamatch", 2)] {
            println!(
                "  {bar:<6} {kind:<9}  kvmbus {:.3}  QEMU {:.3}",
                k[base + off].median / k[base].median,
                q[base + off].median / q[base].median
            );
        }
    }
    let ratio = |i: usize| k[i].median / q[i].median;
    let ratio_min = |i: usize| k[i].min / q[i].min;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal kvmbus userspace PIO round trip <= QEMU's: medians {:.3} ({}), mins {:.3} ({})",
        ratio(0),
        verdict(ratio(0) <= 1.0),
        ratio_min(0),
        verdict(ratio_min(0) <= 1.0)
    );
    let eventfds = [4, 5, 7, 8];
    let worst = eventfds.into_iter().map(ratio).fold(0.0, f64::max);
    let worst_min = eventfds.into_iter().map(ratio_min).fold(0.0, f64::max);
    println!(
        "goal kvmbus ioeventfd doorbells <= QEMU's (worst of four): medians {worst:.3} ({}), mins {worst_min:.3} ({})",
        verdict(worst <= 1.0),
        verdict(worst_min <= 1.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
