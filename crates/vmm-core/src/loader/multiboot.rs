//! Multiboot (v1) loading: the header, ELF32 or a.out-kludge images, and the
//! information structure handed to the kernel in EBX.
//!
//! Low memory layout that kvmbus uses before the guest runs (all below 0x8000, so the
//! conventional AP trampoline page 0x8000 and everything from 1 MiB stay the guest's):
//! 0x5000 memory map, 0x6000 multiboot info, 0x6800 command line (2 KiB),
//! 0x7000 boot loader name. The MP table lives at 0x9FC00 (see `arch::mptable`).
//! Modules and their list follow the kernel (see `modules`).

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{elf, LoadError, LoadedModules};

/// Where the multiboot information structure is written (EBX at entry).
pub const MBI_ADDR: u64 = 0x6000;
const MMAP_ADDR: u64 = 0x5000;
const CMDLINE_ADDR: u64 = 0x6800;
/// Room for the command line at 0x6800, its NUL included.
pub const CMDLINE_MAX: usize = 0x800;
const LOADER_NAME_ADDR: u64 = 0x7000;
/// Guest memory that boot information occupies; images may not load here.
const BOOT_INFO_RANGE: std::ops::Range<u64> = 0x5000..0x8000;
/// Start of the reserved EBDA/MP-table area at the top of conventional memory.
pub const EBDA_START: u64 = 0x9_FC00;

const MB_MAGIC: u32 = 0x1BAD_B002;
/// EAX at entry.
pub const MB_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// The result of loading an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedImage {
    /// Entry point (EIP).
    pub entry: u64,
    /// Lowest and highest+1 guest-physical address the image occupies.
    pub span: (u64, u64),
}

/// What the boot information describes.
#[derive(Debug, Clone)]
pub struct BootInfo<'a> {
    /// Guest RAM size in bytes (RAM is one range from 0).
    pub mem_size: u64,
    /// The kernel command line.
    pub cmdline: &'a str,
}

fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Finds the multiboot header: (file offset, flags).
fn find_header(name: &str, image: &[u8]) -> Result<(usize, u32), LoadError> {
    let limit = image.len().min(8192);
    let mut off = 0;
    while off + 12 <= limit {
        let magic = rd32(image, off);
        if magic == MB_MAGIC {
            let flags = rd32(image, off + 4);
            let sum = rd32(image, off + 8);
            if magic.wrapping_add(flags).wrapping_add(sum) == 0 {
                return Ok((off, flags));
            }
        }
        off += 4;
    }
    Err(LoadError::NoHeader {
        image: name.to_string(),
    })
}

/// What guest memory holds before an image is loaded into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Anything: the loader writes the zeros of every bss.
    Used,
    /// Zeros, as a fresh memfd or anonymous mapping is: the loader leaves bss
    /// untouched, so its pages are allocated only when the guest touches them (a
    /// guest's 1 MiB of stacks costs neither page faults at start nor resident memory).
    Fresh,
}

/// Loads a multiboot image into guest memory that may hold anything (bss is written
/// with zeros); returns its entry point. See [`load_multiboot_into`].
pub fn load_multiboot(
    name: &str,
    image: &[u8],
    mem: &GuestMemoryMmap,
    mem_size: u64,
) -> Result<LoadedImage, LoadError> {
    load_multiboot_into(name, image, mem, mem_size, Memory::Used)
}

/// Loads a multiboot image into guest memory whose state `before` tells whether bss
/// must be written; returns its entry point.
pub fn load_multiboot_into(
    name: &str,
    image: &[u8],
    mem: &GuestMemoryMmap,
    mem_size: u64,
    before: Memory,
) -> Result<LoadedImage, LoadError> {
    let invalid = |what: String| LoadError::Invalid {
        image: name.to_string(),
        what,
    };
    let (hdr, flags) = find_header(name, image)?;
    if flags & (1 << 2) != 0 {
        return Err(invalid(
            "the multiboot header requests a video mode (flag bit 2); kvmbus has no display".into(),
        ));
    }
    let unknown = flags & 0xfff8;
    if unknown != 0 {
        return Err(invalid(format!(
            "the multiboot header requires features kvmbus does not know (flags {unknown:#x})"
        )));
    }
    // (file offset, paddr, file bytes, memory bytes) to load.
    let mut pieces: Vec<(u64, u64, u64, u64)> = Vec::new();
    let entry;
    if flags & (1 << 16) != 0 {
        if hdr + 32 > image.len() {
            return Err(LoadError::Truncated {
                image: name.to_string(),
                what: "the multiboot address fields are cut off".into(),
            });
        }
        let (header_addr, load_addr) = (rd32(image, hdr + 12) as u64, rd32(image, hdr + 16) as u64);
        let (load_end, bss_end) = (rd32(image, hdr + 20) as u64, rd32(image, hdr + 24) as u64);
        entry = rd32(image, hdr + 28) as u64;
        if load_addr > header_addr || header_addr - load_addr > hdr as u64 {
            return Err(invalid(
                "multiboot load_addr is inconsistent with header_addr".into(),
            ));
        }
        let file_off = hdr as u64 - (header_addr - load_addr);
        let file_len = if load_end == 0 {
            image.len() as u64 - file_off
        } else {
            load_end
                .checked_sub(load_addr)
                .ok_or_else(|| invalid("multiboot load_end_addr is below load_addr".into()))?
        };
        if file_off + file_len > image.len() as u64 {
            return Err(LoadError::Truncated {
                image: name.to_string(),
                what: format!(
                    "the header says {file_len:#x} bytes to load but the file is shorter"
                ),
            });
        }
        let mem_len = if bss_end == 0 {
            file_len
        } else {
            bss_end
                .checked_sub(load_addr)
                .filter(|m| *m >= file_len)
                .ok_or_else(|| invalid("multiboot bss_end_addr is below load_end_addr".into()))?
        };
        pieces.push((file_off, load_addr, file_len, mem_len));
    } else if elf::is_elf(image) {
        let e = elf::parse(name, image)?;
        entry = e.entry;
        for s in e.segments {
            pieces.push((s.offset, s.paddr, s.filesz, s.memsz));
        }
    } else {
        return Err(invalid(
            "not an ELF file and the multiboot header has no address fields (flag bit 16)".into(),
        ));
    }

    let mut span = (u64::MAX, 0u64);
    for &(off, paddr, filesz, memsz) in &pieces {
        let end = paddr.saturating_add(memsz);
        if end > mem_size {
            return Err(LoadError::OutsideMemory {
                image: name.to_string(),
                start: paddr,
                end,
                mem: mem_size,
            });
        }
        if paddr < BOOT_INFO_RANGE.end && end > BOOT_INFO_RANGE.start {
            return Err(invalid(format!(
                "segment at {paddr:#x}..{end:#x} overlaps the boot information at {:#x}..{:#x}",
                BOOT_INFO_RANGE.start, BOOT_INFO_RANGE.end
            )));
        }
        let data = &image[off as usize..(off + filesz) as usize];
        mem.write_slice(data, GuestAddress(paddr))
            .map_err(|e| invalid(format!("writing a segment: {e}")))?;
        if before == Memory::Used {
            let zeros = vec![0u8; (memsz - filesz) as usize];
            mem.write_slice(&zeros, GuestAddress(paddr + filesz))
                .map_err(|e| invalid(format!("zeroing bss: {e}")))?;
        }
        span = (span.0.min(paddr), span.1.max(end));
    }
    if !(span.0..span.1).contains(&entry) {
        return Err(invalid(format!(
            "entry point {entry:#x} is outside the loaded image {:#x}..{:#x}",
            span.0, span.1
        )));
    }
    Ok(LoadedImage { entry, span })
}

/// Writes the multiboot information structure, memory map, command line and loader name.
pub fn write_boot_info(mem: &GuestMemoryMmap, info: &BootInfo) -> Result<(), LoadError> {
    write_info(mem, info.mem_size, info.cmdline, None)
}

/// Writes the multiboot information as QEMU's `-kernel` does: the command line is the
/// image's name, a space and `info.cmdline` (kvm-unit-tests takes its first word as
/// `argv[0]`), the boot device is 0x8000ffff, and the module list is always flagged
/// (bit 3) with `modules`' count and address.
pub fn write_multiboot_info<M: Bytes<GuestAddress>>(
    mem: &M,
    info: &BootInfo,
    image: &str,
    modules: &LoadedModules,
) -> Result<(), LoadError> {
    let cmdline = format!("{image} {}", info.cmdline);
    write_info(mem, info.mem_size, &cmdline, Some(modules))
}

fn write_info<M: Bytes<GuestAddress>>(
    mem: &M,
    mem_size: u64,
    cmdline: &str,
    modules: Option<&LoadedModules>,
) -> Result<(), LoadError> {
    let invalid = |what: String| LoadError::Invalid {
        image: "boot info".into(),
        what,
    };
    if cmdline.len() >= CMDLINE_MAX {
        return Err(invalid(format!(
            "the command line is {} bytes; at most {} fit",
            cmdline.len(),
            CMDLINE_MAX - 1
        )));
    }
    // Memory map entries: size(4) base(8) len(8) type(4); size excludes its own field.
    let mut mmap = Vec::new();
    let mut region = |base: u64, len: u64, kind: u32| {
        mmap.extend_from_slice(&20u32.to_le_bytes());
        mmap.extend_from_slice(&base.to_le_bytes());
        mmap.extend_from_slice(&len.to_le_bytes());
        mmap.extend_from_slice(&kind.to_le_bytes());
    };
    region(0, EBDA_START, 1);
    region(EBDA_START, 0xA0000 - EBDA_START, 2);
    region(0xF0000, 0x10000, 2);
    region(0x10_0000, mem_size - 0x10_0000, 1);

    let mut mbi = [0u8; 88];
    let mut put = |o: usize, v: u32| mbi[o..o + 4].copy_from_slice(&v.to_le_bytes());
    // flags: mem (0), cmdline (2), mmap (6), boot loader name (9)
    let mut flags = (1 << 0) | (1 << 2) | (1 << 6) | (1 << 9);
    if let Some(m) = modules {
        // boot device (1) and modules (3), as QEMU sets them
        flags |= (1 << 1) | (1 << 3);
        put(12, 0x8000_ffff);
        put(20, m.ranges.len() as u32);
        put(24, m.list_addr as u32);
    }
    put(0, flags);
    put(4, (EBDA_START / 1024) as u32);
    put(
        8,
        ((mem_size - 0x10_0000) / 1024).min(u32::MAX as u64) as u32,
    );
    put(16, CMDLINE_ADDR as u32);
    put(44, mmap.len() as u32);
    put(48, MMAP_ADDR as u32);
    put(64, LOADER_NAME_ADDR as u32);

    let w = |data: &[u8], at: u64| {
        mem.write_slice(data, GuestAddress(at)).map_err(|_| {
            invalid(format!(
                "guest memory lacks {at:#x}..{:#x}",
                at + data.len() as u64
            ))
        })
    };
    w(&mmap, MMAP_ADDR)?;
    w(&mbi, MBI_ADDR)?;
    let mut cmd = cmdline.as_bytes().to_vec();
    cmd.push(0);
    w(&cmd, CMDLINE_ADDR)?;
    w(b"kvmbus\0", LOADER_NAME_ADDR)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(size: usize) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
    }

    fn header(flags: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [
            MB_MAGIC,
            flags,
            0u32.wrapping_sub(MB_MAGIC.wrapping_add(flags)),
        ] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    /// A minimal ELF32 with one PT_LOAD at 1 MiB holding `code` (+ `bss` zero bytes).
    fn elf(code: &[u8], bss: u32) -> Vec<u8> {
        let mut b = vec![0u8; 0x100];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&3u16.to_le_bytes());
        b[24..28].copy_from_slice(&0x10_0000u32.to_le_bytes());
        b[28..32].copy_from_slice(&52u32.to_le_bytes());
        b[42..44].copy_from_slice(&32u16.to_le_bytes());
        b[44..46].copy_from_slice(&1u16.to_le_bytes());
        let ph = 52;
        let w = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        w(&mut b, ph, 1);
        w(&mut b, ph + 4, 0x100);
        w(&mut b, ph + 8, 0x10_0000);
        w(&mut b, ph + 12, 0x10_0000);
        let mut payload = header(3);
        payload.extend_from_slice(code);
        w(&mut b, ph + 16, payload.len() as u32);
        w(&mut b, ph + 20, payload.len() as u32 + bss);
        b.extend_from_slice(&payload);
        b
    }

    #[test]
    fn loads_an_elf_and_zeroes_bss() {
        let m = mem(4 << 20);
        m.write_slice(&[0xAA; 64], GuestAddress(0x10_0010)).unwrap();
        let img = elf(&[0x90, 0xF4], 16);
        let l = load_multiboot("t", &img, &m, 4 << 20).unwrap();
        assert_eq!(l.entry, 0x10_0000);
        let mut b = [0u8; 2];
        m.read_slice(&mut b, GuestAddress(0x10_000C)).unwrap();
        assert_eq!(b, [0x90, 0xF4]);
        let mut z = [0xffu8; 16];
        m.read_slice(&mut z, GuestAddress(0x10_000E)).unwrap();
        assert_eq!(z, [0; 16]);
    }

    #[test]
    fn fresh_memory_keeps_bss_untouched() {
        let m = mem(4 << 20);
        // Not what fresh memory holds: it shows that the loader did not write there.
        m.write_slice(&[0xAA; 64], GuestAddress(0x10_0010)).unwrap();
        let img = elf(&[0x90, 0xF4], 16);
        let l = load_multiboot_into("t", &img, &m, 4 << 20, Memory::Fresh).unwrap();
        assert_eq!(l.entry, 0x10_0000);
        let mut b = [0u8; 2];
        m.read_slice(&mut b, GuestAddress(0x10_000C)).unwrap();
        assert_eq!(b, [0x90, 0xF4]);
        let mut z = [0u8; 16];
        m.read_slice(&mut z, GuestAddress(0x10_0010)).unwrap();
        assert_eq!(z, [0xAA; 16]);
    }

    #[test]
    fn rejects_a_file_without_header() {
        let m = mem(4 << 20);
        let mut img = elf(&[0x90], 0);
        img[0x100..0x10C].fill(0);
        assert!(matches!(
            load_multiboot("t", &img, &m, 4 << 20),
            Err(LoadError::NoHeader { .. })
        ));
        assert!(matches!(
            load_multiboot("t", b"", &m, 4 << 20),
            Err(LoadError::NoHeader { .. })
        ));
        // A header past the first 8 KiB does not count.
        let mut far = vec![0u8; 8192];
        far.extend_from_slice(&header(3));
        assert!(matches!(
            load_multiboot("t", &far, &m, 4 << 20),
            Err(LoadError::NoHeader { .. })
        ));
    }

    #[test]
    fn rejects_truncated_files() {
        let m = mem(4 << 20);
        let img = elf(&[0x90; 64], 0);
        let cut = &img[..img.len() - 10];
        let e = load_multiboot("t", cut, &m, 4 << 20).unwrap_err();
        assert!(matches!(e, LoadError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("truncated"));
        // Program headers cut off.
        let mut short = img[..60].to_vec();
        short.extend_from_slice(&header(3));
        let e = load_multiboot("t", &short, &m, 4 << 20).unwrap_err();
        assert!(matches!(e, LoadError::Truncated { .. }), "{e}");
    }

    #[test]
    fn rejects_segments_outside_memory() {
        let m = mem(1 << 20);
        let img = elf(&[0x90], 0);
        let e = load_multiboot("t", &img, &m, 1 << 20).unwrap_err();
        assert!(matches!(e, LoadError::OutsideMemory { .. }), "{e}");
        assert!(e.to_string().contains("memory_mib"));
        // A huge bss also lands outside.
        let m = mem(2 << 20);
        let img = elf(&[0x90], 0x4000_0000);
        assert!(matches!(
            load_multiboot("t", &img, &m, 2 << 20),
            Err(LoadError::OutsideMemory { .. })
        ));
    }

    #[test]
    fn rejects_video_and_unknown_flags_and_elf64() {
        let m = mem(4 << 20);
        let mut img = elf(&[0x90], 0);
        let patch = |img: &mut Vec<u8>, flags: u32| {
            let h = header(flags);
            img[0x100..0x10C].copy_from_slice(&h);
        };
        patch(&mut img, 3 | 4);
        assert!(load_multiboot("t", &img, &m, 4 << 20)
            .unwrap_err()
            .to_string()
            .contains("video"));
        patch(&mut img, 3 | 0x100);
        assert!(load_multiboot("t", &img, &m, 4 << 20).is_err());
        patch(&mut img, 3);
        img[4] = 2;
        assert!(load_multiboot("t", &img, &m, 4 << 20)
            .unwrap_err()
            .to_string()
            .contains("32-bit"));
    }

    #[test]
    fn loads_aout_kludge_images() {
        let m = mem(4 << 20);
        let flags = 3 | (1 << 16);
        let mut img = header(flags);
        for v in [0x10_0000u32, 0x10_0000, 0, 0x10_1000, 0x10_0020] {
            img.extend_from_slice(&v.to_le_bytes());
        }
        img.resize(0x40, 0xCC);
        let l = load_multiboot("t", &img, &m, 4 << 20).unwrap();
        assert_eq!(l.entry, 0x10_0020);
        assert_eq!(l.span, (0x10_0000, 0x10_1000));
    }

    #[test]
    fn boot_info_describes_memory_and_cmdline() {
        let m = mem(8 << 20);
        write_boot_info(
            &m,
            &BootInfo {
                mem_size: 8 << 20,
                cmdline: "n=5 smp",
            },
        )
        .unwrap();
        let flags: u32 = m.read_obj(GuestAddress(MBI_ADDR)).unwrap();
        assert_eq!(flags & 0b1000101, 0b1000101);
        let upper: u32 = m.read_obj(GuestAddress(MBI_ADDR + 8)).unwrap();
        assert_eq!(upper, 7 * 1024);
        let mut c = [0u8; 8];
        m.read_slice(&mut c, GuestAddress(CMDLINE_ADDR)).unwrap();
        assert_eq!(&c, b"n=5 smp\0");
        let long = "x".repeat(CMDLINE_MAX);
        assert!(write_boot_info(
            &m,
            &BootInfo {
                mem_size: 8 << 20,
                cmdline: &long
            }
        )
        .is_err());
    }

    #[test]
    fn qemu_style_info_prefixes_the_image_and_lists_modules() {
        let m = mem(8 << 20);
        let mods = super::super::load_modules(
            &m,
            8 << 20,
            0x10_1000,
            &[super::super::Module {
                path: "env",
                args: "",
                data: b"A=1\n",
            }],
        )
        .unwrap();
        let info = BootInfo {
            mem_size: 8 << 20,
            cmdline: "-v 3",
        };
        write_multiboot_info(&m, &info, "x86/t.flat", &mods).unwrap();
        let rd = |o: u64| m.read_obj::<u32>(GuestAddress(MBI_ADDR + o)).unwrap();
        assert_eq!(rd(0) & 0b1010, 0b1010, "boot device and modules flagged");
        assert_eq!(rd(12), 0x8000_ffff);
        assert_eq!((rd(20), rd(24)), (1, mods.list_addr as u32));
        let mut c = [0u8; 16];
        m.read_slice(&mut c, GuestAddress(CMDLINE_ADDR)).unwrap();
        assert_eq!(&c, b"x86/t.flat -v 3\0");
        // No modules: the flag stays, the count is 0; an empty command line leaves
        // QEMU's trailing space.
        let none = super::super::load_modules(&m, 8 << 20, 0x10_1000, &[]).unwrap();
        let info = BootInfo {
            mem_size: 8 << 20,
            cmdline: "",
        };
        write_multiboot_info(&m, &info, "k", &none).unwrap();
        assert_eq!(rd(20), 0);
        assert_eq!(rd(0) & 0b1000, 0b1000);
        let mut c = [0u8; 3];
        m.read_slice(&mut c, GuestAddress(CMDLINE_ADDR)).unwrap();
        assert_eq!(&c, b"k \0");
    }
}
