//! ACPI S3 (suspend to RAM) and its resume, as QEMU does them for q35.
//!
//! [`SuspendGate`] lives in [`VmControl`] and is shared by the PM device and every vCPU
//! thread. The guest's SLP_TYP(S3)|SLP_EN write [suspends](SuspendGate::suspend): every
//! other vCPU thread is kicked out of KVM_RUN, and each vCPU parks at the top of its loop
//! (outside KVM_RUN) on a condition variable. A wake (the RTC alarm with RTC_EN set) is
//! [requested](SuspendGate::request_wake) from the RTC's thread; the parked vCPU 0 then
//! does the machine's resume work (QEMU's system reset of the PM registers and the RTC,
//! then WAK_STS|RTC_STS, then the FACS waking vector SeaBIOS would jump to) outside
//! any device lock, and opens the gate: vCPU 0 restarts in real mode at the waking
//! vector, the others go back to wait-for-SIPI. A stop request
//! ([`SuspendGate::release`], called by [`VmControl::request_stop`]) unparks everyone.
//!
//! The vCPU's hot path pays one atomic load per exit ([`SuspendGate::changed`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};

use vm_memory::GuestMemoryMmap;

use super::{AcpiPlatform, AcpiPm, SleepHandler, SleepState, WakeReason};
use crate::arch::acpi::{read_waking_vector, AcpiLayout};
use crate::control::{StopReason, VmControl};
use crate::devices::rtc::Rtc;

/// The machine's resume work, run by vCPU 0 when a wake was requested: resets the
/// devices and returns the real-mode waking vector, or why the machine cannot resume.
pub type ResumeFn = Box<dyn Fn(WakeReason) -> Result<u32, String> + Send + Sync>;

/// Where a vCPU restarts after a resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeTo {
    /// The boot processor: real mode at the FACS waking vector (CS = vector >> 4,
    /// IP = vector & 0xF).
    RealMode {
        /// The 20-bit waking vector.
        vector: u32,
    },
    /// An application processor: back to wait-for-SIPI.
    WaitForSipi,
}

/// What a vCPU does after [`SuspendGate::park`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Park {
    /// Enter the guest as before.
    Run,
    /// The VM is stopping: leave the loop.
    Stop,
    /// Reset this vCPU's state as `ResumeTo` says, then enter the guest.
    Resume(ResumeTo),
    /// The resume failed (stop the VM with this detail).
    Fault(String),
}

/// One vCPU's view of the gate (kept by its thread).
#[derive(Debug, Default)]
pub struct ParkState {
    epoch: u64,
    resumes: u64,
}

#[derive(Default)]
struct GateState {
    suspended: bool,
    wake: Option<WakeReason>,
    resumes: u64,
    vector: u32,
    stopping: bool,
    /// Registered vCPU threads (id, pthread), for the suspend kick.
    threads: Vec<(u32, libc::pthread_t)>,
}

/// The suspend state vCPUs park at (see the module docs).
#[derive(Default)]
pub struct SuspendGate {
    /// Bumped, under the lock, at every change a vCPU must look at.
    epoch: AtomicU64,
    st: Mutex<GateState>,
    cv: Condvar,
    on_resume: OnceLock<ResumeFn>,
}

impl SuspendGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cv.notify_all();
    }

    /// Sets the machine's resume work (once; later calls are ignored).
    pub fn set_on_resume(&self, f: ResumeFn) {
        let _ = self.on_resume.set(f);
    }

    /// Registers the calling thread as vCPU `id`'s, to be kicked at a suspend. The
    /// kick handler ([`crate::signals::install_kick_handler`]) must be installed.
    pub fn register(&self, id: u32) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.lock().threads.push((id, me));
    }

    /// Unregisters the calling thread (before it ends).
    pub fn unregister(&self, id: u32) {
        self.lock().threads.retain(|t| t.0 != id);
    }

    /// Whether the machine is suspended (a wake not yet completed).
    pub fn suspended(&self) -> bool {
        self.lock().suspended
    }

    /// Suspends the machine: every registered vCPU thread but the caller is kicked out
    /// of KVM_RUN and parks at its next [`SuspendGate::park`].
    pub fn suspend(&self) {
        let mut st = self.lock();
        if st.stopping || st.suspended {
            return;
        }
        st.suspended = true;
        st.wake = None;
        self.bump();
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        for &(_, t) in &st.threads {
            // SAFETY: pthread_equal only compares the two ids.
            if unsafe { libc::pthread_equal(t, me) } == 0 {
                // The threads unregister under this lock before they end, so `t` is a
                // live, unjoined thread.
                crate::signals::kick(t);
            }
        }
    }

    /// Asks a suspended machine to wake (ignored when it is not suspended, as QEMU's
    /// qemu_system_wakeup_request). The caller checks the wake is enabled.
    pub fn request_wake(&self, reason: WakeReason) {
        let mut st = self.lock();
        if st.suspended && !st.stopping && st.wake.is_none() {
            st.wake = Some(reason);
            self.bump();
        }
    }

    /// The VM is stopping: every parked vCPU leaves its loop.
    pub fn release(&self) {
        let mut st = self.lock();
        if !st.stopping {
            st.stopping = true;
            self.bump();
        }
    }

    /// The fast check a vCPU makes after every exit: whether anything changed since it
    /// last parked (then it calls [`SuspendGate::park`]).
    #[inline]
    pub fn changed(&self, me: &ParkState) -> bool {
        self.epoch.load(Ordering::Acquire) != me.epoch
    }

    /// Called by vCPU `id` outside KVM_RUN: blocks while the machine is suspended and
    /// says what to do next. vCPU 0 runs the resume work when a wake is requested.
    pub fn park(&self, id: u32, me: &mut ParkState) -> Park {
        let mut st = self.lock();
        loop {
            me.epoch = self.epoch.load(Ordering::Acquire);
            if st.stopping {
                return Park::Stop;
            }
            if st.resumes != me.resumes {
                me.resumes = st.resumes;
                return Park::Resume(if id == 0 {
                    ResumeTo::RealMode { vector: st.vector }
                } else {
                    ResumeTo::WaitForSipi
                });
            }
            if !st.suspended {
                return Park::Run;
            }
            if id == 0 {
                if let Some(reason) = st.wake {
                    // The resume work resets devices whose own locks may call back into
                    // request_wake: run it without the gate's lock.
                    drop(st);
                    let result = match self.on_resume.get() {
                        Some(f) => f(reason),
                        None => Err("no resume handler".into()),
                    };
                    st = self.lock();
                    match result {
                        Ok(vector) => {
                            st.suspended = false;
                            st.wake = None;
                            st.vector = vector;
                            st.resumes += 1;
                            self.bump();
                        }
                        Err(e) => return Park::Fault(format!("resume from S3 failed: {e}")),
                    }
                    continue;
                }
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The S3-capable sleep handler: S3 suspends, S4 and S5 power off (as QEMU's q35).
pub struct S3Sleep {
    control: Arc<VmControl>,
    rtc: OnceLock<Weak<Rtc>>,
}

impl S3Sleep {
    /// A handler for the VM `control` stops (call [`S3Sleep::attach`] once the platform
    /// is built).
    pub fn new(control: Arc<VmControl>) -> S3Sleep {
        S3Sleep {
            control,
            rtc: OnceLock::new(),
        }
    }

    /// Connects the handler to the built platform: the RTC alarm requests a wake when
    /// PM1_EN.RTC_EN is set, and vCPU 0's resume work resets the PM registers and the
    /// RTC, sets WAK_STS|RTC_STS and reads the FACS waking vector from `mem`.
    pub fn attach(&self, acpi: &AcpiPlatform, mem: GuestMemoryMmap) {
        let _ = self.rtc.set(Arc::downgrade(&acpi.rtc));
        let (pm, rtc) = (Arc::downgrade(&acpi.pm), Arc::downgrade(&acpi.rtc));
        let control = Arc::downgrade(&self.control);
        let pm2 = pm.clone();
        acpi.rtc.set_wake_hook(Box::new(move || {
            if let (Some(pm), Some(c)) = (pm2.upgrade(), control.upgrade()) {
                if pm.wake_enabled(WakeReason::Rtc) {
                    c.suspend_gate().request_wake(WakeReason::Rtc);
                }
            }
        }));
        let layout = acpi.layout;
        self.control
            .suspend_gate()
            .set_on_resume(Box::new(move |reason| {
                resume_devices(&pm, &rtc, reason, &mem, &layout)
            }));
    }
}

/// QEMU's qemu_system_wakeup: the system reset (PM registers, RTC), then the wakeup
/// notifier's status bits; SeaBIOS then resumes at the FACS waking vector, or reboots
/// when there is none (kvmbus emulates no reboot: that is an error).
fn resume_devices(
    pm: &Weak<AcpiPm>,
    rtc: &Weak<Rtc>,
    reason: WakeReason,
    mem: &GuestMemoryMmap,
    layout: &AcpiLayout,
) -> Result<u32, String> {
    let (Some(pm), Some(rtc)) = (pm.upgrade(), rtc.upgrade()) else {
        return Err("the ACPI platform is gone".into());
    };
    pm.reset();
    rtc.reset();
    pm.wake(reason);
    match read_waking_vector(mem, layout) {
        0 => Err("the FACS waking vector is 0 (SeaBIOS would reboot; kvmbus does not)".into()),
        v => Ok(v),
    }
}

impl SleepHandler for S3Sleep {
    fn sleep(&self, state: SleepState) {
        match state {
            SleepState::S4 | SleepState::S5 => self.control.request_stop(StopReason::PowerOff),
            SleepState::S3 => {
                if let Some(rtc) = self.rtc.get().and_then(Weak::upgrade) {
                    rtc.notify_suspend();
                }
                log::info!("guest entered S3");
                self.control.suspend_gate().suspend();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A stand-in vCPU thread: parks whenever the gate changed and reports what it got.
    fn vcpu(
        gate: Arc<VmControl>,
        id: u32,
        out: mpsc::Sender<(u32, Park)>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let g = gate.suspend_gate();
            let mut me = ParkState::default();
            loop {
                if g.changed(&me) {
                    let p = g.park(id, &mut me);
                    let stop = p == Park::Stop;
                    out.send((id, p)).unwrap();
                    if stop {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    }

    fn recv(rx: &mpsc::Receiver<(u32, Park)>) -> (u32, Park) {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a vCPU reported")
    }

    #[test]
    fn wake_resumes_bsp_at_the_vector_and_aps_to_wait_for_sipi() {
        let c = Arc::new(VmControl::default());
        let g = c.suspend_gate();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        g.set_on_resume(Box::new(move |r| {
            s2.lock().unwrap().push(r);
            Ok(0x9_a3c5)
        }));
        g.request_wake(WakeReason::Rtc); // not suspended: ignored
        g.suspend();
        assert!(g.suspended());
        let (tx, rx) = mpsc::channel();
        let t: Vec<_> = (0..3).map(|id| vcpu(c.clone(), id, tx.clone())).collect();
        // Parked: nobody reports while suspended.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        g.request_wake(WakeReason::Rtc);
        let mut got: Vec<_> = (0..3).map(|_| recv(&rx)).collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            [
                (0, Park::Resume(ResumeTo::RealMode { vector: 0x9_a3c5 })),
                (1, Park::Resume(ResumeTo::WaitForSipi)),
                (2, Park::Resume(ResumeTo::WaitForSipi)),
            ]
        );
        assert_eq!(*seen.lock().unwrap(), [WakeReason::Rtc]);
        assert!(!g.suspended());
        c.request_stop(StopReason::PowerOff);
        for _ in 0..3 {
            assert_eq!(recv(&rx).1, Park::Stop);
        }
        t.into_iter().for_each(|t| t.join().unwrap());
    }

    #[test]
    fn a_stop_while_suspended_unparks_every_vcpu() {
        let c = Arc::new(VmControl::default());
        c.suspend_gate().suspend();
        let (tx, rx) = mpsc::channel();
        let t: Vec<_> = (0..2).map(|id| vcpu(c.clone(), id, tx.clone())).collect();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        c.request_stop(StopReason::Signal(libc::SIGTERM));
        for _ in 0..2 {
            assert_eq!(recv(&rx).1, Park::Stop);
        }
        t.into_iter().for_each(|t| t.join().unwrap());
        // Suspending a stopping VM does nothing.
        let c = VmControl::default();
        c.request_stop(StopReason::PowerOff);
        c.suspend_gate().suspend();
        assert!(!c.suspend_gate().suspended());
    }

    #[test]
    fn a_failed_resume_is_a_fault_for_the_bsp() {
        let c = Arc::new(VmControl::default());
        let g = c.suspend_gate();
        g.set_on_resume(Box::new(|_| Err("no vector".into())));
        g.suspend();
        g.request_wake(WakeReason::Other);
        let mut me = ParkState::default();
        assert!(g.changed(&me));
        assert!(matches!(g.park(0, &mut me), Park::Fault(d) if d.contains("no vector")));
    }

    #[test]
    fn s3_write_suspends_and_vcpu0_resets_the_devices_on_wake() {
        use crate::bus::{Bus, Space};
        use crate::devices::irq_line::{IrqLine, RecordingIrqLine};
        use crate::devices::pm::{PM1A_CNT_PORT, PM1A_EVT_PORT, RTC_STS, SCI_EN, WAK_STS};
        use vm_memory::{Bytes, GuestAddress};

        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let pio = Bus::new(Space::Pio, "t");
        let c = Arc::new(VmControl::default());
        let sleep = Arc::new(S3Sleep::new(c.clone()));
        let line = |_| -> Arc<dyn IrqLine> { Arc::new(RecordingIrqLine::default()) };
        let mut acpi = AcpiPlatform::build(&mem, 1 << 20, 1, &pio, line, sleep.clone()).unwrap();
        sleep.attach(&acpi, mem.clone());
        mem.write_obj(0x1000u32, GuestAddress(acpi.layout.facs + 12))
            .unwrap();
        pio.write(PM1A_EVT_PORT as u64 + 2, &RTC_STS.to_le_bytes());
        pio.write(PM1A_CNT_PORT as u64, &0x2400u16.to_le_bytes()); // s3.c's write
        let g = c.suspend_gate();
        assert!(g.suspended() && !c.stopping());
        // The CMOS shutdown status says "S3 resume", as QEMU's suspend notifier writes.
        pio.write(0x70, &[0x0f]);
        let mut b = [0u8];
        pio.read(0x71, &mut b);
        assert_eq!(b, [0xfe]);
        g.request_wake(WakeReason::Rtc);
        let mut me = ParkState::default();
        assert_eq!(
            g.park(0, &mut me),
            Park::Resume(ResumeTo::RealMode { vector: 0x1000 })
        );
        assert!(!g.suspended());
        // System reset, then the wakeup notifier's bits.
        assert_eq!(acpi.pm.read_sts() & (WAK_STS | RTC_STS), WAK_STS | RTC_STS);
        assert_eq!(acpi.pm.read_en(), 0);
        assert_eq!(acpi.pm.read_cnt(), SCI_EN);
        assert_eq!(g.park(0, &mut me), Park::Run);
        // S5 still powers off.
        pio.write(PM1A_CNT_PORT as u64, &0x2000u16.to_le_bytes());
        assert_eq!(c.reason(), Some(StopReason::PowerOff));
        acpi.stop();
    }
}
