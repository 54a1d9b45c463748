//! The receive side of a [`Channel`](crate::Channel): messages (with their fds) out of a
//! Unix stream, in one read per message in the common case: a `recvmsg` with a control
//! buffer, or a plain `recv` when fds are not expected (the replies to region and DMA
//! accesses, [`Rx::recv`]'s `with_fds` off: the kernel then closes any fds that come).
//!
//! Bytes are read into a buffer, so a message and whatever follows it arrive together
//! and a small message costs one system call instead of one for its header and one for
//! its payload. Messages larger than the buffer get their remainder read straight into
//! their payload, never past their end.
//!
//! **Which message owns received fds.** A sender attaches fds to the first bytes of a
//! message (one `sendmsg`). Linux's stream `recvmsg` merges data of several sends into
//! one read, but it stops right after the first send that carried fds (and hands them
//! over with the first byte of that send it reads). So the fds of one read belong to the
//! *last message that starts within that read*; fds no message claims (a peer that sends
//! fds in the middle of a message) are closed when the stream moves past them.
//!
//! **Waiting.** The first read of a message may poll (yielding the CPU, then a
//! non-blocking read) for a short budget before it blocks: a peer that answers within the
//! budget then costs no sleep and wake-up of an idle CPU, which under nested
//! virtualization costs more than the whole exchange. It then sleeps in `poll(2)` on the
//! socket until the deadline, and on the cancel fd if one is set: once that is readable,
//! every wait ends within the cancel's grace.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::header::{Header, HEADER_SIZE};

/// Fds collected per read at most (beyond the limit the kernel closes them and the
/// message is refused).
pub(crate) const FD_SLOTS: usize = 253;
/// 8-byte words of control buffer for FD_SLOTS fds (CMSG_SPACE(253 * 4) = 1032 bytes).
pub(crate) const CBUF_WORDS: usize = 130;
/// Bytes buffered per read.
const RECV_BUF: usize = 16 * 1024;
/// Fixed bytes allowed on top of the data a message carries (its structures).
const OVERHEAD: u32 = 4096;

/// Bounds on what this side receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most fds in one message.
    pub max_fds: usize,
    /// Most data bytes in one message (the announced `max_data_xfer_size`).
    pub max_data: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_fds: 16,
            max_data: 1 << 20,
        }
    }
}

/// One received message.
#[derive(Debug)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// Everything after the header.
    pub payload: Vec<u8>,
    /// The fds that came with it (owned: closed when dropped).
    pub fds: Vec<OwnedFd>,
}

/// Fds one read brought, and the stream range `[from, to)` of that read.
struct FdRead {
    from: u64,
    to: u64,
    fds: Vec<OwnedFd>,
    /// The kernel had more fds than the control buffer holds (it closed the rest).
    truncated: bool,
}

/// What one `recvmsg` returned.
struct Read {
    n: usize,
    fds: Vec<OwnedFd>,
    truncated: bool,
}

/// Receive state: the buffer and the fds waiting for their message.
pub(crate) struct Rx {
    buf: Box<[u8]>,
    head: usize,
    tail: usize,
    /// Stream offset of the next byte the socket delivers (that of `buf[tail]`).
    rpos: u64,
    pending: VecDeque<FdRead>,
    /// What ends waits early (a stop), if anything.
    pub(crate) cancel: Option<Cancel>,
    /// How long the first read of a message polls before it blocks.
    pub(crate) poll: Duration,
}

fn check(deadline: Option<Instant>) -> Result<()> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(Error::Timeout(Duration::ZERO)),
        _ => Ok(()),
    }
}

fn read_err(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Error::Closed,
        _ => Error::Io {
            what: "recvmsg",
            source: e,
        },
    }
}

/// Runs the receive call `f` until it is not interrupted: the bytes it read, or `None`
/// when `flags` has MSG_DONTWAIT and nothing was there.
fn retry(flags: i32, mut f: impl FnMut() -> isize) -> std::io::Result<Option<usize>> {
    loop {
        let n = f();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => {}
            std::io::ErrorKind::WouldBlock if flags & libc::MSG_DONTWAIT != 0 => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// What ends a channel's waits early: an fd that becomes readable (and stays so), and
/// how long a wait may go on after it did (a reply that is on its way is still taken).
pub(crate) struct Cancel {
    pub(crate) fd: OwnedFd,
    pub(crate) grace: Duration,
    /// When this side first saw the fd readable.
    pub(crate) since: Option<Instant>,
}

/// One read into `buf`: the bytes and, if `fds`, the fds that came with them (one
/// `recvmsg` with a control buffer); else one plain `recv`, with which the kernel closes
/// any fds that came. `Ok(None)` if `flags` has MSG_DONTWAIT and nothing is there yet.
fn recv_some(fd: RawFd, buf: &mut [u8], flags: i32, fds: bool) -> std::io::Result<Option<Read>> {
    if !fds {
        // SAFETY: `buf` is live and writable for its length; the result is checked.
        let n = retry(flags, || unsafe {
            libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), flags)
        })?;
        return Ok(n.map(|n| Read {
            n,
            fds: Vec::new(),
            truncated: false,
        }));
    }
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // On the stack: this is every message's path. 8-byte aligned as cmsghdr needs.
    let mut cbuf = [0u64; CBUF_WORDS];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((FD_SLOTS * std::mem::size_of::<RawFd>()) as u32) };
    // SAFETY: msghdr is plain data; zero is a valid initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = (space as usize).min(CBUF_WORDS * 8);
    // SAFETY: `msg` points at live buffers (buf via iov, cbuf) of the sizes it states;
    // the result is checked.
    let Some(n) = retry(flags, || unsafe {
        libc::recvmsg(fd, &mut msg, flags | libc::MSG_CMSG_CLOEXEC)
    })?
    else {
        return Ok(None);
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk only
    // within it, and every SCM_RIGHTS fd is a new descriptor owned by us.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned((data as *const RawFd).add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(Read {
        n,
        fds,
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    }))
}

impl Rx {
    pub(crate) fn new() -> Rx {
        Rx {
            buf: vec![0u8; RECV_BUF].into_boxed_slice(),
            head: 0,
            tail: 0,
            rpos: 0,
            pending: VecDeque::new(),
            cancel: None,
            poll: Duration::ZERO,
        }
    }

    fn avail(&self) -> usize {
        self.tail - self.head
    }

    /// Receives one message, waiting at most until `deadline` (forever with `None`).
    /// With `with_fds` off its reads are plain `recv`s, whose cheaper kernel path matters
    /// on a round trip's hot path: any fds the peer sends are then closed by the kernel,
    /// unseen. After an error other than [`Error::TooManyFds`] the stream position is
    /// unknown and the connection must be dropped.
    pub(crate) fn recv(
        &mut self,
        stream: &UnixStream,
        limits: Limits,
        deadline: Option<Instant>,
        with_fds: bool,
    ) -> Result<Message> {
        let mut first = true;
        while self.avail() < HEADER_SIZE {
            self.fill(stream, deadline, first, with_fds)?;
            first = false;
        }
        let header = Header::decode(&self.buf[self.head..self.head + HEADER_SIZE])?;
        let max = u64::from(limits.max_data) + u64::from(OVERHEAD);
        let size = u64::from(header.size);
        if size < HEADER_SIZE as u64 || size > max {
            return Err(Error::Size {
                size,
                min: HEADER_SIZE as u64,
                max,
            });
        }
        let start = self.rpos - self.avail() as u64;
        let end = start + size;
        self.head += HEADER_SIZE;
        let len = header.size as usize - HEADER_SIZE;
        let take = len.min(self.avail());
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&self.buf[self.head..self.head + take]);
        self.head += take;
        let mut fds = Vec::new();
        let mut truncated = false;
        if take < len {
            // A message larger than what is buffered: the rest straight into the payload
            // (never past its end, so the next message's fds stay in the socket).
            payload.resize(len, 0);
            let mut off = take;
            while off < len {
                check(deadline)?;
                let r = read_into(
                    stream.as_raw_fd(),
                    &mut payload[off..],
                    Duration::ZERO,
                    with_fds,
                    deadline,
                    &mut self.cancel,
                )?;
                self.rpos += r.n as u64;
                off += r.n;
                // Fds in the middle of a message: attributed to it (and counted).
                fds.extend(r.fds);
                truncated |= r.truncated;
            }
        }
        // The fds of reads this message is the last to start in.
        while let Some(f) = self.pending.front() {
            if f.to <= start {
                // No message started in that read after its fds: nobody's; closed.
                self.pending.pop_front();
            } else if f.from <= start && end >= f.to {
                let f = self.pending.pop_front().expect("front exists");
                fds.extend(f.fds);
                truncated |= f.truncated;
            } else {
                break;
            }
        }
        if truncated || fds.len() > limits.max_fds {
            // The message is consumed, so the stream stays in step; the fds close.
            return Err(Error::TooManyFds {
                got: if truncated {
                    fds.len().max(FD_SLOTS + 1)
                } else {
                    fds.len()
                },
                max: limits.max_fds,
            });
        }
        Ok(Message {
            header,
            payload,
            fds,
        })
    }

    /// Reads more bytes into the buffer (after moving what is left to its start).
    fn fill(
        &mut self,
        stream: &UnixStream,
        deadline: Option<Instant>,
        first: bool,
        with_fds: bool,
    ) -> Result<()> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        } else if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if !first {
            check(deadline)?;
        }
        let poll = if first { self.poll } else { Duration::ZERO };
        let r = read_into(
            stream.as_raw_fd(),
            &mut self.buf[self.tail..],
            poll,
            with_fds,
            deadline,
            &mut self.cancel,
        )?;
        let from = self.rpos;
        self.rpos += r.n as u64;
        self.tail += r.n;
        if !r.fds.is_empty() || r.truncated {
            self.pending.push_back(FdRead {
                from,
                to: self.rpos,
                fds: r.fds,
                truncated: r.truncated,
            });
        }
        Ok(())
    }
}

/// Non-blocking reads a poll makes between two yields while nothing else wants its CPU.
const READS_PER_YIELD: u32 = 8;
/// A yield that returns sooner than this ran nothing else: this thread has its CPU to
/// itself (one `sched_yield` costs about 1 µs here; letting another task run costs at
/// least two context switches).
const ALONE: Duration = Duration::from_micros(2);

/// One read of at least a byte into `buf`: polls (yielding the CPU, then non-blocking
/// reads) for up to `poll`, then sleeps in `poll(2)` until a byte comes, `deadline`
/// passes ([`Error::Timeout`]) or `cancel` fires and its grace passes ([`Error::Stopped`]).
/// The end of the stream is [`Error::Closed`].
///
/// A poll yields *before* it reads: a message is polled for right after this side sent
/// the request (or the reply) the peer must answer, so the first read would find nothing
/// anyway, and when the peer shares this CPU the yield is what lets it run: reading
/// first only delays that hand-over by one system call on each side of a round trip.
/// When a yield comes back at once (nothing else wanted the CPU: the peer runs on
/// another), the poll reads [`READS_PER_YIELD`] times before it yields again, so a
/// message is seen one read after it lands rather than one read and one yield.
fn read_into(
    fd: RawFd,
    buf: &mut [u8],
    poll: Duration,
    fds: bool,
    deadline: Option<Instant>,
    cancel: &mut Option<Cancel>,
) -> Result<Read> {
    if !poll.is_zero() {
        let until = Instant::now() + poll;
        let mut reads = 0;
        loop {
            if reads == 0 {
                let t = Instant::now();
                std::thread::yield_now();
                reads = if t.elapsed() < ALONE {
                    READS_PER_YIELD
                } else {
                    1
                };
            }
            reads -= 1;
            if let Some(r) = recv_some(fd, buf, libc::MSG_DONTWAIT, fds).map_err(read_err)? {
                return eof(r);
            }
            if Instant::now() >= until {
                break;
            }
        }
    }
    loop {
        if let Some(r) = recv_some(fd, buf, libc::MSG_DONTWAIT, fds).map_err(read_err)? {
            return eof(r);
        }
        sleep(fd, deadline, cancel)?;
    }
}

/// Sleeps until `fd` is readable (or hung up), `deadline` passes ([`Error::Timeout`]),
/// or `cancel` fires and its grace passes ([`Error::Stopped`]).
fn sleep(fd: RawFd, deadline: Option<Instant>, cancel: &mut Option<Cancel>) -> Result<()> {
    let stop_at = cancel.as_ref().and_then(|c| c.since.map(|t| t + c.grace));
    let end = match (deadline, stop_at) {
        (Some(d), Some(s)) => Some(d.min(s)),
        (d, s) => d.or(s),
    };
    let ms = match end {
        None => -1,
        Some(e) => {
            let left = e.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(if stop_at == end {
                    Error::Stopped
                } else {
                    Error::Timeout(Duration::ZERO)
                });
            }
            // Rounded up: a wait never ends before its deadline.
            left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        }
    };
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            // Watched until it fires (it then stays readable).
            fd: match cancel {
                Some(c) if c.since.is_none() => c.fd.as_raw_fd(),
                _ => -1,
            },
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a live array of two pollfds (a negative fd is ignored); the
    // result is checked.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(());
        }
        return Err(Error::Io {
            what: "poll",
            source: e,
        });
    }
    if fds[1].revents != 0 {
        if let Some(c) = cancel {
            c.since = Some(Instant::now());
        }
    }
    Ok(())
}

fn eof(r: Read) -> Result<Read> {
    if r.n == 0 {
        Err(Error::Closed)
    } else {
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use crate::channel::tests::{pair, soon};
    use crate::Command;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    #[test]
    fn queued_messages_keep_their_own_fds() {
        let (mut a, mut b) = pair();
        let (x, _x) = UnixStream::pair().unwrap();
        let (y, _y) = UnixStream::pair().unwrap();
        // No fds, then one fd, then none, then two: all queued before the first read.
        a.send_command(Command::DeviceReset, b"one", &[]).unwrap();
        a.send_command(Command::DmaMap, b"two", &[x.as_raw_fd()])
            .unwrap();
        a.send_command(Command::DeviceReset, b"three", &[]).unwrap();
        a.send_command(Command::DmaMap, b"four", &[x.as_raw_fd(), y.as_raw_fd()])
            .unwrap();
        let got: Vec<(Vec<u8>, usize)> = (0..4)
            .map(|_| {
                let m = b.recv(soon()).unwrap();
                (m.payload, m.fds.len())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (b"one".to_vec(), 0),
                (b"two".to_vec(), 1),
                (b"three".to_vec(), 0),
                (b"four".to_vec(), 2)
            ]
        );
    }

    #[test]
    fn a_message_larger_than_the_buffer_arrives_whole_and_the_next_keeps_its_fd() {
        let (mut a, mut b) = pair();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (x, _x) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            a.send_command(Command::RegionWrite, &big, &[]).unwrap();
            a.send_command(Command::DmaMap, b"next", &[x.as_raw_fd()])
                .unwrap();
            big
        });
        let m = b.recv(soon()).unwrap();
        let n = b.recv(soon()).unwrap();
        let big = t.join().unwrap();
        assert_eq!(m.payload, big);
        assert!(m.fds.is_empty());
        assert_eq!(n.payload, b"next");
        assert_eq!(n.fds.len(), 1);
    }

    #[test]
    fn a_header_split_over_writes_is_reassembled() {
        let (mut a, mut b) = pair();
        let h = crate::Header {
            msg_id: 9,
            command: Command::DeviceReset as u16,
            size: 20,
            ..Default::default()
        }
        .encode();
        let t = std::thread::spawn(move || {
            for part in [&h[..5], &h[5..], b"abcd"] {
                a.write_all(part).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let m = b.recv(soon()).unwrap();
        t.join().unwrap();
        assert_eq!(m.header.msg_id, 9);
        assert_eq!(m.payload, b"abcd");
    }

    #[test]
    fn polling_receives_and_still_times_out() {
        let (mut a, mut b) = pair();
        b.set_poll(Duration::from_micros(200));
        a.send_command(Command::DeviceReset, b"x", &[]).unwrap();
        assert_eq!(b.recv(soon()).unwrap().payload, b"x");
        let t0 = Instant::now();
        let e = b
            .recv(Some(Instant::now() + Duration::from_millis(50)))
            .unwrap_err();
        assert!(matches!(e, crate::Error::Timeout(_)), "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(40));
        drop(a);
        assert!(matches!(b.recv(soon()), Err(crate::Error::Closed)));
    }
}
