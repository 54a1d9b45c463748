//! Binding Unix socket listeners safely and checking who connects.
//!
//! [`bind_private`] refuses a path that a live listener owns (it tries to connect) or
//! that names anything but a socket, removes only a stale socket, and creates the new
//! one with mode 0600 before it listens, so no other user can connect in between.
//! [`PeerCheck`] compares a connection's `SO_PEERCRED` uid with ours and counts the
//! refusals in [`SOCKET_REFUSALS`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::{Error, Result};

/// Counter of connections refused because of the peer's uid, by `socket` (monitor::names
/// has it too).
pub const SOCKET_REFUSALS: &str = "kvmbus_socket_refusals_total";

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Binds a listening Unix stream socket at `path`, mode 0600.
///
/// An existing socket that accepts a connection belongs to a live listener: refused
/// ([`Error::InUse`]). An existing socket nobody listens on is stale and replaced.
/// Anything else at `path` is refused ([`Error::NotASocket`]).
pub fn bind_private(path: &Path) -> Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => return Err(Error::NotASocket(path.into())),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => return Err(Error::InUse(path.into())),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::fs::remove_file(path).map_err(io_err("removing the stale socket", path))?
            }
            Err(e) => return Err(io_err("probing the existing socket", path)(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    let bytes = path.as_os_str().as_encoded_bytes();
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io_err("binding", path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path empty, too long (107 bytes at most) or containing NUL",
        )));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io_err("creating a socket for", path)(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un that outlives the call and `len` does not
    // exceed its size; the result is checked.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io_err("binding", path)(io::Error::last_os_error()));
    }
    // Nobody can connect before listen(2): set the mode first.
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(path);
        return Err(io_err("setting mode 0600 on", path)(e));
    }
    // SAFETY: plain listen(2) on our socket; the result is checked.
    if unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
        let e = io::Error::last_os_error();
        let _ = std::fs::remove_file(path);
        return Err(io_err("listening on", path)(e));
    }
    Ok(UnixListener::from(fd))
}

/// The uid of the process at the other end of `stream` (`SO_PEERCRED`).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    // SAFETY: ucred is plain data; all-zero is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the result is
    // checked.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Admits peers running as our uid (or root) and counts the others it refuses.
#[derive(Debug)]
pub struct PeerCheck {
    uid: u32,
    refusals: std::sync::atomic::AtomicU64,
    counter: metrics::Counter,
}

impl PeerCheck {
    /// A check for the socket labelled `socket`, admitting our effective uid.
    pub fn new(socket: &str) -> PeerCheck {
        // SAFETY: geteuid cannot fail.
        PeerCheck::with_uid(unsafe { libc::geteuid() }, socket)
    }

    /// A check admitting `uid` (and root).
    pub fn with_uid(uid: u32, socket: &str) -> PeerCheck {
        PeerCheck {
            uid,
            refusals: Default::default(),
            counter: metrics::counter!(SOCKET_REFUSALS, "socket" => socket.to_string()),
        }
    }

    /// True if `stream`'s peer may talk to us; a refusal is counted (and the caller
    /// closes the stream).
    pub fn allow(&self, stream: &UnixStream) -> bool {
        match peer_uid(stream) {
            Ok(u) if u == self.uid || u == 0 => true,
            _ => {
                self.refusals
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.counter.increment(1);
                false
            }
        }
    }

    /// Connections refused so far.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_new_socket_is_mode_0600() {
        let p = dir("mode").join("s");
        let _l = bind_private(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_live_listeners_path_is_refused_and_keeps_working() {
        let p = dir("live").join("s");
        let l = bind_private(&p).unwrap();
        assert!(matches!(bind_private(&p), Err(Error::InUse(_))));
        // The first listener still owns the path.
        let _c = UnixStream::connect(&p).unwrap();
        l.set_nonblocking(true).unwrap();
        let mut accepted = 0;
        while l.accept().is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, 2, "the probe and the client");
    }

    #[test]
    fn a_stale_socket_is_replaced() {
        let p = dir("stale").join("s");
        drop(bind_private(&p).unwrap());
        assert!(p.exists());
        let _l = bind_private(&p).unwrap();
        UnixStream::connect(&p).unwrap();
    }

    #[test]
    fn a_regular_file_is_neither_replaced_nor_deleted() {
        let p = dir("file").join("s");
        std::fs::write(&p, b"precious").unwrap();
        assert!(matches!(bind_private(&p), Err(Error::NotASocket(_))));
        assert_eq!(std::fs::read(&p).unwrap(), b"precious");
        let d = dir("dir2");
        assert!(matches!(bind_private(&d), Err(Error::NotASocket(_))));
    }

    #[test]
    fn an_overlong_path_is_an_error() {
        let p = std::env::temp_dir().join("x".repeat(200));
        assert!(matches!(bind_private(&p), Err(Error::Io { .. })));
    }

    #[test]
    fn peers_of_another_uid_are_refused_and_counted() {
        let p = dir("peer").join("s");
        let l = bind_private(&p).unwrap();
        let _c = UnixStream::connect(&p).unwrap();
        let (s, _) = l.accept().unwrap();
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        assert_eq!(peer_uid(&s).unwrap(), me);
        assert!(PeerCheck::new("t").allow(&s));
        let other = PeerCheck::with_uid(me.wrapping_add(1), "t");
        if me != 0 {
            assert!(!other.allow(&s));
            assert_eq!(other.refusals(), 1);
        } else {
            // Root is always admitted: connect from a child running as nobody.
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
            let dirp = p.parent().unwrap();
            std::fs::set_permissions(dirp, std::fs::Permissions::from_mode(0o755)).unwrap();
            let s2 = connect_as(&p, 65534);
            let (s2, _) = match s2 {
                Some(()) => l.accept().unwrap(),
                None => panic!("fork failed"),
            };
            assert_eq!(peer_uid(&s2).unwrap(), 65534);
            assert!(!other.allow(&s2));
            assert!(!PeerCheck::new("t").allow(&s2));
            assert_eq!(other.refusals(), 1);
        }
    }

    /// Forks a child that connects to `path` as `uid` with raw system calls only.
    fn connect_as(path: &Path, uid: u32) -> Option<()> {
        // SAFETY: sockaddr_un is plain data.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in addr
            .sun_path
            .iter_mut()
            .zip(path.as_os_str().as_encoded_bytes())
        {
            *d = *s as libc::c_char;
        }
        // SAFETY: the child only makes async-signal-safe system calls and _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return None;
        }
        if pid == 0 {
            // SAFETY: raw system calls on values prepared before the fork.
            unsafe {
                libc::setgid(uid);
                libc::setuid(uid);
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let r = libc::connect(
                    fd,
                    &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                );
                libc::sleep(1);
                libc::_exit(if r == 0 { 0 } else { 1 });
            }
        }
        Some(())
    }
}
