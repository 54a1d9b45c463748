//! ACPI tables, the PM timer and the RTC from the guest's side (acpi-check, rtc-check),
//! under `kvmbus run` on real KVM, and the same ELFs under QEMU 7.2 for comparison.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const T: Duration = Duration::from_secs(60);

/// Runs built-in `guest` with `kvmbus run`; returns the exit code and the serial output.
fn run_acpi_guest(name: &str, guest: &str, vcpus: u32, cmdline: &str) -> (i32, String) {
    let out = run_vm(name, &builtin(guest, vcpus, cmdline), T);
    let code = out.status.code().unwrap_or(-1);
    (code, stdout(&out) + &stderr(&out))
}

#[test]
fn acpi_check_finds_the_tables_and_a_3_58_mhz_pm_timer() {
    if !kvm_or_skip("acpi_check_finds_the_tables_and_a_3_58_mhz_pm_timer") {
        return;
    }
    for vcpus in [1, 3] {
        let (reason, out) = run_acpi_guest(
            &format!("acpi-check-{vcpus}"),
            "acpi-check",
            vcpus,
            &format!("cpus={vcpus} mptable"),
        );
        assert_eq!(reason, 1, "debug-exit 0: {out}");
        assert!(!out.contains("FAIL"), "{out}");
        assert!(out.contains("acpi-check: all ok"), "{out}");
        assert!(
            out.contains(&format!(
                "MADT: {vcpus} local APICs, MP table: {vcpus} CPUs"
            )),
            "{out}"
        );
        assert!(out.contains("SLP_TYP S3 1 S5 0"), "{out}");
        assert!(
            out.contains("PM1a_EVT 600 PM1a_CNT 604 PM_TMR 608"),
            "{out}"
        );
    }
}

#[test]
fn rtc_check_reads_time_takes_alarm_and_periodic_interrupts() {
    if !kvm_or_skip("rtc_check_reads_time_takes_alarm_and_periodic_interrupts") {
        return;
    }
    let (reason, out) = run_acpi_guest("rtc-check", "rtc-check", 1, "");
    assert_eq!(reason, 1, "debug-exit 0: {out}");
    assert!(out.contains("rtc-check: all ok"), "{out}");
    assert!(
        !out.contains("SKIP"),
        "UIP edge must be checked here: {out}"
    );
    assert!(
        out.contains("ok   seconds advance by one per update"),
        "{out}"
    );
    // The guest's date is the host's (UTC), give or take the run.
    let today = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    let today = String::from_utf8_lossy(&today.stdout).trim().to_string();
    assert!(
        out.contains(&format!("time {today}")),
        "host date {today}: {out}"
    );
}

#[test]
fn power_off_through_pm1a_cnt_exits_0() {
    if !kvm_or_skip("power_off_through_pm1a_cnt_exits_0") {
        return;
    }
    // acpi-check's `poweroff` writes the DSDT's \_S5 type (0) with SLP_EN: 0x2000.
    let (reason, out) = run_acpi_guest("acpi-poweroff", "acpi-check", 1, "poweroff");
    assert_eq!(reason, 0, "powered off: {out}");
    assert!(
        out.contains("entering S5") && !out.contains("FAIL"),
        "{out}"
    );
}

/// Runs built-in `guest` under QEMU 7.2 (q35: PM base 0x600 as kvmbus; the TSC frequency
/// leaf offered so the guests time themselves as under kvmbus).
fn qemu(name: &str, guest: &str, smp: u32, cmdline: &str) -> std::process::Output {
    require_qemu();
    let d = scratch(name);
    let img = d.join(format!("{guest}.elf"));
    std::fs::write(
        &img,
        vmm_core::builtin::image(guest).expect("built-in guest"),
    )
    .unwrap();
    let cpu = "host,-arch-capabilities,+invtsc,+vmware-cpuid-freq";
    run_with_deadline(
        Command::new("qemu-system-x86_64")
            .args(["-M", "q35", "-enable-kvm", "-cpu", cpu, "-m", "64"])
            .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
            .args(["-smp", &smp.to_string(), "-kernel"])
            .arg(&img)
            .args(["-append", cmdline])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=1"])
            .stdin(std::process::Stdio::null()),
        T,
    )
}

/// The line of `out` that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{out}"))
}

#[test]
fn the_same_guests_pass_under_qemu_with_the_same_platform() {
    if !kvm_or_skip("the_same_guests_pass_under_qemu_with_the_same_platform") {
        return;
    }
    let q = qemu("qemu-acpi-check", "acpi-check", 2, "cpus=2");
    let qout = stdout(&q);
    assert_eq!(q.status.code(), Some(1), "{qout}\n{}", stderr(&q));
    assert!(qout.contains("acpi-check: all ok"), "{qout}");
    let (reason, ours) = run_acpi_guest("ours-acpi-check", "acpi-check", 2, "cpus=2");
    assert_eq!(reason, 1, "debug-exit 0: {ours}");
    // Same fixed-hardware layout and sleep types as QEMU's q35.
    assert_eq!(
        line(&qout, "acpi-check: SLP_TYP"),
        line(&ours, "acpi-check: SLP_TYP")
    );
    // (SeaBIOS's MP table is not where the guest library looks: compare the MADT part.)
    for o in [&qout, &ours] {
        let madt = line(o, "acpi-check: MADT: 2 local APICs");
        assert!(madt.ends_with("SCI override flags d"), "{madt}");
    }
    let blocks = |o: &str| {
        line(o, "acpi-check: FADT")
            .split_once(": SCI")
            .unwrap()
            .1
            .to_string()
    };
    assert_eq!(blocks(&qout), blocks(&ours));

    // QEMU itself misses the RTC's 244 us update window when the host is loaded (a
    // slow vCPU): up to three tries, each asserting the whole verdict.
    let mut q = qemu("qemu-rtc-check", "rtc-check", 1, "");
    for _ in 0..2 {
        if q.status.code() == Some(1) && stdout(&q).contains("rtc-check: all ok") {
            break;
        }
        q = qemu("qemu-rtc-check", "rtc-check", 1, "");
    }
    let qout = stdout(&q);
    assert_eq!(q.status.code(), Some(1), "{qout}\n{}", stderr(&q));
    assert!(qout.contains("rtc-check: all ok"), "{qout}");

    // kvm-unit-tests' s3 protocol: suspend, RTC alarm, resume at the FACS waking vector
    // in real mode; the same lines under QEMU and kvmbus (but the FACS address).
    let q = qemu("qemu-s3-check", "s3-check", 1, "");
    let qout = stdout(&q);
    assert_eq!(q.status.code(), Some(1), "{qout}\n{}", stderr(&q));
    let (reason, ours) = run_acpi_guest("ours-s3-check", "s3-check", 1, "");
    assert_eq!(reason, 1, "debug-exit 0 from the resume stub: {ours}");
    assert_eq!(
        s3_lines(&qout),
        s3_lines(&ours),
        "QEMU:\n{qout}\nkvmbus:\n{ours}"
    );
}

/// s3-check's lines, the FACS address cut out.
fn s3_lines(out: &str) -> Vec<String> {
    let lines: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("s3-check:"))
        .map(|l| match l.split_once(", waking vector") {
            Some((_, rest)) => format!("FACS ..., waking vector{rest}"),
            None => l.to_string(),
        })
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[2], "s3-check: resumed at the waking vector in real mode",
        "{out}"
    );
    lines
}

#[test]
fn s3_with_application_processors_resumes_the_bsp_at_the_waking_vector() {
    if !kvm_or_skip("s3_with_application_processors_resumes_the_bsp_at_the_waking_vector") {
        return;
    }
    for vcpus in [2, 4] {
        let (reason, out) = run_acpi_guest(&format!("s3-{vcpus}"), "s3-check", vcpus, "");
        assert_eq!(reason, 1, "debug-exit 0 from the resume stub: {out}");
        s3_lines(&out);
    }
}

#[test]
fn sigterm_while_suspended_ends_the_vm_promptly() {
    if !kvm_or_skip("sigterm_while_suspended_ends_the_vm_promptly") {
        return;
    }
    // `nowake` leaves RTC_EN clear: the alarm fires but must not wake the machine.
    let d = scratch("s3-stop");
    let cfg = config(&d, "s3-stop", &builtin("s3-check", 2, "nowake"));
    let mut child = spawn_vm(&cfg, &[]);
    wait_for_output(&mut child, "s3-check: suspending", T);
    // Past the alarm (the next second) with margin: still asleep.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "kvmbus ended while suspended"
    );
    let (out, _) = stop_with_sigterm(child, Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let rest = stdout(&out);
    assert!(!rest.contains("resumed"), "woke without RTC_EN: {rest}");
}
