//! Synthetic exposition texts for tests: one VM "demo" with 2 vCPUs, one second apart.

use std::time::{Duration, Instant};

use crate::model::Snapshot;

/// Appends histogram `name{labels}`: `buckets` (le, count), `sum` and the `+Inf` bucket as
/// the count, each times `step + 1`.
fn histogram(
    t: &mut String,
    name: &str,
    labels: &str,
    buckets: &[(&str, u64)],
    sum: f64,
    step: u64,
) {
    let k = step + 1;
    for (le, c) in buckets {
        *t += &format!("{name}_bucket{{{labels},le=\"{le}\"}} {}\n", c * k);
    }
    *t += &format!("{name}_sum{{{labels}}} {}\n", sum * k as f64);
    let count = buckets.last().map_or(0, |&(_, c)| c);
    *t += &format!("{name}_count{{{labels}}} {}\n", count * k);
}

/// The text at time `step` (0 or 1); counters grow by a known amount per step.
pub(crate) fn text(step: u64) -> String {
    let n = |base: u64, per_s: u64| base + per_s * step;
    let mut t = String::new();
    t += "# TYPE kvmbus_vm_state gauge\nkvmbus_vm_state{vm=\"demo\",state=\"running\"} 1\n";
    t += "kvmbus_vm_state{vm=\"demo\",state=\"stopped\"} 0\n";
    t += &format!("kvmbus_vm_uptime_seconds{{vm=\"demo\"}} {}\n", 3723 + step);
    t += "kvmbus_vm_vcpus{vm=\"demo\"} 2\nkvmbus_vm_memory_bytes{vm=\"demo\"} 67108864\n";
    t += "# TYPE kvmbus_vcpu_exits_total counter\n";
    for (vcpu, scale) in [(0, 1), (1, 2)] {
        t += &format!(
            "kvmbus_vcpu_exits_total{{vm=\"demo\",vcpu=\"{vcpu}\",reason=\"io_out\"}} {}\n",
            n(1000 * scale, 500 * scale)
        );
        t += &format!(
            "kvmbus_vcpu_exits_total{{vm=\"demo\",vcpu=\"{vcpu}\",reason=\"io_in\"}} {}\n",
            n(10, 5)
        );
        t += &format!(
            "kvmbus_vcpu_exits_total{{vm=\"demo\",vcpu=\"{vcpu}\",reason=\"mmio_write\"}} {}\n",
            n(7, 0)
        );
        t += &format!(
            "kvmbus_kvm_vcpu_exits_total{{vm=\"demo\",vcpu=\"{vcpu}\"}} {}\n",
            n(90000 * scale, 9000 * scale)
        );
        t += &format!(
            "kvmbus_kvm_vcpu_io_exits_total{{vm=\"demo\",vcpu=\"{vcpu}\"}} {}\n",
            n(5000 * scale, 2505 * scale)
        );
        t += &format!(
            "kvmbus_kvm_vcpu_halt_exits_total{{vm=\"demo\",vcpu=\"{vcpu}\"}} {}\n",
            n(300, 30)
        );
        t += &format!(
            "kvmbus_kvm_vcpu_irq_injections_total{{vm=\"demo\",vcpu=\"{vcpu}\"}} {}\n",
            n(50, 100)
        );
    }
    t += "# TYPE kvmbus_vcpu_exit_handle_seconds histogram\n";
    histogram(
        &mut t,
        "kvmbus_vcpu_exit_handle_seconds",
        "vm=\"demo\",vcpu=\"0\",reason=\"io_out\"",
        &[
            ("0.000001", 0),
            ("0.000002", 10),
            ("0.000005", 20),
            ("+Inf", 20),
        ],
        0.00006,
        step,
    );
    t += &format!(
        "kvmbus_irq_triggers_total{{vm=\"demo\",device=\"hypercall-gw\",vector=\"0\"}} {}\n",
        n(40, 100)
    );
    t += &format!(
        "kvmbus_irq_triggers_total{{vm=\"demo\",device=\"hypercall-gw\",vector=\"1\"}} {}\n",
        n(2, 0)
    );
    t += "kvmbus_irq_route_gsi{vm=\"demo\",device=\"hypercall-gw\",vector=\"0\",source=\"msix\"} 24\n";
    t += "kvmbus_irq_route_gsi{vm=\"demo\",device=\"hypercall-gw\",vector=\"0\",source=\"msi\"} -1\n";
    t += "kvmbus_irq_route_gsi{vm=\"demo\",device=\"hypercall-gw\",vector=\"1\",source=\"msix\"} -1\n";
    t += "kvmbus_irq_route_dest{vm=\"demo\",device=\"hypercall-gw\",vector=\"0\"} 0\n";
    t += "kvmbus_irq_route_dest{vm=\"demo\",device=\"hypercall-gw\",vector=\"1\"} 1\n";
    t += "kvmbus_irq_route_masked{vm=\"demo\",device=\"hypercall-gw\",vector=\"0\"} 0\n";
    t += "kvmbus_irq_route_masked{vm=\"demo\",device=\"hypercall-gw\",vector=\"1\"} 1\n";
    t += "kvmbus_msi_route_updates_total{vm=\"demo\",device=\"hypercall-gw\"} 3\n";
    t += "kvmbus_pci_function_info{vm=\"demo\",bdf=\"00:01.0\",device=\"hypercall-gw\",vendor_id=\"1234\",device_id=\"4843\",class=\"088000\"} 1\n";
    t += "kvmbus_pci_function_info{vm=\"demo\",bdf=\"00:00.0\",device=\"host-bridge\",vendor_id=\"8086\",device_id=\"0d57\",class=\"060000\"} 1\n";
    t += "kvmbus_pci_bar_address{vm=\"demo\",bdf=\"00:01.0\",bar=\"0\",kind=\"io\"} 49152\n";
    t += "kvmbus_pci_bar_size_bytes{vm=\"demo\",bdf=\"00:01.0\",bar=\"0\",kind=\"io\"} 64\n";
    t +=
        "kvmbus_pci_bar_address{vm=\"demo\",bdf=\"00:01.0\",bar=\"2\",kind=\"Mem32 { prefetchable: false }\"} 3758096384\n";
    t += "kvmbus_pci_bar_size_bytes{vm=\"demo\",bdf=\"00:01.0\",bar=\"2\",kind=\"Mem32 { prefetchable: false }\"} 4096\n";
    t += "kvmbus_pci_capability_info{vm=\"demo\",bdf=\"00:01.0\",cap=\"msix\",offset=\"0x40\"} 1\n";
    t += "kvmbus_pci_capability_info{vm=\"demo\",bdf=\"00:01.0\",cap=\"vendor\",offset=\"0x60\"} 1\n";
    t += &format!(
        "kvmbus_hypercalls_total{{vm=\"demo\",nr=\"1\",path=\"sync\",status=\"ok\"}} {}\n",
        n(100, 1000)
    );
    t += "kvmbus_hypercalls_total{vm=\"demo\",nr=\"1\",path=\"sync\",status=\"einval\"} 4\n";
    t += &format!(
        "kvmbus_hypercalls_total{{vm=\"demo\",nr=\"256\",path=\"ring\",status=\"ok\"}} {}\n",
        n(0, 50)
    );
    histogram(
        &mut t,
        "kvmbus_hypercall_seconds",
        "vm=\"demo\",nr=\"1\",path=\"sync\"",
        &[
            ("0.000005", 0),
            ("0.00001", 100),
            ("0.00002", 200),
            ("+Inf", 200),
        ],
        0.002,
        step,
    );
    t += &format!(
        "kvmbus_unclaimed_accesses_total{{vm=\"demo\",space=\"pio\",dir=\"read\"}} {}\n",
        n(3, 1)
    );
    // A vfio-user function: 2000 forwarded reads a second, 4 KiB mapped.
    let vu = "vm=\"demo\",device=\"vfio-user\",bdf=\"00:04.0\"";
    t += "kvmbus_pci_function_info{vm=\"demo\",bdf=\"00:04.0\",device=\"vfio-user\",vendor_id=\"1234\",device_id=\"4954\",class=\"088000\"} 1\n";
    t += &format!("kvmbus_vfio_user_connected{{{vu}}} 1\n");
    t += &format!("kvmbus_vfio_user_mapped_bytes{{{vu}}} 4096\n");
    t += &format!(
        "kvmbus_vfio_user_forwarded_accesses_total{{{vu},dir=\"read\"}} {}\n",
        n(500, 2000)
    );
    t += &format!("kvmbus_vfio_user_forwarded_accesses_total{{{vu},dir=\"write\"}} 7\n");
    t += &format!("kvmbus_vfio_user_dropped_accesses_total{{{vu}}} 3\n");
    t += &format!("kvmbus_vfio_user_reconnects_total{{{vu}}} 1\n");
    histogram(
        &mut t,
        "kvmbus_vfio_user_round_trip_seconds",
        vu,
        &[
            ("0.00001", 0),
            ("0.00005", 1500),
            ("0.0001", 2000),
            ("+Inf", 2000),
        ],
        0.08,
        step,
    );
    t
}

/// Snapshots at t0 and t0 + 1 s.
pub(crate) fn pair() -> (Snapshot, Snapshot) {
    let t0 = Instant::now();
    let a = Snapshot::parse_at(&text(0), t0).unwrap();
    let b = Snapshot::parse_at(&text(1), t0 + Duration::from_secs(1)).unwrap();
    (a, b)
}
