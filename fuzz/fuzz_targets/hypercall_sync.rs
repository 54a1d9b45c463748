#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvmbus_fuzz::hypercall_sync(data));
