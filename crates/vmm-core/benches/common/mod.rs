//! Helpers shared by the benchmarks: running guests under kvmbus and QEMU, parsing the
//! guest's own TSC measurements, medians.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Reads `name` from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A scratch directory for this benchmark run.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvmbus-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a config booting built-in `guest` with `cmdline` and returns its path.
pub fn builtin_config(dir: &Path, guest: &str, vcpus: u32, cmdline: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{guest}.toml"));
    std::fs::write(
        &p,
        format!(
            "[vm]\nname = \"bench\"\nvcpus = {vcpus}\nmemory_mib = 64\n\
             [boot]\nkind = \"builtin\"\nimage = \"builtin:{guest}\"\ncmdline = \"{cmdline}\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// The number printed just before `unit` on the guest's line containing `marker`.
pub fn figure(out: &str, marker: &str, unit: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no '{marker}' line in:\n{out}"));
    line.split(unit)
        .next()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("no number before '{unit}' in: {line}"))
}

/// Runs `kvmbus run cfg extra...` and returns its stdout (asserting a debug-exit 0).
pub fn kvmbus(cfg: &Path, extra: &[&str]) -> String {
    kvmbus_with(cfg, extra, |_| {}, |_| {})
}

/// [`kvmbus`], with `setup` given the command before it starts and `started` the
/// process once it runs (while the VM boots).
pub fn kvmbus_with(
    cfg: &Path,
    extra: &[&str],
    setup: impl FnOnce(&mut Command),
    started: impl FnOnce(&mut std::process::Child),
) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvmbus"));
    cmd.arg("run")
        .arg(cfg)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    setup(&mut cmd);
    let mut child = cmd.spawn().expect("run kvmbus");
    started(&mut child);
    let out = child.wait_with_output().expect("wait for kvmbus");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes built-in `guest`'s ELF into `dir` and returns its path.
pub fn image(dir: &Path, guest: &str) -> PathBuf {
    let p = dir.join(format!("{guest}.elf"));
    let ok = Command::new(env!("CARGO_BIN_EXE_kvmbus"))
        .args(["image", guest])
        .arg(&p)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    p
}

/// Boots `elf` under QEMU with KVM (`-enable-kvm -kernel` with isa-debug-exit at 0xf4) and returns stdout.
pub fn qemu(elf: &Path, cmdline: &str) -> String {
    qemu_with(elf, cmdline, &[])
}

/// [`qemu`] with `extra` arguments (e.g. `-device pci-testdev`).
pub fn qemu_with(elf: &Path, cmdline: &str, extra: &[&str]) -> String {
    let out = Command::new("qemu-system-x86_64")
        .args(["-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", "64"])
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
        ])
        .arg(elf)
        .args(["-append", cmdline])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=1"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("qemu-system-x86_64 (scripts/setup.sh installs it)");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub mod result;
pub use result::{bench, goal};

/// Whether `BENCH_SCALE=tiny` asks for one quick round of every workload.
pub fn tiny() -> bool {
    std::env::var("BENCH_SCALE").is_ok_and(|s| s == "tiny")
}

/// `name` from the environment, else `tiny_value` under `BENCH_SCALE=tiny`, else `full`.
pub fn scaled(name: &str, full: u64, tiny_value: u64) -> u64 {
    env_or(name, if tiny() { tiny_value } else { full })
}
