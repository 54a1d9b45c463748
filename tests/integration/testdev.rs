//! QEMU's test devices (pc-testdev, pci-testdev) under kvmbus, checked by the
//! testdev-check guest, and the same guest under QEMU 7.2 for parity.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(120);

/// The testdev-check guest with both test devices switched on.
fn testdev_config(cmdline: &str) -> String {
    format!(
        "{}[pc_testdev]\nenabled = true\n[[device]]\nkind = \"pci-testdev\"\n",
        builtin("testdev-check", 1, cmdline)
    )
}

/// The guest's "ok" lines, in order (the device's addresses left out).
fn verdicts(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with("testdev-check:") && !l.contains(" at "))
        .collect()
}

#[test]
fn pc_testdev_and_pci_testdev_pass_the_guests_checks() {
    if !kvm_or_skip("pc_testdev_and_pci_testdev_pass_the_guests_checks") {
        return;
    }
    let out = run_vm("testdev", &testdev_config("n=300"), T);
    let text = stdout(&out);
    assert!(!text.contains("FAIL"), "{text}");
    for part in [
        "pc-scratch ok",
        "pc-iomem ok",
        "pc-flush ok",
        "pc-irq 5 ok",
        "pc-irq 10 ok",
        // 300 doorbells reach the device model only without an eventfd: the eventfd
        // variants' counts stay 0 because the kernel took every write (a write that
        // exited to kvmbus would have counted).
        "pci-mmio-no-eventfd ok (count 300)",
        "pci-mmio-wildcard-eventfd ok (count 0)",
        "pci-mmio-datamatch-eventfd ok (count 0)",
        "pci-portio-no-eventfd ok (count 300)",
        "pci-portio-wildcard-eventfd ok (count 0)",
        "pci-portio-datamatch-eventfd ok (count 0)",
        "done, 0 failures",
    ] {
        assert!(
            text.contains(&format!("testdev-check: {part}")),
            "{part}: {text}"
        );
    }
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn the_irq_line_port_names_any_ioapic_pin() {
    if !kvm_or_skip("the_irq_line_port_names_any_ioapic_pin") {
        return;
    }
    // Pins 16-23 exist only on the IOAPIC (QEMU aborts on them; kvmbus drives them).
    let out = run_vm("testdev-pin", &testdev_config("n=1 irq=19"), T);
    let text = stdout(&out);
    assert!(text.contains("testdev-check: pc-irq 19 ok"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
}

#[test]
fn without_configuration_there_are_no_test_devices() {
    if !kvm_or_skip("without_configuration_there_are_no_test_devices") {
        return;
    }
    let out = run_vm("testdev-off", &builtin("testdev-check", 1, "n=1"), T);
    let text = stdout(&out);
    // Unclaimed ports read all-ones, so the scratch register does not echo.
    assert!(text.contains("FAIL scratch reads ffffffff"), "{text}");
    assert!(text.contains("FAIL no pci-testdev"), "{text}");
    assert_ne!(out.status.code(), Some(1), "{text}");
}

#[test]
fn the_same_guest_sees_the_same_devices_under_qemu() {
    if !kvm_or_skip("the_same_guest_sees_the_same_devices_under_qemu") {
        return;
    }
    let d = scratch("testdev-qemu");
    let img = guest_elf(&d, "testdev-check");
    let ours = run_with_deadline(
        kvmbus()
            .arg("run")
            .arg(config(&d, "t", &testdev_config("n=50"))),
        T,
    );
    let qemu = run_with_deadline(
        Command::new("qemu-system-x86_64")
            .args(["-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", "64"])
            .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
            .arg("-kernel")
            .arg(&img)
            .args(["-append", "n=50"])
            .args(["-device", "pc-testdev", "-device", "pci-testdev"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
            .stdin(Stdio::null()),
        T,
    );
    let (a, b) = (stdout(&ours), stdout(&qemu));
    assert_eq!(verdicts(&a).len(), 12, "{a}");
    assert_eq!(verdicts(&a), verdicts(&b), "kvmbus:\n{a}\nQEMU:\n{b}");
    assert_eq!(qemu.status.code(), Some(1), "{}", stderr(&qemu));
    assert_eq!(ours.status.code(), Some(1), "{}", stderr(&ours));
}

#[test]
fn test_device_config_errors_name_file_line_and_key() {
    let d = scratch("testdev-bad");
    for (body, want) in [
        (
            "[pc_testdev]\nenable = true\n",
            "bad.toml:10:1: unknown key 'enable' in [pc_testdev]",
        ),
        (
            "[pc_testdev]\nenabled = 1\n",
            "bad.toml:10:11: key 'enabled' in [pc_testdev]",
        ),
        (
            "[[device]]\nkind = \"pci-testdev\"\nmembar = 4096\n",
            "bad.toml:11:1: unknown key 'membar' in [[device]]",
        ),
    ] {
        let cfg = config(&d, "bad", &format!("{}{body}", builtin("hello", 1, "")));
        let out = run_with_deadline(kvmbus().arg("check").arg(&cfg), T);
        assert_eq!(out.status.code(), Some(2), "{body}");
        assert!(stderr(&out).contains(want), "{body}: {}", stderr(&out));
    }
}
