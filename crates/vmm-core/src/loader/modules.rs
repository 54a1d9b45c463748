//! Multiboot modules, laid out as QEMU's `hw/i386/multiboot.c` lays out `-initrd "a arg,b"`:
//! after the kernel, page-aligned, comes the module list (16 bytes per module:
//! `mod_start`, `mod_end`, `cmdline`, reserved) followed by the modules' command lines;
//! then each module at the next page boundary. A module's command line is its path,
//! then a space and its arguments if it has any, as QEMU passes the whole `-initrd`
//! piece. Kernels loaded below 1 MiB get their modules from 1 MiB, so nothing lands in
//! the EBDA, VGA or BIOS areas.

use vm_memory::{Bytes, GuestAddress};

use super::LoadError;

const PAGE: u64 = 4096;
const MOD_ENTRY: u64 = 16;
const LOW_END: u64 = 0x10_0000;

/// One module to load.
#[derive(Debug, Clone, Copy)]
pub struct Module<'a> {
    /// The path as configured (the first word of the module's command line).
    pub path: &'a str,
    /// The arguments after the path ("" for none).
    pub args: &'a str,
    /// The bytes.
    pub data: &'a [u8],
}

impl Module<'_> {
    /// The command line the kernel sees: `path` or `path args`.
    pub fn cmdline(&self) -> String {
        if self.args.is_empty() {
            self.path.to_string()
        } else {
            format!("{} {}", self.path, self.args)
        }
    }
}

/// Where the modules went: what the multiboot information points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModules {
    /// Address of the module list (`mods_addr`).
    pub list_addr: u64,
    /// (start, end) of each module.
    pub ranges: Vec<(u64, u64)>,
}

fn page_align(v: u64) -> Option<u64> {
    v.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}

/// Loads `modules` after the kernel ending at `kernel_end` in `mem` (`mem_size` bytes of
/// RAM from 0). A module that does not fit is [`LoadError::ModuleOutsideMemory`] with
/// its index, so the caller can name its config key.
pub fn load_modules<M: Bytes<GuestAddress>>(
    mem: &M,
    mem_size: u64,
    kernel_end: u64,
    modules: &[Module],
) -> Result<LoadedModules, LoadError> {
    let too_big = |index: usize, start: u64, len: u64| LoadError::ModuleOutsideMemory {
        index,
        path: modules[index].path.to_string(),
        start,
        end: start.saturating_add(len),
        mem: mem_size,
    };
    let list_addr = page_align(kernel_end.max(LOW_END)).ok_or_else(|| too_big(0, kernel_end, 0))?;
    let cmdlines: Vec<String> = modules.iter().map(Module::cmdline).collect();
    let info_len =
        MOD_ENTRY * modules.len() as u64 + cmdlines.iter().map(|c| c.len() as u64 + 1).sum::<u64>();
    let mut next = page_align(list_addr + info_len).unwrap_or(u64::MAX);
    let mut list = Vec::with_capacity(info_len as usize);
    let mut strings = Vec::new();
    let mut ranges = Vec::new();
    let strings_addr = list_addr + MOD_ENTRY * modules.len() as u64;
    if !modules.is_empty() && list_addr + info_len > mem_size {
        return Err(too_big(0, list_addr, info_len));
    }
    for (i, m) in modules.iter().enumerate() {
        let len = m.data.len() as u64;
        let end = next
            .checked_add(len)
            .filter(|e| *e <= mem_size && *e <= u32::MAX as u64);
        let Some(end) = end else {
            return Err(too_big(i, next, len));
        };
        mem.write_slice(m.data, GuestAddress(next))
            .map_err(|_| too_big(i, next, len))?;
        let cmdline_addr = strings_addr + strings.len() as u64;
        strings.extend_from_slice(cmdlines[i].as_bytes());
        strings.push(0);
        for v in [next, end, cmdline_addr, 0] {
            list.extend_from_slice(&(v as u32).to_le_bytes());
        }
        ranges.push((next, end));
        next = page_align(end).unwrap_or(u64::MAX);
    }
    list.extend_from_slice(&strings);
    if !list.is_empty() {
        mem.write_slice(&list, GuestAddress(list_addr))
            .map_err(|_| too_big(0, list_addr, info_len))?;
    }
    Ok(LoadedModules { list_addr, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn mem(size: usize) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
    }

    fn u32_at(m: &GuestMemoryMmap, a: u64) -> u64 {
        m.read_obj::<u32>(GuestAddress(a)).unwrap() as u64
    }

    fn cstr(m: &GuestMemoryMmap, a: u64) -> String {
        let mut s = Vec::new();
        for i in 0.. {
            let b: u8 = m.read_obj(GuestAddress(a + i)).unwrap();
            if b == 0 {
                break;
            }
            s.push(b);
        }
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn modules_follow_the_kernel_page_aligned_with_their_command_lines() {
        let m = mem(4 << 20);
        let env = b"NR_CPUS=2\nMEMSIZE=64\n";
        let big = vec![0x5a; 5000];
        let mods = [
            Module {
                path: "env",
                args: "",
                data: env,
            },
            Module {
                path: "/tmp/b.bin",
                args: "x=1 y",
                data: &big,
            },
        ];
        let l = load_modules(&m, 4 << 20, 0x10_2345, &mods).unwrap();
        assert_eq!(l.list_addr, 0x10_3000);
        // The list and the strings fit one page; the first module starts on the next.
        assert_eq!(l.ranges[0], (0x10_4000, 0x10_4000 + env.len() as u64));
        assert_eq!(l.ranges[1], (0x10_5000, 0x10_5000 + 5000));
        for (i, &(s, e)) in l.ranges.iter().enumerate() {
            let entry = l.list_addr + 16 * i as u64;
            assert_eq!((u32_at(&m, entry), u32_at(&m, entry + 4)), (s, e));
            assert_eq!(u32_at(&m, entry + 12), 0);
            assert_eq!(s % 4096, 0);
        }
        assert_eq!(cstr(&m, u32_at(&m, l.list_addr + 8)), "env");
        assert_eq!(cstr(&m, u32_at(&m, l.list_addr + 24)), "/tmp/b.bin x=1 y");
        let mut got = vec![0u8; env.len()];
        m.read_slice(&mut got, GuestAddress(0x10_4000)).unwrap();
        assert_eq!(got, env);
        let last: u8 = m.read_obj(GuestAddress(0x10_5000 + 4999)).unwrap();
        assert_eq!(last, 0x5a);
    }

    #[test]
    fn a_low_kernel_gets_its_modules_from_one_mib_and_none_is_fine() {
        let m = mem(2 << 20);
        let l = load_modules(&m, 2 << 20, 0x9000, &[]).unwrap();
        assert!(l.ranges.is_empty());
        let one = [Module {
            path: "a",
            args: "",
            data: b"x",
        }];
        let l = load_modules(&m, 2 << 20, 0x9000, &one).unwrap();
        assert_eq!(l.list_addr, 0x10_0000);
        assert_eq!(l.ranges, vec![(0x10_1000, 0x10_1001)]);
    }

    #[test]
    fn a_module_beyond_ram_names_its_index() {
        let m = mem(2 << 20);
        let small = vec![1u8; 100];
        let huge = vec![2u8; 1 << 20];
        let mods = [
            Module {
                path: "ok",
                args: "",
                data: &small,
            },
            Module {
                path: "huge",
                args: "",
                data: &huge,
            },
        ];
        let e = load_modules(&m, 2 << 20, 0x10_8000, &mods).unwrap_err();
        match &e {
            LoadError::ModuleOutsideMemory { index, path, .. } => {
                assert_eq!((*index, path.as_str()), (1, "huge"))
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("memory_mib"), "{e}");
        // A kernel ending at the top of RAM leaves no room for even the list.
        let e = load_modules(&m, 2 << 20, 2 << 20, &mods[..1]).unwrap_err();
        assert!(matches!(e, LoadError::ModuleOutsideMemory { index: 0, .. }));
    }
}
