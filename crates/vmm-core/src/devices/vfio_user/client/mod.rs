//! The vfio-user client: a [`PciFunction`] whose device model is another process.
//!
//! At construction it connects (waiting a bounded time for the socket), negotiates,
//! reads the device, region and IRQ info and the server's config space, and builds the
//! function kvmbus presents (module `layout`): kvmbus sizes and places the BARs, owns
//! COMMAND's decode bits (COMMAND writes are also forwarded) and emulates MSI/MSI-X,
//! whose vectors are the irq-router's irqfds handed to the server with SET_IRQS. Guest
//! memory is DMA-mapped (the memfd by SCM_RIGHTS). BAR accesses are forwarded as
//! REGION_READ/WRITE, except the MSI-X table/PBA (local) and mmap-able areas (KVM memory
//! slots that move with the BAR). INTx is a resampling irqfd on an IOAPIC pin.
//!
//! A server that closes, stalls past the reply timeout or answers garbage is dropped:
//! BAR reads return all-ones and writes are dropped (logged, rate-limited, counted), the
//! mapped areas included (they leave the guest); a thread (module `watch`, asleep on the
//! socket while connected) then reconnects every 100 ms, checks that the new server is
//! the same device, and replays DMA maps, interrupt fds and COMMAND. The part of a BAR
//! past its region (a region's size rounded up to a power of two) is not the server's:
//! it reads all-ones and ignores writes, never forwarded.

mod areas;
mod conn;
mod halt;
mod held;
mod intx;
mod layout;
mod mapping;
mod metrics;
mod relay;
mod watch;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use irq_router::IrqHandle;
use pci_emu::{Bdf, FunctionEvent, IrqSource, PciConfig, PciFunction, PendingBits};
use vfio_user_proto as vu;
use vu::Command;

pub use conn::DmaMemory;
pub use held::HeldConnections;
pub use intx::{IntxRoute, KvmIntxRoute};
pub use mapping::{GuestMapper, KvmGuestMapper};

use areas::Areas;
use conn::{Conn, Shape};
use intx::Intx;
use relay::IrqRelay;

use crate::control::VmControl;
use crate::{Error, Result};

/// Largest reply buffer offered for region info (with capabilities).
const REGION_INFO_MAX: u32 = 4096;

/// Where and how to reach the server.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The VM's name (metrics label).
    pub vm: String,
    /// Where the function sits (metrics label).
    pub bdf: Bdf,
    /// The server's socket.
    pub socket: PathBuf,
    /// How long to wait for the socket at start.
    pub connect_timeout: Duration,
    /// How long one reply may take before the server counts as stalled.
    pub reply_timeout: Duration,
    /// Where the connection is taken from at start (the previous boot's, after a
    /// machine reset) and parked when the device goes; `None`: it closes then.
    pub held: Option<HeldConnections>,
    /// How the server's MSI/MSI-X interrupts reach the guest.
    pub interrupts: InterruptPath,
    /// The VM's stop control: a stop ends every wait for the server within 100 ms (the
    /// connection's at start, a reply's, a reconnection's); `None`: only timeouts end
    /// them.
    pub control: Option<Arc<VmControl>>,
}

/// How a server's MSI/MSI-X interrupts reach the guest (`[[device]] interrupts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InterruptPath {
    /// The server writes the vectors' irqfds: no kvmbus thread on the way, no count.
    #[default]
    Direct,
    /// The server writes kvmbus's eventfds and a relay thread raises the vectors,
    /// counted by vector as in-process devices are (one thread wake-up more each).
    Counted,
}

/// What the device is wired to.
pub struct Wiring<'a> {
    /// Allocates `n` interrupt vectors (the irq-router's `add_device`).
    pub vectors: &'a mut dyn FnMut(u16) -> Result<Vec<IrqHandle>>,
    /// Guest memory to DMA-map.
    pub dma: Option<DmaMemory>,
    /// Maps mmap-able regions into the guest (without it they are forwarded).
    pub mapper: Option<Arc<dyn GuestMapper>>,
    /// INTx: the route and the IOAPIC pin (written to the interrupt-line register).
    pub intx: Option<(Arc<dyn IntxRoute>, u32)>,
}

struct HandlesPending(Vec<IrqHandle>);

impl PendingBits for HandlesPending {
    fn pending(&self, _source: IrqSource, vector: u16) -> bool {
        self.0.get(vector as usize).is_some_and(|h| h.is_pending())
    }
}

/// A PCI function served by a vfio-user server.
pub struct VfioUserDevice {
    name: String,
    config: PciConfig,
    conn: Arc<Mutex<Conn>>,
    bar_present: [bool; 6],
    /// Each BAR's region size (the BAR may be larger: a power of two).
    region_size: [u64; 6],
    /// Config offsets from here up go to the server (below: local header and caps).
    forward_config_from: u16,
    intx: Option<Intx>,
    /// Offset of the PCI Express capability's Device Control register, when the
    /// function advertises FLR (an Initiate FLR write there resets it).
    flr_control: Option<u16>,
    /// The counting relay (`InterruptPath::Counted`).
    _relay: Option<IrqRelay>,
}

fn dev_err(name: &str, detail: impl Into<String>) -> Error {
    Error::Device {
        device: name.to_string(),
        detail: detail.into(),
    }
}

impl VfioUserDevice {
    /// Connects to the server and builds the function.
    pub fn connect(opts: &ClientOptions, wiring: Wiring<'_>) -> Result<VfioUserDevice> {
        let name = format!("vfio-user {}", opts.socket.display());
        let m = metrics::DeviceMetrics::new(&opts.vm, "vfio-user", &opts.bdf.to_string());
        let mut conn = Conn::open(
            &name,
            &opts.socket,
            opts.connect_timeout,
            opts.reply_timeout,
            m.clone(),
            opts.held.clone(),
            opts.control.as_deref(),
        )?;
        let lost = || dev_err(&name, "the server went away during setup");
        let info = match conn.call(
            Command::DeviceGetInfo,
            &vu::DeviceInfo::default().encode(),
            &[],
        ) {
            Some(Ok(msg)) => {
                vu::DeviceInfo::decode(&msg.payload).map_err(|e| dev_err(&name, e.to_string()))?
            }
            Some(Err(errno)) => {
                return Err(dev_err(&name, format!("DEVICE_GET_INFO: errno {errno}")))
            }
            None => return Err(lost()),
        };
        if info.flags & vu::DEVICE_FLAGS_RESET != 0 {
            // A fresh device, as at power-on (QEMU's client resets at machine reset
            // before the guest runs); the server may have served someone before.
            match conn.call(Command::DeviceReset, &[], &[]) {
                Some(Ok(_)) => {}
                Some(Err(errno)) => log::warn!("{name}: DEVICE_RESET at attach: errno {errno}"),
                None => return Err(lost()),
            }
        }
        if info.num_regions <= vu::REGION_CONFIG {
            return Err(dev_err(
                &name,
                format!("{} regions: no config space", info.num_regions),
            ));
        }
        // Regions: BARs 0-5 and config space.
        let mut bar_regions = [layout::BarRegion::default(); 6];
        let mut region_infos = Vec::new();
        for index in 0..=vu::REGION_CONFIG {
            let (ri, fd) = region_info(&mut conn, index).ok_or_else(lost)??;
            if index < 6 {
                bar_regions[index as usize] = layout::BarRegion {
                    size: ri.size,
                    mappable: ri.flags & vu::REGION_MMAP != 0,
                };
            }
            region_infos.push((ri, fd));
        }
        let cfg_size = region_infos[vu::REGION_CONFIG as usize].0.size.min(256) as usize;
        if cfg_size < 64 {
            return Err(dev_err(&name, "config space region smaller than a header"));
        }
        let mut cfg = vec![0u8; cfg_size];
        if !conn.region_read(vu::REGION_CONFIG, 0, &mut cfg) {
            return Err(lost());
        }
        let layout = layout::parse(&cfg, &bar_regions);
        let mut config = layout.build(&name);
        let mut bar_present = [false; 6];
        for b in config.bars() {
            bar_present[b.index as usize] = true;
        }
        let forward_config_from = local_config_end(&config);
        let flr_control = layout
            .flr()
            .then(|| config.capabilities().into_iter().find(|c| c.id == 0x10))
            .flatten()
            .map(|c| u16::from(c.offset) + 8);

        // Interrupts: MSI-X and MSI vectors are the router's, shared, as in-process.
        let msix = layout.msix_vectors();
        let msi = layout.msi_vectors();
        let vectors = msix.max(msi);
        let mut relay = None;
        if vectors > 0 {
            let handles = (wiring.vectors)(vectors)?;
            config.set_pending_bits(Arc::new(HandlesPending(handles.clone())));
            let fds: Vec<_> = match opts.interrupts {
                InterruptPath::Direct => handles.iter().map(|h| h.eventfd().clone()).collect(),
                InterruptPath::Counted => {
                    let r = IrqRelay::spawn(&name, handles.clone())?;
                    let fds = r.fds().to_vec();
                    relay = Some(r);
                    fds
                }
            };
            for (index, n) in [(vu::IRQ_MSIX, msix), (vu::IRQ_MSI, msi)] {
                let count = irq_count(&mut conn, index).ok_or_else(lost)?;
                let n = u32::from(n).min(count) as usize;
                if n > 0 {
                    let set = fds[..n].to_vec();
                    if !conn.set_irq_fds(index, &set) && !conn.connected() {
                        return Err(lost());
                    }
                    conn.replay.irqs.push((index, set));
                }
            }
        }
        if let Some(dma) = wiring.dma {
            if !conn.dma_map(&dma) {
                log::warn!("{name}: DMA_MAP refused; the device cannot reach guest memory");
            }
            conn.replay.dma = Some(dma);
        }
        let intx_count = irq_count(&mut conn, vu::IRQ_INTX).ok_or_else(lost)?;
        let conn = Arc::new(Mutex::new(conn));
        let mut intx = None;
        if let (Some((route, gsi)), true) = (wiring.intx, intx_count > 0 && layout.pin != 0) {
            let i = Intx::new("vfio-user", route, gsi, Arc::downgrade(&conn))?;
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            c.set_irq_fds(vu::IRQ_INTX, std::slice::from_ref(&i.trigger));
            c.replay.irqs.push((vu::IRQ_INTX, vec![i.trigger.clone()]));
            drop(c);
            config.write(0x3c, &[gsi as u8]);
            intx = Some(i);
        }

        // mmap-able regions; what a reconnected server must offer again.
        let bars: Vec<vu::RegionInfo> = region_infos
            .iter()
            .take(6)
            .map(|(r, _)| r.clone())
            .collect();
        let region_size: [u64; 6] = std::array::from_fn(|i| bars.get(i).map_or(0, |r| r.size));
        let list = match wiring.mapper {
            Some(_) => areas::map_regions(&name, region_infos, &bar_present),
            None => Vec::new(),
        };
        m.mapped_bytes
            .increment(list.iter().map(|a| a.size).sum::<u64>() as f64);
        {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            c.areas = Areas::new(list, wiring.mapper);
            c.replay.shape = Some(Shape {
                id: u32::from_le_bytes([cfg[0], cfg[1], cfg[2], cfg[3]]),
                bars,
                present: bar_present,
            });
        }

        watch::spawn(&name, &conn)?;
        Ok(VfioUserDevice {
            name,
            config,
            conn,
            bar_present,
            region_size,
            forward_config_from,
            intx,
            flr_control,
            _relay: relay,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while the server is connected.
    pub fn connected(&self) -> bool {
        self.conn().connected()
    }

    /// DEVICE_RESET (guest function-level reset or VM reset); false if the server is
    /// away or refused.
    pub fn reset(&self) -> bool {
        self.conn().reset()
    }

    /// Bytes of BAR areas mapped into the guest's memory (when placed).
    pub fn mapped_areas(&self) -> Vec<(u8, u64, u64, Option<u32>)> {
        self.conn().areas.summary()
    }

    /// Function Level Reset the guest initiated: DEVICE_RESET to the server (the
    /// device's own state), and here what kvmbus owns goes back to its reset values:
    /// COMMAND (decoding off: the BARs leave the buses), MSI and MSI-X disabled.
    fn function_level_reset(&mut self) -> Vec<FunctionEvent> {
        log::info!("{}: function level reset", self.name);
        if !self.conn().reset() {
            log::warn!("{}: DEVICE_RESET for FLR failed", self.name);
        }
        let mut events = self.config.write(4, &[0, 0]);
        for c in self.config.capabilities() {
            let ctl = u16::from(c.offset) + 2;
            let mut v = [0u8; 2];
            self.config.read(ctl, &mut v);
            let v = u16::from_le_bytes(v);
            match c.id {
                0x05 => events.extend(self.config.write(ctl, &(v & !1).to_le_bytes())),
                0x11 => events.extend(self.config.write(ctl, &(v & !0xc000).to_le_bytes())),
                _ => {}
            }
        }
        // (The caller moves mapped areas for the BAR events, as for any config write.)
        self.conn().write_command(0);
        events
    }

    fn place_areas(&mut self, bar: u8, base: Option<u64>) {
        self.conn().areas.place(bar, base);
    }

    /// How many of `len` bytes at `offset` of BAR `bar` lie in its region (the rest is
    /// the BAR's padding).
    fn in_region(&self, bar: u8, offset: u64, len: usize) -> usize {
        let size = self.region_size.get(usize::from(bar)).copied().unwrap_or(0);
        size.saturating_sub(offset).min(len as u64) as usize
    }
}

/// Where the local part of config space ends: the header and the re-created caps.
fn local_config_end(config: &PciConfig) -> u16 {
    let end = config
        .capabilities()
        .iter()
        .map(|c| {
            u16::from(c.offset)
                + match c.id {
                    0x10 => 0x3c,
                    0x05 => 24,
                    0x11 => 12,
                    _ => 4,
                }
        })
        .max()
        .unwrap_or(0x40);
    end.max(0x40)
}

fn region_info(conn: &mut Conn, index: u32) -> Option<Result<(vu::RegionInfo, Option<OwnedFd>)>> {
    let mut argsz = vu::RegionInfo::SIZE + 16 + 16 * 8;
    for _ in 0..2 {
        let msg = match conn.call(
            Command::DeviceGetRegionInfo,
            &vu::RegionInfo::request(index, argsz),
            &[],
        )? {
            Ok(m) => m,
            Err(errno) => {
                return Some(Err(dev_err(
                    &conn.name,
                    format!("region {index} info: errno {errno}"),
                )))
            }
        };
        let ri = match vu::RegionInfo::decode(&msg.payload) {
            Ok(r) => r,
            Err(e) => return Some(Err(dev_err(&conn.name, e.to_string()))),
        };
        if ri.argsz > argsz && ri.flags & vu::REGION_CAPS != 0 && ri.argsz <= REGION_INFO_MAX {
            // The capabilities did not fit: ask again with the size the server needs.
            argsz = ri.argsz;
            continue;
        }
        let fd = msg.fds.into_iter().next();
        return Some(Ok((ri, fd)));
    }
    Some(Err(dev_err(
        &conn.name,
        format!("region {index} info keeps growing"),
    )))
}

fn irq_count(conn: &mut Conn, index: u32) -> Option<u32> {
    let req = vu::IrqInfo {
        index,
        ..Default::default()
    };
    match conn.call(Command::DeviceGetIrqInfo, &req.encode(), &[])? {
        Ok(m) => Some(
            vu::IrqInfo::decode(&m.payload)
                .ok()
                .filter(|i| i.index == index && i.flags & vu::IRQ_INFO_EVENTFD != 0)
                .map_or(0, |i| i.count),
        ),
        // A server without this IRQ type may refuse the query.
        Err(_) => Some(0),
    }
}

impl PciFunction for VfioUserDevice {
    fn config_read(&mut self, offset: u16, data: &mut [u8]) {
        if offset >= self.forward_config_from && offset < 4096 {
            let mut c = self.conn();
            c.region_read(vu::REGION_CONFIG, u64::from(offset), data);
        } else {
            self.config.read(offset, data);
        }
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) -> Vec<FunctionEvent> {
        if offset >= self.forward_config_from && offset < 4096 {
            self.conn()
                .region_write(vu::REGION_CONFIG, u64::from(offset), data);
            return Vec::new();
        }
        let mut events = self.config.write(offset, data);
        if let Some(ctl) = self.flr_control {
            // Initiate FLR: bit 15 of Device Control (byte ctl + 1, bit 7).
            let at = usize::from(ctl + 1).wrapping_sub(usize::from(offset));
            if data.get(at).is_some_and(|b| b & 0x80 != 0) && offset <= ctl + 1 {
                events.extend(self.function_level_reset());
            }
        }
        for e in &events {
            match e {
                FunctionEvent::Bar(b) => self.place_areas(b.index, b.new),
                FunctionEvent::Command { .. } => {}
                FunctionEvent::Vector(_) => {}
            }
        }
        if offset < 6 && offset + data.len() as u16 > 4 {
            let command = self.config.command();
            self.conn().write_command(command);
        }
        events
    }

    fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        if self.config.msix_bar_read(bar, offset, data) {
            return;
        }
        if !self.bar_present.get(bar as usize).copied().unwrap_or(false) {
            data.fill(0xff);
            return;
        }
        let inside = self.in_region(bar, offset, data.len());
        let (forwarded, padding) = data.split_at_mut(inside);
        padding.fill(0xff);
        let mut c = self.conn();
        if let Some(a) = c.areas.find(bar, offset, forwarded.len()) {
            a.read(offset, forwarded);
            return;
        }
        if !forwarded.is_empty() {
            c.metrics.reads.increment(1);
            c.region_read(u32::from(bar), offset, forwarded);
        }
    }

    fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) -> Vec<FunctionEvent> {
        let mut events = Vec::new();
        if self.config.msix_bar_write(bar, offset, data, &mut events) {
            return events;
        }
        if !self.bar_present.get(bar as usize).copied().unwrap_or(false) {
            return events;
        }
        let data = &data[..self.in_region(bar, offset, data.len())];
        let mut c = self.conn();
        if let Some(a) = c.areas.find(bar, offset, data.len()) {
            a.write(offset, data);
            return events;
        }
        if !data.is_empty() {
            c.metrics.writes.increment(1);
            c.region_write(u32::from(bar), offset, data);
        }
        events
    }

    fn name(&self) -> &str {
        "vfio-user"
    }
}

impl Drop for VfioUserDevice {
    fn drop(&mut self) {
        self.intx.take();
        let mut c = self.conn();
        // The slots leave the guest now, whoever holds the connection a moment longer.
        c.areas.suspend();
        c.park();
        log::debug!("{}: closed", self.name);
    }
}

#[cfg(test)]
mod tests;
