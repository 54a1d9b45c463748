//! QEMU's firmware configuration device (fw_cfg) as x86 guests see it: the selector at
//! port 0x510, the data port 0x511 and the DMA interface at 0x514, serving the
//! signature, the interface ID, RAM size, CPU counts, the file directory and named
//! files. The behaviour follows QEMU 7.2's `hw/nvram/fw_cfg.c` and
//! `docs/specs/fw_cfg.rst`, access width by access width, so that software written for
//! QEMU (kvm-unit-tests' x86 kernels, SeaBIOS) reads the same bytes here.
//!
//! * `items`: the items and the cursor (key + offset) the two interfaces share;
//! * `pio`: the ports and how each access width decodes;
//! * `dma`: the DMA descriptor engine;
//! * `config`: the typed `[[fw_cfg]]` files and QEMU's checks of them.
//!
//! ```
//! use vm_memory::{GuestAddress, GuestMemoryMmap};
//! use vmm_core::bus::BusDevice;
//! use vmm_core::devices::fw_cfg::{FwCfg, FwCfgItems, MachineInfo, FW_CFG_NB_CPUS};
//!
//! let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
//! let items = FwCfgItems::new(MachineInfo { ram_size: 1 << 20, boot_cpus: 4, max_cpus: 4 });
//! let dev = FwCfg::new(items, mem);
//! dev.write(0, &FW_CFG_NB_CPUS.to_le_bytes()); // outw 0x510
//! let mut b = [0u8];
//! dev.read(1, &mut b); // inb 0x511
//! assert_eq!(b, [4]);
//! ```

mod config;
mod dma;
mod items;
mod pio;

use std::sync::Mutex;

use vm_memory::{Bytes, GuestAddress};

use crate::bus::BusDevice;

pub use config::{build_items, check_name, FwCfgFile, FwCfgSource};
pub use dma::{DMA_CTL_ERROR, DMA_CTL_READ, DMA_CTL_SELECT, DMA_CTL_SKIP, DMA_CTL_WRITE};
pub use items::{
    FileError, FwCfgItems, MachineInfo, FW_CFG_ARCH_LOCAL, FW_CFG_BOOT_MENU, FW_CFG_FILE_DIR,
    FW_CFG_FILE_FIRST, FW_CFG_FILE_SLOTS, FW_CFG_ID, FW_CFG_INVALID, FW_CFG_IRQ0_OVERRIDE,
    FW_CFG_MAX_CPUS, FW_CFG_MAX_NAME, FW_CFG_NB_CPUS, FW_CFG_NOGRAPHIC, FW_CFG_RAM_SIZE,
    FW_CFG_SIGNATURE, FW_CFG_UUID, FW_CFG_VERSION, FW_CFG_VERSION_DMA, FW_CFG_WRITE_CHANNEL,
};
pub use pio::{DMA_SIGNATURE, FW_CFG_PORT_DATA, FW_CFG_PORT_DMA, FW_CFG_PORT_LEN, FW_CFG_PORT_SEL};

/// The device: insert it on the PIO bus at [`FW_CFG_PORT_SEL`] with length
/// [`FW_CFG_PORT_LEN`]. `M` is guest memory for DMA (anything with [`Bytes`]).
pub struct FwCfg<M> {
    items: FwCfgItems,
    mem: M,
    state: Mutex<pio::PortState>,
}

impl<M> FwCfg<M> {
    /// A device serving `items`, doing DMA into `mem`, in its reset state (the
    /// signature selected).
    pub fn new(items: FwCfgItems, mem: M) -> FwCfg<M> {
        FwCfg {
            items,
            mem,
            state: Mutex::new(pio::PortState::default()),
        }
    }

    /// The items served.
    pub fn items(&self) -> &FwCfgItems {
        &self.items
    }
}

impl<M: Bytes<GuestAddress> + Send + Sync> BusDevice for FwCfg<M> {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        pio::read(&self.items, &mut st, offset, data);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        pio::write(&self.items, &mut st, &self.mem, offset, data);
    }
}
