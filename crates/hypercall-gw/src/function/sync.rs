//! The synchronous path: a CALL_LO write performs the call on the exiting vCPU.
//!
//! The call block is read from guest memory only if all 72 bytes are inside it (and
//! it is 8-byte aligned: otherwise EINVAL). Built-ins run inline; configured services
//! run on their threads while the vCPU waits for the reply. The write to CALL_LO
//! returns only after `ret` and `status` are in the block. A block outside guest
//! memory cannot be answered: it is counted (`status="efault"`) and logged.
//!
//! CALL_LO and CALL_HI are served without the function's lock ([`UnlockedBar`]): a
//! vCPU waiting for a slow service holds up neither other vCPUs' calls nor the
//! function's other registers and config space.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pci_emu::UnlockedBar;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use crate::abi::{reg, Request, Response, Status, CALL_BLOCK_SIZE, REQUEST_SIZE, RESPONSE_OFFSET};
use crate::metrics::{Path, Recorder};
use crate::service::{Registry, ReplyTo};

/// The synchronous call path of one gateway function (BAR0's CALL_LO and CALL_HI).
pub(crate) struct SyncPath {
    mem: GuestMemoryMmap,
    registry: Registry,
    timeout: Duration,
    /// CALL_HI: one register per function, so SMP guests serialise calls with high
    /// addresses (docs/hypercall-abi.md).
    call_hi: AtomicU32,
    /// Held only to record a finished call, never across one.
    rec: Mutex<Recorder>,
}

impl UnlockedBar for SyncPath {
    fn read(&self, offset: u64, data: &mut [u8]) -> bool {
        match (offset, data.len()) {
            (reg::CALL_HI, 4) => {
                data.copy_from_slice(&self.call_hi.load(Ordering::SeqCst).to_le_bytes());
                true
            }
            _ => false,
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> bool {
        let Ok(v) = <[u8; 4]>::try_from(data).map(u32::from_le_bytes) else {
            return false;
        };
        match offset {
            reg::CALL_LO => {
                let hi = self.call_hi.load(Ordering::SeqCst);
                self.sync_call(u64::from(hi) << 32 | u64::from(v));
                true
            }
            reg::CALL_HI => {
                self.call_hi.store(v, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }
}

impl SyncPath {
    pub(crate) fn new(
        mem: GuestMemoryMmap,
        registry: Registry,
        timeout: Duration,
        rec: Recorder,
    ) -> SyncPath {
        SyncPath {
            mem,
            registry,
            timeout,
            call_hi: AtomicU32::new(0),
            rec: Mutex::new(rec),
        }
    }

    fn record(&self, nr: u32, known: bool, path: Path, status: Status, took: Duration) {
        self.rec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(nr, known, path, status, 1, took);
    }

    pub(crate) fn sync_call(&self, gpa: u64) {
        let start = Instant::now();
        let block = GuestAddress(gpa);
        let resp_at = block.checked_add(RESPONSE_OFFSET);
        if !self
            .mem
            .check_range(block, CALL_BLOCK_SIZE, Permissions::ReadWrite)
        {
            log::warn!("hypercall-gw: call block {gpa:#x} outside guest memory");
            if let Some(r) = resp_at.filter(|r| self.mem.check_range(*r, 16, Permissions::Write)) {
                let _ = self
                    .mem
                    .write_slice(&Response::err(Status::Efault).to_bytes(), r);
            }
            self.record(0, false, Path::Sync, Status::Efault, start.elapsed());
            return;
        }
        let resp_at = block.unchecked_add(RESPONSE_OFFSET);
        let mut buf = [0u8; REQUEST_SIZE];
        let (req, resp, path) = if gpa % 8 != 0 || self.mem.read_slice(&mut buf, block).is_err() {
            (
                Request::default(),
                Response::err(Status::Einval),
                Path::Sync,
            )
        } else {
            let req = Request::from_bytes(&buf);
            let (resp, path) = self.call(req);
            (req, resp, path)
        };
        if let Err(e) = self.mem.write_slice(&resp.to_bytes(), resp_at) {
            log::error!("hypercall-gw: cannot write call block {gpa:#x}: {e}");
        }
        let known = self.registry.known(req.nr) && gpa % 8 == 0;
        self.record(req.nr, known, path, resp.status, start.elapsed());
    }

    /// Serves a call, waiting for its service if it is not a built-in.
    fn call(&self, req: Request) -> (Response, Path) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if let Some(resp) = self.registry.dispatch(req, || ReplyTo::Sync(tx)) {
            return (resp, Path::Sync);
        }
        // Services always answer (relays within the backend timeout); the bound only
        // guards against a wedged service thread.
        match rx.recv_timeout(self.timeout * 2 + Duration::from_secs(1)) {
            Ok((resp, Path::Relay)) => (resp, Path::Relay),
            Ok((resp, _)) => (resp, Path::Sync),
            Err(_) => (Response::err(Status::Ebusy), Path::Sync),
        }
    }
}
