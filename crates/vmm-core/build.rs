//! Builds the built-in multiboot guests from `guests/` with the host's gcc (`-m32
//! -ffreestanding`) and GNU ld (`-m elf_i386`), and embeds them in the binary.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CFLAGS: &[&str] = &[
    "-m32",
    "-march=i686",
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

fn compile(src: &Path, out_dir: &Path) -> PathBuf {
    let name = src.file_name().unwrap().to_string_lossy().replace('.', "_");
    let obj = out_dir.join(format!("{name}.o"));
    run(Command::new("gcc")
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

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../guests");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("guests");
    fs::create_dir_all(&out).unwrap();
    println!("cargo:rerun-if-changed={}", root.display());

    let lib_objs: Vec<PathBuf> = sources(&root.join("lib"))
        .iter()
        .map(|s| compile(s, &out))
        .collect();
    let mut table = String::from("/// Built-in guests: (name, multiboot ELF image).\n");
    table.push_str("pub const BUILTIN_GUESTS: &[(&str, &[u8])] = &[\n");
    for src in sources(&root.join("bin")) {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let name = stem.replace('_', "-");
        let obj = compile(&src, &out);
        let elf = out.join(format!("{name}.elf"));
        run(Command::new("ld")
            .args(["-m", "elf_i386", "-nostdlib", "-static", "-T"])
            .arg(root.join("link.ld"))
            .arg("-o")
            .arg(&elf)
            .args(&lib_objs)
            .arg(&obj));
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            elf.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out.join("builtin.rs"), table).unwrap();
}
