//! The subset of ELF32 that multiboot kernels use: the header and PT_LOAD segments.

use super::LoadError;

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the file.
    pub offset: u64,
    /// Physical load address.
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zeroed).
    pub memsz: u64,
}

/// A parsed ELF32 executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf32 {
    /// Entry point.
    pub entry: u64,
    /// Loadable segments.
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u64)
}
fn u32_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as u64)
}

/// True if `image` starts with the ELF magic.
pub fn is_elf(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
}

/// Parses an ELF32 little-endian i386 executable.
pub fn parse(name: &str, b: &[u8]) -> Result<Elf32, LoadError> {
    let invalid = |what: &str| LoadError::Invalid {
        image: name.to_string(),
        what: what.to_string(),
    };
    let truncated = |what: String| LoadError::Truncated {
        image: name.to_string(),
        what,
    };
    if b.len() < 52 {
        return Err(truncated("the ELF header needs 52 bytes".into()));
    }
    if b[4] != 1 {
        return Err(invalid(
            "ELF class is not 32-bit (multiboot v1 loads ELF32 only)",
        ));
    }
    if b[5] != 1 {
        return Err(invalid("ELF data encoding is not little-endian"));
    }
    let (etype, machine) = (u16_at(b, 16).unwrap(), u16_at(b, 18).unwrap());
    if etype != 2 {
        return Err(invalid("ELF type is not EXEC"));
    }
    if machine != 3 {
        return Err(invalid("ELF machine is not i386"));
    }
    let entry = u32_at(b, 24).unwrap();
    let phoff = u32_at(b, 28).unwrap() as usize;
    let phentsize = u16_at(b, 42).unwrap() as usize;
    let phnum = u16_at(b, 44).unwrap() as usize;
    if phnum > 0 && phentsize < 32 {
        return Err(invalid(
            "ELF program header entries are smaller than 32 bytes",
        ));
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let o = phoff
            .checked_add(i * phentsize)
            .ok_or_else(|| invalid("program header offset overflows"))?;
        let ph = b.get(o..o + 32).ok_or_else(|| {
            truncated(format!("program header {i} lies past the end of the file"))
        })?;
        if u32_at(ph, 0).unwrap() != 1 {
            continue; // not PT_LOAD
        }
        let seg = Segment {
            offset: u32_at(ph, 4).unwrap(),
            paddr: u32_at(ph, 12).unwrap(),
            filesz: u32_at(ph, 16).unwrap(),
            memsz: u32_at(ph, 20).unwrap(),
        };
        if seg.filesz > seg.memsz {
            return Err(invalid("a segment's file size exceeds its memory size"));
        }
        if seg.offset + seg.filesz > b.len() as u64 {
            return Err(truncated(format!(
                "segment {i} needs bytes {:#x}..{:#x} but the file has {:#x}",
                seg.offset,
                seg.offset + seg.filesz,
                b.len()
            )));
        }
        segments.push(seg);
    }
    if segments.is_empty() {
        return Err(invalid("the ELF file has no loadable segment"));
    }
    Ok(Elf32 { entry, segments })
}
