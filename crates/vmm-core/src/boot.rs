//! Loading the guest: the image the configuration names, the multiboot information and
//! the MP table. `kvmbus check` loads into scratch memory with the same function `run`
//! uses, so an image that `check` accepts loads at `run`.

use vm_memory::GuestMemoryMmap;

use crate::arch;
use crate::config::{BootKind, Config, ConfigError};
use crate::loader::{self, LoadError};
use crate::{Error, Result};

fn config_err(config: &Config, (line, column): (usize, usize), message: String) -> Error {
    Error::Config(ConfigError {
        file: config.path.clone(),
        line,
        column,
        message,
    })
}

/// The image's name as the kernel's command line starts with it: the path, or
/// `builtin:<name>`.
pub fn image_name(kind: BootKind, image: &str) -> String {
    match kind {
        BootKind::Builtin => format!("builtin:{image}"),
        BootKind::Multiboot => image.to_string(),
    }
}

/// The image bytes the configuration names.
pub fn image_bytes(config: &Config) -> Result<(String, Vec<u8>)> {
    match config.boot.kind {
        BootKind::Builtin => {
            let img = crate::builtin::image(&config.boot.image).unwrap_or_default();
            Ok((
                image_name(BootKind::Builtin, &config.boot.image),
                img.to_vec(),
            ))
        }
        BootKind::Multiboot => {
            let path = &config.boot.image;
            // Only a regular file no larger than guest memory (not a FIFO, not /dev/zero).
            let bytes = loader::read_image(std::path::Path::new(path), config.memory_mib << 20)
                .map_err(|e| {
                    config_err(
                        config,
                        config.places.image,
                        format!("key 'image' in [boot]: {e}"),
                    )
                })?;
            Ok((path.clone(), bytes))
        }
    }
}

/// Reads `[boot] modules` and loads them after the kernel ending at `kernel_end`; a
/// module that cannot be read or does not fit is reported against its table.
fn load_modules(
    config: &Config,
    mem: &GuestMemoryMmap,
    kernel_end: u64,
) -> Result<loader::LoadedModules> {
    let mut data = Vec::with_capacity(config.boot.modules.len());
    for m in &config.boot.modules {
        let bytes = std::fs::read(&m.path).map_err(|e| {
            config_err(
                config,
                m.place,
                format!("key 'path' in [boot] modules: cannot read {}: {e}", m.path),
            )
        })?;
        data.push(bytes);
    }
    let modules: Vec<loader::Module> = config
        .boot
        .modules
        .iter()
        .zip(&data)
        .map(|(m, d)| loader::Module {
            path: &m.path,
            args: &m.cmdline,
            data: d,
        })
        .collect();
    loader::load_modules(mem, config.memory_mib << 20, kernel_end, &modules).map_err(|e| {
        let place = match &e {
            LoadError::ModuleOutsideMemory { index, .. } => config.boot.modules[*index].place,
            _ => config.places.image,
        };
        config_err(config, place, format!("[boot] modules: {e}"))
    })
}

/// Loads the image, its modules, the boot information and MP table into `mem`. A
/// segment beyond memory is reported against `memory_mib`, a malformed image against
/// `image`, a module against its table in `[boot] modules`.
pub fn load_guest(config: &Config, mem: &GuestMemoryMmap) -> Result<loader::LoadedImage> {
    let (name, bytes) = image_bytes(config)?;
    let size = config.memory_mib << 20;
    // Guest RAM is a fresh memfd: nothing was written to it before the image.
    let fresh = loader::MemoryBefore::Fresh;
    let loaded =
        loader::load_multiboot_into(&name, &bytes, mem, size, fresh).map_err(|e| match e {
            LoadError::OutsideMemory { .. } => config_err(
                config,
                config.places.memory_mib,
                format!("key 'memory_mib' in [vm] is too small for the image: {e}"),
            ),
            e => config_err(
                config,
                config.places.image,
                format!("key 'image' in [boot]: {e}"),
            ),
        })?;
    let modules = load_modules(config, mem, loaded.span.1)?;
    loader::write_multiboot_info(
        mem,
        &loader::BootInfo {
            mem_size: size,
            cmdline: &config.boot.cmdline,
        },
        &name,
        &modules,
    )?;
    arch::write_mptable(mem, config.vcpus)?;
    Ok(loaded)
}
