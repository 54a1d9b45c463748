//! Checking one descriptor chain: shape (EINVAL) and addresses (EFAULT).

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

use crate::abi::{Request, Status, REQUEST_SIZE, RESPONSE_SIZE};

/// What a chain holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A well-formed call; the response goes to `resp_addr`.
    Call {
        /// The request read from the readable buffer.
        req: Request,
        /// Guest address of the writable buffer.
        resp_addr: u64,
    },
    /// A bad chain: answer `status` at `resp_addr` if there is a usable writable buffer.
    Bad {
        /// EINVAL or EFAULT.
        status: Status,
        /// Where the status can be written, if anywhere.
        resp_addr: Option<u64>,
    },
}

fn in_memory<M: GuestMemory>(mem: &M, addr: GuestAddress, len: usize, p: Permissions) -> bool {
    mem.check_range(addr, len, p)
}

/// Reads and checks one chain. Never touches memory outside the guest.
pub(crate) fn parse_chain<M, T>(chain: DescriptorChain<T>, mem: &M) -> Parsed
where
    M: GuestMemory,
    T: Deref<Target = M>,
{
    // At most three descriptors are looked at: enough to tell "two" from "more".
    let descs: Vec<_> = chain.take(3).collect();
    let writable = descs
        .iter()
        .rev()
        .find(|d| d.is_write_only() && d.len() as usize >= RESPONSE_SIZE);
    let resp_ok = |d: &virtio_queue::desc::split::Descriptor| {
        in_memory(mem, d.addr(), RESPONSE_SIZE, Permissions::Write).then_some(d.addr().0)
    };
    let (rd, wr) = match descs.as_slice() {
        [rd, wr]
            if !rd.is_write_only()
                && rd.len() as usize >= REQUEST_SIZE
                && wr.is_write_only()
                && wr.len() as usize >= RESPONSE_SIZE =>
        {
            (*rd, *wr)
        }
        _ => {
            return Parsed::Bad {
                status: Status::Einval,
                resp_addr: writable.and_then(resp_ok),
            }
        }
    };
    let Some(resp_addr) = resp_ok(&wr) else {
        return Parsed::Bad {
            status: Status::Efault,
            resp_addr: None,
        };
    };
    let mut buf = [0u8; REQUEST_SIZE];
    if !in_memory(mem, rd.addr(), REQUEST_SIZE, Permissions::Read)
        || mem.read_slice(&mut buf, rd.addr()).is_err()
    {
        return Parsed::Bad {
            status: Status::Efault,
            resp_addr: Some(resp_addr),
        };
    }
    Parsed::Call {
        req: Request::from_bytes(&buf),
        resp_addr,
    }
}
