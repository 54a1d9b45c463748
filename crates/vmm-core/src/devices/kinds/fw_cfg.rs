//! fw_cfg, always present at ports 0x510..0x51b (QEMU's x86 layout), with the files of
//! `[[fw_cfg]]` tables: `name` and exactly one of `file` (relative to the configuration)
//! or `string`, as QEMU's `-fw_cfg name=...,file=...|string=...`.

use std::sync::Arc;

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::fw_cfg::{
    build_items, check_name, FwCfg, FwCfgFile, FwCfgSource, MachineInfo, FW_CFG_FILE_SLOTS,
    FW_CFG_PORT_LEN, FW_CFG_PORT_SEL,
};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Spanned<String>,
    file: Option<Spanned<String>>,
    string: Option<Spanned<String>>,
}

/// The device and its files.
#[derive(Debug, Clone, Default)]
pub struct FwCfgSpec {
    /// The `[[fw_cfg]]` files in file order.
    pub files: Vec<FwCfgFile>,
}

fn file(cx: &ParseCx, raw: RawFile) -> std::result::Result<FwCfgFile, ConfigError> {
    let source = match (raw.file, raw.string) {
        (Some(f), None) => {
            let path = cx.path(f.get_ref());
            let ok = f
                .get_ref()
                .is_empty()
                .then(|| "is empty".to_string())
                .or_else(|| match std::fs::metadata(&path) {
                    Err(e) => Some(format!("cannot read {}: {e}", path.display())),
                    Ok(m) if !m.is_file() => Some(format!("{} is not a file", path.display())),
                    Ok(m) if m.len() > u32::MAX as u64 => {
                        Some(format!("{} is larger than 4 GiB", path.display()))
                    }
                    Ok(_) => None,
                });
            if let Some(why) = ok {
                return cx.err(f.span(), format!("key 'file' in [[fw_cfg]] {why}"));
            }
            FwCfgSource::File(path)
        }
        (None, Some(s)) if s.get_ref().is_empty() => {
            return cx.err(
                s.span(),
                "key 'string' in [[fw_cfg]] is empty (QEMU cannot add it either)".into(),
            )
        }
        (None, Some(s)) => FwCfgSource::String(s.into_inner()),
        _ => {
            return cx.err(
                raw.name.span(),
                "a [[fw_cfg]] table needs exactly one of 'file' and 'string'".into(),
            )
        }
    };
    Ok(FwCfgFile {
        name: raw.name.into_inner(),
        source,
    })
}

/// Parses the `[[fw_cfg]]` tables (none: the device with no files).
pub fn parse(
    cx: &ParseCx,
    v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    let mut spec = FwCfgSpec::default();
    if let Some(v) = v {
        let span = v.span();
        let DeValue::Array(tables) = v.into_inner() else {
            return cx.err(
                span,
                "key 'fw_cfg' must be an array of tables: [[fw_cfg]]".into(),
            );
        };
        for t in tables {
            let raw: RawFile = cx.deserialize(t)?;
            let name_span = raw.name.span();
            let name = raw.name.get_ref().clone();
            match check_name(&name) {
                Err(e) => return cx.err(name_span, format!("key 'name' in [[fw_cfg]]: {e}")),
                Ok(Some(warning)) => log::warn!("{warning}"),
                Ok(None) => {}
            }
            if spec.files.iter().any(|f| f.name == name) {
                return cx.err(
                    name_span,
                    format!("key 'name' in [[fw_cfg]]: duplicate fw_cfg file name: {name}"),
                );
            }
            if spec.files.len() >= FW_CFG_FILE_SLOTS as usize {
                return cx.err(
                    name_span,
                    format!(
                        "key 'name' in [[fw_cfg]]: fw_cfg has room for {FW_CFG_FILE_SLOTS} files"
                    ),
                );
            }
            spec.files.push(file(cx, raw)?);
        }
    }
    Ok(Some(Arc::new(spec)))
}

impl PlatformSpec for FwCfgSpec {
    fn name(&self) -> &'static str {
        "fw_cfg"
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        let machine = MachineInfo {
            ram_size: w.config.memory_mib << 20,
            boot_cpus: w.config.vcpus as u16,
            // APIC IDs are 0..vcpus, so the highest + 1 is the count.
            max_cpus: w.config.vcpus as u16,
        };
        let items = build_items(machine, &self.files).map_err(|(i, what)| Error::Device {
            device: format!("fw_cfg file {}", self.files[i].name),
            detail: what,
        })?;
        w.pio.insert(
            FW_CFG_PORT_SEL as u64,
            FW_CFG_PORT_LEN,
            "fw_cfg",
            Arc::new(FwCfg::new(items, w.ram.memory.clone())),
        )
    }
}
