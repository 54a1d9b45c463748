//! Interrupts as file descriptors for other processes: a Unix socket on which a process
//! asks for a vector of a device and receives that vector's eventfd (SCM_RIGHTS). From
//! then on it raises the guest interrupt by writing the fd, with no VMM involvement.
//!
//! Protocol (version 1): the client sends a little-endian `u32` vector number; the
//! server answers 2 bytes: `ok` with the eventfd attached, or `no` (no such vector).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use irq_router::IrqHandle;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::{Error, Result};

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// A running fd server; [`SocketServer::stop`] ends its thread and removes the socket.
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

/// Serves `handles` on a socket at `path` (replacing a stale socket file).
pub fn serve(path: &Path, device: &str, handles: Vec<IrqHandle>) -> Result<SocketServer> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io(format!("removing {}", path.display())))?;
    }
    let listener = UnixListener::bind(path).map_err(io(format!("binding {}", path.display())))?;
    let accepting = listener
        .try_clone()
        .map_err(io(format!("cloning {}", path.display())))?;
    let device = device.to_string();
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = stopping.clone();
    let thread = std::thread::Builder::new()
        .name(format!("{device}-irqfds"))
        .spawn(move || {
            for conn in accepting.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if let Err(e) = answer(conn, &handles) {
                    log::warn!("{device}: irq fd request: {e}");
                }
            }
        })
        .map_err(io("spawning the irq fd server".into()))?;
    Ok(SocketServer {
        listener,
        path: path.to_path_buf(),
        stopping,
        thread,
    })
}

fn answer(mut conn: UnixStream, handles: &[IrqHandle]) -> std::io::Result<()> {
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
        UnixStream::connect(path).map_err(io(format!("connecting to {}", path.display())))?;
    conn.write_all(&vector.to_le_bytes())
        .map_err(io("sending the request".into()))?;
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
