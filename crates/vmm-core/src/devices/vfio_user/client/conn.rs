//! The client's connection: connect with a bounded wait, negotiate, and make calls that
//! turn every transport failure into "disconnected" (the caller then reads all-ones);
//! [`Conn::reconnect`] opens a new connection and replays what the server was given
//! (DMA maps, interrupt fds, COMMAND) once it has checked that the new server offers the
//! same device (regions and IDs), whose mmap-able areas it then maps in place of the old
//! server's. Across a machine reset the connection is kept ([`Conn::park`],
//! [`super::HeldConnections`]).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vfio_user_proto as vu;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vu::{Channel, Command, Message};

use super::areas::Areas;
use super::halt::Halt;
use super::held::{Held, HeldConnections};
use super::metrics::DeviceMetrics;
use crate::control::VmControl;

mod handshake;
mod reconnect;
pub(crate) use handshake::dial;
use handshake::handshake;
pub(crate) use reconnect::Shape;

/// Data bytes this client accepts per message.
const MAX_DATA: u32 = 1 << 20;
/// Fds this client accepts per message (one per region-info reply).
const MAX_FDS: u32 = 8;
/// How long the vCPU thread polls for a reply before it sleeps: a server answers a
/// register access within this, and an idle CPU's sleep and wake-up (tens of µs under
/// nested virtualization) would cost more than the exchange itself.
const REPLY_POLL: Duration = Duration::from_micros(50);
/// Between two "server unavailable" log lines.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Guest memory shared with the server by DMA_MAP.
#[derive(Clone)]
pub struct DmaMemory {
    /// The mapping here (server-initiated DMA_READ/WRITE go through it).
    pub memory: GuestMemoryMmap,
    /// The memfd behind guest RAM (file offset = guest-physical address).
    pub memfd: Arc<OwnedFd>,
    /// Bytes of RAM from guest-physical 0.
    pub size: u64,
}

/// What a new connection must be given again.
#[derive(Default)]
pub(crate) struct Replay {
    pub(crate) dma: Option<DmaMemory>,
    /// (IRQ index, the eventfds of vectors 0..).
    pub(crate) irqs: Vec<(u32, Vec<Arc<EventFd>>)>,
    /// COMMAND as last written.
    pub(crate) command: Option<u16>,
    /// What the device was built from, which a new server must offer again.
    pub(crate) shape: Option<Shape>,
}

/// One server connection (or none, while the server is away).
pub(crate) struct Conn {
    pub(crate) name: String,
    socket: PathBuf,
    reply_timeout: Duration,
    chan: Option<Channel>,
    /// What the server accepts.
    pub(crate) peer: vu::Capabilities,
    pub(crate) replay: Replay,
    pub(crate) metrics: DeviceMetrics,
    last_log: Option<Instant>,
    /// When a refused access was last logged.
    last_refusal_log: Option<Instant>,
    /// Where the connection is parked when the device goes (a reboot follows).
    held: Option<HeldConnections>,
    /// Parked or closed for good: no reconnecting.
    retired: bool,
    /// Wakes the watch thread (module `watch`): the connection was lost, parked, or
    /// this `Conn` is going.
    pub(crate) wake: Arc<EventFd>,
    /// Counts connections made, so that the watch thread's view of "the connection"
    /// is the current one.
    generation: u64,
    /// The mmap-able BAR areas (placed only while connected).
    pub(crate) areas: Areas,
    /// Fired at the VM's stop: ends waits for the server.
    pub(crate) halt: Arc<Halt>,
}

/// True (and `last` set to now) if the last such log line was at least [`LOG_EVERY`]
/// ago or never.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    let due = last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
    if due {
        *last = Some(now);
    }
    due
}

fn proto_err(name: &str, e: vu::Error) -> crate::Error {
    crate::Error::Device {
        device: name.to_string(),
        detail: e.to_string(),
    }
}

/// Connects to `socket`, waiting until `deadline` for it to appear and accept (or until
/// `halt` fires: `Interrupted`).
pub(crate) fn connect_by(
    socket: &Path,
    deadline: Instant,
    halt: &Halt,
) -> std::io::Result<UnixStream> {
    loop {
        if halt.fired() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the VM is stopping",
            ));
        }
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                // The server is starting: its socket is not there yet. A bounded wait.
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Conn {
    /// Takes the connection `held` keeps for `socket` (checked alive; the old guest
    /// memory unmapped), or connects (waiting up to `connect_timeout`) and negotiates
    /// the version.
    pub(crate) fn open(
        name: &str,
        socket: &Path,
        connect_timeout: Duration,
        reply_timeout: Duration,
        metrics: DeviceMetrics,
        held: Option<HeldConnections>,
        control: Option<&VmControl>,
    ) -> crate::Result<Conn> {
        let io = |e| crate::Error::Io {
            what: format!("{name}: eventfd"),
            source: e,
        };
        let wake = EventFd::new(EFD_NONBLOCK).map_err(io)?;
        let halt = Arc::new(Halt::new().map_err(io)?);
        if let Some(control) = control {
            // From now on a stop ends every wait for the server (module `halt`).
            let h = halt.clone();
            control.on_stop(move || h.fire());
        }
        let mut c = Conn {
            name: name.to_string(),
            socket: socket.to_path_buf(),
            reply_timeout,
            chan: None,
            peer: vu::Capabilities::default(),
            replay: Replay::default(),
            metrics,
            last_log: None,
            last_refusal_log: None,
            held,
            retired: false,
            wake: Arc::new(wake),
            generation: 0,
            areas: Areas::none(),
            halt,
        };
        if let Some(h) = c.held.as_ref().and_then(|s| s.take(socket)) {
            if c.resume(h) {
                log::info!("{name}: kept the server connection across the reset");
                c.metrics.set_connected(true);
                return Ok(c);
            }
            log::info!("{name}: the kept server connection is gone; connecting again");
        }
        let stream =
            connect_by(socket, Instant::now() + connect_timeout, &c.halt).map_err(|e| {
                crate::Error::Device {
                    device: name.to_string(),
                    detail: format!("cannot connect to {}: {e}", socket.display()),
                }
            })?;
        c.negotiate(stream).map_err(|e| proto_err(name, e))?;
        c.metrics.set_connected(true);
        Ok(c)
    }

    /// Continues on a parked connection: DMA_UNMAP of the old guest memory (or, with
    /// none mapped, DEVICE_GET_INFO) proves it alive. False if it is not.
    fn resume(&mut self, mut h: Held) -> bool {
        self.halt.arm(&mut h.chan);
        self.chan = Some(h.chan);
        self.peer = h.peer;
        let probe = match h.dma {
            Some(size) => self.call(
                Command::DmaUnmap,
                &vu::DmaUnmap {
                    flags: 0,
                    address: 0,
                    size,
                }
                .encode(),
                &[],
            ),
            None => self.call(
                Command::DeviceGetInfo,
                &vu::DeviceInfo::default().encode(),
                &[],
            ),
        };
        if let (Some(_), Some(Err(errno))) = (h.dma, probe) {
            log::warn!(
                "{}: unmapping the old guest memory: errno {errno}",
                self.name
            );
        }
        self.connected()
    }

    /// The device is going: park the connection for the next boot's device when there
    /// is a store (else it closes with this), and never reconnect.
    pub(crate) fn park(&mut self) {
        self.retired = true;
        let _ = self.wake.write(1);
        if let (Some(store), Some(chan)) = (self.held.as_ref(), self.chan.take()) {
            store.put(
                &self.socket,
                Held {
                    chan,
                    peer: self.peer,
                    dma: self.replay.dma.as_ref().map(|d| d.size),
                },
            );
        }
    }

    fn negotiate(&mut self, stream: UnixStream) -> vu::Result<()> {
        let (chan, caps) = handshake(stream, self.reply_timeout, &self.halt)?;
        self.install(chan, caps);
        Ok(())
    }

    /// Makes `chan` (negotiated, with the server's `caps`) the connection.
    fn install(&mut self, chan: Channel, caps: vu::Capabilities) {
        self.peer = caps;
        self.chan = Some(chan);
        self.generation += 1;
    }

    /// Where a new connection goes, how long its VERSION reply may take and what cuts
    /// that short (for [`dial`], which runs without this connection's lock).
    pub(crate) fn dial_target(&self) -> (PathBuf, Duration, Arc<Halt>) {
        (self.socket.clone(), self.reply_timeout, self.halt.clone())
    }

    /// True once parked, closed for good, or the VM is stopping.
    pub(crate) fn retired(&self) -> bool {
        self.retired || self.halt.fired()
    }

    /// True while connected.
    pub(crate) fn connected(&self) -> bool {
        self.chan.is_some()
    }

    /// Most data bytes per message both sides accept.
    pub(crate) fn max_data(&self) -> u32 {
        self.peer.max_data_xfer_size.clamp(4, MAX_DATA)
    }

    /// A call; a transport or protocol failure drops the connection (logged,
    /// rate-limited, counted). An error *reply* keeps it.
    pub(crate) fn call(
        &mut self,
        cmd: Command,
        payload: &[u8],
        fds: &[RawFd],
    ) -> Option<std::result::Result<Message, u32>> {
        let chan = self.chan.as_mut()?;
        // Borrowed, not cloned: this is every forwarded access's path.
        let dma = self.replay.dma.as_ref();
        let mut serve = |m: &Message| serve_dma(dma, m);
        match chan.call(cmd, payload, fds, self.reply_timeout, &mut serve) {
            Ok(m) => Some(Ok(m)),
            Err(vu::Error::Peer { errno, .. }) => Some(Err(errno)),
            Err(e) => {
                self.drop_connection(&format!("{cmd:?}: {e}"));
                None
            }
        }
    }

    /// What the watch thread watches while connected: the connection's generation and
    /// its socket (a second descriptor of it). `None` while disconnected.
    pub(crate) fn watch(&self) -> Option<(u64, UnixStream)> {
        let chan = self.chan.as_ref()?;
        Some((self.generation, chan.stream().try_clone().ok()?))
    }

    /// The socket of connection `generation` was closed by the server.
    pub(crate) fn peer_closed(&mut self, generation: u64) {
        if generation == self.generation && self.chan.is_some() {
            self.drop_connection("it closed the connection");
        }
    }

    /// Forgets the connection after a failure.
    pub(crate) fn drop_connection(&mut self, why: &str) {
        self.chan = None;
        self.areas.suspend();
        let _ = self.wake.write(1);
        self.metrics.set_connected(false);
        if self.halt.fired() {
            // The VM is stopping and the server was slow to answer: not its failure.
            log::info!("{}: stopped waiting for the server ({why})", self.name);
            return;
        }
        self.metrics.failures.increment(1);
        if due(&mut self.last_log) {
            log::warn!(
                "{}: vfio-user server {} unavailable ({why}); BAR reads return all-ones until it reconnects",
                self.name,
                self.socket.display()
            );
        }
    }

    /// REGION_READ in pieces the server accepts; `false` if the server is away (the
    /// data is then all-ones).
    pub(crate) fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> bool {
        let t0 = Instant::now();
        let step = self.max_data() as usize;
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(step);
            let req = vu::RegionAccess {
                offset: offset + done as u64,
                region,
                count: n as u32,
                data: Vec::new(),
            };
            let ok = match self.call(Command::RegionRead, &req.encode(), &[]) {
                Some(Ok(m)) => match vu::RegionAccess::decode(&m.payload) {
                    Ok(r) if r.data.len() == n => {
                        data[done..done + n].copy_from_slice(&r.data);
                        true
                    }
                    _ => {
                        self.drop_connection("malformed REGION_READ reply");
                        false
                    }
                },
                Some(Err(errno)) => {
                    self.refused("REGION_READ", region, offset + done as u64, n, errno);
                    false
                }
                None => false,
            };
            if !ok {
                data.fill(0xff);
                self.metrics.dropped.increment(1);
                return false;
            }
            done += n;
        }
        self.metrics.round_trip.record(t0.elapsed().as_secs_f64());
        true
    }

    /// REGION_WRITE in pieces; `false` if dropped.
    pub(crate) fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> bool {
        let t0 = Instant::now();
        let step = self.max_data() as usize;
        for (k, piece) in data.chunks(step).enumerate() {
            let req = vu::RegionAccess {
                offset: offset + (k * step) as u64,
                region,
                count: piece.len() as u32,
                data: piece.to_vec(),
            };
            let ok = match self.call(Command::RegionWrite, &req.encode(), &[]) {
                Some(Ok(_)) => true,
                Some(Err(errno)) => {
                    self.refused("REGION_WRITE", region, req.offset, piece.len(), errno);
                    false
                }
                None => false,
            };
            if !ok {
                self.metrics.dropped.increment(1);
                return false;
            }
        }
        self.metrics.round_trip.record(t0.elapsed().as_secs_f64());
        true
    }

    /// Logs (rate-limited) an access the server answered with an error.
    fn refused(&mut self, what: &str, region: u32, offset: u64, len: usize, errno: u32) {
        if due(&mut self.last_refusal_log) {
            log::warn!(
                "{}: the server refused {what} of region {region} at {offset:#x}+{len}: errno {errno}",
                self.name
            );
        }
    }

    /// Gives the server guest memory (DMA_MAP of the memfd).
    pub(crate) fn dma_map(&mut self, dma: &DmaMemory) -> bool {
        let req = vu::DmaMap {
            flags: vu::DMA_READ | vu::DMA_WRITE,
            offset: 0,
            address: 0,
            size: dma.size,
        };
        let fd = dma.memfd.as_raw_fd();
        matches!(
            self.call(Command::DmaMap, &req.encode(), &[fd]),
            Some(Ok(_))
        )
    }

    /// Hands the server the trigger eventfds of IRQ `index`, as many per message as it
    /// accepts.
    pub(crate) fn set_irq_fds(&mut self, index: u32, fds: &[Arc<EventFd>]) -> bool {
        let per = (self.peer.max_msg_fds.max(1) as usize).min(MAX_FDS as usize);
        for (k, chunk) in fds.chunks(per).enumerate() {
            let raw: Vec<RawFd> = chunk.iter().map(|f| f.as_raw_fd()).collect();
            let s = vu::SetIrqs {
                flags: vu::IRQ_SET_DATA_EVENTFD | vu::IRQ_SET_ACTION_TRIGGER,
                index,
                start: (k * per) as u32,
                count: chunk.len() as u32,
                data: Vec::new(),
            };
            match self.call(Command::DeviceSetIrqs, &s.encode(), &raw) {
                Some(Ok(_)) => {}
                Some(Err(errno)) => {
                    log::warn!("{}: SET_IRQS index {index}: errno {errno}", self.name);
                    return false;
                }
                None => return false,
            }
        }
        true
    }

    /// INTx UNMASK (after the guest's EOI).
    pub(crate) fn unmask_intx(&mut self) -> bool {
        let s = vu::SetIrqs {
            flags: vu::IRQ_SET_DATA_NONE | vu::IRQ_SET_ACTION_UNMASK,
            index: vu::IRQ_INTX,
            start: 0,
            count: 1,
            data: Vec::new(),
        };
        matches!(
            self.call(Command::DeviceSetIrqs, &s.encode(), &[]),
            Some(Ok(_))
        )
    }

    /// Forwards a COMMAND write to config space.
    pub(crate) fn write_command(&mut self, command: u16) {
        self.replay.command = Some(command);
        self.region_write(vu::REGION_CONFIG, 4, &command.to_le_bytes());
    }

    /// DEVICE_RESET.
    pub(crate) fn reset(&mut self) -> bool {
        matches!(self.call(Command::DeviceReset, &[], &[]), Some(Ok(_)))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The watch thread ends when it finds this gone.
        let _ = self.wake.write(1);
    }
}

/// Serves a server-initiated DMA_READ/DMA_WRITE from the DMA-mapped guest memory;
/// anything outside it (or any other command) is refused.
fn serve_dma(dma: Option<&DmaMemory>, m: &Message) -> std::result::Result<Vec<u8>, u32> {
    let einval = libc::EINVAL as u32;
    let Some(dma) = dma else {
        return Err(libc::EFAULT as u32);
    };
    let cmd = Command::from_u16(m.header.command);
    let mut a = vu::DmaAccess::decode(&m.payload).map_err(|_| einval)?;
    if a.count > u64::from(MAX_DATA) || a.address.saturating_add(a.count) > dma.size {
        return Err(libc::EFAULT as u32);
    }
    match cmd {
        Some(Command::DmaRead) if a.data.is_empty() => {
            let mut buf = vec![0u8; a.count as usize];
            dma.memory
                .read_slice(&mut buf, GuestAddress(a.address))
                .map_err(|_| libc::EFAULT as u32)?;
            a.data = buf;
            Ok(a.encode())
        }
        Some(Command::DmaWrite) if a.data.len() as u64 == a.count => {
            dma.memory
                .write_slice(&a.data, GuestAddress(a.address))
                .map_err(|_| libc::EFAULT as u32)?;
            a.data.clear();
            Ok(a.encode())
        }
        _ => Err(einval),
    }
}
