//! Long-mode guests built as kvm-unit-tests builds its x86_64 kernels (ELF64 linked at
//! 4 MiB, converted to ELF32, multiboot flags 0), under kvmbus and under QEMU 7.2 with
//! the suite's QEMU flags: the same verdict lines and the same exit status. Also the
//! reset control register 0xCF9.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(120);

/// QEMU 7.2 as kvm-unit-tests' x86/run starts it (display off instead of VNC), with
/// `extra` arguments.
fn qemu(img: &Path, smp: u32, extra: &[&str]) -> Output {
    require_qemu();
    run_with_deadline(
        Command::new("qemu-system-x86_64")
            .args(["-nodefaults", "-device", "pc-testdev"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x4"])
            .args([
                "-device",
                "pci-testdev",
                "-display",
                "none",
                "-serial",
                "stdio",
            ])
            .args(["-machine", "accel=kvm", "-smp", &smp.to_string(), "-kernel"])
            .arg(img)
            .args(extra)
            .stdin(Stdio::null()),
        T,
    )
}

/// kvmbus booting `img` from a file in `dir`; `extra` follows `[boot]`.
fn ours(dir: &Path, name: &str, img: &Path, vcpus: u32, cmdline: &str, extra: &str) -> Output {
    run_multiboot(dir, name, img, vcpus, cmdline, extra, T)
}

/// Every line but the "info:" ones (timings, and values known to differ).
fn verdicts(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter(|l| !l.starts_with("info:"))
        .map(str::to_string)
        .collect()
}

/// Both passed (exit status 1: the guest wrote 0 to debug-exit) with the same lines.
fn same_and_passing(k: &Output, q: &Output) {
    let (a, b) = (verdicts(k), verdicts(q));
    assert!(
        a.iter()
            .any(|l| l.starts_with("SUMMARY:") && l.ends_with(" 0 unexpected failures")),
        "kvmbus:\n{}\n{}",
        stdout(k),
        stderr(k)
    );
    assert!(!a.iter().any(|l| l.starts_with("FAIL")), "{}", stdout(k));
    assert_eq!(
        a,
        b,
        "kvmbus (left) and QEMU (right) differ\nkvmbus:\n{}\nQEMU:\n{}{}",
        stdout(k),
        stdout(q),
        stderr(q)
    );
    assert_eq!(k.status.code(), Some(1), "{}", stderr(k));
    assert_eq!(q.status.code(), Some(1), "{}", stderr(q));
}

#[test]
fn long_mode_images_are_elf32_at_4_mib_with_a_flags_0_multiboot_header() {
    let d = scratch("lm-image");
    let img = std::fs::read(guest_elf(&d, "lm-check")).unwrap();
    assert_eq!(&img[..4], b"\x7fELF");
    assert_eq!(img[4], 1, "ELF32");
    assert_eq!(u16::from_le_bytes([img[18], img[19]]), 3, "i386");
    let entry = u32::from_le_bytes(img[24..28].try_into().unwrap());
    assert!((0x40_0000..0x40_1000).contains(&entry), "entry {entry:#x}");
    let at = (0..8192usize.min(img.len()) - 12)
        .step_by(4)
        .find(|&o| img[o..o + 4] == 0x1BAD_B002u32.to_le_bytes())
        .expect("a multiboot header in the first 8 KiB");
    assert_eq!(&img[at + 4..at + 8], &[0, 0, 0, 0], "flags 0: ELF loading");
}

#[test]
fn lm_check_passes_and_prints_what_qemu_prints() {
    if !kvm_or_skip("lm_check_passes_and_prints_what_qemu_prints") {
        return;
    }
    let d = scratch("lm-check");
    let img = guest_elf(&d, "lm-check");
    std::fs::write(d.join("env"), "NR_CPUS=1\nLMTEST=yes\n").unwrap();
    let k = ours(
        &d,
        "lm",
        &img,
        1,
        "alpha beta=2",
        "modules = [{ path = \"env\" }]\n",
    );
    let env = d.join("env").display().to_string();
    let q = qemu(&img, 1, &["-append", "alpha beta=2", "-initrd", &env]);
    let out = stdout(&k);
    for line in [
        "argv[1] = alpha\n",
        "argv[2] = beta=2\n",
        "env LMTEST=yes\n",
        "PASS: NR_CPUS from the environment matches fw_cfg\n",
        "PASS: long mode (EFER.LME and EFER.LMA)\n",
        "PASS: #GP (non-canonical) resumed: vector 13 error 0\n",
        "PASS: setjmp returns 0, then each longjmp value 1..9\n",
        "PASS: inl 3100 x64 reads all-ones\n",
        "PASS: CR8 = 15 holds a self-IPI back, CR8 = 0 delivers it\n",
        // String I/O: one exit of many elements, each its own port access.
        "rep outsb to the serial port\n",
        "PASS: rep insl x8 from the PM timer reads 8 timer values\n",
        "PASS: WP=1: a supervisor write to a read-only page faults (#PF error 3)\n",
        "PASS: clearing CR4.PGE flushed the global translation\n",
        // kvmbus gives unclaimed MMIO PCI semantics; QEMU 7.2 reads 0 there.
        "info: unclaimed MMIO reads ffffffff\n",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    same_and_passing(&k, &q);
}

#[test]
fn lm_smp_brings_every_cpu_to_long_mode_and_ipis_as_on_qemu() {
    if !kvm_or_skip("lm_smp_brings_every_cpu_to_long_mode_and_ipis_as_on_qemu") {
        return;
    }
    let d = scratch("lm-smp");
    let img = guest_elf(&d, "lm-smp");
    for n in [1, 2, 4] {
        let k = ours(&d, &format!("smp{n}"), &img, n, "", "");
        let q = qemu(&img, n, &[]);
        let out = stdout(&k);
        assert!(
            out.contains(&format!("PASS: {n} of {n} CPUs reached long mode\n")),
            "{out}"
        );
        let trips = (n - 1) * 16;
        assert!(
            out.contains(&format!(
                "PASS: x2APIC: {trips} IPI round trips to {} AP(s)\n",
                n - 1
            )),
            "{out}"
        );
        same_and_passing(&k, &q);
    }
}

#[test]
fn lm_timer_fires_in_tsc_deadline_mode_as_on_qemu() {
    if !kvm_or_skip("lm_timer_fires_in_tsc_deadline_mode_as_on_qemu") {
        return;
    }
    let d = scratch("lm-timer");
    let img = guest_elf(&d, "lm-timer");
    let k = ours(&d, "timer", &img, 1, "", "");
    // kvm-unit-tests' unittests.cfg runs its tscdeadline tests with this CPU.
    let q = qemu(&img, 1, &["-cpu", "qemu64,+x2apic,+tsc-deadline"]);
    let out = stdout(&k);
    for line in [
        "lm-timer: TSC deadline yes, x2APIC yes\n",
        "PASS: xAPIC: TSC deadline already passed fires\n",
        "PASS: x2APIC: self-IPI through SELF IPI\n",
        "PASS: x2APIC: TSC deadline in the future fires once\n",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    same_and_passing(&k, &q);
}

#[test]
fn a_reset_request_at_0xcf9_ends_the_vm_with_code_4() {
    if !kvm_or_skip("a_reset_request_at_0xcf9_ends_the_vm_with_code_4") {
        return;
    }
    let d = scratch("lm-reset");
    let img = guest_elf(&d, "lm-reset");
    let k = ours(&d, "reset", &img, 1, "", "");
    // QEMU reboots on a reset; with -no-reboot it exits 0 instead.
    let q = qemu(&img, 1, &["-no-reboot"]);
    let out = stdout(&k);
    assert!(
        out.contains("info: FADT reset register cf9 value f\n"),
        "{out}"
    );
    assert!(
        out.contains("SUMMARY: 4 tests, 0 unexpected failures\nlm-reset: writing 06"),
        "{out}"
    );
    assert!(!out.contains("still running"), "{out}");
    assert_eq!(k.status.code(), Some(4), "{}", stderr(&k));
    assert!(
        stderr(&k).contains("reset requested (the guest wrote 0x06 to the reset control"),
        "{}",
        stderr(&k)
    );
    assert_eq!(verdicts(&k), verdicts(&q), "QEMU:\n{}", stdout(&q));
    assert_eq!(q.status.code(), Some(0), "{}", stderr(&q));
}
