//! PIO exit cost: `kvmbus run` on the `pio-storm` guest vs the same guest under a bare
//! kvm-ioctls exit loop, and kvmbus with metrics on vs off, in one run.
//!
//! Run: `cargo bench -p vmm-core --bench exits` (env `EXITS=n` sets exits per run,
//! `ROUNDS=n` the alternating rounds). The guest times its own exits with the TSC and
//! prints cycles per exit; each figure is the median over the rounds, and the runs of
//! the compared variants alternate (A B A B ...) so machine drift hits both alike.

use std::io::Write;
use std::process::Command;

use kvm_ioctls::VcpuExit;
use vmm_core::config;
use vmm_core::vm::Vm;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_text(n: u64) -> String {
    format!(
        "[vm]\nname = \"bench\"\nvcpus = 1\nmemory_mib = 32\n\
         [boot]\nkind = \"builtin\"\nimage = \"builtin:pio-storm\"\ncmdline = \"n={n}\"\n"
    )
}

/// (cycles per exit, TSC kHz) from the guest's last line.
fn parse(out: &str) -> (f64, f64) {
    let line = out
        .lines()
        .find(|l| l.contains("cycles/exit"))
        .unwrap_or_else(|| panic!("no result line in:\n{out}"));
    let field = |key: &str| -> f64 {
        let before = line.split(key).next().unwrap();
        before
            .split_whitespace()
            .last()
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    };
    (field(" cycles/exit"), field(" kHz"))
}

fn kvmbus(cfg: &std::path::Path, extra: &[&str]) -> (f64, f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_kvmbus"))
        .arg("run")
        .arg(cfg)
        .args(extra)
        .output()
        .expect("run kvmbus");
    assert_eq!(out.status.code(), Some(1), "{:?}", out);
    parse(&String::from_utf8_lossy(&out.stdout))
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n = env_or("EXITS", 300_000);
    let rounds = env_or("ROUNDS", 5) as usize;
    let dir = std::env::temp_dir().join(format!("kvmbus-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("pio-storm.toml");
    std::fs::write(&cfg, config_text(n)).unwrap();

    println!("pio-storm: {n} PIO exits per run, {rounds} alternating rounds, medians");
    let (mut k, mut b, mut on) = (Vec::new(), Vec::new(), Vec::new());
    let mut khz = 0.0;
    for r in 0..rounds {
        let (c1, f) = kvmbus(&cfg, &[]);
        let (c2, _) = bare(&cfg);
        let (c3, _) = kvmbus(&cfg, &["--metrics", "127.0.0.1:0"]);
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
