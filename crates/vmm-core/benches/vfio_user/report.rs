//! The vfio-user bench's results: its BENCH and GOAL lines for the report, then a
//! summary of the medians over the rounds.

use super::common::{bench, goal, median};
use super::placement::Placement;

/// One system's figures, a value per round.
#[derive(Default)]
pub struct Series {
    pub io: Vec<f64>,
    pub mmio: Vec<f64>,
    pub mapped: Vec<f64>,
    /// Per-read medians less the timer's (`*-read-net`).
    pub io_net: Vec<f64>,
    pub mmio_net: Vec<f64>,
    pub mapped_net: Vec<f64>,
    pub irq: Vec<f64>,
    /// The same, pinned: one series per placement of `pinned` (in its order).
    pub irq_pinned: [Vec<f64>; 2],
    pub fire_to_handler: Vec<f64>,
    pub socket_rt: Vec<f64>,
    pub socket_floor: Vec<f64>,
    /// The vCPU thread's REGION_READ round trip: kvmbus's own histogram, in cycles.
    pub vcpu_rt: Vec<f64>,
}

/// Prints the results of `rounds` rounds (`khz`: the guest's TSC rate): in-process
/// (`local`), served (`remote`) and served with counted interrupts (`counted`), and the
/// interrupt rows of each `pinned` placement.
pub fn report(
    rounds: usize,
    khz: f64,
    pinned: &[Placement],
    local: &Series,
    remote: &Series,
    counted: &Series,
) {
    for (sys, metric, v) in [
        ("in-process", "io-read", &local.io),
        ("forwarded", "io-read", &remote.io),
        ("in-process", "mmio-read", &local.mmio),
        ("forwarded", "mmio-read", &remote.mmio),
        ("mapped", "mmio-read", &remote.mapped),
        ("vcpu-rt", "io-read", &remote.vcpu_rt),
        ("socket-rt", "io-read", &remote.socket_rt),
        ("socket-floor", "io-read", &remote.socket_floor),
        ("in-process", "io-read-net", &local.io_net),
        ("forwarded", "io-read-net", &remote.io_net),
        ("in-process", "mmio-read-net", &local.mmio_net),
        ("forwarded", "mmio-read-net", &remote.mmio_net),
        ("mapped", "mmio-read-net", &remote.mapped_net),
    ] {
        bench("vfio-user", sys, metric, "cycles", v);
    }
    let unpinned = Placement::Free.metric();
    bench("vfio-user", "in-process", unpinned, "µs", &local.irq);
    bench("vfio-user", "server", unpinned, "µs", &remote.irq);
    bench("vfio-user", "server-counted", unpinned, "µs", &counted.irq);
    goal(
        "vfio-user",
        "io-read",
        "forwarded",
        "in-process",
        "<=",
        2.0,
        "a forwarded I/O BAR read costs at most 2x an in-process one",
    );
    goal(
        "vfio-user",
        "mmio-read",
        "forwarded",
        "in-process",
        "<=",
        2.0,
        "a forwarded MMIO BAR read costs at most 2x an in-process one",
    );
    goal(
        "vfio-user",
        "mmio-read-net",
        "mapped",
        "in-process",
        "<=",
        0.5,
        "a mapped region costs no exit (the read alone: an in-process read is one exit; a mapped read that exited would cost at least as much)",
    );
    for (i, &at) in pinned.iter().enumerate() {
        let metric = at.metric();
        bench(
            "vfio-user",
            "in-process",
            metric,
            "µs",
            &local.irq_pinned[i],
        );
        bench("vfio-user", "server", metric, "µs", &remote.irq_pinned[i]);
        goal(
            "vfio-user",
            metric,
            "in-process",
            "server",
            ">=",
            0.95,
            &format!(
                "an interrupt from the server costs what one from in-process does, the device's thread pinned {} (in-process / server latency >= 0.95)",
                at.name()
            ),
        );
    }

    let m = |v: &[f64]| median(v.to_vec());
    let us = |c: f64| c / khz * 1000.0;
    println!("medians of {rounds} rounds (guest TSC, {khz:.0} kHz)");
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "BAR read", "cycles", "µs", "net median"
    );
    for (name, v, mean) in [
        ("in-process, I/O BAR0", &local.io, &local.io_net),
        ("in-process, MMIO BAR1", &local.mmio, &local.mmio_net),
        ("vfio-user forwarded, I/O BAR0", &remote.io, &remote.io_net),
        (
            "vfio-user forwarded, MMIO BAR1",
            &remote.mmio,
            &remote.mmio_net,
        ),
        ("vfio-user mapped, BAR4", &remote.mapped, &remote.mapped_net),
    ] {
        println!(
            "{name:<34} {:>10.0} {:>10.2} {:>12.0}",
            m(v),
            us(m(v)),
            m(mean)
        );
    }
    println!(
        "a REGION_READ round trip without a VM (bench process to device-server): {:.0} cycles, {:.2} µs; forwarded minus in-process I/O read: {:.0} cycles",
        m(&remote.socket_rt),
        us(m(&remote.socket_rt)),
        m(&remote.io) - m(&local.io)
    );
    println!(
        "the same round trip from kvmbus's vCPU thread (its round-trip histogram's mean over every forwarded read of the run): {:.0} cycles, {:.2} µs; in-process I/O read + that = {:.2}x the in-process read",
        m(&remote.vcpu_rt),
        us(m(&remote.vcpu_rt)),
        (m(&local.io) + m(&remote.vcpu_rt)) / m(&local.io)
    );
    println!(
        "the least a socket round trip costs here (two spinning threads, 40 bytes): {:.0} cycles, {:.2} µs; in-process I/O read + that floor = {:.2}x the in-process read",
        m(&remote.socket_floor),
        us(m(&remote.socket_floor)),
        (m(&local.io) + m(&remote.socket_floor)) / m(&local.io)
    );
    println!(
        "forwarded / in-process: I/O {:.2}x, MMIO {:.2}x (goal: at most 2x); mapped / in-process MMIO {:.3}x (loop), {:.3}x (the read alone; goal: no exit)",
        m(&remote.io) / m(&local.io),
        m(&remote.mmio) / m(&local.mmio),
        m(&remote.mapped) / m(&local.mmio),
        m(&remote.mapped_net) / m(&local.mmio_net)
    );
    println!(
        "net per-read medians, forwarded / in-process: I/O {:.2}x, MMIO {:.2}x (the read alone; noisier: the timer's median moves by thousands of cycles between runs)",
        m(&remote.io_net) / m(&local.io_net),
        m(&remote.mmio_net) / m(&local.mmio_net)
    );
    for (i, &at) in pinned.iter().enumerate() {
        let (a, b) = (m(&local.irq_pinned[i]), m(&remote.irq_pinned[i]));
        println!(
            "interrupt trigger-to-handler (irqfd), kvmbus on CPU 0, the device's thread {}: in-process {a:.1} µs, server {b:.1} µs; in-process / server {:.2} (goal >= 0.95)",
            at.name(),
            a / b
        );
    }
    println!(
        "the same unpinned (the scheduler's placement, which differs between the two: see the notes): in-process {:.1} µs, server {:.1} µs; in-process / server {:.2}",
        m(&local.irq),
        m(&remote.irq),
        m(&local.irq) / m(&remote.irq)
    );
    println!(
        "with interrupts = \"counted\" (kvmbus's relay thread raises them, counted by vector): {:.1} µs, {:.2}x the direct path's",
        m(&counted.irq),
        m(&counted.irq) / m(&remote.irq)
    );
    println!(
        "for reference, from the FIRE write (minus DELAY; with the server it includes the forwarded write): in-process {:.1} µs, server {:.1} µs",
        m(&local.fire_to_handler),
        m(&remote.fire_to_handler)
    );
}
