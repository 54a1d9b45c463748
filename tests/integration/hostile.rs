//! A hostile guest and hostile local processes: every case ends as documented, bounded
//! in memory and time.

use std::time::Duration;

use crate::common::*;

/// Resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn irq_storm_in_userspace_mode_is_bounded_and_sigterm_stops_it() {
    if !kvm_or_skip("irq_storm_in_userspace_mode_is_bounded_and_sigterm_stops_it") {
        return;
    }
    let d = scratch("irq-storm");
    let body = format!(
        "{}[[device]]\nkind = \"irq-test\"\nmsix_vectors = 4\nmsi_vectors = 1\n",
        builtin("hostile", 1, "irq-storm")
    );
    let mut child = spawn_vm(&config(&d, "storm", &body), &[]);
    let out = wait_for_output(&mut child, "storm armed", Duration::from_secs(60));
    let pending = out
        .split("pending 0x")
        .nth(1)
        .and_then(|s| u64::from_str_radix(s.split_whitespace().next()?, 16).ok())
        .expect("pending printed");
    assert!(pending > u32::MAX as u64, "PENDING in full: {pending:#x}");
    std::thread::sleep(Duration::from_secs(2));
    let rss1 = rss_kib(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let rss2 = rss_kib(child.id());
    assert!(rss2 < 96 * 1024, "RSS {rss2} KiB");
    assert!(rss2 < rss1 + 4 * 1024, "RSS grew from {rss1} to {rss2} KiB");
    let (out, took) = stop_with_sigterm(child, Duration::from_secs(10));
    let status = out.status;
    println!("irq storm: RSS {rss1} -> {rss2} KiB, stopped {took:?} after SIGTERM");
    assert_eq!(status.code(), Some(143));
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
}

#[test]
fn a_non_utf8_config_names_the_place_of_the_first_bad_byte() {
    let d = scratch("non-utf8");
    let p = d.join("bad.toml");
    std::fs::write(&p, b"[vm]\nname = \"d\xffmo\"\n").unwrap();
    let out = run_with_deadline(kvmbus().arg("check").arg(&p), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let want = format!("{}:2:10: invalid UTF-8 (byte 0xff)", p.display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
fn a_second_vm_cannot_take_over_a_live_socket_nor_delete_a_file() {
    if !kvm_or_skip("a_second_vm_cannot_take_over_a_live_socket_nor_delete_a_file") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let d = scratch("socket-takeover");
    let sock = d.join("irq.sock");
    let body = |path: &std::path::Path| {
        format!(
            "{}[[device]]\nkind = \"irq-test\"\nmsix_vectors = 4\nmsi_vectors = 1\nsocket = \"{}\"\n",
            builtin("demo", 1, ""),
            path.display()
        )
    };
    let mut first = spawn_vm(&config(&d, "first", &body(&sock)), &[]);
    wait_for_output(&mut first, "demo: t=1s", Duration::from_secs(60));
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    let second = run_with_deadline(
        kvmbus().arg("run").arg(config(&d, "second", &body(&sock))),
        Duration::from_secs(60),
    );
    assert_ne!(second.status.code(), Some(0));
    assert!(stderr(&second).contains("in use"), "{}", stderr(&second));
    // The first VM still owns the path.
    let trig = run_with_deadline(
        kvmbus()
            .args(["irq-trigger", "--socket"])
            .arg(&sock)
            .args(["--vector", "1"]),
        Duration::from_secs(30),
    );
    assert!(trig.status.success(), "{}", stderr(&trig));
    let _ = first.kill();
    let _ = first.wait();
    // A regular file named as the socket is refused and left alone.
    let file = d.join("precious");
    std::fs::write(&file, b"keep").unwrap();
    let third = run_with_deadline(
        kvmbus().arg("run").arg(config(&d, "third", &body(&file))),
        Duration::from_secs(60),
    );
    assert_ne!(third.status.code(), Some(0));
    assert!(
        stderr(&third).contains("not a socket"),
        "{}",
        stderr(&third)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}
