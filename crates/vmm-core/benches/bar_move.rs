//! BAR moves: the `bar-move` guest moves a device's I/O BAR and its memory BAR back and
//! forth (one CAM config write each) and writes a register that moves nothing (the
//! baseline), timed by the TSC. Under kvmbus the device is the hypercall gateway (two
//! doorbell ioeventfds in its I/O BAR, none in its memory BAR); under QEMU it is
//! pci-testdev (ioeventfds in both). Same ELF, alternating runs, medians.
//!
//! Run: `cargo bench -p vmm-core --bench bar_move` (env `MOVES`, `ROUNDS`).

mod common;
use common::*;

fn main() {
    let n = env_or("MOVES", 2000);
    let rounds = env_or("ROUNDS", 3) as usize;
    let dir = scratch("bar-move");
    let cmdline = format!("n={n}");
    let gw = "[[device]]\nkind = \"hypercall-gateway\"\nqueues = 2\nqueue_size = 256\nmsix_vectors = 2\n";
    let cfg = builtin_config(&dir, "bar-move", 1, &cmdline, gw);
    let elf = image(&dir, "bar-move");
    println!("bar-move: {n} moves per kind per run, {rounds} alternating rounds, medians");
    let what = ["baseline", "io", "mem"];
    let (mut k, mut q) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    let mut khz = 0.0;
    for r in 0..rounds {
        let ko = kvmbus(&cfg, &[]);
        let qo = qemu_with(&elf, &cmdline, &["-device", "pci-testdev"]);
        khz = figure(&ko, "bar-move: tsc", " kHz");
        for (i, w) in what.iter().enumerate() {
            let marker = format!("bar-move: {w} ");
            k[i].push(figure(&ko, &marker, " cycles/move"));
            q[i].push(figure(&qo, &marker, " cycles/move"));
        }
        println!(
            "  round {}: kvmbus io {:.0} mem {:.0}, qemu io {:.0} mem {:.0} cycles/move",
            r + 1,
            k[1][r],
            k[2][r],
            q[1][r],
            q[2][r]
        );
    }
    for (i, w) in what.iter().enumerate().skip(1) {
        common::bench("bar-move", "kvmbus", w, "cycles/move", &k[i]);
        common::bench("bar-move", "qemu", w, "cycles/move", &q[i]);
    }
    common::goal(
        "bar-move",
        "io",
        "kvmbus",
        "qemu",
        "<=",
        2.0,
        "an I/O BAR move within 2x of QEMU's",
    );
    let us = |c: f64| c / khz * 1000.0;
    let k: Vec<f64> = k.into_iter().map(median).collect();
    let q: Vec<f64> = q.into_iter().map(median).collect();
    for (i, w) in what.iter().enumerate() {
        println!(
            "{w:<9} kvmbus {:>10.0} cycles ({:>8.1} us)   qemu {:>10.0} cycles ({:>8.1} us)",
            k[i],
            us(k[i]),
            q[i],
            us(q[i])
        );
    }
    println!(
        "kvmbus io move / kvmbus mem move: {:.2} (goal <= 2)",
        k[1] / k[2]
    );
    println!(
        "kvmbus io move / qemu io move: {:.2} (goal <= 2)",
        k[1] / q[1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
