//! Interrupts as file descriptors for other processes: a Unix socket on which a process
//! asks for a vector of a device and receives that vector's eventfd (SCM_RIGHTS). From
//! then on it raises the guest interrupt by writing the fd, with no VMM involvement.
//!
//! Protocol (version 1): the client sends a little-endian `u32` vector number; the
//! server answers 2 bytes: `ok` with the eventfd attached, or `no` (no such vector).
//!
//! The socket is created mode 0600 by [`guard::bind_private`] (which refuses a path a
//! live listener owns or that is not a socket). Peers of another uid are refused and
//! counted (`kvmbus_socket_refusals_total`). Each client is served on its own thread
//! with a [`CLIENT_DEADLINE`] for its request, so an idle client delays nobody; at most
//! [`MAX_CLIENTS`] are served at once, and further connections are closed at once.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use irq_router::IrqHandle;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::error::io_err;
use crate::{Error, Result};

/// How long a client may take to send its request (and to take the answer).
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(1);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 32;

/// A running fd server; [`SocketServer::stop`] ends its accepting thread and removes
/// the socket (client threads end within their deadline).
#[derive(Debug)]
pub struct SocketServer {
    listener: UnixListener,
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SocketServer {
    /// Wakes the accepting thread (shutdown(2) on the listening socket makes a blocked
    /// accept return), joins it and removes the socket file.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // SAFETY: the listener's fd is open (we own the listener); shutdown only changes
        // the socket's state.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        let _ = self.thread.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `handles` on a new socket at `path`.
pub fn serve(path: &Path, device: &str, handles: Vec<IrqHandle>) -> Result<SocketServer> {
    let listener = guard::bind_private(path).map_err(|e| Error::Device {
        device: format!("{device} socket"),
        detail: e.to_string(),
    })?;
    let accepting = listener
        .try_clone()
        .map_err(io_err(format!("cloning {}", path.display())))?;
    let device = device.to_string();
    let check = guard::PeerCheck::new(&path.display().to_string());
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = stopping.clone();
    let thread = std::thread::Builder::new()
        .name(format!("{device}-irqfds"))
        .spawn(move || accept_loop(accepting, device, Arc::new(handles), check, stop))
        .map_err(io_err("spawning the irq fd server"))?;
    Ok(SocketServer {
        listener,
        path: path.to_path_buf(),
        stopping,
        thread,
    })
}

/// Decrements the count of clients being served when a client thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(
    listener: UnixListener,
    device: String,
    handles: Arc<Vec<IrqHandle>>,
    check: guard::PeerCheck,
    stop: Arc<AtomicBool>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if !check.allow(&conn) {
            guard::guest_log!(log::Level::Warn, "{device}: refused a peer of another uid");
            continue;
        }
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            active.fetch_sub(1, Ordering::AcqRel);
            guard::guest_log!(log::Level::Warn, "{device}: too many clients; one refused");
            continue;
        }
        let (slot, handles, name) = (Slot(active.clone()), handles.clone(), device.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("{device}-irqfd"))
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = answer(conn, &handles) {
                    guard::guest_log!(log::Level::Warn, "{name}: irq fd request: {e}");
                }
            });
        if let Err(e) = spawned {
            guard::guest_log!(log::Level::Warn, "{device}: cannot serve a client: {e}");
        }
    }
}

fn answer(mut conn: UnixStream, handles: &[IrqHandle]) -> std::io::Result<()> {
    conn.set_read_timeout(Some(CLIENT_DEADLINE))?;
    conn.set_write_timeout(Some(CLIENT_DEADLINE))?;
    let mut req = [0u8; 4];
    conn.read_exact(&mut req)?;
    match handles.get(u32::from_le_bytes(req) as usize) {
        Some(h) => conn
            .send_with_fd(&b"ok"[..], h.as_raw_fd())
            .map(|_| ())
            .map_err(std::io::Error::from),
        None => conn.write_all(b"no"),
    }
}

/// Asks the server at `path` for `vector`'s eventfd.
pub fn request(path: &Path, vector: u32) -> Result<File> {
    let mut conn =
        UnixStream::connect(path).map_err(io_err(format!("connecting to {}", path.display())))?;
    conn.set_read_timeout(Some(CLIENT_DEADLINE * 5))
        .map_err(io_err("setting a deadline"))?;
    conn.write_all(&vector.to_le_bytes())
        .map_err(io_err("sending the request"))?;
    let mut reply = [0u8; 2];
    let (n, fd) = conn.recv_with_fd(&mut reply).map_err(|e| Error::Io {
        what: "receiving the eventfd".into(),
        source: e.into(),
    })?;
    match (n, &reply, fd) {
        (2, b"ok", Some(f)) => Ok(f),
        _ => Err(Error::Device {
            device: path.display().to_string(),
            detail: format!("no vector {vector} there"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irq_router::{DeliveryMode, IrqRouter, RecordingIrqChip, RouterConfig};
    use pci_emu::Bdf;
    use std::time::Instant;

    fn handles(n: u16) -> Vec<IrqHandle> {
        let mut r = IrqRouter::new(
            Arc::new(RecordingIrqChip::new()),
            RouterConfig {
                vm: "t".into(),
                max_routes: 4096,
                mode: DeliveryMode::Irqfd,
            },
        )
        .unwrap();
        r.add_device(Bdf::new(0, 3, 0).unwrap(), "irq-test", n)
            .unwrap()
    }

    fn path(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("irqsock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("s")
    }

    #[test]
    fn an_idle_client_does_not_block_others() {
        let p = path("idle");
        serve(&p, "irq-test", handles(2)).unwrap();
        let idle: Vec<_> = (0..4).map(|_| UnixStream::connect(&p).unwrap()).collect();
        let t = Instant::now();
        request(&p, 1).unwrap();
        assert!(request(&p, 7).is_err(), "no vector 7");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        drop(idle);
    }

    #[test]
    fn an_idle_client_is_dropped_after_the_deadline() {
        let p = path("deadline");
        serve(&p, "irq-test", handles(1)).unwrap();
        let mut idle = UnixStream::connect(&p).unwrap();
        idle.set_read_timeout(Some(CLIENT_DEADLINE * 3)).unwrap();
        let t = Instant::now();
        let mut b = [0u8; 1];
        assert_eq!(idle.read(&mut b).unwrap_or(0), 0, "closed by the server");
        assert!(t.elapsed() < CLIENT_DEADLINE * 2, "{:?}", t.elapsed());
    }

    #[test]
    fn a_second_server_on_a_live_path_is_refused() {
        let p = path("dup");
        serve(&p, "irq-test", handles(1)).unwrap();
        let e = serve(&p, "irq-test", handles(1)).unwrap_err().to_string();
        assert!(e.contains("in use"), "{e}");
        request(&p, 0).unwrap();
        let f = path("file");
        std::fs::write(&f, b"keep").unwrap();
        assert!(serve(&f, "irq-test", handles(1)).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"keep");
    }
}
