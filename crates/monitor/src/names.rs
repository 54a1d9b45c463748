//! The metric catalog: every name kvmbus records, in one place.
//!
//! Prometheus conventions: a `kvmbus_` prefix, `_total` counters, `_seconds` histograms
//! in base units. Labels: `vm`, `vcpu`, `reason`, `space`, `dir`, `mechanism`, `device`,
//! `bdf`, `vector`, `gsi`, `nr`, `path`, `status`. `docs/metrics.md` describes each.

/// Counter: vCPU exits to userspace, by `vm`, `vcpu`, `reason` (io, mmio, hlt, shutdown, ...).
pub const VCPU_EXITS: &str = "kvmbus_vcpu_exits_total";
/// Histogram: userspace time spent handling one exit, by `vm`, `vcpu`, `reason`.
pub const VCPU_EXIT_HANDLE_SECONDS: &str = "kvmbus_vcpu_exit_handle_seconds";
/// Counter: accesses no device claimed, by `vm`, `space` (pio|mmio), `dir` (read|write).
pub const UNCLAIMED_ACCESSES: &str = "kvmbus_unclaimed_accesses_total";
/// Counter: PCI config space accesses, by `vm`, `mechanism` (cam|ecam), `dir`.
pub const PCI_CONFIG_ACCESSES: &str = "kvmbus_pci_config_accesses_total";
/// Counter: BAR overlaps resolved, by `vm`.
pub const PCI_BAR_OVERLAPS: &str = "kvmbus_pci_bar_overlaps_total";
/// Gauge (always 1): one PCI function, by `vm`, `bdf`, `device`, `vendor_id`, `device_id`, `class`.
pub const PCI_FUNCTION_INFO: &str = "kvmbus_pci_function_info";
/// Gauge: a BAR's decoded base address (0 while not decoding), by `vm`, `bdf`, `bar`, `kind`.
pub const PCI_BAR_ADDRESS: &str = "kvmbus_pci_bar_address";
/// Gauge: a BAR's size in bytes, by `vm`, `bdf`, `bar`, `kind`.
pub const PCI_BAR_SIZE_BYTES: &str = "kvmbus_pci_bar_size_bytes";
/// Gauge (always 1): a PCI capability, by `vm`, `bdf`, `cap` (msi, msix, pcie, vendor), `offset`.
pub const PCI_CAPABILITY_INFO: &str = "kvmbus_pci_capability_info";
/// Counter: interrupts triggered through an IrqHandle, by `vm`, `device`, `vector`.
pub const IRQ_TRIGGERS: &str = "kvmbus_irq_triggers_total";
/// Counter: MSI/MSI-X route updates pushed to KVM, by `vm`, `device`.
pub const MSI_ROUTE_UPDATES: &str = "kvmbus_msi_route_updates_total";
/// Gauge: the GSI a vector is routed through (-1 unrouted), by `vm`, `device`, `vector`,
/// `source` (msi|msix|none).
pub const IRQ_ROUTE_GSI: &str = "kvmbus_irq_route_gsi";
/// Gauge: the destination APIC ID of a vector's message (-1 none), by `vm`, `device`,
/// `vector`.
pub const IRQ_ROUTE_DEST: &str = "kvmbus_irq_route_dest";
/// Gauge: 1 while a vector is masked, by `vm`, `device`, `vector`.
pub const IRQ_ROUTE_MASKED: &str = "kvmbus_irq_route_masked";
/// Counter: hypercalls completed, by `vm`, `nr`, `path` (sync|ring|relay|direct), `status`.
pub const HYPERCALLS: &str = "kvmbus_hypercalls_total";
/// Histogram: hypercall latency, by `vm`, `nr`, `path`.
pub const HYPERCALL_SECONDS: &str = "kvmbus_hypercall_seconds";
/// Counter: BAR accesses a vfio-user device forwarded to its server, by `vm`, `device`,
/// `bdf`, `dir` (read|write). Accesses to mmap-ed regions never exit and are not counted.
pub const VFIO_USER_FORWARDED: &str = "kvmbus_vfio_user_forwarded_accesses_total";
/// Counter: accesses answered all-ones / dropped because the server was away, by `vm`,
/// `device`, `bdf`.
pub const VFIO_USER_DROPPED: &str = "kvmbus_vfio_user_dropped_accesses_total";
/// Gauge: bytes of a vfio-user device's regions mapped into the guest (no exit per
/// access), by `vm`, `device`, `bdf`.
pub const VFIO_USER_MAPPED_BYTES: &str = "kvmbus_vfio_user_mapped_bytes";
/// Histogram: round trip of one forwarded region access, by `vm`, `device`, `bdf`.
pub const VFIO_USER_ROUND_TRIP_SECONDS: &str = "kvmbus_vfio_user_round_trip_seconds";
/// Gauge: 1 while the device's server is connected, by `vm`, `device`, `bdf`.
pub const VFIO_USER_CONNECTED: &str = "kvmbus_vfio_user_connected";
/// Counter: connections to a vfio-user server lost, by `vm`, `device`, `bdf`.
pub const VFIO_USER_DISCONNECTS: &str = "kvmbus_vfio_user_disconnects_total";
/// Counter: reconnections to a vfio-user server, by `vm`, `device`, `bdf`.
pub const VFIO_USER_RECONNECTS: &str = "kvmbus_vfio_user_reconnects_total";
/// Gauge: 1 for the VM's current state, by `vm`, `state` (starting|running|stopping|stopped).
pub const VM_STATE: &str = "kvmbus_vm_state";
/// Gauge: configured vCPUs, by `vm`.
pub const VM_VCPUS: &str = "kvmbus_vm_vcpus";
/// Gauge: guest memory in bytes, by `vm`.
pub const VM_MEMORY_BYTES: &str = "kvmbus_vm_memory_bytes";
/// Gauge: seconds since the VM started, by `vm`.
pub const VM_UPTIME_SECONDS: &str = "kvmbus_vm_uptime_seconds";
/// Counter: machine resets the VM rebooted on (`[vm] on_reset = "reboot"`), by `vm`.
pub const VM_REBOOTS: &str = "kvmbus_vm_reboots_total";
/// Prefix of KVM's own per-vCPU binary statistics, e.g. `kvmbus_kvm_vcpu_exits_total`,
/// by `vm`, `vcpu`.
pub const KVM_VCPU_PREFIX: &str = "kvmbus_kvm_vcpu_";
/// Prefix of KVM's own per-VM binary statistics, by `vm`.
pub const KVM_VM_PREFIX: &str = "kvmbus_kvm_vm_";
/// Counter: guest-triggered log lines held back by the rate limit, by `site`.
pub const LOG_SUPPRESSED: &str = "kvmbus_log_suppressed_total";
/// Counter: Unix socket connections refused for the peer's uid, by `socket`.
pub const SOCKET_REFUSALS: &str = "kvmbus_socket_refusals_total";
/// Counter: vectors that found KVM's routing table full and were delivered with
/// KVM_SIGNAL_MSI instead, by `vm`.
pub const IRQ_ROUTE_SPILLS: &str = "kvmbus_irq_route_spills_total";
