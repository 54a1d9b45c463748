//! Guest image loaders.

mod elf;
mod image_file;
mod modules;
mod multiboot;

pub use image_file::read_image;
pub use modules::{load_modules, LoadedModules, Module};
pub use multiboot::{
    load_multiboot, load_multiboot_into, write_boot_info, write_multiboot_info, BootInfo,
    LoadedImage, Memory as MemoryBefore, CMDLINE_MAX, EBDA_START as EBDA_ADDR, MBI_ADDR,
    MB_BOOTLOADER_MAGIC,
};

/// Why an image could not be loaded. Messages are complete sentences for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// No multiboot header in the first 8 KiB.
    #[error("{image}: no Multiboot v1 header in the first 8 KiB (not a multiboot kernel?)")]
    NoHeader {
        /// The image's name.
        image: String,
    },
    /// The file ends before something it describes.
    #[error("{image}: truncated: {what}")]
    Truncated {
        /// The image's name.
        image: String,
        /// What is missing.
        what: String,
    },
    /// The ELF or multiboot header is malformed or unsupported.
    #[error("{image}: {what}")]
    Invalid {
        /// The image's name.
        image: String,
        /// What is wrong.
        what: String,
    },
    /// A segment does not fit in guest memory.
    #[error("{image}: segment at {start:#x}..{end:#x} is outside guest memory (0..{mem:#x}); raise [vm] memory_mib")]
    OutsideMemory {
        /// The image's name.
        image: String,
        /// Segment start.
        start: u64,
        /// Segment end.
        end: u64,
        /// Guest memory size.
        mem: u64,
    },
    /// A multiboot module does not fit in guest memory after the kernel.
    #[error("module {index} ({path}) at {start:#x}..{end:#x} does not fit in guest memory (0..{mem:#x}); raise [vm] memory_mib")]
    ModuleOutsideMemory {
        /// Its index in `[boot] modules`.
        index: usize,
        /// Its path.
        path: String,
        /// Where it would start.
        start: u64,
        /// Where it would end.
        end: u64,
        /// Guest memory size.
        mem: u64,
    },
    /// Reading the image file failed.
    #[error("{image}: cannot read: {what}")]
    Read {
        /// The path.
        image: String,
        /// The OS error.
        what: String,
    },
}
