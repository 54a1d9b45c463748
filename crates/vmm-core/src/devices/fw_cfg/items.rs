//! The items a fw_cfg device serves, keyed as on QEMU (`hw/nvram/fw_cfg.c`,
//! `docs/specs/fw_cfg.rst`), and the selection cursor both interfaces share.
//!
//! Integers are little-endian (`fw_cfg_add_i16/i32/i64`); the file directory is
//! big-endian. Like QEMU's port-I/O fw_cfg on x86, there are 32 file slots, so a key
//! (without its arch bit) from 0x40 up selects nothing, and the directory item is always
//! `4 + 32 * 64` bytes with the unused entries zero. Files are sorted by name (QEMU's
//! order on every machine type newer than 2.x).

/// Key: the signature "QEMU".
pub const FW_CFG_SIGNATURE: u16 = 0x00;
/// Key: the interface ID (feature bits, [`FW_CFG_VERSION`] | [`FW_CFG_VERSION_DMA`]).
pub const FW_CFG_ID: u16 = 0x01;
/// Key: the 16-byte VM UUID (zeros, as QEMU without `-uuid`).
pub const FW_CFG_UUID: u16 = 0x02;
/// Key: RAM size in bytes, u64.
pub const FW_CFG_RAM_SIZE: u16 = 0x03;
/// Key: 1 when the VM has no display, u16.
pub const FW_CFG_NOGRAPHIC: u16 = 0x04;
/// Key: the number of vCPUs started at boot, u16.
pub const FW_CFG_NB_CPUS: u16 = 0x05;
/// Key: 1 when a boot menu is wanted, u16.
pub const FW_CFG_BOOT_MENU: u16 = 0x0e;
/// Key: on x86, the highest APIC ID + 1, u16.
pub const FW_CFG_MAX_CPUS: u16 = 0x0f;
/// Key: the file directory.
pub const FW_CFG_FILE_DIR: u16 = 0x19;
/// Key of the first file.
pub const FW_CFG_FILE_FIRST: u16 = 0x20;
/// The number of file slots (QEMU's `x-file-slots` default for port-I/O fw_cfg).
pub const FW_CFG_FILE_SLOTS: u16 = 0x20;
/// Key bit: an architecture-specific item.
pub const FW_CFG_ARCH_LOCAL: u16 = 0x8000;
/// Key bit: the (obsolete) write channel, ignored when selecting.
pub const FW_CFG_WRITE_CHANNEL: u16 = 0x4000;
/// Key (x86): 1 when ISA IRQ 0 is wired to I/O APIC pin 2, u32.
pub const FW_CFG_IRQ0_OVERRIDE: u16 = FW_CFG_ARCH_LOCAL + 2;
/// The key that means "nothing selected".
pub const FW_CFG_INVALID: u16 = 0xffff;
/// ID bit: the traditional (selector + data port) interface.
pub const FW_CFG_VERSION: u32 = 0x01;
/// ID bit: the DMA interface.
pub const FW_CFG_VERSION_DMA: u32 = 0x02;
/// The longest file name, in bytes (a directory entry holds 56 with the NUL).
pub const FW_CFG_MAX_NAME: usize = 55;

const ENTRY_MASK: u16 = !(FW_CFG_WRITE_CHANNEL | FW_CFG_ARCH_LOCAL);
const MAX_ENTRY: u16 = FW_CFG_FILE_FIRST + FW_CFG_FILE_SLOTS;
const DIR_ENTRY_LEN: usize = 64;

/// Why a file cannot be added. Messages are sentences for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The name is empty or longer than [`FW_CFG_MAX_NAME`] bytes.
    #[error("fw_cfg file name '{0}' must be 1 to 55 bytes long")]
    BadName(String),
    /// The name contains a NUL byte.
    #[error("fw_cfg file name '{0}' contains a NUL byte")]
    Nul(String),
    /// Another file has the same name.
    #[error("duplicate fw_cfg file name: {0}")]
    Duplicate(String),
    /// All 32 file slots are taken.
    #[error("fw_cfg has room for {FW_CFG_FILE_SLOTS} files; '{0}' is one too many")]
    Full(String),
    /// The contents do not fit the directory's 32-bit size field.
    #[error("fw_cfg file '{0}' is larger than 4 GiB")]
    TooLarge(String),
}

/// What the machine looks like, for the well-known items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineInfo {
    /// RAM size in bytes.
    pub ram_size: u64,
    /// vCPUs started at boot.
    pub boot_cpus: u16,
    /// Highest APIC ID + 1 (kvmbus numbers APIC IDs from 0, so the vCPU count).
    pub max_cpus: u16,
}

/// The items: well-known keys, x86 keys and named files.
#[derive(Debug, Clone)]
pub struct FwCfgItems {
    /// `[generic, arch]`, each indexed by key & mask below [`MAX_ENTRY`].
    entries: [Vec<Option<Vec<u8>>>; 2],
    /// Names of the files in key order (sorted by name).
    files: Vec<String>,
}

impl FwCfgItems {
    /// The items QEMU's x86 fw_cfg serves for `machine`, with DMA, and no files yet.
    pub fn new(machine: MachineInfo) -> FwCfgItems {
        let mut items = FwCfgItems {
            entries: [
                vec![None; MAX_ENTRY as usize],
                vec![None; MAX_ENTRY as usize],
            ],
            files: Vec::new(),
        };
        items.set(FW_CFG_SIGNATURE, b"QEMU".to_vec());
        items.set(FW_CFG_UUID, vec![0; 16]);
        items.set(FW_CFG_NOGRAPHIC, 1u16.to_le_bytes().to_vec());
        items.set(FW_CFG_BOOT_MENU, 0u16.to_le_bytes().to_vec());
        items.set(
            FW_CFG_ID,
            (FW_CFG_VERSION | FW_CFG_VERSION_DMA).to_le_bytes().to_vec(),
        );
        items.set(FW_CFG_NB_CPUS, machine.boot_cpus.to_le_bytes().to_vec());
        items.set(FW_CFG_MAX_CPUS, machine.max_cpus.to_le_bytes().to_vec());
        items.set(FW_CFG_RAM_SIZE, machine.ram_size.to_le_bytes().to_vec());
        items.set(FW_CFG_IRQ0_OVERRIDE, 1u32.to_le_bytes().to_vec());
        items.rebuild_dir();
        items
    }

    fn set(&mut self, key: u16, data: Vec<u8>) {
        let arch = usize::from(key & FW_CFG_ARCH_LOCAL != 0);
        self.entries[arch][(key & ENTRY_MASK) as usize] = Some(data);
    }

    /// Adds a named file; files stay sorted by name, so keys shift as QEMU's do.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) -> Result<(), FileError> {
        if name.is_empty() || name.len() > FW_CFG_MAX_NAME {
            return Err(FileError::BadName(name.into()));
        }
        if name.contains('\0') {
            return Err(FileError::Nul(name.into()));
        }
        if self.files.iter().any(|f| f == name) {
            return Err(FileError::Duplicate(name.into()));
        }
        if self.files.len() >= FW_CFG_FILE_SLOTS as usize {
            return Err(FileError::Full(name.into()));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FileError::TooLarge(name.into()));
        }
        // Byte-wise order, as QEMU's strcmp.
        let at = self
            .files
            .partition_point(|f| f.as_bytes() < name.as_bytes());
        self.files.insert(at, name.to_string());
        let first = FW_CFG_FILE_FIRST as usize;
        let slots = &mut self.entries[0][first..];
        slots[at..].rotate_right(1);
        slots[at] = Some(data);
        self.rebuild_dir();
        Ok(())
    }

    fn rebuild_dir(&mut self) {
        let mut dir = vec![0u8; 4 + DIR_ENTRY_LEN * FW_CFG_FILE_SLOTS as usize];
        dir[..4].copy_from_slice(&(self.files.len() as u32).to_be_bytes());
        for (i, name) in self.files.iter().enumerate() {
            let key = FW_CFG_FILE_FIRST + i as u16;
            let len = self.data(key).map_or(0, <[u8]>::len) as u32;
            let e = &mut dir[4 + i * DIR_ENTRY_LEN..4 + (i + 1) * DIR_ENTRY_LEN];
            e[..4].copy_from_slice(&len.to_be_bytes());
            e[4..6].copy_from_slice(&key.to_be_bytes());
            e[8..8 + name.len()].copy_from_slice(name.as_bytes());
        }
        self.set(FW_CFG_FILE_DIR, dir);
    }

    /// The data behind `key`, if the key is in range and holds an item.
    pub fn data(&self, key: u16) -> Option<&[u8]> {
        if key == FW_CFG_INVALID {
            return None;
        }
        let arch = usize::from(key & FW_CFG_ARCH_LOCAL != 0);
        self.entries[arch]
            .get((key & ENTRY_MASK) as usize)?
            .as_deref()
    }

    /// The key of file `name`, if present.
    pub fn file_key(&self, name: &str) -> Option<u16> {
        let i = self.files.iter().position(|f| f == name)?;
        Some(FW_CFG_FILE_FIRST + i as u16)
    }
}

/// The selected item and the offset into it, shared by the port and DMA interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The selected key, [`FW_CFG_INVALID`] for none.
    pub key: u16,
    /// The next byte to read.
    pub offset: u32,
}

impl Default for Cursor {
    /// After reset QEMU has the signature selected.
    fn default() -> Cursor {
        Cursor {
            key: FW_CFG_SIGNATURE,
            offset: 0,
        }
    }
}

impl Cursor {
    /// Selects `key` (QEMU's `fw_cfg_select`): the offset restarts; a key whose
    /// number (without the arch and write bits) is past the last slot selects nothing.
    pub fn select(&mut self, key: u16) {
        self.offset = 0;
        self.key = if key & ENTRY_MASK >= MAX_ENTRY {
            FW_CFG_INVALID
        } else {
            key
        };
    }

    /// The unread rest of the selected item (empty if none or exhausted).
    pub fn remaining<'a>(&self, items: &'a FwCfgItems) -> &'a [u8] {
        items
            .data(self.key)
            .and_then(|d| d.get(self.offset as usize..))
            .unwrap_or(&[])
    }

    /// Reads one byte and advances; 0 past the end, as QEMU.
    pub fn read_byte(&mut self, items: &FwCfgItems) -> u8 {
        match self.remaining(items).first() {
            Some(&b) => {
                self.offset += 1;
                b
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> MachineInfo {
        MachineInfo {
            ram_size: 128 << 20,
            boot_cpus: 3,
            max_cpus: 3,
        }
    }

    #[test]
    fn well_known_items_have_qemus_encoding() {
        let i = FwCfgItems::new(machine());
        assert_eq!(i.data(FW_CFG_SIGNATURE), Some(&b"QEMU"[..]));
        assert_eq!(i.data(FW_CFG_ID), Some(&[3, 0, 0, 0][..]));
        assert_eq!(
            i.data(FW_CFG_RAM_SIZE),
            Some(&(128u64 << 20).to_le_bytes()[..])
        );
        assert_eq!(i.data(FW_CFG_NB_CPUS), Some(&[3, 0][..]));
        assert_eq!(i.data(FW_CFG_MAX_CPUS), Some(&[3, 0][..]));
        assert_eq!(i.data(FW_CFG_IRQ0_OVERRIDE), Some(&[1, 0, 0, 0][..]));
        // The write-channel bit is ignored; the arch bit picks the other table.
        assert_eq!(
            i.data(FW_CFG_NB_CPUS | FW_CFG_WRITE_CHANNEL),
            Some(&[3, 0][..])
        );
        assert_eq!(i.data(FW_CFG_NB_CPUS | FW_CFG_ARCH_LOCAL), None);
        assert_eq!(i.data(0x06), None);
        assert_eq!(i.data(0x3f), None);
        assert_eq!(i.data(0x40), None);
        let dir = i.data(FW_CFG_FILE_DIR).unwrap();
        assert_eq!(dir.len(), 4 + 64 * 32);
        assert!(dir.iter().all(|b| *b == 0));
    }

    #[test]
    fn files_are_sorted_by_name_with_big_endian_directory() {
        let mut i = FwCfgItems::new(machine());
        i.add_file("opt/z", b"last".to_vec()).unwrap();
        i.add_file("opt/a", vec![7; 300]).unwrap();
        i.add_file("opt/m", Vec::new()).unwrap();
        assert_eq!(i.file_key("opt/a"), Some(0x20));
        assert_eq!(i.file_key("opt/m"), Some(0x21));
        assert_eq!(i.file_key("opt/z"), Some(0x22));
        assert_eq!(i.data(0x22), Some(&b"last"[..]));
        assert_eq!(i.data(0x21), Some(&[][..]));
        let dir = i.data(FW_CFG_FILE_DIR).unwrap();
        assert_eq!(&dir[..4], &[0, 0, 0, 3]);
        let e = &dir[4..68];
        assert_eq!(&e[..4], &300u32.to_be_bytes());
        assert_eq!(&e[4..6], &[0, 0x20]);
        assert_eq!(&e[6..8], &[0, 0]);
        assert_eq!(&e[8..14], b"opt/a\0");
        assert_eq!(&dir[4 + 128 + 8..4 + 128 + 14], b"opt/z\0");
    }

    #[test]
    fn bad_names_duplicates_and_a_full_directory_are_errors() {
        let mut i = FwCfgItems::new(machine());
        assert!(matches!(i.add_file("", vec![]), Err(FileError::BadName(_))));
        let long = "o".repeat(56);
        assert!(matches!(
            i.add_file(&long, vec![]),
            Err(FileError::BadName(_))
        ));
        i.add_file(&long[..55], vec![1]).unwrap();
        assert!(matches!(i.add_file("a\0b", vec![]), Err(FileError::Nul(_))));
        assert!(matches!(
            i.add_file(&long[..55], vec![]),
            Err(FileError::Duplicate(_))
        ));
        for n in 1..32 {
            i.add_file(&format!("opt/{n:02}"), vec![n]).unwrap();
        }
        let e = i.add_file("opt/x", vec![]).unwrap_err();
        assert!(matches!(e, FileError::Full(_)), "{e}");
        // The 55-byte name fills its entry but for the NUL.
        let k = i.file_key(&long[..55]).unwrap();
        let dir = i.data(FW_CFG_FILE_DIR).unwrap();
        let e = &dir[4 + 64 * (k - 0x20) as usize..][..64];
        assert_eq!(&e[8..63], &long.as_bytes()[..55]);
        assert_eq!(e[63], 0);
    }

    #[test]
    fn cursor_reads_bytes_then_zeros_and_invalid_keys_read_zeros() {
        let i = FwCfgItems::new(machine());
        let mut c = Cursor::default();
        let sig: Vec<u8> = (0..6).map(|_| c.read_byte(&i)).collect();
        assert_eq!(sig, b"QEMU\0\0");
        assert_eq!(c.offset, 4);
        c.select(FW_CFG_NB_CPUS);
        assert_eq!((c.read_byte(&i), c.read_byte(&i)), (3, 0));
        c.select(0x1234);
        assert_eq!(c.key, FW_CFG_INVALID);
        assert_eq!(c.read_byte(&i), 0);
        c.select(0x10); // in range, no item
        assert_eq!(c.key, 0x10);
        assert_eq!(c.read_byte(&i), 0);
        assert!(c.remaining(&i).is_empty());
    }
}
