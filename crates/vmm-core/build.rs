//! Builds the built-in multiboot guests from `guests/` with the host's gcc and GNU ld,
//! and embeds them in the binary. Two families:
//! * `guests/{lib,bin}`: 32-bit, no paging (`-m32`, `ld -m elf_i386`, loaded at 1 MiB);
//! * `guests/lm/{lib,bin}`, named `lm-*`: long mode, built as kvm-unit-tests builds its
//!   x86_64 kernels (`-m64`, linked at 4 MiB, `objcopy -O elf32-i386`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CFLAGS32: &[&str] = &["-m32", "-march=i686"];
const CFLAGS64: &[&str] = &["-m64", "-mno-red-zone", "-mcmodel=small"];
const CFLAGS: &[&str] = &[
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-mgeneral-regs-only",
    // GCC 12 treats fixed low addresses (the EBDA pointer at 0x40E) as null + offset.
    "--param=min-pagesize=0",
    "-nostdlib",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
];

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (gcc and binutils are needed)"));
    assert!(status.success(), "{cmd:?} failed with {status}");
}

fn compile(src: &Path, out_dir: &Path, arch: &[&str]) -> PathBuf {
    let name = src.file_name().unwrap().to_string_lossy().replace('.', "_");
    let obj = out_dir.join(format!("{name}.o"));
    run(Command::new("gcc")
        .args(arch)
        .args(CFLAGS)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj));
    obj
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("c" | "S")))
        .collect();
    v.sort();
    v
}

/// One family of guests: `<dir>/lib` linked into each of `<dir>/bin/*`.
struct Family {
    dir: &'static str,
    prefix: &'static str,
    arch: &'static [&'static str],
    ld: &'static [&'static str],
    /// Converts the linked ELF64 to ELF32 (multiboot v1 loads ELF32 only).
    to_elf32: bool,
}

const FAMILIES: &[Family] = &[
    Family {
        dir: "",
        prefix: "",
        arch: CFLAGS32,
        ld: &["-m", "elf_i386"],
        to_elf32: false,
    },
    Family {
        dir: "lm",
        prefix: "lm-",
        arch: CFLAGS64,
        ld: &["-m", "elf_x86_64", "-z", "max-page-size=0x1000"],
        to_elf32: true,
    },
];

fn build_family(f: &Family, root: &Path, out: &Path, table: &mut String) {
    let root = root.join(f.dir);
    let out = out.join(if f.dir.is_empty() { "base" } else { f.dir });
    fs::create_dir_all(&out).unwrap();
    let lib_objs: Vec<PathBuf> = sources(&root.join("lib"))
        .iter()
        .map(|s| compile(s, &out, f.arch))
        .collect();
    for src in sources(&root.join("bin")) {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let name = stem.replace('_', "-");
        let name = name.strip_prefix(f.prefix).unwrap_or(&name);
        let name = format!("{}{name}", f.prefix);
        let obj = compile(&src, &out, f.arch);
        let elf = out.join(format!("{name}.elf"));
        let linked = out.join(format!("{name}.linked"));
        run(Command::new("ld")
            .args(f.ld)
            .args(["-nostdlib", "-static", "-T"])
            .arg(root.join("link.ld"))
            .arg("-o")
            .arg(if f.to_elf32 { &linked } else { &elf })
            .args(&lib_objs)
            .arg(&obj));
        if f.to_elf32 {
            run(Command::new("objcopy")
                .args(["-O", "elf32-i386"])
                .arg(&linked)
                .arg(&elf));
        }
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            elf.display().to_string()
        ));
    }
}

/// Links `kvmbus` with lld, for less resident memory (the launch bench's peak RSS):
/// * the functions a run executes (hot-text.txt, made by scripts/hot-text.sh) go
///   together at the start of .text: the kernel maps code 64 KiB around every page
///   touched, so packed they cost a dozen windows instead of about forty. Names the
///   binary no longer has are skipped (the code still links, only less packed);
/// * relative relocations are packed (DT_RELR, glibc 2.36+): the loader reads 5 KB of
///   them instead of 380 KB, and the binary stays position-independent.
fn link_for_small_rss() {
    let list = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("hot-text.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rustc-link-arg-bin=kvmbus=-fuse-ld=lld");
    println!("cargo:rustc-link-arg-bin=kvmbus=-Wl,-z,pack-relative-relocs");
    println!(
        "cargo:rustc-link-arg-bin=kvmbus=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
        list.display()
    );
}

fn main() {
    link_for_small_rss();
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../guests");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("guests");
    fs::create_dir_all(&out).unwrap();
    println!("cargo:rerun-if-changed={}", root.display());

    let mut table = String::from("/// Built-in guests: (name, multiboot ELF image).\n");
    table.push_str("pub const BUILTIN_GUESTS: &[(&str, &[u8])] = &[\n");
    for f in FAMILIES {
        build_family(f, &root, &out, &mut table);
    }
    table.push_str("];\n");
    fs::write(out.join("builtin.rs"), table).unwrap();
}
