#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvmbus_fuzz::vfio_user_codec(data));
