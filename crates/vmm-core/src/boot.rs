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

/// The image bytes the configuration names.
pub fn image_bytes(config: &Config) -> Result<(String, Vec<u8>)> {
    match config.boot.kind {
        BootKind::Builtin => {
            let img = crate::builtin::image(&config.boot.image).unwrap_or_default();
            Ok((format!("builtin:{}", config.boot.image), img.to_vec()))
        }
        BootKind::Multiboot => {
            let path = &config.boot.image;
            let bytes = std::fs::read(path).map_err(|e| {
                config_err(
                    config,
                    config.places.image,
                    format!("key 'image' in [boot]: cannot read {path}: {e}"),
                )
            })?;
            Ok((path.clone(), bytes))
        }
    }
}

/// Loads the image, boot information and MP table into `mem`. A segment beyond memory
/// is reported against `memory_mib`, a malformed image against `image`.
pub fn load_guest(config: &Config, mem: &GuestMemoryMmap) -> Result<loader::LoadedImage> {
    let (name, bytes) = image_bytes(config)?;
    let size = config.memory_mib << 20;
    let loaded = loader::load_multiboot(&name, &bytes, mem, size).map_err(|e| match e {
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
    loader::write_boot_info(
        mem,
        &loader::BootInfo {
            mem_size: size,
            cmdline: &config.boot.cmdline,
        },
    )?;
    arch::write_mptable(mem, config.vcpus)?;
    Ok(loaded)
}
