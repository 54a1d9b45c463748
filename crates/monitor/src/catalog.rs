//! Help texts for every name in [`crate::names`], registered with the recorder so a scrape
//! carries `# HELP` lines (promtool insists on them).

use crate::names::*;

/// What kind of metric a catalog entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter (`_total`).
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram (`_seconds`, buckets 1 µs .. 1 s).
    Histogram,
}

/// Every catalog metric: name, kind and help text.
pub const CATALOG: &[(&str, Kind, &str)] = &[
    (
        VCPU_EXITS,
        Kind::Counter,
        "vCPU exits handled in userspace, by reason.",
    ),
    (
        VCPU_EXIT_HANDLE_SECONDS,
        Kind::Histogram,
        "Userspace time spent handling one vCPU exit.",
    ),
    (
        UNCLAIMED_ACCESSES,
        Kind::Counter,
        "PIO/MMIO accesses that no device claimed.",
    ),
    (
        PCI_CONFIG_ACCESSES,
        Kind::Counter,
        "PCI configuration space accesses.",
    ),
    (
        PCI_BAR_OVERLAPS,
        Kind::Counter,
        "PCI BAR overlaps resolved.",
    ),
    (
        PCI_FUNCTION_INFO,
        Kind::Gauge,
        "One PCI function (always 1).",
    ),
    (
        PCI_BAR_ADDRESS,
        Kind::Gauge,
        "Decoded base address of a PCI BAR (0 while not decoding).",
    ),
    (
        PCI_BAR_SIZE_BYTES,
        Kind::Gauge,
        "Size of a PCI BAR in bytes.",
    ),
    (
        PCI_CAPABILITY_INFO,
        Kind::Gauge,
        "One PCI capability (always 1).",
    ),
    (
        IRQ_TRIGGERS,
        Kind::Counter,
        "Interrupts triggered per device and vector.",
    ),
    (
        MSI_ROUTE_UPDATES,
        Kind::Counter,
        "MSI/MSI-X route updates pushed to KVM.",
    ),
    (
        IRQ_ROUTE_GSI,
        Kind::Gauge,
        "GSI a vector is routed through (-1 unrouted).",
    ),
    (
        IRQ_ROUTE_DEST,
        Kind::Gauge,
        "Destination APIC ID of a vector's message (-1 none).",
    ),
    (IRQ_ROUTE_MASKED, Kind::Gauge, "1 while a vector is masked."),
    (
        HYPERCALLS,
        Kind::Counter,
        "Hypercalls completed, by number, path and status.",
    ),
    (
        HYPERCALL_SECONDS,
        Kind::Histogram,
        "Hypercall latency from doorbell to completion.",
    ),
    (VM_STATE, Kind::Gauge, "1 for the VM's current state."),
    (
        VFIO_USER_FORWARDED,
        Kind::Counter,
        "BAR accesses a vfio-user device forwarded to its server.",
    ),
    (
        VFIO_USER_DROPPED,
        Kind::Counter,
        "vfio-user accesses answered all-ones or dropped while the server was away.",
    ),
    (
        VFIO_USER_MAPPED_BYTES,
        Kind::Gauge,
        "Bytes of vfio-user regions mapped into the guest (accessed without exits).",
    ),
    (
        VFIO_USER_ROUND_TRIP_SECONDS,
        Kind::Histogram,
        "Round trip of one forwarded vfio-user region access.",
    ),
    (
        VFIO_USER_CONNECTED,
        Kind::Gauge,
        "1 while a vfio-user device's server is connected.",
    ),
    (
        VFIO_USER_DISCONNECTS,
        Kind::Counter,
        "Connections to vfio-user servers lost.",
    ),
    (
        VFIO_USER_RECONNECTS,
        Kind::Counter,
        "Reconnections to vfio-user servers.",
    ),
    (VM_VCPUS, Kind::Gauge, "Configured vCPUs."),
    (VM_MEMORY_BYTES, Kind::Gauge, "Guest memory in bytes."),
    (
        VM_UPTIME_SECONDS,
        Kind::Gauge,
        "Seconds since the VM started.",
    ),
    (
        VM_REBOOTS,
        Kind::Counter,
        "Machine resets (reset requests, triple faults) the VM rebooted on.",
    ),
    (
        IRQ_ROUTE_SPILLS,
        Kind::Counter,
        "Vectors delivered with KVM_SIGNAL_MSI because KVM's routing table was full.",
    ),
    (
        LOG_SUPPRESSED,
        Kind::Counter,
        "Guest-triggered log lines held back by the rate limit.",
    ),
    (
        SOCKET_REFUSALS,
        Kind::Counter,
        "Unix socket connections refused for the peer's uid.",
    ),
];

/// Registers the help text of every catalog metric with the current recorder
/// (the global one, or a local one inside `metrics::with_local_recorder`).
pub fn describe_catalog() {
    for &(name, kind, help) in CATALOG {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}
