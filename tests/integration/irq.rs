//! Interrupts are file descriptors: the irq-check guest drives the irq-test device on
//! real KVM and counts what its handlers see.

use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(120);

fn irq_config(vcpus: u32, cmdline: &str, device_extra: &str) -> String {
    format!(
        "{}[[device]]\nkind = \"irq-test\"\nmsix_vectors = 16\nmsi_vectors = 4\n{device_extra}",
        builtin("irq-check", vcpus, cmdline)
    )
}

fn check_all(text: &str, vcpus: u32) {
    assert!(!text.contains("FAIL"), "{text}");
    assert!(
        text.contains("irq-check: paced ok: 2000 interrupts"),
        "{text}"
    );
    for part in ["mask ok", "retarget ok", "msi ok", "0 failures"] {
        assert!(
            text.contains(&format!("irq-check: {part}")),
            "{part}: {text}"
        );
    }
    if vcpus > 1 {
        assert!(
            text.contains(&format!(
                "irq-check: cpus ok: {vcpus} cpus each received their own"
            )),
            "{text}"
        );
    }
}

#[test]
fn n_triggered_n_handled_masking_retargeting_and_msi() {
    if !kvm_or_skip("n_triggered_n_handled_masking_retargeting_and_msi") {
        return;
    }
    let out = run_vm("irq1", &irq_config(1, "n=2000", ""), T);
    check_all(&stdout(&out), 1);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn the_signal_msi_fallback_keeps_the_same_semantics() {
    if !kvm_or_skip("the_signal_msi_fallback_keeps_the_same_semantics") {
        return;
    }
    let d = scratch("irqsig");
    let body = irq_config(2, "n=500", "").replace(
        "[[device]]",
        "[pci]\nmsi_delivery = \"signal-msi\"\n[[device]]",
    );
    let cfg = config(&d, "i", &body);
    let check = run_with_deadline(kvmbus().arg("check").arg(&cfg), T);
    assert!(
        stdout(&check).contains("msi_delivery=signal-msi"),
        "{}",
        stdout(&check)
    );
    let out = run_with_deadline(kvmbus().arg("run").arg(&cfg), T);
    let text = stdout(&out);
    assert!(!text.contains("FAIL"), "{text}");
    assert!(
        text.contains("irq-check: paced ok: 500 interrupts"),
        "{text}"
    );
    for part in [
        "mask ok",
        "retarget ok",
        "msi ok",
        "cpus ok: 2 cpus",
        "0 failures",
    ] {
        assert!(
            text.contains(&format!("irq-check: {part}")),
            "{part}: {text}"
        );
    }
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn four_vcpus_each_receive_their_own_vectors() {
    if !kvm_or_skip("four_vcpus_each_receive_their_own_vectors") {
        return;
    }
    let out = run_vm("irq4", &irq_config(4, "n=2000", ""), T);
    check_all(&stdout(&out), 4);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_second_process_raises_the_interrupt_through_the_passed_fd() {
    if !kvm_or_skip("a_second_process_raises_the_interrupt_through_the_passed_fd") {
        return;
    }
    let d = scratch("irqext");
    let sock = d.join("irq.sock");
    let cfg = config(
        &d,
        "i",
        &irq_config(
            1,
            "n=10 external",
            &format!("socket = \"{}\"\n", sock.display()),
        ),
    );
    let mut child = spawn_vm(&cfg, &[]);
    let mut seen = wait_for_output(&mut child, "waiting for an external trigger", T);
    // A vector the device does not have is refused.
    let bad = run_with_deadline(
        kvmbus()
            .args(["irq-trigger", "--vector", "99", "--socket"])
            .arg(&sock),
        T,
    );
    assert_ne!(bad.status.code(), Some(0));
    let ok = run_with_deadline(
        kvmbus()
            .args(["irq-trigger", "--vector", "5", "--socket"])
            .arg(&sock),
        T,
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let out = child.wait_with_output().unwrap();
    seen.push_str(&String::from_utf8_lossy(&out.stdout));
    assert!(
        seen.contains("irq-check: external ok: 1 interrupt"),
        "{seen}"
    );
    assert!(!seen.contains("FAIL"), "{seen}");
    assert_eq!(out.status.code(), Some(1));
}
