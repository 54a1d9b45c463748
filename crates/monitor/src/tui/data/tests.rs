use super::*;
use crate::tui::fixture;

fn frames<'a>(base: &'a Snapshot, prev: &'a Snapshot, cur: &'a Snapshot) -> Frames<'a> {
    Frames { base, prev, cur }
}

#[test]
fn overview_per_vm() {
    let (a, b) = fixture::pair();
    let empty = Snapshot::default();
    let o = overview(&frames(&empty, &a, &b));
    assert_eq!(o.len(), 1);
    let o = &o[0];
    assert_eq!(o.state.as_deref(), Some("running"));
    assert_eq!(o.vcpus, Some(2.0));
    // vcpu0: io_out 500 + io_in 5; vcpu1: io_out 1000 + io_in 5 per second.
    assert_eq!(o.user_exits.1, Some(1510.0));
    assert_eq!(o.kvm_exits.1, Some(27000.0));
    assert_eq!(o.irqs.1, Some(100.0));
}

#[test]
fn exits_side_by_side() {
    let (a, b) = fixture::pair();
    let rows = exits(&frames(&a, &a, &b));
    let io0 = rows
        .iter()
        .find(|r| r.vcpu == "0" && r.reason == "io")
        .unwrap();
    assert_eq!(io0.user_rate, Some(505.0));
    assert_eq!(io0.kvm_rate, Some(2505.0));
    assert_eq!(
        io0.user_total,
        Some(505.0),
        "totals count from the baseline"
    );
    assert!((io0.avg.unwrap() - 3e-6).abs() < 1e-12);
    let all1 = rows
        .iter()
        .find(|r| r.vcpu == "1" && r.reason == ALL_EXITS)
        .unwrap();
    assert_eq!(all1.kvm_rate, Some(18000.0));
    let halt = rows.iter().find(|r| r.reason == "halt").unwrap();
    assert_eq!((halt.user_total, halt.kvm_total), (None, Some(30.0)));
}

#[test]
fn interrupts_join_routes() {
    let (a, b) = fixture::pair();
    let rows = interrupts(&frames(&a, &a, &b));
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].gsi, rows[0].rate), (Some(24.0), Some(100.0)));
    assert_eq!(rows[1].masked, "1");
    assert_eq!(route_updates(&frames(&a, &a, &b))[0].2, 0.0);
}

#[test]
fn pci_tree_sorted_by_bdf() {
    let (a, b) = fixture::pair();
    let t = pci_tree(&frames(&a, &a, &b));
    assert_eq!(t[0], (0, "vm demo".to_string()));
    assert!(t[1].1.starts_with("00:00.0 host-bridge"));
    assert!(t
        .iter()
        .any(|(d, l)| *d == 2 && l.contains("0x0000c000") && l.contains("64 B")));
    assert!(t.iter().any(|(_, l)| l == "cap msix @0x40"));
}

#[test]
fn vfio_user_devices_show_state_accesses_and_round_trip() {
    let (a, b) = fixture::pair();
    let empty = Snapshot::default();
    let rows = vfio_user(&frames(&empty, &a, &b));
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.vm.as_str(), r.bdf.as_str()), ("demo", "00:04.0"));
    assert_eq!(r.connected, Some(1.0));
    assert_eq!(r.reads.1, Some(2000.0));
    assert_eq!(r.writes, (Some(7.0), Some(0.0)));
    assert_eq!(r.mapped_bytes, Some(4096.0));
    assert_eq!((r.dropped, r.reconnects), (Some(3.0), Some(1.0)));
    // Over the last second: 1500 of 2000 round trips under 50 µs, all under 100 µs.
    let p50 = r.p50.unwrap();
    assert!(p50 > 1e-5 && p50 <= 5e-5, "p50 {p50}");
    let p99 = r.p99.unwrap();
    assert!(p99 > 5e-5 && p99 <= 1e-4, "p99 {p99}");
    let t = pci_tree(&frames(&a, &a, &b));
    let line = t
        .iter()
        .find(|(d, l)| *d == 2 && l.starts_with("vfio-user "))
        .expect("a vfio-user line under the function");
    assert!(
        line.1.contains("connected") && line.1.contains("mapped 4.0 KiB"),
        "{}",
        line.1
    );
    // Disconnected reads as such.
    let mut down = r.clone();
    down.connected = Some(0.0);
    assert!(vfio_user_line(&down).starts_with("vfio-user DISCONNECTED"));
}

#[test]
fn hypercalls_with_percentiles() {
    let (a, b) = fixture::pair();
    let rows = hypercalls(&frames(&a, &a, &b));
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!((r.nr.as_str(), r.rate), ("1", Some(1000.0)));
    assert_eq!(r.p50, Some(1e-5));
    assert!((r.p99.unwrap() - 1.98e-5).abs() < 1e-12);
    assert_eq!(r.statuses[0].0, "ok");
    assert_eq!(rows[1].nr, "256");
}

#[test]
fn absent_families_give_empty_views() {
    let e = Snapshot::default();
    let f = frames(&e, &e, &e);
    assert!(overview(&f).is_empty() && exits(&f).is_empty() && interrupts(&f).is_empty());
    assert!(pci_tree(&f).is_empty() && hypercalls(&f).is_empty());
    assert!(vfio_user(&f).is_empty());
}

#[test]
fn bar_kinds_read_as_words() {
    assert_eq!(bar_kind("Io"), "io");
    assert_eq!(bar_kind("io"), "io");
    assert_eq!(bar_kind("Mem32 { prefetchable: false }"), "mem32");
    assert_eq!(bar_kind("Mem64 { prefetchable: true }"), "mem64 pref");
    assert_eq!(bar_kind("odd"), "odd");
}

#[test]
fn folding_sums_vcpus() {
    let (a, b) = fixture::pair();
    let f = Frames {
        base: &a,
        prev: &a,
        cur: &b,
    };
    let folded = fold_vcpus(exits(&f));
    let io = folded.iter().find(|r| r.reason == "io").unwrap();
    assert_eq!(io.vcpu, "all");
    assert_eq!(io.user_rate, Some(1510.0));
    assert_eq!(io.kvm_rate, Some(7515.0));
    assert_eq!(folded.iter().filter(|r| r.reason == "io").count(), 1);
}
