//! Guests built into the binary from `guests/` by build.rs: the 32-bit family (gcc -m32,
//! ld -m elf_i386) and the long-mode `lm-*` family (gcc -m64, objcopy -O elf32-i386).

include!(concat!(env!("OUT_DIR"), "/guests/builtin.rs"));

/// The multiboot ELF image of built-in guest `name`.
pub fn image(name: &str) -> Option<&'static [u8]> {
    BUILTIN_GUESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, img)| *img)
}

/// Names of all built-in guests.
pub fn names() -> Vec<&'static str> {
    BUILTIN_GUESTS.iter().map(|(n, _)| *n).collect()
}
