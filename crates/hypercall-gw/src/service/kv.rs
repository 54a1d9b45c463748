//! A key-value store service over four consecutive numbers starting at `base`:
//!
//! | nr | call | result |
//! |---|---|---|
//! | base+0 | PUT(key, value) | ret 1 if a value was replaced, else 0 |
//! | base+1 | GET(key) | ret = value; EINVAL if the key is absent |
//! | base+2 | DELETE(key) | ret 1 if the key existed, else 0 |
//! | base+3 | LEN() | ret = number of keys |
//!
//! It runs in-process (`kind = "kv"`) or in the example external backend.

use std::collections::HashMap;

use super::Service;
use crate::abi::{Request, Response, Status};

/// Numbers a key-value store occupies.
pub const KV_NUMBERS: u32 = 4;

/// The key-value store.
#[derive(Debug, Default)]
pub struct KvStore {
    base: u32,
    map: HashMap<u64, u64>,
}

impl KvStore {
    /// An empty store answering `base..base + 4`.
    pub fn new(base: u32) -> KvStore {
        KvStore {
            base,
            map: HashMap::new(),
        }
    }
}

impl Service for KvStore {
    fn call(&mut self, req: &Request) -> Response {
        let [key, value, ..] = req.args;
        match req.nr.wrapping_sub(self.base) {
            0 => Response::ok(i64::from(self.map.insert(key, value).is_some())),
            1 => match self.map.get(&key) {
                Some(v) => Response::ok(*v as i64),
                None => Response::err(Status::Einval),
            },
            2 => Response::ok(i64::from(self.map.remove(&key).is_some())),
            3 => Response::ok(self.map.len() as i64),
            _ => Response::err(Status::Enosys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(nr: u32, k: u64, v: u64) -> Request {
        Request {
            nr,
            flags: 0,
            args: [k, v, 0, 0, 0, 0],
        }
    }

    #[test]
    fn put_get_delete_len() {
        let mut kv = KvStore::new(0x100);
        assert_eq!(kv.call(&req(0x100, 1, 10)), Response::ok(0));
        assert_eq!(kv.call(&req(0x100, 1, 11)), Response::ok(1));
        assert_eq!(kv.call(&req(0x101, 1, 0)), Response::ok(11));
        assert_eq!(kv.call(&req(0x101, 2, 0)), Response::err(Status::Einval));
        assert_eq!(kv.call(&req(0x103, 0, 0)), Response::ok(1));
        assert_eq!(kv.call(&req(0x102, 1, 0)), Response::ok(1));
        assert_eq!(kv.call(&req(0x102, 1, 0)), Response::ok(0));
        assert_eq!(kv.call(&req(0x104, 1, 0)), Response::err(Status::Enosys));
    }
}
