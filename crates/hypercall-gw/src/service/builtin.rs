//! Built-in services 0–3, served inline on whichever thread sees the call.

use crate::abi::{nr, Request, Response};

/// Serves `req` if its number is a built-in (0..=3).
pub fn call(req: &Request) -> Option<Response> {
    let ret = match req.nr {
        nr::NOP => 0,
        nr::ECHO => req.args[0] as i64,
        nr::SUM => req.args.iter().fold(0u64, |s, a| s.wrapping_add(*a)) as i64,
        nr::HOST_TIME_NS => monotonic_ns() as i64,
        _ => return None,
    };
    Some(Response::ok(ret))
}

/// True for the built-in numbers.
pub fn is_builtin(n: u32) -> bool {
    n <= nr::HOST_TIME_NS
}

/// Host CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Status;

    fn req(n: u32, args: [u64; 6]) -> Request {
        Request {
            nr: n,
            flags: 0,
            args,
        }
    }

    #[test]
    fn builtins() {
        assert_eq!(call(&req(0, [9; 6])), Some(Response::ok(0)));
        assert_eq!(call(&req(1, [42, 1, 0, 0, 0, 0])), Some(Response::ok(42)));
        let s = call(&req(2, [u64::MAX, 2, 3, 0, 0, 1])).unwrap();
        assert_eq!(s, Response::ok(5));
        let a = call(&req(3, [0; 6])).unwrap();
        let b = call(&req(3, [0; 6])).unwrap();
        assert_eq!(a.status, Status::Ok);
        assert!(b.ret >= a.ret && a.ret > 0);
        assert_eq!(call(&req(4, [0; 6])), None);
    }
}
