//! Why and how a VM stops, and the exit codes that follow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};

use crate::devices::pm::SuspendGate;

/// Why the VM stopped. The first reason reported wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote `value` to the debug-exit port 0xF4.
    DebugExit(u8),
    /// The guest wrote the power-off value to port 0x604.
    PowerOff,
    /// A vCPU triple-faulted (KVM_EXIT_SHUTDOWN).
    TripleFault {
        /// The vCPU.
        vcpu: u32,
    },
    /// KVM could not run a vCPU (internal error, failed entry, unexpected exit).
    GuestFault {
        /// The vCPU.
        vcpu: u32,
        /// What KVM said.
        detail: String,
    },
    /// The guest asked for a machine reset (the reset control register 0xCF9). With
    /// `[vm] on_reset = "exit"` (the default) the VM ends, as with QEMU's `-no-reboot`;
    /// with "reboot" it boots again. The text says how.
    Reset(String),
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// The user quit the dashboard of `kvmbus run --tui` (exits like Ctrl-C).
    Quit,
    /// The VMM itself failed while running.
    VmmError(String),
}

/// Process exit codes (documented in the README).
pub mod exit_code {
    /// The guest powered off.
    pub const POWER_OFF: i32 = 0;
    /// Configuration error.
    pub const CONFIG: i32 = 2;
    /// KVM unavailable.
    pub const NO_KVM: i32 = 3;
    /// The guest faulted (triple fault, internal error) or asked for a reset.
    pub const GUEST_FAULT: i32 = 4;
    /// The VMM failed at run time (I/O, device setup).
    pub const VMM_ERROR: i32 = 5;
    /// Base for signals: 128 + signal number (130 for SIGINT, 143 for SIGTERM).
    pub const SIGNAL_BASE: i32 = 128;
}

impl StopReason {
    /// The process exit code for this reason.
    pub fn exit_code(&self) -> i32 {
        match self {
            // As QEMU's exit((value << 1) | 1): the OS keeps the low 8 bits.
            StopReason::DebugExit(v) => (((*v as i32) << 1) | 1) & 0xff,
            StopReason::PowerOff => exit_code::POWER_OFF,
            StopReason::TripleFault { .. }
            | StopReason::GuestFault { .. }
            | StopReason::Reset(_) => exit_code::GUEST_FAULT,
            StopReason::Signal(s) => exit_code::SIGNAL_BASE + s,
            StopReason::Quit => exit_code::SIGNAL_BASE + libc::SIGINT,
            StopReason::VmmError(_) => exit_code::VMM_ERROR,
        }
    }

    /// A machine reset on a PC: a reset request or a triple fault (which QEMU also
    /// answers with a reboot unless `-no-reboot`).
    pub fn is_reset(&self) -> bool {
        matches!(self, StopReason::Reset(_) | StopReason::TripleFault { .. })
    }

    /// A one-line description for stderr.
    pub fn describe(&self) -> String {
        match self {
            StopReason::DebugExit(v) => format!("guest wrote {v:#x} to debug-exit port 0xf4"),
            StopReason::PowerOff => "guest powered off".into(),
            StopReason::TripleFault { vcpu } => format!("vcpu {vcpu} triple-faulted (shutdown)"),
            StopReason::GuestFault { vcpu, detail } => format!("vcpu {vcpu}: {detail}"),
            StopReason::Reset(how) => format!("reset requested ({how})"),
            StopReason::Signal(s) => format!("stopped by signal {s}"),
            StopReason::Quit => "stopped from the dashboard".into(),
            StopReason::VmmError(e) => format!("vmm error: {e}"),
        }
    }
}

/// Something to do as soon as a stop is requested (e.g. end a device's waits).
type StopHook = Box<dyn Fn() + Send + Sync>;

/// Shared stop state: devices and vCPUs report, the main thread waits.
pub struct VmControl {
    stopping: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    hooks: Mutex<Vec<StopHook>>,
    tx: Sender<()>,
    rx: Receiver<()>,
    /// Where vCPUs park while the machine is in S3 (released by a stop request).
    gate: SuspendGate,
}

impl std::fmt::Debug for VmControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmControl")
            .field("stopping", &self.stopping())
            .finish_non_exhaustive()
    }
}

impl Default for VmControl {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(1);
        VmControl {
            stopping: AtomicBool::new(false),
            reason: Mutex::new(None),
            hooks: Mutex::new(Vec::new()),
            tx,
            rx,
            gate: SuspendGate::default(),
        }
    }
}

impl VmControl {
    /// Asks the VM to stop; the first reason is kept.
    pub fn request_stop(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        let first = !self.stopping.swap(true, Ordering::SeqCst);
        drop(r);
        if first {
            for h in self.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                h();
            }
        }
        let _ = self.tx.try_send(());
        // vCPUs parked in S3 must see the stop too.
        self.gate.release();
    }

    /// The S3 suspend gate the PM device and the vCPU threads share.
    pub fn suspend_gate(&self) -> &SuspendGate {
        &self.gate
    }

    /// Runs `hook` when the first stop is requested (at once if one already was), on
    /// the requesting thread, before the vCPUs are joined: for waits that must end
    /// (a vCPU in a synchronous hypercall to a stalled backend).
    pub fn on_stop(&self, hook: impl Fn() + Send + Sync + 'static) {
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopping() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }

    /// True once a stop was requested (checked by vCPU loops after every exit).
    #[inline]
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Blocks until a stop is requested; returns the reason.
    pub fn wait(&self) -> StopReason {
        if !self.stopping.load(Ordering::SeqCst) {
            // The sender lives in `self`, so this returns only on a request.
            let _ = self.rx.recv();
        }
        self.reason()
            .unwrap_or(StopReason::VmmError("stopped without a reason".into()))
    }

    /// A channel that receives once a stop is requested (for `select!`); after it fired,
    /// [`VmControl::wait`] returns the reason at once.
    pub fn stopped(&self) -> &Receiver<()> {
        &self.rx
    }

    /// The reason, once there is one.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_qemu_and_the_readme() {
        assert_eq!(StopReason::DebugExit(0).exit_code(), 1);
        assert_eq!(StopReason::DebugExit(3).exit_code(), 7);
        assert_eq!(StopReason::DebugExit(0x7f).exit_code(), 255);
        assert_eq!(StopReason::DebugExit(0xa1).exit_code(), 0x43);
        assert_eq!(StopReason::PowerOff.exit_code(), 0);
        assert_eq!(StopReason::TripleFault { vcpu: 1 }.exit_code(), 4);
        assert_eq!(StopReason::Signal(15).exit_code(), 143);
    }

    #[test]
    fn reset_requests_and_triple_faults_are_machine_resets() {
        assert!(StopReason::Reset("cf9".into()).is_reset());
        assert!(StopReason::TripleFault { vcpu: 0 }.is_reset());
        for r in [
            StopReason::DebugExit(0),
            StopReason::PowerOff,
            StopReason::GuestFault {
                vcpu: 0,
                detail: "emulation failure".into(),
            },
            StopReason::Signal(15),
            StopReason::Quit,
            StopReason::VmmError("x".into()),
        ] {
            assert!(!r.is_reset(), "{r:?}");
        }
    }

    #[test]
    fn stop_hooks_run_once_at_the_first_request() {
        use std::sync::atomic::AtomicU32;
        use std::sync::Arc;
        let c = VmControl::default();
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        c.on_stop(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 0);
        c.request_stop(StopReason::Signal(15));
        c.request_stop(StopReason::Signal(2));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let n3 = n.clone();
        c.on_stop(move || {
            n3.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11, "a late hook runs at once");
    }

    #[test]
    fn first_reason_wins() {
        let c = VmControl::default();
        assert!(!c.stopping());
        c.request_stop(StopReason::PowerOff);
        c.request_stop(StopReason::Signal(2));
        assert!(c.stopping());
        assert_eq!(c.wait(), StopReason::PowerOff);
    }
}
