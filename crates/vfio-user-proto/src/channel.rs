//! A vfio-user connection: messages with file descriptors (SCM_RIGHTS) over a Unix
//! stream socket, received within bounds.
//!
//! Every limit is checked before memory is committed: the announced message size, the
//! number of fds (extra fds are closed). A reply that does not arrive in time is a
//! [`Error::Timeout`]; after a timeout or a size error the stream position is unknown
//! and the connection must be dropped.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::header::{Command, Header, FLAG_ERROR, HEADER_SIZE, TYPE_COMMAND, TYPE_REPLY};
use crate::rx::{Cancel, Rx, CBUF_WORDS, FD_SLOTS};
pub use crate::rx::{Limits, Message};

/// Messages up to this size without fds are sent from one stack buffer by a plain `send`
/// (region accesses and their replies: the hot path).
const SMALL: usize = 512;

/// One end of a vfio-user connection.
pub struct Channel {
    stream: UnixStream,
    next_id: u16,
    limits: Limits,
    rx: Rx,
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
            rx: Rx::new(),
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

    /// Lets the first read of every message poll for up to `budget` before it sleeps
    /// (zero, the default: never). A peer answering within the budget then costs no
    /// sleep and wake-up, at the price of up to `budget` of CPU time per message.
    pub fn set_poll(&mut self, budget: Duration) {
        self.rx.poll = budget;
    }

    /// Ends waits early once `fd` is readable (an eventfd written at a stop, say: it
    /// must stay readable): from then on every wait for a message ends within `grace`,
    /// a message that comes in it still taken, else [`Error::Stopped`]. Replaces any
    /// earlier cancel (a connection kept for another user).
    pub fn set_cancel(&mut self, fd: OwnedFd, grace: Duration) {
        self.rx.cancel = Some(Cancel {
            fd,
            grace,
            since: None,
        });
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
        if fds.is_empty() && total <= SMALL {
            return self.send_small(&hdr, payload);
        }
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
        if fds.len() > FD_SLOTS {
            return Err(Error::TooManyFds {
                got: fds.len(),
                max: FD_SLOTS,
            });
        }
        let fd_bytes = std::mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        // On the stack (every message's path); 8-byte aligned as cmsghdr needs.
        let mut cbuf = [0u64; CBUF_WORDS];
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
            self.send_all(&all[n..])?;
        }
        Ok(())
    }

    /// Sends a message of at most [`SMALL`] bytes without fds: copied into one buffer
    /// and sent with a plain `send` (no `msghdr` for the kernel to copy in and walk).
    fn send_small(&mut self, hdr: &[u8], payload: &[u8]) -> Result<()> {
        let mut all = [0u8; SMALL];
        let total = hdr.len() + payload.len();
        all[..hdr.len()].copy_from_slice(hdr);
        all[hdr.len()..total].copy_from_slice(payload);
        self.send_all(&all[..total])
    }

    /// Sends all of `bytes` (data only) with `send(MSG_NOSIGNAL)`, again after an
    /// interruption or a short send.
    fn send_all(&self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            // SAFETY: `bytes` is live for the call; the result is checked.
            let n = unsafe {
                libc::send(
                    self.stream.as_raw_fd(),
                    bytes.as_ptr() as *const libc::c_void,
                    bytes.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(io("send")(e));
            }
            bytes = &bytes[n as usize..];
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
        self.rx.recv(&self.stream, self.limits, deadline, true)
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
        // The replies the spec gives no fds are read without a control buffer.
        let with_fds = !cmd.reply_has_no_fds();
        loop {
            let m = match self
                .rx
                .recv(&self.stream, self.limits, Some(deadline), with_fds)
            {
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
pub(crate) mod tests {
    use super::*;
    use crate::msg::RegionAccess;
    use std::os::fd::AsFd;

    /// Two channels over a socket pair (also used by `rx`'s tests).
    pub(crate) fn pair() -> (Channel, Channel) {
        let (a, b) = UnixStream::pair().unwrap();
        (
            Channel::new(a, Limits::default()),
            Channel::new(b, Limits::default()),
        )
    }

    /// A call that refuses commands from the peer, waiting up to `timeout` for the reply.
    pub(crate) fn refusing_call_within(
        c: &mut Channel,
        cmd: Command,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message> {
        c.call(cmd, payload, &[], timeout, &mut |_| Err(1))
    }

    /// The same, waiting up to 5 s.
    pub(crate) fn refusing_call(c: &mut Channel, cmd: Command, payload: &[u8]) -> Result<Message> {
        refusing_call_within(c, cmd, payload, Duration::from_secs(5))
    }

    /// A deadline 5 s away.
    pub(crate) fn soon() -> Option<Instant> {
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
        let e = refusing_call(&mut a, Command::DeviceReset, &[]).unwrap_err();
        assert!(matches!(e, Error::Peer { errno: 22, .. }), "{e}");
        t.join().unwrap();
    }

    #[test]
    fn access_replies_are_read_without_fds_and_the_others_keep_theirs() {
        let (mut a, mut b) = pair();
        let (x, mut y) = UnixStream::pair().unwrap();
        let (z, _z) = UnixStream::pair().unwrap();
        let zfd = z.as_raw_fd();
        let t = std::thread::spawn(move || {
            // A REGION_READ reply with an fd the spec does not allow.
            let req = b.recv(soon()).unwrap();
            b.reply(&req.header, b"data", &[x.as_raw_fd()]).unwrap();
            drop(x);
            let req = b.recv(soon()).unwrap();
            b.reply(&req.header, b"info", &[zfd]).unwrap();
            b.send_command(Command::DmaMap, &[], &[zfd]).unwrap();
            b
        });
        let m = refusing_call(&mut a, Command::RegionRead, &[0u8; 16]).unwrap();
        assert_eq!(m.payload, b"data");
        assert!(m.fds.is_empty());
        // The kernel closed the fd in flight: its peer sees the end.
        y.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(std::io::Read::read(&mut y, &mut [0u8; 1]).unwrap(), 0);
        let m = refusing_call(&mut a, Command::DeviceGetRegionInfo, &[]).unwrap();
        assert_eq!((m.payload.as_slice(), m.fds.len()), (&b"info"[..], 1));
        // After a call, a plain receive collects fds again.
        assert_eq!(a.recv(soon()).unwrap().fds.len(), 1);
        drop(t.join().unwrap());
    }

    #[test]
    fn a_cancel_ends_a_wait_within_its_grace_and_a_reply_in_it_is_taken() {
        // The cancel fd: one end of a socket pair, readable once the other end writes.
        let (fire, cancel) = UnixStream::pair().unwrap();
        let (mut a, _silent) = pair();
        a.set_cancel(cancel.into(), Duration::from_millis(100));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            (&fire).write_all(b"x").unwrap();
            fire
        });
        let t0 = Instant::now();
        let e = refusing_call_within(&mut a, Command::DeviceReset, &[], Duration::from_secs(30))
            .unwrap_err();
        let took = t0.elapsed();
        assert!(matches!(e, Error::Stopped), "{e}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        let _fire = t.join().unwrap();

        // Already fired: a peer answering within the grace is still heard.
        let (mut a, mut b) = pair();
        let (fire, cancel) = UnixStream::pair().unwrap();
        (&fire).write_all(b"x").unwrap();
        a.set_cancel(cancel.into(), Duration::from_secs(5));
        let t = std::thread::spawn(move || {
            let req = b.recv(soon()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            b.reply(&req.header, b"late", &[]).unwrap();
            b
        });
        let m = refusing_call(&mut a, Command::DeviceReset, &[]).unwrap();
        assert_eq!(m.payload, b"late");
        drop(t.join().unwrap());
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (mut a, _b) = pair();
        let t0 = Instant::now();
        let e = refusing_call_within(
            &mut a,
            Command::DeviceReset,
            &[],
            Duration::from_millis(100),
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
        let e = refusing_call(&mut a, Command::DeviceReset, &[]).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e}");
        t.join().unwrap();
    }
}
