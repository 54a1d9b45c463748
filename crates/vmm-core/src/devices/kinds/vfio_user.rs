//! `[[device]] kind = "vfio-user"`: a PCI function served by another process over
//! vfio-user (see `devices/vfio_user`).
//!
//! ```toml
//! [[device]]
//! kind = "vfio-user"
//! socket = "/tmp/dev.sock"    # the server's socket (relative to the config file)
//! connect_timeout_ms = 5000   # wait this long for the socket at start
//! reply_timeout_ms = 1000     # a server silent this long counts as stalled
//! interrupts = "direct"       # or "counted": relayed by a thread, counted by vector
//! ```
//!
//! The device gets its vectors from the irq-router, guest RAM by DMA_MAP, mmap-able
//! regions as memory slots that follow their BAR, INTx as a resampling irqfd on the
//! slot's IOAPIC input (named in its interrupt-line register and the MP table), and
//! reconnection. [`VfioUserSpec::connect`] is the one place that wires it; the
//! registry's `build` and `devices::vfio_user::attach::attach` both call it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use irq_router::IrqRouter;
use pci_emu::{Bdf, PciFunction};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, ParseCx, Value};
use crate::control::VmControl;
use crate::devices::registry::PciDeviceSpec;
use crate::devices::vfio_user::client::{
    ClientOptions, DmaMemory, HeldConnections, InterruptPath, VfioUserDevice, Wiring as VuWiring,
};
use crate::devices::wiring::{intx_gsi, VmHooks, Wiring};
use crate::memory::GuestRam;
use crate::Result;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    socket: Spanned<String>,
    connect_timeout_ms: Option<Spanned<i64>>,
    reply_timeout_ms: Option<Spanned<i64>>,
    interrupts: Option<Spanned<String>>,
}

/// A vfio-user device's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioUserSpec {
    /// The server's socket.
    pub socket: PathBuf,
    /// How long to wait for the socket at start.
    pub connect_timeout: Duration,
    /// How long one reply may take.
    pub reply_timeout: Duration,
    /// How the server's MSI/MSI-X interrupts reach the guest.
    pub interrupts: InterruptPath,
}

/// Parses a `[[device]]` table of kind "vfio-user".
pub fn parse(
    cx: &ParseCx,
    v: Value<'_>,
) -> std::result::Result<Arc<dyn PciDeviceSpec>, ConfigError> {
    let raw: Raw = cx.deserialize(v)?;
    let t = "[device]";
    let connect = cx.int(
        &raw.connect_timeout_ms,
        "connect_timeout_ms",
        t,
        0..=600_000,
        5000,
    )?;
    let reply = cx.int(
        &raw.reply_timeout_ms,
        "reply_timeout_ms",
        t,
        1..=60_000,
        1000,
    )?;
    let interrupts = cx.choice(
        raw.interrupts.as_ref(),
        "interrupts",
        t,
        &[
            ("direct", InterruptPath::Direct),
            ("counted", InterruptPath::Counted),
        ],
        InterruptPath::Direct,
    )?;
    Ok(Arc::new(VfioUserSpec {
        socket: cx.path(raw.socket.get_ref()),
        connect_timeout: Duration::from_millis(connect as u64),
        reply_timeout: Duration::from_millis(reply as u64),
        interrupts,
    }))
}

/// What of a VM a vfio-user device is wired to.
pub struct VmSide<'a> {
    /// The VM's name (metrics label).
    pub name: &'a str,
    /// Where the device's MSI/MSI-X vectors come from.
    pub router: &'a Arc<Mutex<IrqRouter>>,
    /// Guest RAM (DMA_MAP of its memfd).
    pub ram: &'a GuestRam,
    /// Memory slots (mapped regions) and INTx irqfds.
    pub hooks: &'a VmHooks,
    /// Stop control: a stop ends the device's waits for its server.
    pub control: &'a Arc<VmControl>,
}

impl VfioUserSpec {
    /// Connects to the server and builds the function that sits at `bdf` of `vm`; the
    /// connection is taken from and parked in `held` across machine resets.
    pub fn connect(
        &self,
        bdf: Bdf,
        vm: VmSide<'_>,
        held: Option<&HeldConnections>,
    ) -> Result<VfioUserDevice> {
        let VmSide {
            name,
            router,
            ram,
            hooks,
            control,
        } = vm;
        let mut vectors = |n: u16| {
            router
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_device(bdf, "vfio-user", n)
                .map_err(crate::Error::from)
        };
        VfioUserDevice::connect(
            &ClientOptions {
                vm: name.to_string(),
                bdf,
                socket: self.socket.clone(),
                connect_timeout: self.connect_timeout,
                reply_timeout: self.reply_timeout,
                held: held.cloned(),
                interrupts: self.interrupts,
                control: Some(control.clone()),
            },
            VuWiring {
                vectors: &mut vectors,
                dma: Some(DmaMemory {
                    memory: ram.memory.clone(),
                    memfd: ram.memfd.clone(),
                    size: ram.size,
                }),
                mapper: Some(hooks.mapper.clone()),
                intx: Some((hooks.intx.clone(), intx_gsi(bdf, 1))),
            },
        )
    }
}

impl PciDeviceSpec for VfioUserSpec {
    fn kind(&self) -> &'static str {
        "vfio-user"
    }

    fn build(&self, bdf: Bdf, w: &mut Wiring<'_>) -> Result<Arc<Mutex<dyn PciFunction>>> {
        let vm = VmSide {
            name: &w.config.name,
            router: w.router,
            ram: w.ram,
            hooks: w.vm,
            control: w.control,
        };
        let dev = self.connect(bdf, vm, w.held)?;
        Ok(Arc::new(Mutex::new(dev)))
    }
}
