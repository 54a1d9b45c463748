//! Inputs kept from the `vfio_user_codec` fuzz target (fuzz/), replayed with the same
//! checks so that CI runs them without a nightly toolchain. Each file under
//! `tests/fuzz-regressions/` is a fuzz input as the target takes it: an even first byte
//! means the rest is one payload given to every decoder; an odd one means the rest is a
//! byte stream read message by message with `Channel::recv`. Whatever decodes must
//! re-encode to no more bytes than it came in and decode back to the same value.

use std::fmt::Debug;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;

use vfio_user_proto::{
    Channel, DeviceInfo, DmaAccess, DmaMap, DmaUnmap, IrqInfo, Limits, RegionAccess, RegionInfo,
    Result, SetIrqs, Version, HEADER_SIZE,
};

fn fixed<T: PartialEq + Debug>(
    p: &[u8],
    decode: fn(&[u8]) -> Result<T>,
    encode: fn(&T) -> Vec<u8>,
) {
    if let Ok(x) = decode(p) {
        let e = encode(&x);
        assert!(e.len() <= p.len(), "{x:?} re-encodes longer than its input");
        assert_eq!(decode(&e).unwrap(), x, "round trip");
    }
}

fn payload(p: &[u8]) {
    fixed(p, DmaMap::decode, DmaMap::encode);
    fixed(p, DmaUnmap::decode, DmaUnmap::encode);
    fixed(p, DeviceInfo::decode, DeviceInfo::encode);
    fixed(p, IrqInfo::decode, IrqInfo::encode);
    fixed(p, SetIrqs::decode, SetIrqs::encode);
    fixed(p, RegionAccess::decode, RegionAccess::encode);
    fixed(p, DmaAccess::decode, DmaAccess::encode);
    if let Ok(r) = RegionInfo::decode(p) {
        let e = r.encode();
        assert!(e.len() <= p.len(), "{r:?} re-encodes longer than its input");
        let r2 = RegionInfo::decode(&e).unwrap();
        assert_eq!(
            (r2.index, r2.size, r2.offset, &r2.sparse),
            (r.index, r.size, r.offset, &r.sparse)
        );
        assert_eq!(r2.encode(), e, "second round differs");
    }
    if let Ok(v) = Version::decode(p) {
        assert_eq!(Version::decode(&v.encode()).unwrap(), v, "round trip");
    }
}

fn replay(input: &[u8]) {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        payload(data);
        return;
    }
    let data = &data[..data.len().min(64 << 10)];
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(data).unwrap();
    drop(a);
    let mut ch = Channel::new(
        b,
        Limits {
            max_fds: 4,
            max_data: 4096,
        },
    );
    let mut used = 0;
    while let Ok(msg) = ch.recv(None) {
        assert_eq!(msg.header.size as usize, HEADER_SIZE + msg.payload.len());
        used += msg.header.size as usize;
        assert!(used <= data.len(), "more bytes received than sent");
        if !msg.header.is_error() {
            payload(&msg.payload);
        }
    }
}

#[test]
fn kept_fuzz_inputs_decode_sanely() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let r = std::panic::catch_unwind(|| replay(&bytes));
        assert!(r.is_ok(), "{} fails", f.display());
    }
}

#[test]
fn overlapping_capabilities_are_refused() {
    // The kept input: a sparse capability at 32 whose `next` (40) points into its own
    // body, so its area bytes were read again as a second capability.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let b = std::fs::read(dir.join("region-info-overlapping-caps.bin")).unwrap();
    let e = RegionInfo::decode(&b[1..]).unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
}
