//! The guest-visible ABI, version 1 (`docs/hypercall-abi.md`): identifiers, BAR0 register
//! offsets, the call block layout and statuses.

/// ABI version reported in VERSION and in the vendor capability.
pub const ABI_VERSION: u32 = 1;
/// Default PCI vendor ID.
pub const DEFAULT_VENDOR_ID: u16 = 0x1234;
/// Default PCI device ID.
pub const DEFAULT_DEVICE_ID: u16 = 0x4843;
/// PCI class code (other system peripheral).
pub const CLASS_CODE: u32 = 0x08_80_00;
/// PCI revision.
pub const REVISION: u8 = 1;
/// Size of BAR0 (I/O).
pub const BAR0_SIZE: u64 = 64;
/// Smallest `max_queue_size` the ABI allows.
pub const MIN_MAX_QUEUE_SIZE: u16 = 256;

/// BAR0 register offsets.
pub mod reg {
    /// VERSION (R).
    pub const VERSION: u64 = 0x00;
    /// FEATURES (R).
    pub const FEATURES: u64 = 0x04;
    /// CALL_LO (W): performs a synchronous call.
    pub const CALL_LO: u64 = 0x08;
    /// CALL_HI (RW).
    pub const CALL_HI: u64 = 0x0C;
    /// QUEUE_SEL (RW).
    pub const QUEUE_SEL: u64 = 0x10;
    /// QUEUE_SIZE (RW).
    pub const QUEUE_SIZE: u64 = 0x14;
    /// QUEUE_DESC (RW).
    pub const QUEUE_DESC: u64 = 0x18;
    /// QUEUE_AVAIL (RW).
    pub const QUEUE_AVAIL: u64 = 0x1C;
    /// QUEUE_USED (RW).
    pub const QUEUE_USED: u64 = 0x20;
    /// QUEUE_ADDR_HI (RW).
    pub const QUEUE_ADDR_HI: u64 = 0x24;
    /// QUEUE_VECTOR (RW).
    pub const QUEUE_VECTOR: u64 = 0x28;
    /// QUEUE_ENABLE (RW).
    pub const QUEUE_ENABLE: u64 = 0x2C;
    /// QUEUE_NOTIFY (W, ioeventfd).
    pub const QUEUE_NOTIFY: u64 = 0x30;
    /// ISR (R, read clears).
    pub const ISR: u64 = 0x34;
}

/// FEATURES bit: synchronous calls through CALL_LO.
pub const FEATURE_SYNC: u32 = 1 << 0;
/// FEATURES bit: virtqueue rings.
pub const FEATURE_RING: u32 = 1 << 1;
/// FEATURES bit: external backends are configured.
pub const FEATURE_EXTERNAL: u32 = 1 << 2;
/// QUEUE_VECTOR value meaning "no interrupt".
pub const NO_VECTOR: u16 = 0xFFFF;
/// ISR bit 0: a completion is pending.
pub const ISR_COMPLETION: u8 = 1;

/// Size of a call block in guest memory: the fields `u32 nr; u32 flags; u64 args[6];
/// i64 ret; u32 status; u32 reserved` take 72 bytes.
pub const CALL_BLOCK_SIZE: usize = 72;
/// Size of the request part (nr, flags, args): the ring's device-readable buffer.
pub const REQUEST_SIZE: usize = 56;
/// Size of the response part (ret, status, reserved): the ring's device-writable buffer.
pub const RESPONSE_SIZE: usize = 16;
/// Offset of the response part inside a call block.
pub const RESPONSE_OFFSET: u64 = 56;

/// Built-in service numbers.
pub mod nr {
    /// NOP: ret 0.
    pub const NOP: u32 = 0;
    /// ECHO: ret = `args[0]`.
    pub const ECHO: u32 = 1;
    /// SUM: ret = sum of args mod 2^64.
    pub const SUM: u32 = 2;
    /// HOST_TIME_NS: ret = host CLOCK_MONOTONIC in ns.
    pub const HOST_TIME_NS: u32 = 3;
    /// First number routed by configuration.
    pub const FIRST_CONFIGURED: u32 = 0x100;
}

/// A call's completion status as the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// No service for this number.
    Enosys = 1,
    /// Malformed request (bad chain shape, bad arguments).
    Einval = 2,
    /// Backend unavailable (dead, stalled or not connected).
    Ebusy = 3,
    /// An address outside guest memory.
    Efault = 4,
}

impl Status {
    /// Decodes a wire value; unknown values become `Einval`.
    pub fn from_u32(v: u32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::Enosys,
            3 => Status::Ebusy,
            4 => Status::Efault,
            _ => Status::Einval,
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Enosys => "enosys",
            Status::Einval => "einval",
            Status::Ebusy => "ebusy",
            Status::Efault => "efault",
        }
    }
}

/// The request part of a call: `u32 nr; u32 flags; u64 args[6]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Service number.
    pub nr: u32,
    /// Flags (passed to the service; none defined by the gateway).
    pub flags: u32,
    /// Arguments.
    pub args: [u64; 6],
}

impl Request {
    /// Decodes the 56 little-endian bytes of a request.
    pub fn from_bytes(b: &[u8; REQUEST_SIZE]) -> Request {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64_at(8 + 8 * i);
        }
        Request {
            nr: u32_at(0),
            flags: u32_at(4),
            args,
        }
    }

    /// Encodes the request as 56 little-endian bytes.
    pub fn to_bytes(&self) -> [u8; REQUEST_SIZE] {
        let mut b = [0u8; REQUEST_SIZE];
        b[0..4].copy_from_slice(&self.nr.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        b
    }
}

/// The response part of a call: `i64 ret; u32 status; u32 reserved`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// Return value (0 unless the status is OK, unless the service says otherwise).
    pub ret: i64,
    /// Status.
    pub status: Status,
}

impl Response {
    /// A successful response.
    pub fn ok(ret: i64) -> Response {
        Response {
            ret,
            status: Status::Ok,
        }
    }

    /// A failed response with ret 0.
    pub fn err(status: Status) -> Response {
        Response { ret: 0, status }
    }

    /// Encodes as 16 little-endian bytes (reserved = 0).
    pub fn to_bytes(&self) -> [u8; RESPONSE_SIZE] {
        let mut b = [0u8; RESPONSE_SIZE];
        b[0..8].copy_from_slice(&self.ret.to_le_bytes());
        b[8..12].copy_from_slice(&(self.status as u32).to_le_bytes());
        b
    }

    /// Decodes 16 little-endian bytes.
    pub fn from_bytes(b: &[u8; RESPONSE_SIZE]) -> Response {
        Response {
            ret: i64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
            status: Status::from_u32(u32::from_le_bytes(b[8..12].try_into().unwrap_or_default())),
        }
    }
}

/// The 5-byte payload of the vendor capability (after its 3-byte header): ABI version,
/// max queue size, queue count, reserved.
pub fn vendor_cap_payload(max_queue_size: u16, queues: u8) -> [u8; 5] {
    let m = max_queue_size.to_le_bytes();
    [ABI_VERSION as u8, m[0], m[1], queues, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip() {
        let r = Request {
            nr: 0x101,
            flags: 7,
            args: [1, 2, 3, 4, 5, u64::MAX],
        };
        assert_eq!(Request::from_bytes(&r.to_bytes()), r);
        assert_eq!(&r.to_bytes()[0..4], &[1, 1, 0, 0]);
    }

    #[test]
    fn response_layout() {
        let b = Response::ok(-2).to_bytes();
        assert_eq!(&b[0..8], &(-2i64).to_le_bytes());
        assert_eq!(&b[8..16], &[0; 8]);
        let e = Response::err(Status::Efault).to_bytes();
        assert_eq!(e[8], 4);
        assert_eq!(Response::from_bytes(&e).status, Status::Efault);
    }
}
