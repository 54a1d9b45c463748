//! The typed form of `[[fw_cfg]]` (QEMU's `-fw_cfg name=...,file=...|string=...`) and the
//! checks QEMU applies to it (`parse_fw_cfg` in `softmmu/vl.c`).

use std::path::PathBuf;

use super::items::{FileError, FwCfgItems, MachineInfo, FW_CFG_MAX_NAME};

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgSource {
    /// A host file, read when the VM is built.
    File(PathBuf),
    /// The string's bytes, without a NUL (as QEMU's `string=`).
    String(String),
}

/// One `[[fw_cfg]]` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgFile {
    /// The name in the file directory.
    pub name: String,
    /// The contents.
    pub source: FwCfgSource,
}

impl FwCfgFile {
    /// The contents.
    pub fn contents(&self) -> std::io::Result<Vec<u8>> {
        match &self.source {
            FwCfgSource::File(p) => std::fs::read(p),
            FwCfgSource::String(s) => Ok(s.as_bytes().to_vec()),
        }
    }
}

/// Checks a file name as QEMU does: 1 to 55 bytes, no NUL. Returns QEMU's warning when
/// the name lacks the `opt/` prefix that externally provided names should have.
pub fn check_name(name: &str) -> Result<Option<String>, FileError> {
    if name.is_empty() || name.len() > FW_CFG_MAX_NAME {
        return Err(FileError::BadName(name.into()));
    }
    if name.contains('\0') {
        return Err(FileError::Nul(name.into()));
    }
    Ok((!name.starts_with("opt/")).then(|| {
        format!("fw_cfg file '{name}': externally provided fw_cfg item names should be prefixed with \"opt/\"")
    }))
}

/// The items for `machine` with `files` added in order; an error names the index of
/// the file that failed and why.
pub fn build_items(
    machine: MachineInfo,
    files: &[FwCfgFile],
) -> Result<FwCfgItems, (usize, String)> {
    let mut items = FwCfgItems::new(machine);
    for (i, f) in files.iter().enumerate() {
        let data = f.contents().map_err(|e| {
            let what = match &f.source {
                FwCfgSource::File(p) => format!("cannot read {}: {e}", p.display()),
                FwCfgSource::String(_) => e.to_string(),
            };
            (i, what)
        })?;
        items
            .add_file(&f.name, data)
            .map_err(|e| (i, e.to_string()))?;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> MachineInfo {
        MachineInfo {
            ram_size: 1 << 20,
            boot_cpus: 1,
            max_cpus: 1,
        }
    }

    #[test]
    fn names_are_checked_as_qemu_does() {
        assert_eq!(check_name("opt/org.x/y"), Ok(None));
        assert!(check_name("etc/x").unwrap().unwrap().contains("opt/"));
        assert!(check_name("").is_err());
        assert!(check_name(&"o".repeat(56)).is_err());
        assert!(check_name(&format!("opt/{}", "o".repeat(51))).is_ok());
        assert!(check_name("opt/a\0").is_err());
    }

    #[test]
    fn files_and_strings_become_items_and_failures_name_their_index() {
        let dir = std::env::temp_dir().join(format!("kvmbus-fwcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("blob");
        std::fs::write(&path, [1u8, 2, 3]).unwrap();
        let files = vec![
            FwCfgFile {
                name: "opt/s".into(),
                source: FwCfgSource::String("hi".into()),
            },
            FwCfgFile {
                name: "opt/f".into(),
                source: FwCfgSource::File(path.clone()),
            },
        ];
        let items = build_items(machine(), &files).unwrap();
        assert_eq!(
            items.data(items.file_key("opt/s").unwrap()),
            Some(&b"hi"[..])
        );
        assert_eq!(
            items.data(items.file_key("opt/f").unwrap()),
            Some(&[1, 2, 3][..])
        );
        let mut bad = files.clone();
        bad.push(FwCfgFile {
            name: "opt/g".into(),
            source: FwCfgSource::File(dir.join("missing")),
        });
        let (i, what) = build_items(machine(), &bad).unwrap_err();
        assert_eq!(i, 2);
        assert!(what.contains("missing"), "{what}");
        bad[2] = files[0].clone();
        let (i, what) = build_items(machine(), &bad).unwrap_err();
        assert_eq!(i, 2);
        assert!(what.contains("duplicate"), "{what}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
