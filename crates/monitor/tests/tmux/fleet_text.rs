//! A synthetic exposition of two VMs for the golden captures: "demo" (2 vCPUs, the
//! interrupt test device and the hypercall gateway) and a VM with a long name (1 vCPU)
//! that shows how names are cut. Counters grow linearly with the fetch number `n`.

use std::fmt::Write;

pub fn text(n: u64) -> String {
    let mut t = String::new();
    for (vm, vcpus, scale) in [
        ("demo", 2u64, 1u64),
        ("web-frontend-canary-eu-west-01", 1, 3),
    ] {
        let c = |per: u64| per * scale * n;
        let _ = writeln!(t, "kvmbus_vm_state{{vm=\"{vm}\",state=\"running\"}} 1");
        let _ = writeln!(t, "kvmbus_vm_state{{vm=\"{vm}\",state=\"stopping\"}} 0");
        let _ = writeln!(t, "kvmbus_vm_uptime_seconds{{vm=\"{vm}\"}} {}", 3600 + n);
        let _ = writeln!(t, "kvmbus_vm_vcpus{{vm=\"{vm}\"}} {vcpus}");
        let _ = writeln!(t, "kvmbus_vm_memory_bytes{{vm=\"{vm}\"}} {}", 128u64 << 20);
        for v in 0..vcpus {
            let l = format!("vm=\"{vm}\",vcpu=\"{v}\"");
            for (reason, per) in [
                ("io_out", 1000),
                ("io_in", 20),
                ("mmio_write", 5),
                ("hlt", 2),
                ("shutdown", 0),
            ] {
                let _ = writeln!(
                    t,
                    "kvmbus_vcpu_exits_total{{{l},reason=\"{reason}\"}} {}",
                    c(per * (v + 1))
                );
            }
            let _ = writeln!(
                t,
                "kvmbus_kvm_vcpu_exits_total{{{l}}} {}",
                c(4000 * (v + 1))
            );
            let _ = writeln!(
                t,
                "kvmbus_kvm_vcpu_io_exits_total{{{l}}} {}",
                c(3000 * (v + 1))
            );
            let _ = writeln!(t, "kvmbus_kvm_vcpu_halt_exits_total{{{l}}} {}", c(40));
            let _ = writeln!(t, "kvmbus_kvm_vcpu_mmio_exits_total{{{l}}} {}", c(5));
            let _ = writeln!(t, "kvmbus_kvm_vcpu_irq_window_exits_total{{{l}}} 0");
            for (le, share) in [
                ("0.000001", 0),
                ("0.000002", 30),
                ("0.000005", 90),
                ("+Inf", 100),
            ] {
                let _ = writeln!(
                    t,
                    "kvmbus_vcpu_exit_handle_seconds_bucket{{{l},reason=\"io_out\",le=\"{le}\"}} {}",
                    c(10 * share)
                );
            }
            let _ = writeln!(
                t,
                "kvmbus_vcpu_exit_handle_seconds_sum{{{l},reason=\"io_out\"}} {}",
                c(1000) as f64 * 3e-6
            );
            let _ = writeln!(
                t,
                "kvmbus_vcpu_exit_handle_seconds_count{{{l},reason=\"io_out\"}} {}",
                c(1000)
            );
        }
        for v in 0..4 {
            let fired = if v == 0 { c(250) } else { 0 };
            let _ = writeln!(
                t,
                "kvmbus_irq_triggers_total{{vm=\"{vm}\",device=\"irq-test\",vector=\"{v}\"}} {fired}"
            );
            let (gsi, dest, masked) = if v == 0 { (24, 0, 0) } else { (-1, -1, 1) };
            let _ = writeln!(
                t,
                "kvmbus_irq_route_gsi{{vm=\"{vm}\",device=\"irq-test\",vector=\"{v}\",source=\"msix\"}} {gsi}"
            );
            let _ = writeln!(
                t,
                "kvmbus_irq_route_dest{{vm=\"{vm}\",device=\"irq-test\",vector=\"{v}\"}} {dest}"
            );
            let _ = writeln!(
                t,
                "kvmbus_irq_route_masked{{vm=\"{vm}\",device=\"irq-test\",vector=\"{v}\"}} {masked}"
            );
        }
        let _ = writeln!(
            t,
            "kvmbus_irq_route_gsi{{vm=\"{vm}\",device=\"hypercall-gateway\",vector=\"0\",source=\"msix\"}} 25"
        );
        let _ = writeln!(
            t,
            "kvmbus_irq_route_dest{{vm=\"{vm}\",device=\"hypercall-gateway\",vector=\"0\"}} 0"
        );
        let _ = writeln!(
            t,
            "kvmbus_irq_route_masked{{vm=\"{vm}\",device=\"hypercall-gateway\",vector=\"0\"}} 0"
        );
        let _ = writeln!(
            t,
            "kvmbus_irq_triggers_total{{vm=\"{vm}\",device=\"hypercall-gateway\",vector=\"0\"}} {}",
            c(90)
        );
        let _ = writeln!(
            t,
            "kvmbus_msi_route_updates_total{{vm=\"{vm}\",device=\"irq-test\"}} 3"
        );
        let _ = writeln!(
            t,
            "kvmbus_unclaimed_accesses_total{{vm=\"{vm}\",space=\"pio\",dir=\"read\"}} 12"
        );
        let _ = writeln!(
            t,
            "kvmbus_pci_config_accesses_total{{vm=\"{vm}\",mechanism=\"cam\",dir=\"read\"}} 420"
        );
        for (bdf, dev, id, class) in [
            ("00:00.0", "host-bridge", "8086:29c0", "060000"),
            ("00:03.0", "irq-test", "1234:4954", "ff0000"),
            ("00:04.0", "hypercall-gateway", "1234:4843", "088000"),
        ] {
            let (vid, did) = id.split_once(':').unwrap();
            let _ = writeln!(
                t,
                "kvmbus_pci_function_info{{vm=\"{vm}\",bdf=\"{bdf}\",device=\"{dev}\",vendor_id=\"{vid}\",device_id=\"{did}\",class=\"{class}\"}} 1"
            );
        }
        for (bdf, bar, kind, addr, size) in [
            ("00:03.0", 0, "Io", 0xc000u64, 32u64),
            (
                "00:03.0",
                1,
                "Mem32 { prefetchable: false }",
                0x8000_0000,
                4096,
            ),
            ("00:04.0", 0, "Io", 0xc040, 64),
            (
                "00:04.0",
                2,
                "Mem32 { prefetchable: false }",
                0x8000_1000,
                4096,
            ),
        ] {
            let l = format!("vm=\"{vm}\",bdf=\"{bdf}\",bar=\"{bar}\",kind=\"{kind}\"");
            let _ = writeln!(t, "kvmbus_pci_bar_address{{{l}}} {addr}");
            let _ = writeln!(t, "kvmbus_pci_bar_size_bytes{{{l}}} {size}");
        }
        for (bdf, cap, off) in [
            ("00:03.0", "msix", "0x40"),
            ("00:03.0", "msi", "0x50"),
            ("00:04.0", "msix", "0x40"),
            ("00:04.0", "vendor", "0x60"),
        ] {
            let _ = writeln!(
                t,
                "kvmbus_pci_capability_info{{vm=\"{vm}\",bdf=\"{bdf}\",cap=\"{cap}\",offset=\"{off}\"}} 1"
            );
        }
        for (nr, path, status, per) in [
            ("1", "sync", "ok", 400),
            ("1", "ring", "ok", 3000),
            ("0x100", "sync", "ok", 50),
            ("0x100", "sync", "einval", 1),
            ("0x300", "relay", "ebusy", 0),
        ] {
            let _ = writeln!(
                t,
                "kvmbus_hypercalls_total{{vm=\"{vm}\",nr=\"{nr}\",path=\"{path}\",status=\"{status}\"}} {}",
                c(per)
            );
        }
        for (nr, path, per) in [
            ("1", "sync", 400u64),
            ("1", "ring", 3000),
            ("0x100", "sync", 51),
        ] {
            let l = format!("vm=\"{vm}\",nr=\"{nr}\",path=\"{path}\"");
            for (le, share) in [
                ("0.000001", 0),
                ("0.000002", 5),
                ("0.000005", 40),
                ("0.00001", 80),
                ("0.00002", 95),
                ("0.00005", 99),
                ("0.0001", 100),
                ("+Inf", 100),
            ] {
                let _ = writeln!(
                    t,
                    "kvmbus_hypercall_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    c(per) * share / 100
                );
            }
            let _ = writeln!(
                t,
                "kvmbus_hypercall_seconds_sum{{{l}}} {}",
                c(per) as f64 * 8e-6
            );
            let _ = writeln!(t, "kvmbus_hypercall_seconds_count{{{l}}} {}", c(per));
        }
    }
    t
}
