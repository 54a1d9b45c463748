//! The vfio-user server side: serves a kvmbus device model (any [`PciFunction`] plus its
//! [`IrqSlots`]) to a client process over a Unix socket.
//!
//! * the socket is created 0600 and every connecting peer's uid (SO_PEERCRED) must be
//!   this process's (or root's);
//! * one client at a time; when it goes, its interrupt fds and DMA maps are dropped and
//!   the next connection gets the device as it was (registers keep their values);
//! * regions: BARs 0-5 as the function sizes them, config space (region 7, 4 KiB);
//!   accesses are split into naturally aligned 4/2/1-byte device accesses;
//! * interrupts: SET_IRQS with eventfds makes the device's vectors write those eventfds
//!   directly (see [`IrqSlots`]);
//! * a malformed message gets an error reply (EINVAL), an unknown command ENOSYS; the
//!   server never panics on input.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pci_emu::PciFunction;
use vfio_user_proto as vu;
use vu::{Channel, Command, Message};

use super::slots::IrqSlots;
use crate::devices::irq_line::IrqLine;
use crate::error::io_err;
use crate::{Error, Result};

/// Config space bytes served (region 7).
pub const CONFIG_REGION_SIZE: u64 = 4096;
/// Data bytes this server accepts per message.
const MAX_DATA: u32 = 1 << 20;
/// Fds this server accepts per message.
const MAX_FDS: u32 = 16;
/// vfio device flags: PCI, reset supported.
const DEVICE_FLAGS: u32 = (1 << 1) | (1 << 0);
const NUM_REGIONS: u32 = 9;
/// How long the server polls for the next request before it sleeps: a guest touching
/// registers sends them back to back, and waking a sleeping server costs more than
/// serving the access (see `vfio_user_proto::Channel::set_poll`).
const REQUEST_POLL: std::time::Duration = std::time::Duration::from_micros(200);
const NUM_IRQS: u32 = 5;

/// The INTx line of a served device: a level the device model drives (it is an
/// [`IrqLine`]) and vfio's automasking: an assertion triggers the client's eventfd once
/// and masks; the client's UNMASK (after the guest's EOI) unmasks and, if the line is
/// still asserted, triggers again.
pub struct LevelIntx {
    slot: IrqSlots,
    asserted: AtomicBool,
    masked: AtomicBool,
}

impl LevelIntx {
    /// A deasserted, unmasked line with no client yet.
    pub fn new() -> Result<Arc<LevelIntx>> {
        Ok(Arc::new(LevelIntx {
            slot: IrqSlots::new(1)?,
            asserted: AtomicBool::new(false),
            masked: AtomicBool::new(false),
        }))
    }

    fn fire_unless_masked(&self) {
        if self.asserted.load(Ordering::SeqCst) && !self.masked.swap(true, Ordering::SeqCst) {
            self.slot.trigger(0);
        }
    }

    /// The client unmasked INTx: re-raise if still asserted.
    pub fn unmask(&self) {
        self.masked.store(false, Ordering::SeqCst);
        self.fire_unless_masked();
    }
}

impl IrqLine for LevelIntx {
    fn set_level(&self, high: bool) {
        self.asserted.store(high, Ordering::SeqCst);
        if high {
            self.fire_unless_masked();
        }
    }
}

/// A device model as the server sees it.
pub struct Served {
    /// Config space and BARs.
    pub function: Box<dyn PciFunction>,
    /// One slot per vector (shared by MSI and MSI-X, as the in-process router does).
    pub slots: IrqSlots,
    /// MSI vectors.
    pub msi: u32,
    /// MSI-X vectors.
    pub msix: u32,
    /// INTx, if the device has a pin.
    pub intx: Option<Arc<LevelIntx>>,
    /// BARs that are plain shared memory (a memfd), offered as mmap-able regions: the
    /// client maps them into the guest, so guest accesses never reach this process.
    pub shared_bars: Vec<(u8, Arc<OwnedFd>, u64)>,
    /// DEVICE_RESET: puts the device model's state back as at power-on.
    pub reset: Option<Box<dyn Fn() + Send>>,
}

/// A memfd of `size` bytes for a shared-memory BAR.
pub fn shared_memory(size: u64) -> Result<Arc<OwnedFd>> {
    // SAFETY: a valid NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"kvmbus-shared-bar".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io_err("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let f = std::fs::File::from(fd.try_clone().map_err(io_err("dup"))?);
    f.set_len(size).map_err(io_err("sizing a shared BAR"))?;
    Ok(Arc::new(fd))
}

struct DmaRegion {
    address: u64,
    size: u64,
    _offset: u64,
    _fd: Option<OwnedFd>,
}

/// A device model being served.
pub struct Server {
    dev: Served,
    bar_sizes: [u64; 6],
    dma: Vec<DmaRegion>,
    /// What the client accepts from us (its announced caps).
    client_caps: vu::Capabilities,
    /// Fds to send with the reply being built.
    reply_fds: Vec<std::os::fd::RawFd>,
}

/// Binds a listening socket at `path` (replacing a stale socket file), mode 0600.
pub fn listen(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io_err(format!("removing {}", path.display())))?;
    }
    // SAFETY: umask only changes this process's file creation mask; it is restored
    // right after the bind, so the socket never exists with wider permissions.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    l.map_err(io_err(format!("binding {}", path.display())))
}

/// The uid of the process at the other end of `s`.
pub fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writing and `len` states the buffer size;
    // the result is checked.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// The (natural, at most 4-byte) chunks an access of `len` bytes at `off` splits into.
pub(crate) fn chunks(mut off: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize)> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let left = len - done;
        let n = [4usize, 2, 1]
            .into_iter()
            .find(|&n| n <= left && off % n as u64 == 0)
            .unwrap_or(1);
        let item = (off, done, n);
        off += n as u64;
        done += n;
        Some(item)
    })
}

impl Server {
    /// Serves `dev`; sizes its BARs through its config space.
    pub fn new(mut dev: Served) -> Server {
        let mut bar_sizes = [0u64; 6];
        let f = &mut dev.function;
        let mut i = 0;
        while i < 6 {
            let off = 0x10 + 4 * i as u16;
            let r = |f: &mut Box<dyn PciFunction>, off: u16| {
                let mut b = [0u8; 4];
                f.config_read(off, &mut b);
                u32::from_le_bytes(b)
            };
            let orig = r(f, off);
            f.config_write(off, &u32::MAX.to_le_bytes());
            let mask = r(f, off);
            f.config_write(off, &orig.to_le_bytes());
            if mask == 0 {
                i += 1;
                continue;
            }
            if mask & 1 == 1 {
                bar_sizes[i] = u64::from(!(mask & !0x3)).wrapping_add(1) & 0xffff_ffff;
                i += 1;
            } else if mask & 0x6 == 0x4 && i < 5 {
                let hoff = off + 4;
                let horig = r(f, hoff);
                f.config_write(hoff, &u32::MAX.to_le_bytes());
                let hmask = r(f, hoff);
                f.config_write(hoff, &horig.to_le_bytes());
                let full = u64::from(hmask) << 32 | u64::from(mask & !0xf);
                bar_sizes[i] = (!full).wrapping_add(1);
                i += 2;
            } else {
                bar_sizes[i] = u64::from(!(mask & !0xf)).wrapping_add(1) & 0xffff_ffff;
                i += 1;
            }
        }
        for (bar, _, size) in &dev.shared_bars {
            if let Some(s) = bar_sizes.get_mut(usize::from(*bar)) {
                *s = *size;
            }
        }
        Server {
            dev,
            bar_sizes,
            dma: Vec::new(),
            client_caps: vu::Capabilities::default(),
            reply_fds: Vec::new(),
        }
    }

    /// BAR sizes as served (0: absent).
    pub fn bar_sizes(&self) -> [u64; 6] {
        self.bar_sizes
    }

    /// Accepts clients one after another, forever (until the listener fails).
    pub fn run(&mut self, listener: &UnixListener) -> Result<()> {
        loop {
            let (conn, _) = listener
                .accept()
                .map_err(io_err("accepting a vfio-user client"))?;
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            match peer_uid(&conn) {
                Ok(uid) if uid == me || uid == 0 => {}
                Ok(uid) => {
                    log::warn!("vfio-user server: refusing a client of uid {uid}");
                    continue;
                }
                Err(e) => {
                    log::warn!("vfio-user server: SO_PEERCRED: {e}");
                    continue;
                }
            }
            log::info!("vfio-user server: client connected");
            match self.serve(conn) {
                Ok(()) => log::info!("vfio-user server: client disconnected"),
                Err(e) => log::warn!("vfio-user server: client dropped: {e}"),
            }
            self.reset_connection_state();
        }
    }

    fn reset_connection_state(&mut self) {
        self.dma.clear();
        if let Err(e) = self.dev.slots.disconnect_all() {
            log::error!("vfio-user server: {e}");
        }
        if let Some(l) = &self.dev.intx {
            let _ = l.slot.disconnect_all();
            l.masked.store(false, Ordering::SeqCst);
        }
        self.client_caps = vu::Capabilities::default();
    }

    /// Serves one connection until it closes.
    pub fn serve(&mut self, conn: UnixStream) -> Result<()> {
        let mut chan = Channel::new(
            conn,
            vu::Limits {
                max_fds: MAX_FDS as usize,
                max_data: MAX_DATA,
            },
        );
        chan.set_poll(REQUEST_POLL);
        loop {
            let m = match chan.recv(None) {
                Ok(m) => m,
                Err(vu::Error::Closed) => return Ok(()),
                Err(e @ vu::Error::TooManyFds { .. }) => {
                    // The message was consumed: the stream is in step; keep serving,
                    // but the request cannot be answered by id; log it.
                    log::warn!("vfio-user server: {e}");
                    continue;
                }
                Err(e) => {
                    return Err(Error::Device {
                        device: "vfio-user server".into(),
                        detail: e.to_string(),
                    })
                }
            };
            if m.header.is_reply() {
                // No server-initiated requests are outstanding; ignore stray replies.
                continue;
            }
            self.reply_fds.clear();
            let answer = self.dispatch(&m);
            if m.header.no_reply() {
                continue;
            }
            let fds = std::mem::take(&mut self.reply_fds);
            let sent = match answer {
                Ok(payload) => chan.reply(&m.header, &payload, &fds),
                Err(errno) => chan.reply_error(&m.header, errno as u32),
            };
            sent.map_err(|e| Error::Device {
                device: "vfio-user server".into(),
                detail: e.to_string(),
            })?;
        }
    }

    fn dispatch(&mut self, m: &Message) -> std::result::Result<Vec<u8>, i32> {
        let inval = |e: vu::Error| {
            log::warn!("vfio-user server: {e}");
            libc::EINVAL
        };
        let Some(cmd) = Command::from_u16(m.header.command) else {
            return Err(libc::ENOSYS);
        };
        match cmd {
            Command::Version => {
                let v = vu::Version::decode(&m.payload).map_err(inval)?;
                v.check_reply().map_err(inval)?;
                self.client_caps = v.caps;
                Ok(vu::Version {
                    major: vu::MAJOR,
                    minor: v.minor.min(vu::MINOR),
                    caps: vu::Capabilities {
                        max_msg_fds: MAX_FDS,
                        max_data_xfer_size: MAX_DATA,
                        pgsizes: Some(4096),
                    },
                }
                .encode())
            }
            Command::DmaMap => {
                let d = vu::DmaMap::decode(&m.payload).map_err(inval)?;
                if d.size == 0
                    || m.fds.len() > 1
                    || self
                        .dma
                        .iter()
                        .any(|r| d.address < r.address + r.size && r.address < d.address + d.size)
                {
                    return Err(libc::EINVAL);
                }
                let mut fds = m.fds.iter();
                let fd = fds.next().and_then(|f| f.try_clone().ok());
                self.dma.push(DmaRegion {
                    address: d.address,
                    size: d.size,
                    _offset: d.offset,
                    _fd: fd,
                });
                Ok(Vec::new())
            }
            Command::DmaUnmap => {
                let u = vu::DmaUnmap::decode(&m.payload).map_err(inval)?;
                if u.flags & vu::DMA_UNMAP_ALL != 0 {
                    self.dma.clear();
                } else {
                    let before = self.dma.len();
                    self.dma
                        .retain(|r| !(r.address == u.address && r.size == u.size));
                    if self.dma.len() == before {
                        return Err(libc::EINVAL);
                    }
                }
                Ok(u.encode())
            }
            Command::DeviceGetInfo => {
                vu::DeviceInfo::decode(&m.payload).map_err(inval)?;
                Ok(vu::DeviceInfo {
                    flags: DEVICE_FLAGS,
                    num_regions: NUM_REGIONS,
                    num_irqs: NUM_IRQS,
                }
                .encode())
            }
            Command::DeviceGetRegionInfo => {
                let req = vu::RegionInfo::decode(&m.payload).map_err(inval)?;
                if req.argsz < vu::RegionInfo::SIZE || req.index >= NUM_REGIONS {
                    return Err(libc::EINVAL);
                }
                let size = self.region_size(req.index);
                let mut flags = if size > 0 {
                    vu::REGION_READ | vu::REGION_WRITE
                } else {
                    0
                };
                if let Some((_, fd, _)) = self.shared_bar(req.index) {
                    flags |= vu::REGION_MMAP;
                    self.reply_fds.push(fd.as_raw_fd());
                }
                Ok(vu::RegionInfo {
                    argsz: vu::RegionInfo::SIZE,
                    flags,
                    index: req.index,
                    cap_offset: 0,
                    size,
                    offset: 0,
                    sparse: Vec::new(),
                }
                .encode())
            }
            Command::DeviceGetIrqInfo => {
                let req = vu::IrqInfo::decode(&m.payload).map_err(inval)?;
                if req.index >= NUM_IRQS {
                    return Err(libc::EINVAL);
                }
                let count = self.irq_count(req.index);
                let mut flags = vu::IRQ_INFO_EVENTFD;
                flags |= match req.index {
                    vu::IRQ_INTX => vu::IRQ_INFO_MASKABLE | vu::IRQ_INFO_AUTOMASKED,
                    vu::IRQ_MSIX => vu::IRQ_INFO_MASKABLE | vu::IRQ_INFO_NORESIZE,
                    _ => vu::IRQ_INFO_NORESIZE,
                };
                Ok(vu::IrqInfo {
                    flags,
                    index: req.index,
                    count,
                }
                .encode())
            }
            Command::DeviceSetIrqs => {
                let s = vu::SetIrqs::decode(&m.payload).map_err(inval)?;
                self.set_irqs(&s, &m.fds)?;
                Ok(Vec::new())
            }
            Command::RegionRead | Command::RegionWrite => {
                let mut a = vu::RegionAccess::decode(&m.payload).map_err(inval)?;
                let write = cmd == Command::RegionWrite;
                let size = self.region_size(a.region);
                let end = a.offset.checked_add(u64::from(a.count));
                if a.count > MAX_DATA
                    || end.is_none_or(|e| e > size)
                    || (write && a.data.len() != a.count as usize)
                    || (!write && !a.data.is_empty())
                {
                    return Err(libc::EINVAL);
                }
                if write {
                    self.region_write(a.region, a.offset, &a.data);
                    a.data.clear();
                } else {
                    a.data = vec![0u8; a.count as usize];
                    let (region, offset) = (a.region, a.offset);
                    self.region_read(region, offset, &mut a.data);
                }
                Ok(a.encode())
            }
            Command::DeviceReset => {
                log::info!("vfio-user server: device reset");
                if let Some(reset) = &self.dev.reset {
                    reset();
                }
                if let Some(l) = &self.dev.intx {
                    // Deasserted by the reset (if the model drove it); unmasked.
                    l.masked.store(false, Ordering::SeqCst);
                }
                Ok(Vec::new())
            }
            Command::DmaRead
            | Command::DmaWrite
            | Command::DeviceGetRegionIoFds
            | Command::DirtyPages => Err(libc::ENOSYS),
        }
    }

    fn shared_bar(&self, index: u32) -> Option<&(u8, Arc<OwnedFd>, u64)> {
        self.dev
            .shared_bars
            .iter()
            .find(|(b, _, _)| u32::from(*b) == index)
    }

    fn region_size(&self, index: u32) -> u64 {
        match index {
            0..=5 => self.bar_sizes[index as usize],
            vu::REGION_CONFIG => CONFIG_REGION_SIZE,
            _ => 0,
        }
    }

    fn irq_count(&self, index: u32) -> u32 {
        match index {
            vu::IRQ_INTX => u32::from(self.dev.intx.is_some()),
            vu::IRQ_MSI => self.dev.msi,
            vu::IRQ_MSIX => self.dev.msix,
            _ => 0,
        }
    }

    fn set_irqs(&mut self, s: &vu::SetIrqs, fds: &[OwnedFd]) -> std::result::Result<(), i32> {
        let count = self.irq_count(s.index);
        if s.start.saturating_add(s.count) > count && !(s.count == 0 && s.start == 0) {
            return Err(libc::EINVAL);
        }
        let slots = match s.index {
            vu::IRQ_INTX => match &self.dev.intx {
                Some(l) => &l.slot,
                None => return Err(libc::EINVAL),
            },
            vu::IRQ_MSI | vu::IRQ_MSIX => &self.dev.slots,
            _ => return Err(libc::EINVAL),
        };
        let range = s.start as usize..(s.start + s.count) as usize;
        let data_eventfd = s.flags & vu::IRQ_SET_DATA_EVENTFD != 0;
        if s.flags & vu::IRQ_SET_ACTION_TRIGGER != 0 {
            if data_eventfd {
                if fds.len() != s.count as usize {
                    return Err(libc::EINVAL);
                }
                for (i, fd) in range.zip(fds) {
                    slots.connect(i, fd).map_err(|e| {
                        log::warn!("vfio-user server: {e}");
                        libc::EINVAL
                    })?;
                }
                if s.index == vu::IRQ_INTX {
                    // A new trigger fd: deliver a line that is already asserted.
                    if let Some(l) = &self.dev.intx {
                        l.unmask();
                    }
                }
            } else if s.flags & vu::IRQ_SET_DATA_NONE != 0 && s.count == 0 {
                // Disable the whole index.
                let all = 0..count as usize;
                for i in all {
                    let _ = slots.disconnect(i);
                }
            } else {
                // DATA_NONE triggers every IRQ in the range; DATA_BOOL those set.
                for (k, i) in range.enumerate() {
                    if s.data.is_empty() || s.data.get(k).is_some_and(|&b| b != 0) {
                        slots.trigger(i);
                    }
                }
            }
            return Ok(());
        }
        if data_eventfd {
            // Mask/unmask eventfds (irqfd-style resamplers) are not offered.
            return Err(libc::EINVAL);
        }
        if s.flags & vu::IRQ_SET_ACTION_UNMASK != 0 && s.index == vu::IRQ_INTX {
            if let Some(l) = &self.dev.intx {
                l.unmask();
            }
        }
        // MSI/MSI-X masking is the client's (it emulates the capabilities).
        Ok(())
    }

    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) {
        if let Some((_, fd, _)) = self.shared_bar(region) {
            // SAFETY: reads into `data`, which is valid for its length; checked below.
            let n = unsafe {
                libc::pread(
                    fd.as_raw_fd(),
                    data.as_mut_ptr() as *mut libc::c_void,
                    data.len(),
                    offset as libc::off_t,
                )
            };
            if n != data.len() as isize {
                data.fill(0xff);
            }
            return;
        }
        for (off, at, n) in chunks(offset, data.len()) {
            let d = &mut data[at..at + n];
            match region {
                0..=5 => self.dev.function.bar_read(region as u8, off, d),
                vu::REGION_CONFIG => self.dev.function.config_read(off as u16, d),
                _ => d.fill(0xff),
            }
        }
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) {
        if let Some((_, fd, _)) = self.shared_bar(region) {
            // SAFETY: writes from `data`, valid for its length; a short write drops the
            // rest, as a write to a dead device would.
            unsafe {
                libc::pwrite(
                    fd.as_raw_fd(),
                    data.as_ptr() as *const libc::c_void,
                    data.len(),
                    offset as libc::off_t,
                )
            };
            return;
        }
        for (off, at, n) in chunks(offset, data.len()) {
            let d = &data[at..at + n];
            match region {
                0..=5 => {
                    self.dev.function.bar_write(region as u8, off, d);
                }
                vu::REGION_CONFIG => {
                    self.dev.function.config_write(off as u16, d);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_split_into_natural_chunks() {
        let c: Vec<_> = chunks(0, 8).collect();
        assert_eq!(c, vec![(0, 0, 4), (4, 4, 4)]);
        let c: Vec<_> = chunks(1, 6).collect();
        assert_eq!(c, vec![(1, 0, 1), (2, 1, 2), (4, 3, 2), (6, 5, 1)]);
        assert_eq!(chunks(3, 0).count(), 0);
    }
}
