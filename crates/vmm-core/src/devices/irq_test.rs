//! The `irq-test` PCI function: asks its backend thread to fire interrupts, so tests and
//! benchmarks can drive the interrupt path from the guest.
//!
//! BAR0 (32 bytes of I/O) and BAR1 (4 KiB of MMIO) hold the same 32-bit registers; BAR2
//! (64-bit prefetchable memory) holds the MSI-X table at 0 and the PBA after it.
//!
//! | off | name | access | meaning |
//! |---|---|---|---|
//! | 0x00 | ID | R | 0x49525154 |
//! | 0x04 | VECTOR | RW | vector the next FIRE uses |
//! | 0x08 | FIRE | W | ask the backend thread to fire N interrupts on VECTOR |
//! | 0x0C | FIRED | R | interrupts fired so far, in total |
//! | 0x10 | PENDING | R | requested, not yet fired |
//! | 0x14 | VECTORS | R | number of vectors |
//! | 0x18 | MODE | RW | 0 irqfd (the IrqHandle), 1 KVM_SIGNAL_MSI from the backend thread, 2 the userspace exit path: the VMM kicks the destination vCPU out of KVM_RUN and its thread injects |
//!
//! Modes 1 and 2 exist to compare paths; they deliver only to an enabled, unmasked
//! vector and otherwise fall back to the IrqHandle (whose pending bit hardware-like
//! masking relies on).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

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
const REGS_IO_SIZE: u64 = 32;
const REGS_MEM_SIZE: u64 = 4096;

#[derive(Default)]
struct Regs {
    vector: AtomicU32,
    mode: AtomicU32,
    fired: AtomicU64,
    pending: AtomicU64,
}

/// A firing request: vector, count, mode, and the message to use for modes 1 and 2.
struct Fire {
    vector: u16,
    count: u32,
    mode: u32,
    message: Option<MsiMessage>,
}

/// The irq-test function.
pub struct IrqTest {
    config: PciConfig,
    regs: Arc<Regs>,
    vectors: u16,
    tx: Sender<Fire>,
    stop: Arc<AtomicBool>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// Stops the irq-test backend thread (teardown): pending firing work is abandoned.
pub struct FiringStop {
    tx: Sender<Fire>,
    stop: Arc<AtomicBool>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl FiringStop {
    /// Asks the backend thread to stop, wakes it, and joins it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Fire {
            vector: 0,
            count: 0,
            mode: 0,
            message: None,
        });
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
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
        let (tx, rx) = crossbeam_channel::unbounded::<Fire>();
        let r = regs.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("irq-test".into())
            .spawn(move || backend(rx, handles, chip, injector, r, s))
            .map_err(|e| Error::Io {
                what: "spawning the irq-test backend".into(),
                source: e,
            })?;
        Ok(IrqTest {
            config,
            regs,
            vectors: msix_vectors.max(msi_vectors),
            tx,
            stop,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// A handle that stops the backend thread.
    pub fn stopper(&self) -> FiringStop {
        FiringStop {
            tx: self.tx.clone(),
            stop: self.stop.clone(),
            thread: self.thread.clone(),
        }
    }

    fn reg_read(&self, offset: u64) -> u32 {
        let r = &self.regs;
        match offset {
            0x00 => MAGIC,
            0x04 => r.vector.load(Ordering::Relaxed),
            0x0c => r.fired.load(Ordering::Acquire) as u32,
            0x10 => r.pending.load(Ordering::Acquire) as u32,
            0x14 => self.vectors as u32,
            0x18 => r.mode.load(Ordering::Relaxed),
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
                let _ = self.tx.send(Fire {
                    vector,
                    count: v,
                    mode,
                    message,
                });
            }
            0x18 => r.mode.store(v.min(2), Ordering::Relaxed),
            _ => {}
        }
    }
}

fn backend(
    rx: Receiver<Fire>,
    handles: Vec<IrqHandle>,
    chip: Arc<dyn IrqChip>,
    injector: Arc<ExitInjector>,
    regs: Arc<Regs>,
    stop: Arc<AtomicBool>,
) {
    for f in rx {
        for _ in 0..f.count {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match (f.mode, f.message, handles.get(f.vector as usize)) {
                (1, Some(m), _) => {
                    let _ = chip.signal_msi(m);
                }
                (2, Some(m), _) => injector.post(m),
                (_, _, Some(h)) => {
                    let _ = h.trigger();
                }
                (_, _, None) => {} // a vector the device does not have: nothing to fire
            }
            regs.fired.fetch_add(1, Ordering::AcqRel);
            regs.pending.fetch_sub(1, Ordering::AcqRel);
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

impl PciFunction for IrqTest {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }
    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
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
