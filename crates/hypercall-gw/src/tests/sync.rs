use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::abi::{Request, Response, Status, RESPONSE_OFFSET};
use crate::{Gateway, ServiceConfig};

pub(crate) fn sync_call(
    f: &Arc<Mutex<dyn PciFunction>>,
    mem: &GuestMemoryMmap,
    gpa: u64,
    req: &Request,
) -> Response {
    mem.write_slice(&req.to_bytes(), GuestAddress(gpa)).unwrap();
    mem.write_slice(&[0xEE; 16], GuestAddress(gpa + RESPONSE_OFFSET))
        .unwrap();
    w32(f, reg::CALL_HI, (gpa >> 32) as u32);
    w32(f, reg::CALL_LO, gpa as u32);
    let mut b = [0u8; 16];
    mem.read_slice(&mut b, GuestAddress(gpa + RESPONSE_OFFSET))
        .unwrap();
    Response::from_bytes(&b)
}

pub(crate) fn req(nr: u32, args: [u64; 6]) -> Request {
    Request { nr, flags: 0, args }
}

#[test]
fn sync_builtins_and_errors() {
    let mem = anon_mem();
    let mut cfg = config();
    cfg.services = vec![
        ServiceConfig::Kv { nr: 0x100 },
        ServiceConfig::Echo { nr: 0x200 },
    ];
    let gw = Gateway::new(cfg, mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let at = 0x8000;
    assert_eq!(sync_call(&f, &mem, at, &req(0, [1; 6])), Response::ok(0));
    assert_eq!(
        sync_call(&f, &mem, at, &req(1, [77, 0, 0, 0, 0, 0])),
        Response::ok(77)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(2, [1, 2, 3, 4, 5, 6])),
        Response::ok(21)
    );
    let t = sync_call(&f, &mem, at, &req(3, [0; 6]));
    assert!(t.status == Status::Ok && t.ret > 0);
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x99, [0; 6])),
        Response::err(Status::Enosys)
    );
    // In-process services on their threads.
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x100, [5, 50, 0, 0, 0, 0])),
        Response::ok(0)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x101, [5, 0, 0, 0, 0, 0])),
        Response::ok(50)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x101, [6, 0, 0, 0, 0, 0])),
        Response::err(Status::Einval)
    );
    assert_eq!(
        sync_call(&f, &mem, at, &req(0x200, [9, 0, 0, 0, 0, 0])),
        Response::ok(9)
    );
    // Misaligned block: EINVAL written.
    assert_eq!(
        sync_call(&f, &mem, at + 4, &req(1, [1; 6])),
        Response::err(Status::Einval)
    );
    // Blocks outside guest memory: nothing can be written, the VMM stays up.
    w32(&f, reg::CALL_HI, 0);
    w32(&f, reg::CALL_LO, (MEM - 8) as u32); // entirely unanswerable: nothing written
    w32(&f, reg::CALL_HI, 1);
    w32(&f, reg::CALL_LO, 0); // 4 GiB: outside, nothing to write, VMM stays up
    assert_eq!(
        sync_call(&f, &mem, at, &req(1, [3, 0, 0, 0, 0, 0])),
        Response::ok(3)
    );
    gw.shutdown();
}
