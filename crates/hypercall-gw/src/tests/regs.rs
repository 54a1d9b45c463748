use super::*;
use crate::abi::{FEATURE_RING, FEATURE_SYNC};
use crate::Gateway;

#[test]
fn registers_per_abi_table() {
    let gw = Gateway::new(config(), anon_mem(), None, irqs(2)).unwrap();
    let f = gw.function();
    assert_eq!(r32(&f, reg::VERSION), 1);
    assert_eq!(r32(&f, reg::FEATURES), FEATURE_SYNC | FEATURE_RING);
    w32(&f, reg::CALL_HI, 0x1234);
    assert_eq!(r32(&f, reg::CALL_HI), 0x1234);
    w32(&f, reg::QUEUE_SEL, 1);
    assert_eq!(r32(&f, reg::QUEUE_SEL), 1);
    assert_eq!(r32(&f, reg::QUEUE_SIZE), 256);
    w32(&f, reg::QUEUE_SIZE, 100); // not a power of two: ignored
    assert_eq!(r32(&f, reg::QUEUE_SIZE), 256);
    w32(&f, reg::QUEUE_SIZE, 512); // above max: ignored
    assert_eq!(r32(&f, reg::QUEUE_SIZE), 256);
    w32(&f, reg::QUEUE_SIZE, 64);
    assert_eq!(r32(&f, reg::QUEUE_SIZE), 64);
    assert_eq!(r32(&f, reg::QUEUE_VECTOR), 0xFFFF);
    w32(&f, reg::QUEUE_VECTOR, 1);
    assert_eq!(r32(&f, reg::QUEUE_VECTOR), 1);
    w32(&f, reg::QUEUE_VECTOR, 7); // no such vector
    assert_eq!(r32(&f, reg::QUEUE_VECTOR), 0xFFFF);
    // Rings outside guest memory: the queue does not enable.
    w32(&f, reg::QUEUE_DESC, 0);
    w32(&f, reg::QUEUE_AVAIL, 0x1000);
    w32(&f, reg::QUEUE_USED, 0x2000);
    w32(&f, reg::QUEUE_ADDR_HI, 1);
    w32(&f, reg::QUEUE_ENABLE, 1);
    assert_eq!(r32(&f, reg::QUEUE_ENABLE), 0);
    // A queue that does not exist reads zero.
    w32(&f, reg::QUEUE_SEL, 9);
    assert_eq!(r32(&f, reg::QUEUE_SIZE), 0);
    assert_eq!(r32(&f, reg::ISR), 0);
    let mut b = [0u8; 2];
    f.lock().unwrap().bar_read(0, 0, &mut b);
    assert_eq!(b, [0xFF, 0xFF]);
    let specs = f.lock().unwrap().ioevents();
    assert_eq!(specs.len(), 2);
    assert_eq!((specs[1].bar, specs[1].offset, specs[1].len), (0, 0x30, 4));
    assert_eq!(specs[1].datamatch, Some(1));
    gw.shutdown();
}

#[test]
fn config_space_and_vendor_capability() {
    let gw = Gateway::new(config(), anon_mem(), None, irqs(2)).unwrap();
    let f = gw.function();
    let mut f = f.lock().unwrap();
    let mut d = [0u8; 4];
    f.config_read(0, &mut d);
    assert_eq!(d, [0x34, 0x12, 0x43, 0x48]);
    f.config_read(8, &mut d);
    assert_eq!(u32::from_le_bytes(d), 0x0880_0001);
    let mut p = [0u8; 1];
    f.config_read(0x34, &mut p);
    let mut ids = Vec::new();
    let mut vendor = None;
    let mut off = p[0];
    while off != 0 {
        let mut h = [0u8; 8];
        for (i, b) in h.iter_mut().enumerate() {
            let mut x = [0u8];
            f.config_read(u16::from(off) + i as u16, &mut x);
            *b = x[0];
        }
        ids.push(h[0]);
        if h[0] == 0x09 {
            vendor = Some(h);
        }
        off = h[1];
    }
    assert!(ids.contains(&0x11) && ids.contains(&0x05));
    let v = vendor.expect("vendor capability");
    assert_eq!(v[2], 8); // length
    assert_eq!(v[3], 1); // abi_version
    assert_eq!(u16::from_le_bytes([v[4], v[5]]), 256);
    assert_eq!(v[6], 2); // queues
    assert_eq!(v[7], 0);
    drop(f);
    gw.shutdown();
}
