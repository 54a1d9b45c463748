//! What metrics add to a PIO exit: a real-mode guest loops on `out 0x10, al`; rounds of
//! bare exits alternate with rounds that also record through the installed Prometheus
//! recorder with pre-registered handles: a counter increment; a counter plus timing every
//! exit (two clock reads and a histogram record, as `vmm-core` does with timing on); and
//! a counter plus timing one exit in 16. Medians of 8 interleaved rounds.
//!
//! Measured on the nested CI host (~7.1 µs per exit): counter +0.1..0.6%, timing every
//! exit +2.6..3.7% (over budget), timing 1 in 16 +0.7..0.8%. Exits with status 1 when
//! the counter or the sampled variant exceeds 2%.
//!
//! `cargo bench -p monitor --bench pio_exit`

use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};

const MEM: usize = 0x10000;
const CODE: u64 = 0x1000;
const EXITS_PER_ROUND: u32 = 5000;
const ROUNDS: usize = 8;

fn setup(kvm: &Kvm) -> (kvm_ioctls::VmFd, VcpuFd, *mut u8) {
    let vm = kvm.create_vm().unwrap();
    // SAFETY: an anonymous private mapping; the result is checked below.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(mem, libc::MAP_FAILED);
    let mem = mem.cast::<u8>();
    // out 0x10, al ; jmp back to the out
    let code = [0xE6, 0x10, 0xEB, 0xFC];
    // SAFETY: CODE + 4 is inside the MEM-byte mapping made above.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mem.add(CODE as usize), code.len()) };
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: mem as u64,
        flags: 0,
    };
    // SAFETY: the region maps memory that lives (never unmapped) for the whole process.
    unsafe { vm.set_user_memory_region(region).unwrap() };
    let vcpu = vm.create_vcpu(0).unwrap();
    let mut sregs = vcpu.get_sregs().unwrap();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).unwrap();
    let mut regs = vcpu.get_regs().unwrap();
    regs.rip = CODE;
    regs.rflags = 2;
    vcpu.set_regs(&regs).unwrap();
    (vm, vcpu, mem)
}

/// What each exit records besides being handled.
#[derive(Clone, Copy)]
enum Work<'a> {
    Bare,
    Count(&'a metrics::Counter),
    CountAndTime(&'a metrics::Counter, &'a metrics::Histogram),
    /// Timing one exit in `SAMPLE_EVERY`, as a sampled histogram would.
    CountAndSampledTime(&'a metrics::Counter, &'a metrics::Histogram),
}

/// Sampling period of the sampled variant.
const SAMPLE_EVERY: u32 = 16;

fn round(vcpu: &mut VcpuFd, work: Work) -> Duration {
    let start = Instant::now();
    for i in 0..EXITS_PER_ROUND {
        match vcpu.run().unwrap() {
            VcpuExit::IoOut(0x10, _) => {}
            other => panic!("unexpected exit {other:?}"),
        }
        match work {
            Work::Bare => {}
            Work::Count(c) => c.increment(1),
            Work::CountAndTime(c, h) => {
                let t = Instant::now();
                c.increment(1);
                h.record(t.elapsed().as_secs_f64());
            }
            Work::CountAndSampledTime(c, h) => {
                if i % SAMPLE_EVERY == 0 {
                    let t = Instant::now();
                    c.increment(1);
                    h.record(t.elapsed().as_secs_f64());
                } else {
                    c.increment(1);
                }
            }
        }
    }
    start.elapsed() / EXITS_PER_ROUND
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !std::path::Path::new("/dev/kvm").exists() {
        println!("SKIP (no /dev/kvm): pio_exit");
        return;
    }
    let _exporter = monitor::Exporter::install(None).unwrap();
    let labels = [("vm", "bench"), ("vcpu", "0"), ("reason", "io_out")];
    let counter = metrics::counter!(monitor::names::VCPU_EXITS, &labels);
    let hist = metrics::histogram!(monitor::names::VCPU_EXIT_HANDLE_SECONDS, &labels);
    let kvm = Kvm::new().unwrap();
    let (_vm, mut vcpu, _mem) = setup(&kvm);
    round(&mut vcpu, Work::Bare);
    let (mut bare, mut count, mut timed, mut sampled) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(round(&mut vcpu, Work::Bare));
        count.push(round(&mut vcpu, Work::Count(&counter)));
        timed.push(round(&mut vcpu, Work::CountAndTime(&counter, &hist)));
        sampled.push(round(&mut vcpu, Work::CountAndSampledTime(&counter, &hist)));
    }
    let (bare, count, with, sampled) =
        (median(bare), median(count), median(timed), median(sampled));
    let n = 1_000_000u32;
    let t = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        counter.increment(1);
        hist.record(t.elapsed().as_secs_f64());
    }
    let alone = t.elapsed() / n;
    let pct = |d: f64| 100.0 * d / bare.as_secs_f64();
    println!(
        "bare PIO exit           {:>8.0} ns",
        bare.as_secs_f64() * 1e9
    );
    println!(
        "exit + counter          {:>8.0} ns ({:+.2}%, noisy)",
        count.as_secs_f64() * 1e9,
        pct(count.as_secs_f64() - bare.as_secs_f64())
    );
    println!(
        "exit + counter + timing {:>8.0} ns ({:+.2}%, noisy)",
        with.as_secs_f64() * 1e9,
        pct(with.as_secs_f64() - bare.as_secs_f64())
    );
    println!(
        "exit + counter + 1/{SAMPLE_EVERY} timed {:>6.0} ns ({:+.2}%, noisy)",
        sampled.as_secs_f64() * 1e9,
        pct(sampled.as_secs_f64() - bare.as_secs_f64())
    );
    println!(
        "metrics work alone      {:>8.0} ns ({:.2}% of an exit; budget 2%)",
        alone.as_secs_f64() * 1e9,
        pct(alone.as_secs_f64())
    );
    let over = |d: Duration| pct(d.as_secs_f64() - bare.as_secs_f64()) > 2.0;
    if over(count) || over(sampled) {
        eprintln!("FAIL: metrics add more than 2% to a PIO exit");
        std::process::exit(1);
    }
}
