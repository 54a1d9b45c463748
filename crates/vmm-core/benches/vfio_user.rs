//! vfio-user: the cost of a BAR register read and of an interrupt when the device lives
//! in another process, against the same irq-test device in-process, in one run.
//!
//! Every round boots nine VMs (`kvmbus run`, one process each) in a fixed order, so
//! drift of the machine hits every system alike: bar-bench with the irq-test in-process,
//! bar-bench with it served by `kvmbus device-server` (a fresh server per VM), a socket
//! round trip without a VM, then irq-bench the same two ways and with counted
//! interrupts, then the first two again pinned to the same CPU and to two CPUs. Each
//! system gets one BENCH value per round (min / median / max over the rounds in the
//! report).
//!
//! * **BAR read** (bar-bench guest): cycles of one read of the ID register through BAR0
//!   (I/O) and BAR1 (MMIO): in-process (one exit, served on the vCPU thread) vs
//!   forwarded (one exit plus a REGION_READ round trip to the server), and a read of
//!   BAR4, a region the server hands over as an mmap-able fd that kvmbus maps into the
//!   guest (a KVM memory slot: no exit at all). `io-read`/`mmio-read` (the 2x goals) are
//!   the mean cycles per iteration of a timed loop of `READS` reads: the read plus the
//!   loop's own instructions (the mapped loop, whose read makes no exit, shows what those
//!   cost: ~8-12k cycles here, in every system's figure, so the ratios of the reads
//!   alone are higher). `*-read-net` are the read alone: the median of `READS` reads
//!   each timed by itself less the median of the same timing around nothing (robust to
//!   preemption, but the timer's median moves by thousands of cycles between runs).
//!   The no-exit goal compares these: a mapped read alone is a few thousand cycles at
//!   most, an exit about 14-20k; in the loop figures the loop's own cost alone takes
//!   the mapped one to about 0.5x.
//! * **Interrupt** (irq-bench guest, mode 0 = irqfd, `delay=`): trigger-to-handler
//!   latency, the median of `IRQS` interrupts per VM. The interval starts when the
//!   device raises the vector (its thread stamps the host TSC just before it writes the
//!   vector's eventfd, which is KVM's irqfd in both places) and ends at the guest's
//!   handler. The FIRE write that asks for the interrupt is *not* in it: that write is a
//!   forwarded REGION_WRITE with the server, and measuring from it would compare a
//!   socket round trip, not an interrupt. To make the two cases the same, the device
//!   waits `DELAY_US` after the FIRE before it fires, longer than the forwarded write
//!   takes, so that in both cases the vCPU is halted in the guest when the interrupt
//!   comes. The guest converts the host stamp to its own clock (it checks that its TSC
//!   is the host's, or estimates the offset; see guests/bin/irq_bench.c). Goal: an
//!   interrupt from the server costs what one from in-process does, in-process /
//!   server latency ≥ 0.95, with the threads in the same place in both cases: whether
//!   the firing thread runs on the halted vCPU's CPU or on the other one moves the
//!   latency by about 20 µs (a local wake-up against an IPI to an idle CPU), and left
//!   to itself the scheduler puts an in-process device's thread (woken straight from
//!   the vCPU thread) on the vCPU's CPU more often than a server's. So each round also
//!   runs both pinned (see `vfio_user/placement.rs`): kvmbus on CPU 0 and the device's
//!   thread on CPU 0 ("same-cpu"), then on CPU 1 ("other-cpu"; the server process
//!   there, or the in-process `irq-test` thread moved there as soon as it exists); the
//!   goal holds for each placement. The unpinned figures are printed beside them, no
//!   goal: they show which placement the scheduler chose.
//!   The same with `interrupts = "counted"` (server-counted, no goal): the server writes
//!   kvmbus's eventfds and a relay thread raises the vector, counting it; the interval
//!   then includes that thread's wake-up.
//! * **vCPU round trip**: the bar-bench VMs run with `--metrics-out`, both of them (so
//!   that both record metrics alike); the forwarded one's
//!   `kvmbus_vfio_user_round_trip_seconds` mean, in cycles ("vcpu-rt"), is what each
//!   forwarded read spent on the socket, seen by the vCPU thread that made it. No goal:
//!   it shows what of a forwarded read is the exit and what is the round trip.
//! * **Socket round trip** (no VM): the bench process itself sends `READS` REGION_READs
//!   of BAR0's ID register to a fresh device-server (polling for each reply as the
//!   vCPU thread does) and times them: what a forwarded read adds to an exit, at least.
//!   Printed in cycles beside the BAR reads ("socket-rt"), no goal.
//! * **Socket floor** (no VM, no protocol): two threads of the bench process bounce 40
//!   bytes over a Unix stream socket pair, each spinning on non-blocking reads: the
//!   least any socket round trip costs on this host ("socket-floor"), no goal. A
//!   forwarded read costs an in-process read plus at least this.
//!
//! Run: `cargo bench -p vmm-core --bench vfio_user` (env `ROUNDS`, default 9 alternating
//! rounds; `READS`, default 2000 per BAR; `IRQS`, default 200 interrupts per VM;
//! `DELAY_US`, default 500).

mod common;
#[path = "vfio_user/placement.rs"]
mod placement;
#[path = "vfio_user/report.rs"]
mod report;
#[path = "vfio_user/socket.rs"]
mod socket;
use common::*;
use placement::{pin_command, pin_thread, two_cpus, Placement};
use report::{report, Series};
use socket::{socket_floor, socket_round_trip};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A device-server process, killed when dropped (also when the bench panics).
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh device-server serving the irq-test on `sock`, on `cpu` only if one is given.
pub fn server(sock: &Path, cpu: Option<usize>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvmbus"));
    cmd.args(["device-server", "--device", "irq-test", "--shared-bar"])
        .arg("--socket")
        .arg(sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(cpu) = cpu {
        pin_command(&mut cmd, cpu);
    }
    Server(cmd.spawn().expect("kvmbus device-server"))
}

/// Where the irq-test lives for one VM.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    InProcess,
    /// Served; its interrupts written to the vectors' irqfds by the server itself.
    Server,
    /// Served with `interrupts = "counted"`: kvmbus's relay thread raises them.
    ServerCounted,
}

/// Boots `guest` under `kvmbus run` with the irq-test at 00:04.0, in-process or served by
/// a fresh device-server, their threads placed `at`; returns the guest's output and, with
/// `metrics`, the final metrics (`--metrics-out`).
fn run(
    dir: &Path,
    guest: &str,
    cmdline: &str,
    place: Place,
    at: Placement,
    metrics: bool,
) -> (String, String) {
    let sub: PathBuf = dir.join(match place {
        Place::InProcess => "local",
        Place::Server => "remote",
        Place::ServerCounted => "counted",
    });
    std::fs::create_dir_all(&sub).unwrap();
    let sock = sub.join("irq.sock");
    let (_srv, device) = match place {
        Place::InProcess => (
            None,
            "[[device]]\nkind = \"irq-test\"\nbdf = \"00:04.0\"\n".into(),
        ),
        Place::Server | Place::ServerCounted => (
            Some(server(&sock, at.device_cpu())),
            format!(
                "[[device]]\nkind = \"vfio-user\"\nbdf = \"00:04.0\"\nsocket = \"{}\"\ninterrupts = \"{}\"\n",
                sock.display(),
                if place == Place::Server { "direct" } else { "counted" }
            ),
        ),
    };
    let cfg = builtin_config(&sub, guest, 1, cmdline, &device);
    let prom = sub.join("final.prom");
    let extra = if metrics {
        vec!["--metrics-out", prom.to_str().unwrap()]
    } else {
        Vec::new()
    };
    let out = kvmbus_with(
        &cfg,
        &extra,
        |cmd| {
            if let Some(cpu) = at.vm_cpu() {
                pin_command(cmd, cpu);
            }
        },
        |child| match (place, at.device_cpu()) {
            // The in-process device's thread, where the server's would be.
            (Place::InProcess, Some(cpu)) if Some(cpu) != at.vm_cpu() => {
                pin_thread(child, "irq-test", cpu)
            }
            _ => {}
        },
    );
    if !metrics {
        return (out, String::new());
    }
    (
        out,
        std::fs::read_to_string(&prom).expect("--metrics-out file"),
    )
}

/// The mean of histogram `name` in `prom` (its `_sum` over its `_count`, all series).
fn prom_mean(prom: &str, name: &str) -> f64 {
    let total = |suffix: &str| -> f64 {
        let key = format!("{name}_{suffix}{{");
        prom.lines()
            .filter(|l| l.starts_with(&key))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let n = total("count");
    assert!(n > 0.0, "no {name} samples in:\n{prom}");
    total("sum") / n
}

/// The per-interrupt figures (cycles) of `irq-bench: mode 0 <what>` lines.
fn irq_cycles(out: &str, what: &str) -> Vec<f64> {
    let prefix = format!("irq-bench: mode 0 {what}");
    let v: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .flat_map(|l| l.split_whitespace().map(|v| v.parse::<f64>().unwrap()))
        .collect();
    assert!(!v.is_empty(), "no '{prefix}' lines in:\n{out}");
    v
}

/// BAR read figures of one bar-bench run, cycles per read of (I/O, MMIO, mapped BAR4 if
/// there): with `net`, the per-read median less the timer's own median; else the
/// mean of the timed loop.
fn bar(out: &str, net: bool) -> (f64, f64, Option<f64>) {
    let cyc = |what: &str| {
        if net {
            let m = |w: &str| figure(out, &format!("bar-bench: {w} median "), " cycles");
            m(what) - m("timer")
        } else {
            figure(out, &format!("bar-bench: {what} "), " cycles each")
        }
    };
    let mapped = out.contains("bar-bench: mapped ").then(|| cyc("mapped"));
    (cyc("io"), cyc("mmio"), mapped)
}

fn main() {
    let rounds = scaled("ROUNDS", 9, 1) as usize;
    let reads = scaled("READS", 2000, 50);
    let irqs = scaled("IRQS", 200, 10);
    let delay = env_or("DELAY_US", 500);
    let dir = scratch("vfio-user");
    let bar_cmd = format!("n={reads}");
    let irq_cmd = format!("n={irqs} modes=1 delay={delay}");

    println!(
        "vfio-user: {rounds} alternating rounds; {reads} reads per BAR, {irqs} interrupts (DELAY {delay} µs) per VM"
    );
    let (mut local, mut remote) = (Series::default(), Series::default());
    let mut counted = Series::default();
    let mut khz = 0.0;
    // The pinned interrupt placements, where the host has CPUs 0 and 1 to pin to.
    let pinned: &[Placement] = if two_cpus() {
        &[Placement::Shared, Placement::Apart]
    } else {
        println!("  (CPUs 0 and 1 are not both available: no pinned interrupt runs)");
        &[]
    };
    for r in 0..rounds {
        for (place, s) in [(Place::InProcess, &mut local), (Place::Server, &mut remote)] {
            // Both with the final metrics, so that both record them alike.
            let (out, prom) = run(&dir, "bar-bench", &bar_cmd, place, Placement::Free, true);
            khz = figure(&out, "bar-bench: tsc", " kHz");
            let (io, mmio, mapped) = bar(&out, false);
            let (io_net, mmio_net, mapped_net) = bar(&out, true);
            s.io.push(io);
            s.mmio.push(mmio);
            s.io_net.push(io_net);
            s.mmio_net.push(mmio_net);
            if place == Place::Server {
                let rt = prom_mean(&prom, "kvmbus_vfio_user_round_trip_seconds");
                s.vcpu_rt.push(rt * khz * 1000.0);
                let missing = "the server's shared BAR4 is mapped";
                s.mapped.push(mapped.expect(missing));
                s.mapped_net.push(mapped_net.expect(missing));
            }
        }
        let rt = socket_round_trip(&dir, reads);
        remote.socket_rt.push(rt * khz / 1000.0);
        remote.socket_floor.push(socket_floor(reads) * khz / 1000.0);
        let us = |c: f64| c / khz * 1000.0;
        for (place, s) in [
            (Place::InProcess, &mut local),
            (Place::Server, &mut remote),
            (Place::ServerCounted, &mut counted),
        ] {
            let (out, _) = run(&dir, "irq-bench", &irq_cmd, place, Placement::Free, false);
            s.irq.push(us(median(irq_cycles(&out, "trig"))));
            // From before the FIRE write (includes DELAY and, with the server, the
            // forwarded write): printed for reference, not the goal.
            s.fire_to_handler
                .push(us(median(irq_cycles(&out, "lat"))) - delay as f64);
            if r == 0 {
                let line = out
                    .lines()
                    .find(|l| l.starts_with("irq-bench: tsc offset"))
                    .unwrap_or("irq-bench: no tsc offset line");
                let name = match place {
                    Place::InProcess => "in-process",
                    Place::Server => "served",
                    Place::ServerCounted => "served, counted",
                };
                println!("  {name} irq-test: {line}");
            }
        }
        for (i, &at) in pinned.iter().enumerate() {
            for (place, s) in [(Place::InProcess, &mut local), (Place::Server, &mut remote)] {
                let (out, _) = run(&dir, "irq-bench", &irq_cmd, place, at, false);
                s.irq_pinned[i].push(us(median(irq_cycles(&out, "trig"))));
            }
            print!(
                "  round {}: interrupt pinned, device thread {}: in-process {:.1} server {:.1} µs\r\n",
                r + 1,
                at.name(),
                local.irq_pinned[i][r],
                remote.irq_pinned[i][r]
            );
        }
        print!(
            "  round {}: I/O read in-process {:.0} forwarded {:.0} (socket round trip alone {:.0}); MMIO read in-process {:.0} forwarded {:.0} mapped {:.0} cycles; interrupt in-process {:.1} server {:.1} (counted {:.1}) µs\r\n",
            r + 1,
            local.io[r],
            remote.io[r],
            remote.socket_rt[r],
            local.mmio[r],
            remote.mmio[r],
            remote.mapped[r],
            local.irq[r],
            remote.irq[r],
            counted.irq[r]
        );
        std::io::stdout().flush().unwrap();
    }

    report(rounds, khz, pinned, &local, &remote, &counted);
    let _ = std::fs::remove_dir_all(&dir);
}
