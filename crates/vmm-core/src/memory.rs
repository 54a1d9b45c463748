//! Guest memory: one memfd-backed region from guest-physical 0, so that it can be shared
//! with other processes (external hypercall backends) by passing the fd.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

use crate::{Error, Result};

/// Guest RAM and the memfd behind it.
pub struct GuestRam {
    /// The mapping in this process.
    pub memory: GuestMemoryMmap,
    /// The memfd (file offset 0 = guest-physical 0).
    pub memfd: Arc<OwnedFd>,
    /// Size in bytes.
    pub size: u64,
}

impl GuestRam {
    /// Creates `size` bytes of guest RAM at guest-physical 0 in a new memfd.
    pub fn new(size: u64) -> Result<GuestRam> {
        let name = c"kvmbus-guest-ram";
        // SAFETY: `name` is a valid NUL-terminated string; the returned fd is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::Memory(std::io::Error::last_os_error().to_string()));
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = File::from(
            owned
                .try_clone()
                .map_err(|e| Error::Memory(e.to_string()))?,
        );
        file.set_len(size)
            .map_err(|e| Error::Memory(format!("cannot size the memfd: {e}")))?;
        let memory = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            size as usize,
            Some(FileOffset::new(file, 0)),
        )])
        .map_err(|e| Error::Memory(e.to_string()))?;
        Ok(GuestRam {
            memory,
            memfd: Arc::new(owned),
            size,
        })
    }
}
