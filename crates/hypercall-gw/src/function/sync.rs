//! The synchronous path: a CALL_LO write performs the call on the exiting vCPU.
//!
//! The call block is read from guest memory only if all 72 bytes are inside it (and
//! it is 8-byte aligned: otherwise EINVAL). Built-ins run inline; configured services
//! run on their threads while the vCPU waits for the reply. The write to CALL_LO
//! returns only after `ret` and `status` are in the block. A block outside guest
//! memory cannot be answered: it is counted (`status="efault"`) and logged.

use std::time::{Duration, Instant};

use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

use super::GatewayFunction;
use crate::abi::{Request, Response, Status, CALL_BLOCK_SIZE, REQUEST_SIZE, RESPONSE_OFFSET};
use crate::metrics::Path;
use crate::service::ReplyTo;

impl GatewayFunction {
    pub(super) fn sync_call(&mut self, gpa: u64) {
        let start = Instant::now();
        let block = GuestAddress(gpa);
        let resp_at = block.checked_add(RESPONSE_OFFSET);
        if !self
            .mem
            .check_range(block, CALL_BLOCK_SIZE, Permissions::ReadWrite)
        {
            guard::guest_log!(
                log::Level::Warn,
                "hypercall-gw: call block {gpa:#x} outside guest memory"
            );
            if let Some(r) = resp_at.filter(|r| self.mem.check_range(*r, 16, Permissions::Write)) {
                let _ = self
                    .mem
                    .write_slice(&Response::err(Status::Efault).to_bytes(), r);
            }
            self.rec
                .record(0, false, Path::Sync, Status::Efault, 1, start.elapsed());
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
            guard::guest_log!(
                log::Level::Error,
                "hypercall-gw: cannot write call block {gpa:#x}: {e}"
            );
        }
        let known = self.registry.known(req.nr) && gpa % 8 == 0;
        self.rec
            .record(req.nr, known, path, resp.status, 1, start.elapsed());
    }

    /// Serves a call, waiting for its service if it is not a built-in.
    fn call(&self, req: Request) -> (Response, Path) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if let Some(resp) = self.registry.dispatch(req, || ReplyTo::Sync(tx)) {
            return (resp, Path::Sync);
        }
        // Services always answer (relays within the backend timeout); the bound only
        // guards against a wedged service thread. A stopping gateway waits for nobody.
        let limit = self.timeout * 2 + Duration::from_secs(1);
        crossbeam_channel::select! {
            recv(rx) -> r => match r {
                Ok((resp, Path::Relay)) => (resp, Path::Relay),
                Ok((resp, _)) => (resp, Path::Sync),
                Err(_) => (Response::err(Status::Ebusy), Path::Sync),
            },
            recv(self.stop.receiver()) -> _ => (Response::err(Status::Ebusy), Path::Sync),
            default(limit) => (Response::err(Status::Ebusy), Path::Sync),
        }
    }
}
