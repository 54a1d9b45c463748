//! Booting multiboot guests: output, exit codes, SMP, signals, faults, QEMU parity.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(60);

#[test]
fn hello_prints_and_exits_through_debug_exit() {
    if !kvm_or_skip("hello_prints_and_exits_through_debug_exit") {
        return;
    }
    let out = run_vm("hello", &builtin("hello", 1, ""), T);
    assert_eq!(stdout(&out), "Hello from a kvmbus guest!\n");
    assert_eq!(out.status.code(), Some(1), "(0 << 1) | 1; {}", stderr(&out));
}

#[test]
fn debug_exit_code_passes_through() {
    if !kvm_or_skip("debug_exit_code_passes_through") {
        return;
    }
    let d = scratch("codes");
    for code in [3u32, 42, 100] {
        let cfg = config(&d, "c", &builtin("hello", 1, &format!("code={code}")));
        let out = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
        assert_eq!(
            out.status.code(),
            Some((((code << 1) | 1) & 0xff) as i32),
            "code {code}"
        );
    }
}

fn smp(n: u32) {
    let d = scratch(&format!("smp{n}"));
    let cfg = config(&d, "s", &builtin("hello", n, "smp"));
    let out = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("{n} cpus in the MP table")),
        "{text}"
    );
    for cpu in 0..n {
        assert!(
            text.contains(&format!("hello: cpu {cpu} (apic ")),
            "cpu {cpu} did not report in:\n{text}"
        );
    }
    // Every APIC ID 0..n reported exactly once.
    for apic in 0..n {
        assert_eq!(
            text.matches(&format!("(apic {apic}) online")).count(),
            1,
            "apic {apic}:\n{text}"
        );
    }
    assert!(
        text.contains(&format!("hello: {n} of {n} cpus online")),
        "{text}"
    );
}

#[test]
fn two_vcpus_report_in() {
    if kvm_or_skip("two_vcpus_report_in") {
        smp(2);
    }
}

#[test]
fn four_vcpus_report_in() {
    if kvm_or_skip("four_vcpus_report_in") {
        smp(4);
    }
}

#[test]
fn sigterm_mid_run_stops_cleanly() {
    if !kvm_or_skip("sigterm_mid_run_stops_cleanly") {
        return;
    }
    let d = scratch("sigterm");
    let cfg = config(&d, "demo", &builtin("demo", 2, ""));
    let mut child = spawn_vm(&cfg, &[]);
    let seen = wait_for_output(&mut child, "demo: t=1s", Duration::from_secs(30));
    assert!(seen.contains("2 of 2 cpus online"), "{seen}");
    let (out, _) = stop_with_sigterm(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn triple_fault_stops_with_code_4_and_a_reason() {
    if !kvm_or_skip("triple_fault_stops_with_code_4_and_a_reason") {
        return;
    }
    let out = run_vm("tf", &builtin("triple-fault", 1, ""), T);
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.starts_with("kvmbus: vcpu 0:"), "{err}");
    assert!(!stdout(&out).contains("still alive"));
}

#[test]
fn config_errors_exit_2_with_the_place() {
    let d = scratch("cfgerr");
    let cfg = config(&d, "bad", "[vm]\nvcpu = 2\n");
    let out = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml:2:1: unknown key 'vcpu' in [vm]"),
        "{err}"
    );
    let out = run_with_deadline(kvmbus().arg("check").arg(d.join("missing.toml")), T);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn memory_too_small_for_the_image_is_a_config_error() {
    let d = scratch("small");
    let img = d.join("big.elf");
    let out = kvmbus()
        .args(["image", "hello"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    // The hello image's BSS (per-CPU stacks) reaches past 2 MiB.
    let body = |mib: u32| {
        format!("[vm]\nmemory_mib = {mib}\n[boot]\nkind = \"multiboot\"\nimage = \"big.elf\"\n")
    };
    let out = run_with_deadline(kvmbus().arg("check").arg(config(&d, "small", &body(2))), T);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("small.toml:2:14: key 'memory_mib' in [vm] is too small for the image"),
        "{err}"
    );
    let cfg = config(&d, "enough", &body(8));
    let out = run_with_deadline(kvmbus().arg("check").arg(&cfg), T);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("vm:          name=kvmbus vcpus=1 memory=8 MiB"));
    // A truncated image is reported against `image`.
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() / 2]).unwrap();
    let out = run_with_deadline(kvmbus().arg("check").arg(&cfg), T);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("enough.toml:5:9: key 'image' in [boot]"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}

#[test]
fn vcpus_beyond_the_limits_are_config_errors() {
    if !kvm_or_skip("vcpus_beyond_the_limits_are_config_errors") {
        return;
    }
    let d = scratch("maxcpu");
    // 8-bit xAPIC IDs (and the I/O APIC's) cap the machine at 254 vCPUs.
    let out = run_with_deadline(
        kvmbus()
            .arg("check")
            .arg(config(&d, "m", &builtin("hello", 255, ""))),
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("m.toml:3:9: key 'vcpus' in [vm] is 255, must be 1..=254"),
        "{err}"
    );
    // At 254, KVM's own limit decides; both outcomes name it.
    let out = run_with_deadline(
        kvmbus()
            .arg("check")
            .arg(config(&d, "n", &builtin("hello", 254, ""))),
        T,
    );
    match out.status.code() {
        Some(0) => assert!(stdout(&out).contains("KVM allows"), "{}", stdout(&out)),
        Some(2) => assert!(
            stderr(&out).contains("but KVM allows at most"),
            "{}",
            stderr(&out)
        ),
        other => panic!("unexpected {other:?}: {}", stderr(&out)),
    }
}

#[test]
fn same_elf_boots_on_qemu_with_the_same_serial_output() {
    if !kvm_or_skip("same_elf_boots_on_qemu_with_the_same_serial_output") {
        return;
    }
    require_qemu();
    let d = scratch("qemu");
    let img = guest_elf(&d, "hello");
    let ours = run_with_deadline(
        kvmbus()
            .arg("run")
            .arg(config(&d, "h", &builtin("hello", 1, "code=9"))),
        T,
    );
    let qemu = run_with_deadline(
        Command::new("qemu-system-x86_64")
            .args(["-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", "64"])
            .args([
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
            ])
            .arg(&img)
            .args([
                "-append",
                "code=9",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=1",
            ])
            .stdin(Stdio::null()),
        T,
    );
    assert_eq!(stdout(&ours), "Hello from a kvmbus guest!\n");
    assert_eq!(
        stdout(&qemu),
        stdout(&ours),
        "qemu stderr: {}",
        stderr(&qemu)
    );
    assert_eq!(qemu.status.code(), Some(19));
    assert_eq!(ours.status.code(), Some(19));
}
