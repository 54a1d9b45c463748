use std::time::{Duration, Instant};

use vm_memory::GuestMemoryMmap;

use super::sync::{req, sync_call};
use super::*;
use crate::abi::{Request, Response, Status};
use crate::ring::test_driver::{F_NEXT, F_WRITE};
use crate::{Gateway, ServiceConfig};

/// Waits until `n` used entries arrived.
pub(crate) fn wait_used(d: &mut RingDriver, mem: &GuestMemoryMmap, n: usize) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < n {
        got.extend(d.take_used(mem));
        assert!(
            Instant::now() < deadline,
            "only {} of {n} used entries",
            got.len()
        );
        std::thread::yield_now();
    }
    got
}

fn kick(f: &Arc<Mutex<dyn PciFunction>>, q: u32) {
    w32(f, reg::QUEUE_NOTIFY, q);
}

fn expected(r: &Request, kv: &mut std::collections::HashMap<u64, u64>) -> Response {
    match r.nr {
        1 => Response::ok(r.args[0] as i64),
        2 => Response::ok(r.args.iter().fold(0u64, |a, b| a.wrapping_add(*b)) as i64),
        0x100 => Response::ok(i64::from(kv.insert(r.args[0], r.args[1]).is_some())),
        0x101 => kv
            .get(&r.args[0])
            .map_or(Response::err(Status::Einval), |v| Response::ok(*v as i64)),
        _ => Response::err(Status::Enosys),
    }
}

fn request(i: u64) -> Request {
    match i % 5 {
        0 => req(1, [i, 0, 0, 0, 0, 0]),
        1 => req(2, [i, i, 1, 2, 3, u64::MAX]),
        2 => req(0x100, [i % 1000, i, 0, 0, 0, 0]),
        3 => req(0x101, [(i * 7) % 1200, 0, 0, 0, 0, 0]),
        _ => req(0x77, [0; 6]),
    }
}

#[test]
fn hundred_thousand_ring_requests_entry_by_entry() {
    let mem = anon_mem();
    let mut cfg = config();
    cfg.services = vec![ServiceConfig::Kv { nr: 0x100 }];
    let irq = irqs(2);
    let gw = Gateway::new(cfg, mem.clone(), None, irq.clone()).unwrap();
    let f = gw.function();
    let mut d = RingDriver::new(0x10000, 256);
    setup_queue(&f, 0, &d, 1);
    let mut model = std::collections::HashMap::new();
    let total = 100_000u64;
    let mut sent = 0u64;
    let mut done = 0u64;
    let mut inflight: Vec<(u16, Request)> = Vec::new();
    while done < total {
        while sent < total && inflight.len() < 128 {
            let r = request(sent);
            let slot = d.post(&mem, &r).unwrap();
            inflight.push((slot, r));
            sent += 1;
        }
        kick(&f, 0);
        let used = wait_used(&mut d, &mem, inflight.len());
        assert_eq!(used.len(), inflight.len());
        for (id, len) in used {
            assert_eq!(len, 16);
            assert_eq!(id % 2, 0);
        }
        for (slot, r) in inflight.drain(..) {
            let want = expected(&r, &mut model);
            // The store serves jobs in ring order, so the model matches exactly.
            assert_eq!(d.response(&mem, slot), want, "request {r:?}");
            d.release(slot);
            done += 1;
        }
    }
    assert!(irq[1].is_pending());
    // The same calls give identical results on the sync path.
    for i in [0u64, 1, 4, 5, 6, 9] {
        let r = request(i);
        let slot = d.post(&mem, &r).unwrap();
        kick(&f, 0);
        wait_used(&mut d, &mem, 1);
        assert_eq!(d.response(&mem, slot), sync_call(&f, &mem, 0x8000, &r));
        d.release(slot);
    }
    gw.shutdown();
}

#[test]
fn malformed_chains_get_used_entries() {
    let mem = anon_mem();
    let gw = Gateway::new(config(), mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let mut d = RingDriver::new(0x10000, 16);
    setup_queue(&f, 0, &d, 0);
    let (rq, rs) = (d.req_addr(0), d.resp_addr(0));
    mem_write(&mem, rq, &req(1, [5, 0, 0, 0, 0, 0]));
    // 1: a single readable descriptor → EINVAL, nowhere to write (len 0).
    d.write_desc(&mem, 0, rq, 56, 0, 0);
    d.publish(&mem, 0);
    // 2: readable too short, then writable → EINVAL written.
    d.write_desc(&mem, 2, rq, 8, F_NEXT, 3);
    d.write_desc(&mem, 3, rs, 16, F_WRITE, 0);
    d.publish(&mem, 2);
    // 3: request outside guest memory → EFAULT written.
    d.write_desc(&mem, 4, MEM + 0x1000, 56, F_NEXT, 5);
    d.write_desc(&mem, 5, d.resp_addr(1), 16, F_WRITE, 0);
    d.publish(&mem, 4);
    // 4: response outside guest memory → EFAULT, len 0.
    d.write_desc(&mem, 6, rq, 56, F_NEXT, 7);
    d.write_desc(&mem, 7, u64::MAX - 8, 16, F_WRITE, 0);
    d.publish(&mem, 6);
    // 5: three descriptors → EINVAL written to the last writable one.
    d.write_desc(&mem, 8, rq, 56, F_NEXT, 9);
    d.write_desc(&mem, 9, rq, 56, F_NEXT, 10);
    d.write_desc(&mem, 10, d.resp_addr(2), 16, F_WRITE, 0);
    d.publish(&mem, 8);
    // 6: head out of range → used entry with len 0.
    d.publish(&mem, 40);
    // 7: a good one still works afterwards.
    d.write_desc(&mem, 12, rq, 56, F_NEXT, 13);
    d.write_desc(&mem, 13, d.resp_addr(3), 16, F_WRITE, 0);
    d.publish(&mem, 12);
    kick(&f, 0);
    let used = wait_used(&mut d, &mem, 7);
    assert_eq!(
        used,
        vec![(0, 0), (2, 16), (4, 16), (6, 0), (8, 16), (40, 0), (12, 16)]
    );
    assert_eq!(d.response(&mem, 0), Response::err(Status::Einval));
    assert_eq!(d.response(&mem, 1), Response::err(Status::Efault));
    assert_eq!(d.response(&mem, 2), Response::err(Status::Einval));
    assert_eq!(d.response(&mem, 3), Response::ok(5));
    gw.shutdown();
}

fn mem_write(mem: &GuestMemoryMmap, at: u64, r: &Request) {
    use vm_memory::{Bytes, GuestAddress};
    mem.write_slice(&r.to_bytes(), GuestAddress(at)).unwrap();
}

#[test]
fn interrupt_suppression_and_isr() {
    let mem = anon_mem();
    let irq = irqs(2);
    let gw = Gateway::new(config(), mem.clone(), None, irq.clone()).unwrap();
    let f = gw.function();
    let mut d = RingDriver::new(0x10000, 16);
    setup_queue(&f, 0, &d, 0);
    d.set_no_interrupt(&mem, true);
    let s = d.post(&mem, &req(0, [0; 6])).unwrap();
    kick(&f, 0);
    wait_used(&mut d, &mem, 1);
    d.release(s);
    std::thread::sleep(Duration::from_millis(20));
    assert!(!irq[0].is_pending());
    assert_eq!(r32(&f, reg::ISR), 0);
    d.set_no_interrupt(&mem, false);
    let s = d.post(&mem, &req(0, [0; 6])).unwrap();
    kick(&f, 0);
    wait_used(&mut d, &mem, 1);
    d.release(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !irq[0].is_pending() {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    assert_eq!(irq[0].eventfd().read().unwrap(), 1);
    assert_eq!(r32(&f, reg::ISR), 1);
    assert_eq!(r32(&f, reg::ISR), 0); // read clears
                                      // Not draining: the device does not suppress doorbells.
    assert_eq!(d.used_flags(&mem) & 1, 0);
    gw.shutdown();
}

#[test]
fn disabling_and_reenabling_a_queue() {
    let mem = anon_mem();
    let gw = Gateway::new(config(), mem.clone(), None, irqs(2)).unwrap();
    let f = gw.function();
    let d = RingDriver::new(0x10000, 16);
    setup_queue(&f, 1, &d, 0);
    w32(&f, reg::QUEUE_ENABLE, 0);
    assert_eq!(r32(&f, reg::QUEUE_ENABLE), 0);
    let mut d = RingDriver::new(0x20000, 32);
    setup_queue(&f, 1, &d, 0);
    let s = d.post(&mem, &req(1, [4, 0, 0, 0, 0, 0])).unwrap();
    kick(&f, 1);
    wait_used(&mut d, &mem, 1);
    assert_eq!(d.response(&mem, s), Response::ok(4));
    gw.shutdown();
}

#[test]
fn rings_at_guest_physical_address_zero_are_served() {
    // Each ring in turn at GPA 0, the others where the driver puts them.
    for which in 0..3u64 {
        let mem = anon_mem();
        let gw = Gateway::new(config(), mem.clone(), None, irqs(2)).unwrap();
        let f = gw.function();
        let mut d = RingDriver::new(0x10000, 16);
        match which {
            0 => d.desc = 0,
            1 => d.avail = 0,
            _ => d.used = 0,
        }
        setup_queue(&f, 0, &d, 0);
        let s = d.post(&mem, &req(1, [which, 0, 0, 0, 0, 0])).unwrap();
        kick(&f, 0);
        let used = wait_used(&mut d, &mem, 1);
        assert_eq!(used.len(), 1, "ring {which} at 0");
        assert_eq!(
            d.response(&mem, s),
            Response::ok(which as i64),
            "ring {which} at 0"
        );
        gw.shutdown();
    }
}
