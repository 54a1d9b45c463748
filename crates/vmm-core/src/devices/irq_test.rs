//! The `irq-test` PCI function: asks its backend thread to fire interrupts, so tests and
//! benchmarks can drive the interrupt path from the guest.
//!
//! BAR0 (64 bytes of I/O) and BAR1 (4 KiB of MMIO) hold the same 32-bit registers; BAR2
//! (64-bit prefetchable memory) holds the MSI-X table at 0 and the PBA after it.
//!
//! | off | name | access | meaning |
//! |---|---|---|---|
//! | 0x00 | ID | R | 0x49525154 |
//! | 0x04 | VECTOR | RW | vector the next FIRE uses |
//! | 0x08 | FIRE | W | ask the backend thread to fire N interrupts on VECTOR; 0 cancels every request not yet fired |
//! | 0x0C | FIRED | R | interrupts fired so far, in total (low 32 bits) |
//! | 0x10 | PENDING | R | requested, not yet fired (low 32 bits) |
//! | 0x14 | VECTORS | R | number of vectors |
//! | 0x18 | MODE | RW | 0 irqfd (the IrqHandle), 1 KVM_SIGNAL_MSI from the backend thread, 2 the userspace exit path: the VMM kicks the destination vCPU out of KVM_RUN and its thread injects |
//! | 0x1C | PENDING_HI | R | high 32 bits of PENDING as of the last PENDING read |
//! | 0x20 | INTX | RW | bit 0: the level of the INTx line (a device built [`IrqTest::with_intx`]; 0 and writes ignored otherwise) |
//! | 0x24 | DELAY | RW | µs the backend thread waits after taking a FIRE request before it fires (at most [`MAX_DELAY_US`]) |
//! | 0x28 | STAMP | R | low 32 bits of the host TSC read just before the last interrupt was raised; latches STAMP_HI |
//! | 0x2C | STAMP_HI | R | high 32 bits of STAMP as of the last STAMP read |
//! | 0x30 | TSC | R | low 32 bits of the host TSC now; latches TSC_HI |
//! | 0x34 | TSC_HI | R | high 32 bits of TSC as of the last TSC read |
//!
//! DELAY, STAMP and TSC let a guest time an interrupt from the moment the device raises
//! it (not from the FIRE write that asked for it, whose cost depends on where the device
//! lives): with a DELAY longer than the FIRE write takes, the vCPU is back in the guest
//! when the interrupt is raised, and STAMP minus the guest's offset to the host TSC
//! (estimated from TSC reads) is the trigger time on the guest's clock.
//!
//! At most [`MAX_REQUESTS`] FIRE requests wait at once; a FIRE beyond that waits, on
//! the vCPU that wrote it, until there is room (back-pressure on the asking guest, never a
//! lost request), or until the device closes at teardown. The backend thread checks
//! for cancellation between interrupts, and the userspace path's queue is bounded
//! ([`crate::inject::QUEUE_LIMIT`]), so no request a guest makes holds unbounded memory
//! or keeps the VM from stopping.
//!
//! Modes 1 and 2 exist to compare paths; they deliver only to an enabled, unmasked
//! vector and otherwise fall back to the IrqHandle (whose pending bit hardware-like
//! masking relies on).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::devices::irq_line::IrqLine;
use crate::inject::ExitInjector;
use irq_router::{HandlesPending, IrqChip, IrqHandle};
use pci_emu::{
    BarKind, FunctionEvent, IrqSource, MsiMessage, MsixLayout, PciConfig, PciFunction, PciIds,
};

use crate::{Error, Result};

/// PCI vendor ID of the irq-test device.
pub const VENDOR_ID: u16 = 0x1234;
/// PCI device ID of the irq-test device.
pub const DEVICE_ID: u16 = 0x4954;
/// Value of the ID register.
pub const MAGIC: u32 = 0x4952_5154;
const REGS_IO_SIZE: u64 = 64;
const REGS_MEM_SIZE: u64 = 4096;
/// FIRE requests that may wait at once.
pub const MAX_REQUESTS: usize = 64;
/// Largest DELAY (µs): teardown waits at most this for a sleeping backend.
pub const MAX_DELAY_US: u32 = 10_000;

#[derive(Default)]
struct Regs {
    vector: AtomicU32,
    mode: AtomicU32,
    fired: AtomicU64,
    pending: AtomicU64,
    /// PENDING's high half, latched by a PENDING read.
    pending_hi: AtomicU32,
    /// Bumped by a FIRE of 0: requests of an older generation are dropped.
    generation: AtomicU64,
    /// Set when the device goes away: the backend thread ends.
    closed: std::sync::atomic::AtomicBool,
    /// The INTx level the guest last wrote.
    intx: std::sync::atomic::AtomicBool,
    /// DELAY: µs between taking a request and firing it.
    delay_us: AtomicU32,
    /// Host TSC just before the last interrupt was raised.
    stamp: AtomicU64,
    /// STAMP's high half, latched by a STAMP read.
    stamp_hi: AtomicU32,
    /// TSC's high half, latched by a TSC read.
    tsc_hi: AtomicU32,
}

/// The host's time stamp counter.
fn host_tsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86-64 (every such CPU has it; user mode may
    // execute it unless CR4.TSD is set, which Linux does not do).
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Regs {
    fn cancelled(&self, generation: u64) -> bool {
        self.closed.load(Ordering::Relaxed) || self.generation.load(Ordering::Relaxed) != generation
    }
}

/// A firing request: vector, count, mode, the message to use for modes 1 and 2, and the
/// generation it belongs to.
struct Fire {
    vector: u16,
    count: u32,
    mode: u32,
    message: Option<MsiMessage>,
    generation: u64,
    /// µs to wait before firing.
    delay_us: u32,
}

/// The irq-test function.
pub struct IrqTest {
    config: PciConfig,
    regs: Arc<Regs>,
    vectors: u16,
    tx: Sender<Fire>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    intx: Option<Arc<dyn IrqLine>>,
    /// Device Control's offset when FLR is advertised.
    flr_control: Option<u16>,
}

/// Stops the irq-test backend thread (teardown): pending firing work is abandoned.
pub struct FiringStop {
    tx: Sender<Fire>,
    regs: Arc<Regs>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl FiringStop {
    /// Asks the backend thread to stop, wakes it, and joins it.
    pub fn stop(self) {
        self.regs.closed.store(true, Ordering::SeqCst);
        // Wakes a backend waiting for a request; a full queue means it is not waiting
        // (it finds every queued request cancelled, then ends).
        let _ = self.tx.try_send(Fire {
            vector: 0,
            count: 0,
            mode: 0,
            message: None,
            generation: 0,
            delay_us: 0,
        });
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        // The backend is gone: nothing is pending any more (a request racing with its
        // end finds the channel closed and releases nothing below zero).
        self.regs.pending.store(0, Ordering::SeqCst);
    }
}

impl IrqTest {
    /// A device with `msix_vectors` MSI-X and `msi_vectors` MSI vectors, raising them
    /// through `handles` (one per vector, the larger count) and, for modes 1 and 2, `chip`.
    pub fn new(
        msix_vectors: u16,
        msi_vectors: u16,
        handles: Vec<IrqHandle>,
        chip: Arc<dyn IrqChip>,
        injector: Arc<ExitInjector>,
    ) -> Result<IrqTest> {
        let err = |e: pci_emu::Error| Error::Device {
            device: "irq-test".into(),
            detail: e.to_string(),
        };
        let mut config = PciConfig::new(PciIds {
            vendor_id: VENDOR_ID,
            device_id: DEVICE_ID,
            class_code: 0x08_8000,
            revision: 1,
            subsystem_vendor_id: VENDOR_ID,
            subsystem_id: 1,
        });
        let msix = MsixLayout::for_vectors(msix_vectors);
        config.add_bar(0, BarKind::Io, REGS_IO_SIZE).map_err(err)?;
        config
            .add_bar(
                1,
                BarKind::Mem32 {
                    prefetchable: false,
                },
                REGS_MEM_SIZE,
            )
            .map_err(err)?;
        config
            .add_bar(2, BarKind::Mem64 { prefetchable: true }, msix.bar_size)
            .map_err(err)?;
        config.add_pcie_cap().map_err(err)?;
        config.add_msi(msi_vectors, true, true).map_err(err)?;
        config
            .add_msix(msix_vectors, 2, msix.table_offset, 2, msix.pba_offset)
            .map_err(err)?;
        config.set_pending_bits(Arc::new(HandlesPending(handles.clone())));

        let regs = Arc::new(Regs::default());
        let (tx, rx) = crossbeam_channel::bounded::<Fire>(MAX_REQUESTS);
        let r = regs.clone();
        let thread = std::thread::Builder::new()
            .name("irq-test".into())
            .spawn(move || backend(rx, handles, chip, injector, r))
            .map_err(|e| Error::Io {
                what: "spawning the irq-test backend".into(),
                source: e,
            })?;
        Ok(IrqTest {
            config,
            regs,
            vectors: msix_vectors.max(msi_vectors),
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
            intx: None,
            flr_control: None,
        })
    }

    /// Advertises Function Level Reset (PCI Express Device Capabilities bit 28); an
    /// Initiate FLR write resets the device's registers as [`IrqTest::resetter`] does.
    /// (Served over vfio-user, the client owns the capability and sends DEVICE_RESET.)
    pub fn with_flr(mut self) -> Result<IrqTest> {
        self.config.set_pcie_flr().map_err(|e| Error::Device {
            device: "irq-test".into(),
            detail: e.to_string(),
        })?;
        self.flr_control = self
            .config
            .capabilities()
            .into_iter()
            .find(|c| c.id == 0x10)
            .map(|c| u16::from(c.offset) + 8);
        Ok(self)
    }

    /// Gives the function INTA#, driven through `line` by the INTX register; `gsi`, the
    /// I/O APIC input the pin is wired to, goes in the interrupt-line register (`None`:
    /// whoever presents the device sets it, as a vfio-user client does).
    pub fn with_intx(mut self, line: Arc<dyn IrqLine>, gsi: Option<u8>) -> IrqTest {
        self.config.set_interrupt_pin(1);
        if let Some(g) = gsi {
            self.config.write(0x3c, &[g]);
        }
        self.intx = Some(line);
        self
    }

    /// What a function-level reset does to the device's own state: VECTOR and MODE back
    /// to 0, every FIRE request not yet fired cancelled, INTx deasserted. (Config space
    /// belongs to whoever presents the function.)
    pub fn resetter(&self) -> impl Fn() + Send + Sync + 'static {
        let (r, intx) = (self.regs.clone(), self.intx.clone());
        move || {
            r.vector.store(0, Ordering::Relaxed);
            r.mode.store(0, Ordering::Relaxed);
            r.delay_us.store(0, Ordering::Relaxed);
            r.generation.fetch_add(1, Ordering::AcqRel);
            r.intx.store(false, Ordering::SeqCst);
            if let Some(l) = &intx {
                l.set_level(false);
            }
        }
    }

    /// A handle that stops the backend thread.
    pub fn stopper(&self) -> FiringStop {
        FiringStop {
            tx: self.tx.clone(),
            regs: self.regs.clone(),
            thread: self.thread.clone(),
        }
    }

    fn reg_read(&self, offset: u64) -> u32 {
        let r = &self.regs;
        match offset {
            0x00 => MAGIC,
            0x04 => r.vector.load(Ordering::Relaxed),
            0x0c => r.fired.load(Ordering::Acquire) as u32,
            0x10 => {
                let p = r.pending.load(Ordering::Acquire);
                r.pending_hi.store((p >> 32) as u32, Ordering::Relaxed);
                p as u32
            }
            0x1c => r.pending_hi.load(Ordering::Relaxed),
            0x14 => self.vectors as u32,
            0x18 => r.mode.load(Ordering::Relaxed),
            0x20 => u32::from(r.intx.load(Ordering::SeqCst)),
            0x24 => r.delay_us.load(Ordering::Relaxed),
            0x28 => {
                let t = r.stamp.load(Ordering::Acquire);
                r.stamp_hi.store((t >> 32) as u32, Ordering::Relaxed);
                t as u32
            }
            0x2c => r.stamp_hi.load(Ordering::Relaxed),
            0x30 => {
                let t = host_tsc();
                r.tsc_hi.store((t >> 32) as u32, Ordering::Relaxed);
                t as u32
            }
            0x34 => r.tsc_hi.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    fn reg_write(&self, offset: u64, v: u32) {
        let r = &self.regs;
        match offset {
            0x04 => r.vector.store(v, Ordering::Relaxed),
            0x08 if v > 0 => {
                let vector = r.vector.load(Ordering::Relaxed) as u16;
                let mode = r.mode.load(Ordering::Relaxed);
                // The message is read now, on the vCPU that asked, from config space.
                let message = [IrqSource::Msix, IrqSource::Msi]
                    .into_iter()
                    .map(|s| self.config.vector_state(s, vector))
                    .find(|s| s.message.is_some())
                    .filter(|s| !s.masked)
                    .and_then(|s| s.message);
                r.pending.fetch_add(v as u64, Ordering::AcqRel);
                let fire = Fire {
                    vector,
                    count: v,
                    mode,
                    message,
                    generation: r.generation.load(Ordering::Relaxed),
                    delay_us: r.delay_us.load(Ordering::Relaxed),
                };
                // Back-pressure: blocks this vCPU while MAX_REQUESTS wait. The send fails
                // only once the backend has ended (the device closed at teardown).
                if self.tx.send(fire).is_err() {
                    release_pending(r, v as u64);
                }
            }
            0x08 => {
                r.generation.fetch_add(1, Ordering::AcqRel);
            }
            0x18 => r.mode.store(v.min(2), Ordering::Relaxed),
            0x24 => r.delay_us.store(v.min(MAX_DELAY_US), Ordering::Relaxed),
            0x20 => {
                if let Some(line) = &self.intx {
                    let high = v & 1 != 0;
                    r.intx.store(high, Ordering::SeqCst);
                    line.set_level(high);
                }
            }
            _ => {}
        }
    }
}

/// Takes `n` off PENDING, never below zero.
fn release_pending(regs: &Regs, n: u64) {
    let _ = regs
        .pending
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
            Some(p.saturating_sub(n))
        });
}

fn backend(
    rx: Receiver<Fire>,
    handles: Vec<IrqHandle>,
    chip: Arc<dyn IrqChip>,
    injector: Arc<ExitInjector>,
    regs: Arc<Regs>,
) {
    for f in rx.iter() {
        let mut left = f.count;
        let cancelled = || regs.cancelled(f.generation);
        if f.delay_us > 0 && !cancelled() {
            std::thread::sleep(std::time::Duration::from_micros(f.delay_us.into()));
        }
        while left > 0 && !cancelled() {
            regs.stamp.store(host_tsc(), Ordering::Release);
            match (f.mode, f.message, handles.get(f.vector as usize)) {
                (1, Some(m), _) => {
                    let _ = chip.signal_msi(m);
                }
                (2, Some(m), _) => {
                    if !injector.post(m, cancelled) {
                        break;
                    }
                }
                (_, _, Some(h)) => {
                    let _ = h.trigger();
                }
                (_, _, None) => {} // a vector the device does not have: nothing to fire
            }
            left -= 1;
            regs.fired.fetch_add(1, Ordering::AcqRel);
            regs.pending.fetch_sub(1, Ordering::AcqRel);
        }
        // Cancelled: what was not fired is no longer pending.
        regs.pending.fetch_sub(left as u64, Ordering::AcqRel);
        if regs.closed.load(Ordering::Relaxed) {
            // What still waits will never fire: it is no longer pending.
            while let Ok(f) = rx.try_recv() {
                release_pending(&regs, f.count as u64);
            }
            return;
        }
    }
}

impl Drop for IrqTest {
    fn drop(&mut self) {
        self.regs.closed.store(true, Ordering::Relaxed);
    }
}

impl PciFunction for IrqTest {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        if let Some(ctl) = self.flr_control {
            let at = usize::from(ctl + 1).wrapping_sub(usize::from(offset));
            if offset <= ctl + 1 && data.get(at).is_some_and(|b| b & 0x80 != 0) {
                (self.resetter())();
            }
        }
        self.config.write(offset, data)
    }
    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            0 | 1 if data.len() == 4 && offset % 4 == 0 => {
                data.copy_from_slice(&self.reg_read(offset).to_le_bytes())
            }
            2 if self.config.msix_bar_read(bar, offset, data) => {}
            _ => data.fill(0xff),
        }
    }
    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) -> Vec<FunctionEvent> {
        let mut events = Vec::new();
        match bar {
            0 | 1 if data.len() == 4 && offset % 4 == 0 => {
                self.reg_write(offset, u32::from_le_bytes(data.try_into().unwrap()))
            }
            2 => {
                self.config.msix_bar_write(bar, offset, data, &mut events);
            }
            _ => {}
        }
        events
    }
    fn name(&self) -> &str {
        "irq-test"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irq_router::{DeliveryMode, IrqRouter, RecordingIrqChip, RouterConfig};
    use pci_emu::Bdf;
    use std::time::{Duration, Instant};

    fn device() -> IrqTest {
        let chip: Arc<dyn IrqChip> = Arc::new(RecordingIrqChip::new());
        let mut r = IrqRouter::new(
            chip.clone(),
            RouterConfig {
                vm: "t".into(),
                max_routes: 4096,
                mode: DeliveryMode::Irqfd,
            },
        )
        .unwrap();
        let h = r
            .add_device(Bdf::new(0, 3, 0).unwrap(), "irq-test", 4)
            .unwrap();
        IrqTest::new(4, 4, h, chip.clone(), Arc::new(ExitInjector::new(chip))).unwrap()
    }

    fn w(d: &mut IrqTest, off: u64, v: u32) {
        d.bar_write(0, off, &v.to_le_bytes());
    }

    fn r(d: &mut IrqTest, off: u64) -> u32 {
        let mut b = [0u8; 4];
        d.bar_read(0, off, &mut b);
        u32::from_le_bytes(b)
    }

    fn pending(d: &mut IrqTest) -> u64 {
        let lo = r(d, 0x10) as u64;
        lo | (r(d, 0x1c) as u64) << 32
    }

    fn until(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn pending_reads_in_full_and_fire_zero_cancels() {
        let mut d = device();
        w(&mut d, 0x08, u32::MAX);
        w(&mut d, 0x08, u32::MAX);
        let p = pending(&mut d);
        assert!(p > u32::MAX as u64, "pending {p:#x}");
        w(&mut d, 0x08, 0);
        assert!(
            until(|| pending(&mut d) == 0),
            "cancel left {:#x}",
            pending(&mut d)
        );
        let fired = r(&mut d, 0x0c);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(r(&mut d, 0x0c), fired, "nothing fires after a cancel");
        // New requests after the cancel are served.
        w(&mut d, 0x08, 3);
        assert!(until(|| r(&mut d, 0x0c) == fired.wrapping_add(3)));
    }

    #[test]
    fn waiting_requests_are_bounded_and_a_full_queue_holds_the_asker() {
        let d = device();
        let regs = d.regs.clone();
        let stopper = d.stopper();
        let writer = std::thread::spawn(move || {
            let mut d = d;
            for _ in 0..10 * MAX_REQUESTS {
                w(&mut d, 0x08, u32::MAX);
            }
            d
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the asker waits for room");
        let p = regs.pending.load(Ordering::Acquire);
        assert!(
            p <= (MAX_REQUESTS as u64 + 2) * u32::MAX as u64,
            "pending {p:#x}"
        );
        // Teardown releases the waiting asker; nothing stays pending.
        stopper.stop();
        let _d = writer.join().unwrap();
        assert!(until(|| regs.pending.load(Ordering::Acquire) == 0));
    }

    #[test]
    fn the_intx_register_drives_the_line_and_names_pin_a() {
        struct Levels(Mutex<Vec<bool>>);
        impl IrqLine for Levels {
            fn set_level(&self, high: bool) {
                self.0.lock().unwrap().push(high);
            }
        }
        let mut plain = device();
        w(&mut plain, 0x20, 1);
        assert_eq!(r(&mut plain, 0x20), 0, "no INTx: the register reads 0");
        let levels = Arc::new(Levels(Mutex::new(Vec::new())));
        let mut d = device().with_intx(levels.clone(), Some(18));
        let mut c = [0u8; 2];
        d.config_read(0x3c, &mut c);
        assert_eq!(c, [18, 1]);
        w(&mut d, 0x20, 1);
        assert_eq!(r(&mut d, 0x20), 1);
        w(&mut d, 0x20, 0);
        assert_eq!(r(&mut d, 0x20), 0);
        assert_eq!(*levels.0.lock().unwrap(), [true, false]);
    }

    #[test]
    fn a_delayed_fire_is_stamped_with_the_host_tsc_when_raised() {
        let mut d = device();
        let tsc = |d: &mut IrqTest| r(d, 0x30) as u64 | (r(d, 0x34) as u64) << 32;
        let stamp = |d: &mut IrqTest| r(d, 0x28) as u64 | (r(d, 0x2c) as u64) << 32;
        w(&mut d, 0x24, u32::MAX);
        assert_eq!(r(&mut d, 0x24), MAX_DELAY_US, "DELAY is capped");
        w(&mut d, 0x24, 20_000 / 2);
        let t0 = Instant::now();
        let before = tsc(&mut d);
        w(&mut d, 0x08, 1);
        assert!(until(|| r(&mut d, 0x0c) == 1));
        let waited = t0.elapsed();
        let after = tsc(&mut d);
        let s = stamp(&mut d);
        assert!(
            waited >= Duration::from_millis(10),
            "fired after {waited:?}, before its DELAY"
        );
        assert!(before < s && s <= after, "{before} < {s} <= {after}");
        // TSC reads move forward; a reset clears DELAY.
        assert!(tsc(&mut d) > after);
        (d.resetter())();
        assert_eq!(r(&mut d, 0x24), 0);
    }

    #[test]
    fn dropping_the_device_ends_its_work() {
        let mut d = device();
        w(&mut d, 0x08, u32::MAX);
        let regs = d.regs.clone();
        drop(d);
        assert!(until(|| regs.pending.load(Ordering::Relaxed) == 0));
        let f = regs.fired.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(regs.fired.load(Ordering::Relaxed), f);
    }
}
