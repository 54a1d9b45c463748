//! The vCPU thread: KVM_RUN, exit dispatch and exit accounting.
//!
//! `handle_exit` is a free function over [`VcpuExit`] so tests can feed it made-up exits.
//! The hot path (one PIO/MMIO exit) is: bus lookup under a read lock, the device call,
//! one atomic counter increment and, with metrics on, two clock reads and a histogram
//! record. No channel round trip.

use std::sync::Arc;
use std::time::Instant;

use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::bus::Bus;
use crate::control::{StopReason, VmControl};

/// Exit reasons as counted (label `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitReason {
    /// `in` instruction.
    IoIn,
    /// `out` instruction.
    IoOut,
    /// MMIO read.
    MmioRead,
    /// MMIO write.
    MmioWrite,
    /// HLT reaching userspace (only without an in-kernel irqchip).
    Hlt,
    /// Triple fault.
    Shutdown,
    /// Interrupted by a signal (a kick).
    Intr,
    /// KVM_EXIT_SYSTEM_EVENT.
    SystemEvent,
    /// KVM internal error or failed entry.
    Error,
    /// Anything else.
    Other,
}

impl ExitReason {
    /// All reasons, in label order.
    pub const ALL: [ExitReason; 10] = [
        ExitReason::IoIn,
        ExitReason::IoOut,
        ExitReason::MmioRead,
        ExitReason::MmioWrite,
        ExitReason::Hlt,
        ExitReason::Shutdown,
        ExitReason::Intr,
        ExitReason::SystemEvent,
        ExitReason::Error,
        ExitReason::Other,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            ExitReason::IoIn => "io_in",
            ExitReason::IoOut => "io_out",
            ExitReason::MmioRead => "mmio_read",
            ExitReason::MmioWrite => "mmio_write",
            ExitReason::Hlt => "hlt",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Intr => "intr",
            ExitReason::SystemEvent => "system_event",
            ExitReason::Error => "error",
            ExitReason::Other => "other",
        }
    }
}

/// One exit in this many has its handling time recorded.
pub const TIMING_SAMPLE: u32 = 16;

/// Pre-registered metric handles of one vCPU (no-ops when no recorder is installed).
pub struct ExitMetrics {
    counts: Vec<metrics::Counter>,
    times: Vec<metrics::Histogram>,
    timed: bool,
}

impl ExitMetrics {
    /// Registers the handles for `vm`/`vcpu`; `timed` enables handling-time histograms.
    pub fn new(vm: &str, vcpu: u32, timed: bool) -> ExitMetrics {
        let label = |r: ExitReason| {
            [
                ("vm", vm.to_string()),
                ("vcpu", vcpu.to_string()),
                ("reason", r.label().to_string()),
            ]
        };
        ExitMetrics {
            counts: ExitReason::ALL
                .iter()
                .map(|r| metrics::counter!(monitor::names::VCPU_EXITS, &label(*r)))
                .collect(),
            times: ExitReason::ALL
                .iter()
                .map(|r| metrics::histogram!(monitor::names::VCPU_EXIT_HANDLE_SECONDS, &label(*r)))
                .collect(),
            timed,
        }
    }
}

/// What a vCPU needs to handle its exits.
pub struct VcpuContext {
    /// The vCPU index (= APIC ID).
    pub id: u32,
    /// Port I/O bus.
    pub pio: Arc<Bus>,
    /// MMIO bus.
    pub mmio: Arc<Bus>,
    /// Stop state.
    pub control: Arc<VmControl>,
    /// Interrupts posted for injection at the next exit (the userspace path).
    pub injector: Arc<crate::inject::ExitInjector>,
}

/// What to do after an exit.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Enter the guest again.
    Run,
    /// Stop this vCPU (the VM is stopping).
    Stop,
}

/// Handles one exit; returns its reason (for accounting) and what to do next.
pub fn handle_exit(exit: VcpuExit<'_>, cx: &VcpuContext) -> (ExitReason, Next) {
    match exit {
        VcpuExit::IoOut(port, data) => {
            cx.pio.write(port as u64, data);
            (ExitReason::IoOut, Next::Run)
        }
        VcpuExit::IoIn(port, data) => {
            cx.pio.read(port as u64, data);
            (ExitReason::IoIn, Next::Run)
        }
        VcpuExit::MmioWrite(addr, data) => {
            cx.mmio.write(addr, data);
            (ExitReason::MmioWrite, Next::Run)
        }
        VcpuExit::MmioRead(addr, data) => {
            cx.mmio.read(addr, data);
            (ExitReason::MmioRead, Next::Run)
        }
        VcpuExit::Hlt => (ExitReason::Hlt, Next::Run),
        VcpuExit::Intr => (ExitReason::Intr, Next::Run),
        VcpuExit::Shutdown => {
            cx.control
                .request_stop(StopReason::TripleFault { vcpu: cx.id });
            (ExitReason::Shutdown, Next::Stop)
        }
        VcpuExit::SystemEvent(kind, _) => {
            let reason = match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => StopReason::PowerOff,
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => StopReason::GuestFault {
                    vcpu: cx.id,
                    detail: "guest requested a reset, which kvmbus does not emulate".into(),
                },
                k => StopReason::GuestFault {
                    vcpu: cx.id,
                    detail: format!("system event {k}"),
                },
            };
            cx.control.request_stop(reason);
            (ExitReason::SystemEvent, Next::Stop)
        }
        VcpuExit::InternalError => {
            cx.control.request_stop(StopReason::GuestFault {
                vcpu: cx.id,
                detail: "KVM internal error (emulation failure)".into(),
            });
            (ExitReason::Error, Next::Stop)
        }
        VcpuExit::FailEntry(reason, cpu) => {
            cx.control.request_stop(StopReason::GuestFault {
                vcpu: cx.id,
                detail: format!("VM entry failed (hardware reason {reason:#x}, cpu {cpu})"),
            });
            (ExitReason::Error, Next::Stop)
        }
        other => {
            cx.control.request_stop(StopReason::GuestFault {
                vcpu: cx.id,
                detail: format!("unexpected exit {other:?}"),
            });
            (ExitReason::Other, Next::Stop)
        }
    }
}

/// Describes a KVM internal error: its suberror, the data KVM gave, and where the
/// guest was.
fn internal_error_detail(vcpu: &mut VcpuFd) -> String {
    let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(u64::MAX);
    let run = vcpu.get_kvm_run();
    // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active
    // member of the union; it is plain data.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let what = match internal.suberror {
        1 => "emulation failure",
        2 => "simultaneous exceptions",
        3 => "delivery of an event failed",
        4 => "unexpected exit during event delivery",
        _ => "internal error",
    };
    let n = (internal.ndata as usize).min(internal.data.len()).min(4);
    format!(
        "KVM internal error: {what} (suberror {}, data {:x?}) at rip {rip:#x}",
        internal.suberror,
        &internal.data[..n]
    )
}

/// The vCPU thread's loop: runs until the VM stops.
///
/// The handling time recorded is userspace time from KVM_RUN's return to the device's
/// reply being ready (the clock starts after the exit, not before entry). One exit in
/// [`TIMING_SAMPLE`] is timed: timing every exit cost 2.6-3.7% of a PIO exit, over the
/// 2% budget (`cargo bench -p monitor --bench pio_exit`); every exit is counted.
pub fn run_loop(mut vcpu: VcpuFd, cx: VcpuContext, m: ExitMetrics) {
    let mut n: u32 = 0;
    while !cx.control.stopping() {
        let result = vcpu.run();
        if matches!(result, Ok(VcpuExit::InternalError)) {
            drop(result);
            cx.control.request_stop(StopReason::GuestFault {
                vcpu: cx.id,
                detail: internal_error_detail(&mut vcpu),
            });
            m.counts[ExitReason::Error as usize].increment(1);
            break;
        }
        n = n.wrapping_add(1);
        let start = (m.timed && n % TIMING_SAMPLE == 0).then(Instant::now);
        let (reason, next) = match result {
            Ok(exit) => handle_exit(exit, &cx),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                (ExitReason::Intr, Next::Run)
            }
            Err(e) => {
                cx.control.request_stop(StopReason::GuestFault {
                    vcpu: cx.id,
                    detail: format!("KVM_RUN failed: {e}"),
                });
                (ExitReason::Error, Next::Stop)
            }
        };
        cx.injector.drain();
        let i = reason as usize;
        m.counts[i].increment(1);
        if let Some(t) = start {
            m.times[i].record(t.elapsed().as_secs_f64());
        }
        if next == Next::Stop {
            break;
        }
    }
}
