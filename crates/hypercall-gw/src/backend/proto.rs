//! The external-backend wire protocol, version 1.
//!
//! Every message is an 8-byte header (`u32 body_len; u16 type; u16 zero`) followed by a
//! fixed-size little-endian body; a body length that does not match the type's size is
//! a protocol error and closes the connection. File descriptors travel as SCM_RIGHTS
//! ancillary data on the message that needs them (only QUEUE). See
//! docs/hypercall-abi.md for the table of messages.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::abi::{Request, Response, Status};

/// Protocol magic in HELLO: "KVMB".
pub const MAGIC: u32 = 0x4B56_4D42;
/// Protocol version.
pub const PROTOCOL_VERSION: u32 = 1;
/// Most guest-memory regions a QUEUE message describes.
pub const MAX_REGIONS: usize = 8;
/// REJECT reason: unsupported version or bad magic.
pub const REJECT_VERSION: u32 = 1;
/// REJECT reason: the backend asked for a mode the service is not configured for.
pub const REJECT_MODE: u32 = 2;
/// REJECT reason: another backend is connected.
pub const REJECT_BUSY: u32 = 3;
const HEADER: usize = 8;

/// Mode on the wire: relay.
pub const MODE_RELAY: u32 = 0;
/// Mode on the wire: direct.
pub const MODE_DIRECT: u32 = 1;

/// The queue a direct backend is handed (with memfd, doorbell and optional irqfd).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueMsg {
    /// Queue index.
    pub queue: u16,
    /// Queue size.
    pub size: u16,
    /// Completion vector (0xFFFF none).
    pub vector: u16,
    /// Bit 0: an irqfd is attached.
    pub flags: u16,
    /// Descriptor table address.
    pub desc: u64,
    /// Available ring address.
    pub avail: u64,
    /// Used ring address.
    pub used: u64,
    /// Next available index to pop.
    pub next_avail: u16,
    /// Next used index to write.
    pub next_used: u16,
    /// `(gpa, size, memfd offset)` of each guest memory region.
    pub regions: Vec<(u64, u64, u64)>,
}

/// QueueMsg flag: an irqfd follows the doorbell.
pub const QUEUE_HAS_IRQFD: u16 = 1;

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// backend → VMM, first message.
    Hello {
        /// Must be [`MAGIC`].
        magic: u32,
        /// Protocol version the backend speaks.
        version: u32,
        /// [`MODE_RELAY`] or [`MODE_DIRECT`].
        mode: u32,
    },
    /// VMM → backend: accepted.
    Welcome {
        /// Protocol version in use.
        version: u32,
        /// Mode granted.
        mode: u32,
        /// First number routed to the backend.
        first_nr: u32,
        /// How many numbers.
        count: u32,
        /// The VMM's backend timeout in milliseconds.
        timeout_ms: u32,
    },
    /// VMM → backend: refused; the VMM closes the connection.
    Reject {
        /// REJECT_* reason.
        reason: u32,
    },
    /// VMM → backend: serve this call.
    Request {
        /// Request id, echoed in the response.
        id: u64,
        /// The call.
        req: Request,
    },
    /// backend → VMM: a call's result.
    Response {
        /// The request's id.
        id: u64,
        /// The result.
        resp: Response,
    },
    /// VMM → backend (direct): serve this queue; fds: memfd, doorbell, \[irqfd\].
    Queue(QueueMsg),
    /// backend → VMM (direct): `count` calls of `nr` ended with `status`, taking
    /// `total_ns` in all, since the last STATS.
    Stats {
        /// Number.
        nr: u32,
        /// Status.
        status: Status,
        /// Calls.
        count: u64,
        /// Total service time in ns.
        total_ns: u64,
    },
}

const T_HELLO: u16 = 1;
const T_WELCOME: u16 = 2;
const T_REJECT: u16 = 3;
const T_REQUEST: u16 = 4;
const T_RESPONSE: u16 = 5;
const T_QUEUE: u16 = 6;
const T_STATS: u16 = 7;

fn body_len(t: u16) -> Option<usize> {
    Some(match t {
        T_HELLO => 16,
        T_WELCOME => 24,
        T_REJECT => 8,
        T_REQUEST => 64,
        T_RESPONSE => 24,
        T_QUEUE => 40 + 24 * MAX_REGIONS,
        T_STATS => 24,
        _ => return None,
    })
}

struct W(Vec<u8>);
impl W {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

struct R<'a>(&'a [u8]);
impl R<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.0[..N]);
        self.0 = &self.0[N..];
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

impl Msg {
    /// Encodes header and body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(HEADER + 64));
        let t = match self {
            Msg::Hello { .. } => T_HELLO,
            Msg::Welcome { .. } => T_WELCOME,
            Msg::Reject { .. } => T_REJECT,
            Msg::Request { .. } => T_REQUEST,
            Msg::Response { .. } => T_RESPONSE,
            Msg::Queue(_) => T_QUEUE,
            Msg::Stats { .. } => T_STATS,
        };
        w.u32(body_len(t).unwrap_or(0) as u32).u16(t).u16(0);
        match self {
            Msg::Hello {
                magic,
                version,
                mode,
            } => {
                w.u32(*magic).u32(*version).u32(*mode).u32(0);
            }
            Msg::Welcome {
                version,
                mode,
                first_nr,
                count,
                timeout_ms,
            } => {
                w.u32(*version).u32(*mode).u32(*first_nr).u32(*count);
                w.u32(*timeout_ms).u32(0);
            }
            Msg::Reject { reason } => {
                w.u32(*reason).u32(0);
            }
            Msg::Request { id, req } => {
                w.u64(*id);
                w.0.extend_from_slice(&req.to_bytes());
            }
            Msg::Response { id, resp } => {
                w.u64(*id);
                w.0.extend_from_slice(&resp.to_bytes());
            }
            Msg::Queue(q) => {
                w.u16(q.queue).u16(q.size).u16(q.vector).u16(q.flags);
                w.u64(q.desc).u64(q.avail).u64(q.used);
                w.u16(q.next_avail).u16(q.next_used);
                w.u32(q.regions.len().min(MAX_REGIONS) as u32);
                for i in 0..MAX_REGIONS {
                    let (g, s, o) = q.regions.get(i).copied().unwrap_or_default();
                    w.u64(g).u64(s).u64(o);
                }
            }
            Msg::Stats {
                nr,
                status,
                count,
                total_ns,
            } => {
                w.u32(*nr).u32(*status as u32).u64(*count).u64(*total_ns);
            }
        }
        w.0
    }

    /// Decodes a body of type `t`.
    fn decode(t: u16, body: &[u8]) -> Msg {
        let mut r = R(body);
        match t {
            T_HELLO => Msg::Hello {
                magic: r.u32(),
                version: r.u32(),
                mode: r.u32(),
            },
            T_WELCOME => Msg::Welcome {
                version: r.u32(),
                mode: r.u32(),
                first_nr: r.u32(),
                count: r.u32(),
                timeout_ms: r.u32(),
            },
            T_REJECT => Msg::Reject { reason: r.u32() },
            T_REQUEST => {
                let id = r.u64();
                Msg::Request {
                    id,
                    req: Request::from_bytes(&r.take()),
                }
            }
            T_RESPONSE => {
                let id = r.u64();
                Msg::Response {
                    id,
                    resp: Response::from_bytes(&r.take()),
                }
            }
            T_QUEUE => {
                let mut q = QueueMsg {
                    queue: r.u16(),
                    size: r.u16(),
                    vector: r.u16(),
                    flags: r.u16(),
                    desc: r.u64(),
                    avail: r.u64(),
                    used: r.u64(),
                    next_avail: r.u16(),
                    next_used: r.u16(),
                    regions: Vec::new(),
                };
                let n = (r.u32() as usize).min(MAX_REGIONS);
                for _ in 0..n {
                    q.regions.push((r.u64(), r.u64(), r.u64()));
                }
                Msg::Queue(q)
            }
            _ => Msg::Stats {
                nr: r.u32(),
                status: Status::from_u32(r.u32()),
                count: r.u64(),
                total_ns: r.u64(),
            },
        }
    }
}

/// Sends `msg` with `fds` attached (SCM_RIGHTS) if any.
pub fn send(sock: &UnixStream, msg: &Msg, fds: &[RawFd]) -> io::Result<()> {
    let bytes = msg.encode();
    if fds.is_empty() {
        return (&*sock).write_all(&bytes);
    }
    let n = sock
        .send_with_fds(&[&bytes[..]], fds)
        .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
    (&*sock).write_all(&bytes[n..])
}

/// Reads exactly `buf.len()` bytes with recvmsg, collecting any file descriptors.
fn recv_exact(sock: &UnixStream, mut buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    while !buf.is_empty() {
        let mut raw: [RawFd; 4] = [-1; 4];
        let mut iov = [libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        }];
        // SAFETY: the iovec points into `buf`, which is exclusively borrowed and valid
        // for writes of its length for the duration of the call.
        let (n, nfds) = unsafe { sock.recv_with_fds(&mut iov, &mut raw) }
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        for fd in raw.iter().take(nfds) {
            // SAFETY: recvmsg installed these descriptors in our table; nobody else
            // owns them.
            fds.push(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
    }
    Ok(())
}

/// Receives one message and the descriptors that came with it.
pub fn recv(sock: &UnixStream) -> io::Result<(Msg, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut h = [0u8; HEADER];
    recv_exact(sock, &mut h, &mut fds)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let t = u16::from_le_bytes([h[4], h[5]]);
    match body_len(t) {
        Some(l) if l == len => {}
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad message type {t} or length {len}"),
            ))
        }
    }
    let mut body = vec![0u8; len];
    recv_exact(sock, &mut body, &mut fds)?;
    Ok((Msg::decode(t, &body), fds))
}

/// Shuts a connection down in both directions (wakes its reader with EOF).
pub fn shutdown(sock: &UnixStream) {
    let _ = sock.shutdown(std::net::Shutdown::Both);
}

/// The raw fd (for poll).
pub fn raw(sock: &UnixStream) -> RawFd {
    sock.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_fds() {
        let (a, b) = UnixStream::pair().unwrap();
        let msgs = [
            Msg::Hello {
                magic: MAGIC,
                version: 1,
                mode: MODE_DIRECT,
            },
            Msg::Request {
                id: 9,
                req: Request {
                    nr: 0x100,
                    flags: 0,
                    args: [1, 2, 3, 4, 5, 6],
                },
            },
            Msg::Stats {
                nr: 5,
                status: Status::Ebusy,
                count: 3,
                total_ns: 7,
            },
        ];
        for m in &msgs {
            send(&a, m, &[]).unwrap();
            assert_eq!(&recv(&b).unwrap().0, m);
        }
        let q = Msg::Queue(QueueMsg {
            queue: 1,
            size: 256,
            regions: vec![(0, 0x10000, 0)],
            ..Default::default()
        });
        let e = vmm_sys_util::eventfd::EventFd::new(0).unwrap();
        send(&a, &q, &[e.as_raw_fd(), e.as_raw_fd()]).unwrap();
        let (m, fds) = recv(&b).unwrap();
        assert_eq!(m, q);
        assert_eq!(fds.len(), 2);
    }

    #[test]
    fn bad_length_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(&[3, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3]).unwrap();
        assert!(recv(&b).is_err());
    }
}
