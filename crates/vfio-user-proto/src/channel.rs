//! A vfio-user connection: messages with file descriptors (SCM_RIGHTS) over a Unix
//! stream socket, received within bounds.
//!
//! Every limit is checked before memory is committed: the announced message size, the
//! number of fds (extra fds are closed). A reply that does not arrive in time is a
//! [`Error::Timeout`]; after a timeout or a size error the stream position is unknown
//! and the connection must be dropped.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::header::{Command, Header, FLAG_ERROR, HEADER_SIZE, TYPE_COMMAND, TYPE_REPLY};

/// Fixed bytes allowed on top of the data a message carries (its structures).
const OVERHEAD: u32 = 4096;
/// Fds collected per receive at most (beyond the limit they are closed and refused).
const FD_SLOTS: usize = 253;
/// 8-byte words of control buffer for FD_SLOTS fds (CMSG_SPACE(253 * 4) = 1032 bytes).
const CBUF_WORDS: usize = 130;

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

/// One end of a vfio-user connection.
pub struct Channel {
    stream: UnixStream,
    next_id: u16,
    limits: Limits,
    /// The SO_RCVTIMEO last set (`None` = never set), to skip redundant setsockopts.
    armed: Option<Option<Duration>>,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

impl Channel {
    /// Wraps a connected stream.
    pub fn new(stream: UnixStream, limits: Limits) -> Channel {
        Channel {
            stream,
            next_id: 0,
            limits,
            armed: None,
        }
    }

    /// The receive limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the receive limits (after negotiation).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends a message: header (its `size` filled in), payload, and `fds` by SCM_RIGHTS.
    pub fn send(&mut self, mut header: Header, payload: &[u8], fds: &[RawFd]) -> Result<()> {
        let total = HEADER_SIZE + payload.len();
        header.size = u32::try_from(total).map_err(|_| Error::Size {
            size: total as u64,
            min: HEADER_SIZE as u64,
            max: u64::from(u32::MAX),
        })?;
        let hdr = header.encode();
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            },
        ];
        let fd_bytes = std::mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        // SAFETY: msghdr is plain data; zero is a valid initial state.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = 2;
        if !fds.is_empty() {
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space;
            // SAFETY: msg_control points at `space` bytes, enough for one cmsg with
            // `fd_bytes` of data; CMSG_FIRSTHDR returns a pointer inside it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr() as *const u8,
                    libc::CMSG_DATA(c),
                    fd_bytes,
                );
            }
        }
        // SAFETY: `msg` and the buffers it points to (iov, hdr, payload, cbuf) are live
        // for the call; the result is checked.
        let n = unsafe { libc::sendmsg(self.stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io("sendmsg")(std::io::Error::last_os_error()));
        }
        let n = n as usize;
        if n < total {
            // The fds went with the first bytes; the rest is plain data.
            let mut all = Vec::with_capacity(total);
            all.extend_from_slice(&hdr);
            all.extend_from_slice(payload);
            self.stream.write_all(&all[n..]).map_err(io("write"))?;
        }
        Ok(())
    }

    /// Sends a command; returns its message id.
    pub fn send_command(&mut self, cmd: Command, payload: &[u8], fds: &[RawFd]) -> Result<u16> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let h = Header {
            msg_id: id,
            command: cmd as u16,
            flags: TYPE_COMMAND,
            ..Default::default()
        };
        self.send(h, payload, fds)?;
        Ok(id)
    }

    /// Sends the reply to `req`.
    pub fn reply(&mut self, req: &Header, payload: &[u8], fds: &[RawFd]) -> Result<()> {
        let h = Header {
            msg_id: req.msg_id,
            command: req.command,
            flags: TYPE_REPLY,
            ..Default::default()
        };
        self.send(h, payload, fds)
    }

    /// Sends an error reply to `req`.
    pub fn reply_error(&mut self, req: &Header, errno: u32) -> Result<()> {
        let h = Header {
            msg_id: req.msg_id,
            command: req.command,
            flags: TYPE_REPLY | FLAG_ERROR,
            error: errno,
            ..Default::default()
        };
        self.send(h, &[], &[])
    }

    /// Receives one message, waiting at most until `deadline` (forever with `None`).
    pub fn recv(&mut self, deadline: Option<Instant>) -> Result<Message> {
        let mut hdr = [0u8; HEADER_SIZE];
        let (mut got, fds) = self.recv_first(&mut hdr, deadline)?;
        while got < HEADER_SIZE {
            Self::check(deadline)?;
            match self.stream.read(&mut hdr[got..]) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => got += n,
                Err(e) => return Err(self.read_err(e, deadline)),
            }
        }
        let header = Header::decode(&hdr)?;
        let max = u64::from(self.limits.max_data) + u64::from(OVERHEAD);
        if u64::from(header.size) < HEADER_SIZE as u64 || u64::from(header.size) > max {
            return Err(Error::Size {
                size: u64::from(header.size),
                min: HEADER_SIZE as u64,
                max,
            });
        }
        let mut payload = vec![0u8; header.size as usize - HEADER_SIZE];
        let mut off = 0;
        while off < payload.len() {
            Self::check(deadline)?;
            match self.stream.read(&mut payload[off..]) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => off += n,
                Err(e) => return Err(self.read_err(e, deadline)),
            }
        }
        if fds.len() > self.limits.max_fds {
            // The message is consumed, so the stream stays in step; the fds close.
            return Err(Error::TooManyFds {
                got: fds.len(),
                max: self.limits.max_fds,
            });
        }
        Ok(Message {
            header,
            payload,
            fds,
        })
    }

    /// Sends a command and waits up to `timeout` for its reply. Commands the peer sends
    /// meanwhile (server-initiated DMA) go to `on_command`, whose `Ok` payload or `Err`
    /// errno is sent back as their reply. An error reply becomes [`Error::Peer`].
    pub fn call(
        &mut self,
        cmd: Command,
        payload: &[u8],
        fds: &[RawFd],
        timeout: Duration,
        on_command: &mut dyn FnMut(&Message) -> std::result::Result<Vec<u8>, u32>,
    ) -> Result<Message> {
        let id = self.send_command(cmd, payload, fds)?;
        let deadline = Instant::now() + timeout;
        loop {
            let m = match self.recv(Some(deadline)) {
                Err(Error::Timeout(_)) => return Err(Error::Timeout(timeout)),
                r => r?,
            };
            if !m.header.is_reply() {
                let answer = on_command(&m);
                if !m.header.no_reply() {
                    match answer {
                        Ok(p) => self.reply(&m.header, &p, &[])?,
                        Err(errno) => self.reply_error(&m.header, errno)?,
                    }
                }
                continue;
            }
            if m.header.msg_id != id || m.header.command != cmd as u16 {
                return Err(Error::Mismatch(format!(
                    "sent {cmd:?} id {id}, got command {} id {}",
                    m.header.command, m.header.msg_id
                )));
            }
            if m.header.is_error() {
                return Err(Error::Peer {
                    command: cmd,
                    errno: m.header.error,
                });
            }
            return Ok(m);
        }
    }

    /// Sets the socket's receive timeout for the first read of a message: what is left
    /// until `deadline`. Later reads of the same message only check the deadline, so a
    /// message takes at most about twice the time left (one blocked read past the check).
    fn arm(&mut self, deadline: Option<Instant>) -> Result<()> {
        let t = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout(Duration::ZERO));
                }
                // Whole milliseconds: repeated calls with the same budget stay cached.
                Some(Duration::from_millis(left.as_millis().max(1) as u64))
            }
        };
        if self.armed == Some(t) {
            return Ok(());
        }
        self.stream.set_read_timeout(t).map_err(io("SO_RCVTIMEO"))?;
        self.armed = Some(t);
        Ok(())
    }

    fn check(deadline: Option<Instant>) -> Result<()> {
        match deadline {
            Some(d) if Instant::now() >= d => Err(Error::Timeout(Duration::ZERO)),
            _ => Ok(()),
        }
    }

    fn read_err(&self, e: std::io::Error, deadline: Option<Instant>) -> Error {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut if deadline.is_some() => {
                Error::Timeout(Duration::ZERO)
            }
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Error::Closed,
            _ => Error::Io {
                what: "read",
                source: e,
            },
        }
    }

    /// The first read of a message: the bytes and the fds that came with them.
    fn recv_first(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        self.arm(deadline)?;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let fd_bytes = FD_SLOTS * std::mem::size_of::<RawFd>();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        // On the stack: this is every message's path. 8-byte aligned as cmsghdr needs.
        let mut cbuf = [0u64; CBUF_WORDS];
        let space = space.min(CBUF_WORDS * 8);
        // SAFETY: msghdr is plain data; zero is a valid initial state.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        let n = loop {
            // SAFETY: `msg` points at live buffers (buf via iov, cbuf) of the sizes it
            // states; the result is checked.
            let n =
                unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if n >= 0 {
                break n as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(self.read_err(e, deadline));
            }
        };
        let mut fds = Vec::new();
        // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk
        // only within it, and every SCM_RIGHTS fd is a new descriptor owned by us.
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
        if n == 0 {
            return Err(Error::Closed);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(Error::TooManyFds {
                got: FD_SLOTS + 1,
                max: self.limits.max_fds,
            });
        }
        Ok((n, fds))
    }
}

impl Write for Channel {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::RegionAccess;
    use std::os::fd::AsFd;

    fn pair() -> (Channel, Channel) {
        let (a, b) = UnixStream::pair().unwrap();
        (
            Channel::new(a, Limits::default()),
            Channel::new(b, Limits::default()),
        )
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn messages_and_fds_cross_the_socket() {
        let (mut a, mut b) = pair();
        let (r, _w) = UnixStream::pair().unwrap();
        let p = RegionAccess {
            offset: 4,
            region: 7,
            count: 4,
            data: vec![],
        };
        a.send_command(Command::RegionRead, &p.encode(), &[r.as_raw_fd()])
            .unwrap();
        let m = b.recv(soon()).unwrap();
        assert_eq!(m.header.command, Command::RegionRead as u16);
        assert_eq!(m.header.size as usize, HEADER_SIZE + 16);
        assert_eq!(RegionAccess::decode(&m.payload).unwrap(), p);
        assert_eq!(m.fds.len(), 1);
        assert_ne!(m.fds[0].as_fd().as_raw_fd(), r.as_raw_fd());
    }

    #[test]
    fn call_matches_the_reply_and_serves_peer_commands() {
        let (mut a, mut b) = pair();
        let t = std::thread::spawn(move || {
            let req = b.recv(soon()).unwrap();
            // A server-initiated command first, then the reply.
            b.send_command(Command::DmaRead, &[0u8; 16], &[]).unwrap();
            let ans = b.recv(soon()).unwrap();
            assert!(ans.header.is_reply());
            b.reply(&req.header, b"ok", &[]).unwrap();
            let req2 = b.recv(soon()).unwrap();
            b.reply_error(&req2.header, 22).unwrap();
        });
        let mut seen = 0;
        let m = a
            .call(
                Command::DeviceReset,
                &[],
                &[],
                Duration::from_secs(5),
                &mut |m| {
                    seen += 1;
                    assert_eq!(m.header.command, Command::DmaRead as u16);
                    Ok(vec![])
                },
            )
            .unwrap();
        assert_eq!(m.payload, b"ok");
        assert_eq!(seen, 1);
        let e = a
            .call(
                Command::DeviceReset,
                &[],
                &[],
                Duration::from_secs(5),
                &mut |_| Err(1),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Peer { errno: 22, .. }), "{e}");
        t.join().unwrap();
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (mut a, _b) = pair();
        let t0 = Instant::now();
        let e = a
            .call(
                Command::DeviceReset,
                &[],
                &[],
                Duration::from_millis(100),
                &mut |_| Err(1),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn oversized_and_undersized_messages_are_refused() {
        let (mut a, mut b) = pair();
        b.set_limits(Limits {
            max_fds: 1,
            max_data: 64,
        });
        let h = Header {
            size: 1 << 30,
            ..Default::default()
        };
        a.write_all(&h.encode()).unwrap();
        assert!(matches!(b.recv(soon()), Err(Error::Size { .. })));
        let (mut a, mut b) = pair();
        let h = Header {
            size: 8,
            ..Default::default()
        };
        a.write_all(&h.encode()).unwrap();
        assert!(matches!(b.recv(soon()), Err(Error::Size { .. })));
    }

    #[test]
    fn too_many_fds_are_refused_and_the_stream_stays_in_step() {
        let (mut a, mut b) = pair();
        b.set_limits(Limits {
            max_fds: 1,
            max_data: 64,
        });
        let (x, y) = UnixStream::pair().unwrap();
        a.send_command(Command::DmaMap, &[1, 2, 3], &[x.as_raw_fd(), y.as_raw_fd()])
            .unwrap();
        a.send_command(Command::DeviceReset, &[], &[]).unwrap();
        assert!(matches!(
            b.recv(soon()),
            Err(Error::TooManyFds { got: 2, max: 1 })
        ));
        let m = b.recv(soon()).unwrap();
        assert_eq!(m.header.command, Command::DeviceReset as u16);
    }

    #[test]
    fn a_closed_peer_is_reported() {
        let (mut a, b) = pair();
        drop(b);
        assert!(matches!(a.recv(soon()), Err(Error::Closed)));
    }

    #[test]
    fn a_mismatched_reply_is_an_error() {
        let (mut a, mut b) = pair();
        let t = std::thread::spawn(move || {
            let req = b.recv(soon()).unwrap();
            let mut h = req.header;
            h.msg_id = h.msg_id.wrapping_add(7);
            b.reply(&h, &[], &[]).unwrap();
        });
        let e = a
            .call(
                Command::DeviceReset,
                &[],
                &[],
                Duration::from_secs(5),
                &mut |_| Err(1),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e}");
        t.join().unwrap();
    }
}
