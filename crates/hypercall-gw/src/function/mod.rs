//! The gateway's PCI function: configuration space (IDs, BAR0 I/O registers, BAR2
//! holding the MSI-X table and PBA, MSI, the vendor capability) and BAR0's registers.

mod regs;
mod sync;

use std::sync::atomic::AtomicU8;
use std::sync::Arc;

use crossbeam_channel::Sender;
use irq_router::{HandlesPending, IrqHandle};
use pci_emu::{
    BarKind, FunctionEvent, IoEventSpec, MsixLayout, PciConfig, PciFunction, PciIds, UnlockedBar,
};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::abi::{self, reg, BAR0_SIZE};
use crate::config::GatewayConfig;
use crate::error::{Error, Result};
use crate::metrics::Recorder;
use crate::queue::Ctl;
use crate::service::Registry;
use regs::QueueRegs;
use sync::SyncPath;

/// BAR holding the MSI-X table and PBA.
pub const MSIX_BAR: u8 = 2;

/// What the function needs of a queue thread.
#[derive(Clone, Debug)]
pub(crate) struct QueuePort {
    pub ctl: Sender<Ctl>,
    pub wake: Arc<EventFd>,
    pub doorbell: Arc<EventFd>,
}

impl QueuePort {
    fn send(&self, c: Ctl) {
        if self.ctl.send(c).is_ok() {
            let _ = self.wake.write(1);
        }
    }
}

/// The hypercall gateway as a PCI function.
pub struct GatewayFunction {
    config: PciConfig,
    features: u32,
    max_queue_size: u16,
    vectors: u16,
    queue_sel: u32,
    queues: Vec<QueueRegs>,
    ports: Vec<QueuePort>,
    isr: Arc<AtomicU8>,
    mem: GuestMemoryMmap,
    sync: Arc<SyncPath>,
}

impl GatewayFunction {
    pub(crate) fn new(
        cfg: &GatewayConfig,
        mem: GuestMemoryMmap,
        registry: Registry,
        irqs: Vec<IrqHandle>,
        ports: Vec<QueuePort>,
        isr: Arc<AtomicU8>,
    ) -> Result<GatewayFunction> {
        let mut config = PciConfig::new(PciIds {
            vendor_id: cfg.vendor_id,
            device_id: cfg.device_id,
            class_code: abi::CLASS_CODE,
            revision: abi::REVISION,
            subsystem_vendor_id: cfg.vendor_id,
            subsystem_id: 1,
        });
        let msix = MsixLayout::for_vectors(cfg.msix_vectors);
        let msi_vectors = 1u16 << (15 - cfg.msix_vectors.min(32).leading_zeros());
        config
            .add_bar(0, BarKind::Io, BAR0_SIZE)
            .map_err(Error::Pci)?;
        config
            .add_bar(
                MSIX_BAR,
                BarKind::Mem32 {
                    prefetchable: false,
                },
                msix.bar_size,
            )
            .map_err(Error::Pci)?;
        config
            .add_msix(
                cfg.msix_vectors,
                MSIX_BAR,
                msix.table_offset,
                MSIX_BAR,
                msix.pba_offset,
            )
            .map_err(Error::Pci)?;
        config
            .add_msi(msi_vectors, true, true)
            .map_err(Error::Pci)?;
        config
            .add_vendor_cap(&abi::vendor_cap_payload(cfg.queue_size, cfg.queues as u8))
            .map_err(Error::Pci)?;
        config.set_pending_bits(Arc::new(HandlesPending(irqs)));
        let mut features = abi::FEATURE_SYNC | abi::FEATURE_RING;
        if cfg.has_external() {
            features |= abi::FEATURE_EXTERNAL;
        }
        Ok(GatewayFunction {
            config,
            features,
            max_queue_size: cfg.queue_size,
            vectors: cfg.msix_vectors,
            queue_sel: 0,
            queues: vec![QueueRegs::new(cfg.queue_size); usize::from(cfg.queues)],
            ports,
            isr,
            sync: Arc::new(SyncPath::new(
                mem.clone(),
                registry,
                cfg.backend_timeout,
                Recorder::new(&cfg.vm),
            )),
            mem,
        })
    }
}

impl PciFunction for GatewayFunction {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        self.config.write(offset, data)
    }

    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            0 => match (data.len(), offset) {
                (4, o) if o % 4 == 0 && o < BAR0_SIZE => {
                    data.copy_from_slice(&self.reg_read(o).to_le_bytes());
                }
                _ => data.fill(0xFF),
            },
            MSIX_BAR => {
                if !self.config.msix_bar_read(bar, offset, data) {
                    data.fill(0);
                }
            }
            _ => data.fill(0xFF),
        }
    }

    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) -> Vec<FunctionEvent> {
        let mut events = Vec::new();
        match bar {
            0 => {
                if let (Ok(v), true) = (<[u8; 4]>::try_from(data), offset % 4 == 0) {
                    self.reg_write(offset, u32::from_le_bytes(v));
                }
            }
            MSIX_BAR => {
                self.config.msix_bar_write(bar, offset, data, &mut events);
            }
            _ => {}
        }
        events
    }

    fn ioevents(&self) -> Vec<IoEventSpec> {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| IoEventSpec {
                bar: 0,
                offset: reg::QUEUE_NOTIFY,
                len: 4,
                datamatch: Some(i as u64),
                fd: p.doorbell.clone(),
            })
            .collect()
    }

    fn unlocked_bar(&self, bar: u8) -> Option<Arc<dyn UnlockedBar>> {
        (bar == 0).then(|| self.sync.clone() as Arc<dyn UnlockedBar>)
    }

    fn name(&self) -> &str {
        "hypercall-gateway"
    }
}
