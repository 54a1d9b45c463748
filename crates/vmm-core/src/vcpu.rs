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
use crate::devices::pm::{Park, ParkState, ResumeTo};

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
    /// KVM reported an internal error: describe it from the vCPU's state (which needs
    /// the vCPU fd the exit borrows), request the stop, and stop this vCPU.
    InternalError,
}

/// Handles one return of KVM_RUN: dispatches I/O to the buses, turns guest-ending exits
/// and errors into a stop request; returns the exit's reason (for accounting) and what
/// to do next. A free function over the result so tests feed it made-up exits.
/// Port I/O is one access of the whole data (see [`handle_exit_io`] for string I/O).
pub fn handle_exit(
    result: Result<VcpuExit<'_>, kvm_ioctls::Error>,
    cx: &VcpuContext,
) -> (ExitReason, Next) {
    handle_exit_io(result, 0, cx)
}

/// [`handle_exit`] for an exit whose port I/O elements are `io_size` bytes (kvm_run's
/// `io.size`; 0: the whole data is one access). KVM hands a string instruction
/// (`rep insb/outsw/...`) to userspace as one exit of `count` elements; each element is
/// its own access to the port, in order, as on hardware and QEMU.
pub fn handle_exit_io(
    result: Result<VcpuExit<'_>, kvm_ioctls::Error>,
    io_size: usize,
    cx: &VcpuContext,
) -> (ExitReason, Next) {
    let stop = |reason: StopReason| cx.control.request_stop(reason);
    let fault = |detail: String| StopReason::GuestFault {
        vcpu: cx.id,
        detail,
    };
    let exit = match result {
        Ok(exit) => exit,
        // A kick (or a signal meant for another thread) interrupted KVM_RUN.
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            return (ExitReason::Intr, Next::Run)
        }
        Err(e) => {
            stop(fault(format!("KVM_RUN failed: {e}")));
            return (ExitReason::Error, Next::Stop);
        }
    };
    match exit {
        VcpuExit::IoOut(port, data) => {
            let size = element_size(io_size, data.len());
            for element in data.chunks(size) {
                cx.pio.write(port as u64, element);
            }
            (ExitReason::IoOut, Next::Run)
        }
        VcpuExit::IoIn(port, data) => {
            let size = element_size(io_size, data.len());
            for element in data.chunks_mut(size) {
                cx.pio.read(port as u64, element);
            }
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
            stop(StopReason::TripleFault { vcpu: cx.id });
            (ExitReason::Shutdown, Next::Stop)
        }
        VcpuExit::SystemEvent(kind, _) => {
            stop(match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => StopReason::PowerOff,
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => {
                    fault("guest requested a reset, which kvmbus does not emulate".into())
                }
                k => fault(format!("system event {k}")),
            });
            (ExitReason::SystemEvent, Next::Stop)
        }
        VcpuExit::InternalError => (ExitReason::Error, Next::InternalError),
        VcpuExit::FailEntry(reason, cpu) => {
            stop(fault(format!(
                "VM entry failed (hardware reason {reason:#x}, cpu {cpu})"
            )));
            (ExitReason::Error, Next::Stop)
        }
        other => {
            stop(fault(format!("unexpected exit {other:?}")));
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

/// The size of one port access in `len` bytes of exit data: `io_size` when it is 1, 2
/// or 4 and divides `len`, else the whole data.
fn element_size(io_size: usize, len: usize) -> usize {
    match io_size {
        1 | 2 | 4 if len % io_size == 0 => io_size,
        _ => len.max(1),
    }
}

/// kvm_run's `io.size` after an exit (meaningful for KVM_EXIT_IO only).
///
/// `run` points at the vCPU's kvm_run mapping (from `VcpuFd::get_kvm_run`), which
/// lives as long as the `VcpuFd`.
fn exit_io_size(run: *const kvm_bindings::kvm_run) -> usize {
    // SAFETY: `run` points into the vCPU's kvm_run mmap, valid for the VcpuFd's whole
    // life (the caller holds the VcpuFd); this thread is the only one running the vCPU
    // and KVM_RUN has returned, so the kernel is not writing it; the field is read by
    // value through a raw pointer (no reference into the union is formed); any bit
    // pattern is a valid u8.
    unsafe { std::ptr::addr_of!((*run).__bindgen_anon_1.io.size).read_volatile() as usize }
}

/// The vCPU thread's loop: runs until the VM stops.
///
/// The handling time recorded is userspace time from KVM_RUN's return to the device's
/// reply being ready (the clock starts after the exit, not before entry). One exit in
/// [`TIMING_SAMPLE`] is timed: timing every exit cost 2.6-3.7% of a PIO exit, over the
/// 2% budget (`cargo bench -p monitor --bench pio_exit`); every exit is counted.
/// A kick ([`crate::signals::kick`]) sets `immediate_exit`; the loop clears it after the
/// EINTR it causes, unless the VM is stopping.
pub fn run_loop(mut vcpu: VcpuFd, cx: VcpuContext, m: ExitMetrics) {
    let run: *const kvm_bindings::kvm_run = vcpu.get_kvm_run();
    let slot = std::ptr::addr_of_mut!(vcpu.get_kvm_run().immediate_exit);
    crate::signals::set_immediate_exit_slot(slot);
    // S3: this thread parks at the gate (outside KVM_RUN) while the machine sleeps.
    let gate = cx.control.suspend_gate();
    gate.register(cx.id);
    let mut parked = ParkState::default();
    let mut n: u32 = 0;
    while !cx.control.stopping() {
        if gate.changed(&parked) && !after_park(&vcpu, &cx, gate.park(cx.id, &mut parked)) {
            break;
        }
        n = n.wrapping_add(1);
        let result = vcpu.run();
        let start = (m.timed && n % TIMING_SAMPLE == 0).then(Instant::now);
        let (reason, next) = handle_exit_io(result, exit_io_size(run), &cx);
        if next == Next::InternalError {
            cx.control.request_stop(StopReason::GuestFault {
                vcpu: cx.id,
                detail: internal_error_detail(&mut vcpu),
            });
        }
        if reason == ExitReason::Intr && !cx.control.stopping() {
            vcpu.set_kvm_immediate_exit(0);
        }
        cx.injector.drain();
        let i = reason as usize;
        m.counts[i].increment(1);
        if let Some(t) = start {
            m.times[i].record(t.elapsed().as_secs_f64());
        }
        if next != Next::Run {
            break;
        }
    }
    gate.unregister(cx.id);
    crate::signals::set_immediate_exit_slot(std::ptr::null_mut());
}

/// Acts on what the S3 gate said; false when the loop must end.
fn after_park(vcpu: &VcpuFd, cx: &VcpuContext, park: Park) -> bool {
    let reset = match park {
        Park::Run => return true,
        Park::Stop => return false,
        Park::Fault(detail) => Err(detail),
        Park::Resume(ResumeTo::RealMode { vector }) => {
            crate::arch::setup_resume_regs(vcpu, vector).map_err(|e| e.to_string())
        }
        Park::Resume(ResumeTo::WaitForSipi) => {
            crate::arch::setup_wait_for_sipi(vcpu).map_err(|e| e.to_string())
        }
    };
    match reset {
        Ok(()) => true,
        Err(detail) => {
            cx.control.request_stop(StopReason::GuestFault {
                vcpu: cx.id,
                detail,
            });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use irq_router::RecordingIrqChip;

    use super::*;
    use crate::bus::{BusDevice, Space};
    use crate::inject::ExitInjector;

    /// Echoes the last byte written; counts writes.
    #[derive(Default)]
    struct Latch(AtomicU64);

    impl BusDevice for Latch {
        fn read(&self, _offset: u64, data: &mut [u8]) {
            data.fill(self.0.load(Ordering::SeqCst) as u8);
        }
        fn write(&self, _offset: u64, data: &[u8]) {
            self.0.store(data[0] as u64, Ordering::SeqCst);
        }
    }

    fn context() -> (VcpuContext, Arc<Latch>) {
        let latch = Arc::new(Latch::default());
        let pio = Arc::new(Bus::new(Space::Pio, "t"));
        let mmio = Arc::new(Bus::new(Space::Mmio, "t"));
        pio.insert(0x80, 1, "latch", latch.clone()).unwrap();
        mmio.insert(0x1000, 8, "latch", latch.clone()).unwrap();
        let chip = Arc::new(RecordingIrqChip::new());
        let cx = VcpuContext {
            id: 3,
            pio,
            mmio,
            control: Arc::new(VmControl::default()),
            injector: Arc::new(ExitInjector::new(chip)),
        };
        (cx, latch)
    }

    #[test]
    fn io_reaches_the_buses_and_unclaimed_reads_all_ones() {
        let (cx, latch) = context();
        assert_eq!(
            handle_exit(Ok(VcpuExit::IoOut(0x80, &[0x42])), &cx),
            (ExitReason::IoOut, Next::Run)
        );
        assert_eq!(latch.0.load(Ordering::SeqCst), 0x42);
        let mut d = [0u8; 1];
        assert_eq!(
            handle_exit(Ok(VcpuExit::IoIn(0x80, &mut d)), &cx).0,
            ExitReason::IoIn
        );
        assert_eq!(d, [0x42]);
        let mut d = [0u8; 4];
        handle_exit(Ok(VcpuExit::IoIn(0x1234, &mut d)), &cx);
        assert_eq!(d, [0xff; 4], "nobody claims port 0x1234");
        handle_exit(Ok(VcpuExit::MmioWrite(0x1000, &[7, 0, 0, 0])), &cx);
        let mut d = [0u8; 2];
        assert_eq!(
            handle_exit(Ok(VcpuExit::MmioRead(0x1004, &mut d)), &cx),
            (ExitReason::MmioRead, Next::Run)
        );
        assert_eq!(d, [7, 7]);
        let mut d = [0u8; 8];
        handle_exit(Ok(VcpuExit::MmioRead(0xdead_0000, &mut d)), &cx);
        assert_eq!(d, [0xff; 8]);
        assert!(!cx.control.stopping());
    }

    /// Records every access: (offset, bytes).
    #[derive(Default)]
    struct Log(std::sync::Mutex<Vec<(u64, usize)>>, AtomicU64);

    impl BusDevice for Log {
        fn read(&self, offset: u64, data: &mut [u8]) {
            self.0.lock().unwrap().push((offset, data.len()));
            let n = self.1.fetch_add(1, Ordering::SeqCst);
            data.fill(n as u8);
        }
        fn write(&self, offset: u64, data: &[u8]) {
            self.0.lock().unwrap().push((offset, data.len()));
        }
    }

    #[test]
    fn string_io_is_one_access_per_element() {
        let (cx, _) = context();
        let log = Arc::new(Log::default());
        cx.pio.insert(0x608, 4, "timer", log.clone()).unwrap();
        // rep insl, count 3: three 4-byte reads, each its own value.
        let mut d = [0u8; 12];
        handle_exit_io(Ok(VcpuExit::IoIn(0x608, &mut d)), 4, &cx);
        assert_eq!(d, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        // rep outsb, count 5: five 1-byte writes.
        handle_exit_io(Ok(VcpuExit::IoOut(0x608, b"hello")), 1, &cx);
        let seen = log.0.lock().unwrap().clone();
        assert_eq!(seen[..3], [(0, 4); 3]);
        assert_eq!(seen[3..], [(0, 1); 5]);
        // A size that does not divide the data (not from KVM): one access.
        log.0.lock().unwrap().clear();
        handle_exit_io(Ok(VcpuExit::IoOut(0x608, &[1, 2, 3])), 2, &cx);
        assert_eq!(log.0.lock().unwrap().as_slice(), &[(0, 3)]);
    }

    #[test]
    fn kicks_and_halts_keep_running() {
        let (cx, _) = context();
        let eintr = kvm_ioctls::Error::new(libc::EINTR);
        assert_eq!(handle_exit(Err(eintr), &cx), (ExitReason::Intr, Next::Run));
        assert_eq!(
            handle_exit(Ok(VcpuExit::Hlt), &cx),
            (ExitReason::Hlt, Next::Run)
        );
        assert!(!cx.control.stopping());
    }

    #[test]
    fn guest_ending_exits_stop_with_their_reason() {
        let (cx, _) = context();
        assert_eq!(
            handle_exit(Ok(VcpuExit::Shutdown), &cx),
            (ExitReason::Shutdown, Next::Stop)
        );
        assert_eq!(
            cx.control.reason(),
            Some(StopReason::TripleFault { vcpu: 3 })
        );

        let (cx, _) = context();
        handle_exit(
            Ok(VcpuExit::SystemEvent(
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN,
                &[],
            )),
            &cx,
        );
        assert_eq!(cx.control.reason(), Some(StopReason::PowerOff));

        let (cx, _) = context();
        handle_exit(
            Ok(VcpuExit::SystemEvent(
                kvm_bindings::KVM_SYSTEM_EVENT_RESET,
                &[],
            )),
            &cx,
        );
        assert!(matches!(
            cx.control.reason(),
            Some(StopReason::GuestFault { vcpu: 3, ref detail }) if detail.contains("reset")
        ));
        assert_eq!(cx.control.reason().unwrap().exit_code(), 4);
    }

    #[test]
    fn errors_and_internal_errors_stop_the_vm() {
        let (cx, _) = context();
        assert_eq!(
            handle_exit(Ok(VcpuExit::InternalError), &cx),
            (ExitReason::Error, Next::InternalError),
            "the loop describes it from the vCPU state"
        );
        assert!(!cx.control.stopping());

        let (cx, _) = context();
        let efault = kvm_ioctls::Error::new(libc::EFAULT);
        assert_eq!(
            handle_exit(Err(efault), &cx),
            (ExitReason::Error, Next::Stop)
        );
        assert!(matches!(
            cx.control.reason(),
            Some(StopReason::GuestFault { ref detail, .. }) if detail.contains("KVM_RUN failed")
        ));

        let (cx, _) = context();
        assert_eq!(
            handle_exit(Ok(VcpuExit::FailEntry(0x21, 1)), &cx),
            (ExitReason::Error, Next::Stop)
        );
        assert!(matches!(
            cx.control.reason(),
            Some(StopReason::GuestFault { ref detail, .. }) if detail.contains("0x21")
        ));

        let (cx, _) = context();
        assert_eq!(
            handle_exit(Ok(VcpuExit::Debug(Default::default())), &cx),
            (ExitReason::Other, Next::Stop)
        );
        assert!(cx.control.stopping());
    }
}
