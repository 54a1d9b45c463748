//! A bare kvm-ioctls runner: the least a KVM runner can do to boot a built-in guest and
//! see it exit (the launch benchmark's reference; see `benches/common/bare.rs`).
//!
//! `cargo run --release -p vmm-core --example bare_runner -- hello [cmdline]`

#[path = "../benches/common/bare.rs"]
mod bare;

fn main() {
    let mut args = std::env::args().skip(1);
    let guest = args.next().unwrap_or_else(|| "hello".into());
    let cmdline = args.next().unwrap_or_default();
    bare::run(&guest, &cmdline)
}
