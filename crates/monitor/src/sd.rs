//! Prometheus service discovery: one `<vm>.json` per running VM in a directory, in the
//! `file_sd_configs` format, and the same target groups gathered for `http_sd_configs`.
//!
//! A running VM holds an [`SdRegistration`]; the file is written atomically (a hidden
//! temporary file, then `rename`) so Prometheus never reads half a file, and it is removed
//! when the registration is dropped or [`SdRegistration::remove`]d (signal and fault exit
//! paths call that explicitly, since they may not unwind).
//!
//! ```no_run
//! let dir = std::path::Path::new("/run/kvmbus/sd");
//! let reg = monitor::SdRegistration::create(dir, "demo", "10.0.0.5:9464",
//!     &[("vcpus", "2")])?;
//! // ... the VM runs ...
//! reg.remove()?; // or just drop it
//! # Ok::<(), monitor::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest SD file read back (a target group is a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;
/// Files read at most per listing.
const MAX_FILES: usize = 10_000;

/// One `file_sd`/`http_sd` target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    /// `host:port` of metrics endpoints.
    pub targets: Vec<String>,
    /// Labels Prometheus attaches to every series scraped from these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A VM's SD file; removed on drop or by [`SdRegistration::remove`].
#[derive(Debug)]
pub struct SdRegistration {
    path: PathBuf,
    /// What was written, to remove only our own file (a newer VM of the same name may
    /// have replaced it); `None` once removed.
    written: Mutex<Option<Vec<u8>>>,
}

impl SdRegistration {
    /// Writes `<dir>/<vm>.json` with one target group: `target` and labels `vm`,
    /// `kvmbus_version` and `labels`. `vm` must be usable as a file name.
    pub fn create(
        dir: &Path,
        vm: &str,
        target: &str,
        labels: &[(&str, &str)],
    ) -> Result<SdRegistration> {
        check_vm_name(vm)?;
        let sd = |what: &str, source| Error::Sd {
            path: dir.join(format!("{vm}.json")),
            what: what.to_owned(),
            source,
        };
        if target.is_empty() || target.contains(char::is_whitespace) || !target.contains(':') {
            return Err(sd(
                &format!("target {target:?} is not host:port"),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
        let mut map = BTreeMap::new();
        map.insert("vm".to_owned(), vm.to_owned());
        map.insert(
            "kvmbus_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
        for (k, v) in labels {
            if !valid_label_name(k) {
                return Err(sd(
                    &format!("bad label name {k:?}"),
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                ));
            }
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let groups = [TargetGroup {
            targets: vec![target.to_owned()],
            labels: map,
        }];
        let mut body = serde_json::to_vec_pretty(&groups).expect("target groups serialise");
        body.push(b'\n');
        let path = dir.join(format!("{vm}.json"));
        write_atomic(dir, vm, &body).map_err(|e| sd("cannot write", e))?;
        Ok(SdRegistration {
            path,
            written: Mutex::new(Some(body)),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file now (idempotent). A file another VM of the same name has written
    /// since is left alone; a file already gone is not an error.
    pub fn remove(&self) -> Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ours) = written.take() else {
            return Ok(());
        };
        match fs::read(&self.path) {
            Ok(now) if now != ours => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            _ => {}
        }
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Sd {
                path: self.path.clone(),
                what: "cannot remove".into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for SdRegistration {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            log::warn!("{}", crate::source::error_chain(&e));
        }
    }
}

/// Writes `body` to a hidden temporary file in `dir` (not matching `*.json`, so
/// Prometheus ignores it), syncs it and renames it over `<vm>.json`.
fn write_atomic(dir: &Path, vm: &str, body: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{vm}.json.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(format!("{vm}.json")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn check_vm_name(vm: &str) -> Result<()> {
    let ok = !vm.is_empty()
        && vm.len() <= 200
        && !vm.starts_with('.')
        && vm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::Sd {
            path: PathBuf::from(format!("{vm}.json")),
            what: format!(
                "VM name {vm:?} cannot name an SD file (letters, digits, - _ . @ + only)"
            ),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })
    }
}

fn valid_label_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with("__")
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `host:port` Prometheus should scrape for a metrics listener bound to `addr`: the
/// address itself, or this host's name when bound to every address (`0.0.0.0`, `::`).
pub fn sd_target(addr: std::net::SocketAddr) -> String {
    if !addr.ip().is_unspecified() {
        return addr.to_string();
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`, which outlives
    // the call; the result is checked and the name is read up to its NUL only.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let host = if name.is_empty() {
        "localhost".into()
    } else {
        name
    };
    format!("{host}:{}", addr.port())
}

/// Every target group of the `*.json` files in `dir`, sorted by file name. Unreadable or
/// malformed files are skipped (and logged); a missing directory lists nothing.
pub fn read_targets(dir: &Path) -> Vec<TargetGroup> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
        })
        .take(MAX_FILES)
        .collect();
    files.sort();
    let mut out = Vec::new();
    for p in files {
        match read_file(&p) {
            Ok(groups) => out.extend(groups),
            Err(e) => log::warn!("sd: skipping {}: {e}", p.display()),
        }
    }
    out
}

fn read_file(p: &Path) -> std::result::Result<Vec<TargetGroup>, String> {
    let meta = fs::metadata(p).map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err("not a regular file of at most 1 MiB".into());
    }
    let text = fs::read(p).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

/// The `http_sd` body for `dir`: a JSON array of every target group (`[]` when none).
pub fn targets_json(dir: &Path) -> String {
    serde_json::to_string(&read_targets(dir)).expect("target groups serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("monitor-sd-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_file_sd_format_and_removes_on_drop() {
        let d = scratch("drop");
        let reg = SdRegistration::create(&d, "web-1", "127.0.0.1:9464", &[("vcpus", "2")]).unwrap();
        assert_eq!(names(&d), vec!["web-1.json"], "no temporary file left");
        let v: serde_json::Value = serde_json::from_slice(&fs::read(reg.path()).unwrap()).unwrap();
        assert_eq!(v[0]["targets"][0], "127.0.0.1:9464");
        assert_eq!(v[0]["labels"]["vm"], "web-1");
        assert_eq!(v[0]["labels"]["vcpus"], "2");
        assert_eq!(v[0]["labels"]["kvmbus_version"], env!("CARGO_PKG_VERSION"));
        drop(reg);
        assert!(names(&d).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn explicit_remove_is_idempotent_and_spares_a_newer_file() {
        let d = scratch("remove");
        let a = SdRegistration::create(&d, "vm", "127.0.0.1:1", &[]).unwrap();
        a.remove().unwrap();
        a.remove().unwrap();
        assert!(names(&d).is_empty());
        let old = SdRegistration::create(&d, "vm", "127.0.0.1:1", &[]).unwrap();
        let new = SdRegistration::create(&d, "vm", "127.0.0.1:2", &[]).unwrap();
        drop(old);
        assert_eq!(names(&d), vec!["vm.json"], "the newer VM's file stays");
        assert_eq!(read_targets(&d)[0].targets, vec!["127.0.0.1:2"]);
        drop(new);
        assert!(names(&d).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replaces_atomically() {
        // A reader polling while the file is rewritten always sees a whole document.
        let d = scratch("atomic");
        let _first = SdRegistration::create(&d, "vm", "127.0.0.1:1", &[]).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (d, stop) = (d.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let text = fs::read(d.join("vm.json")).unwrap();
                    let g: Vec<TargetGroup> = serde_json::from_slice(&text).unwrap();
                    assert_eq!(g.len(), 1);
                    reads += 1;
                }
                reads
            })
        };
        let mut regs = Vec::new();
        for port in 2..200 {
            let label = "x".repeat(port * 10);
            regs.push(
                SdRegistration::create(&d, "vm", &format!("127.0.0.1:{port}"), &[("pad", &label)])
                    .unwrap(),
            );
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(reader.join().unwrap() > 0);
        drop(regs);
        assert!(names(&d).is_empty(), "the last writer removed its file");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rejects_bad_names_targets_and_dirs() {
        let d = scratch("bad");
        for vm in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(
                SdRegistration::create(&d, vm, "h:1", &[]).is_err(),
                "{vm:?}"
            );
        }
        assert!(SdRegistration::create(&d, "vm", "nohostport", &[]).is_err());
        assert!(SdRegistration::create(&d, "vm", "h:1", &[("__x", "y")]).is_err());
        let err = SdRegistration::create(&d.join("missing"), "vm", "h:1", &[]).unwrap_err();
        assert!(err.to_string().contains("missing/vm.json"), "{err}");
        assert!(names(&d).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn targets_name_the_host_for_wildcard_listeners() {
        assert_eq!(
            sd_target("127.0.0.1:9464".parse().unwrap()),
            "127.0.0.1:9464"
        );
        assert_eq!(sd_target("[::1]:9464".parse().unwrap()), "[::1]:9464");
        let any = sd_target("0.0.0.0:9464".parse().unwrap());
        assert!(
            any.ends_with(":9464") && !any.starts_with("0.0.0.0"),
            "{any}"
        );
    }

    #[test]
    fn lists_every_group_and_skips_garbage() {
        let d = scratch("list");
        assert_eq!(targets_json(&d), "[]");
        assert_eq!(targets_json(&d.join("missing")), "[]");
        let _a = SdRegistration::create(&d, "a", "127.0.0.1:1", &[]).unwrap();
        let _b = SdRegistration::create(&d, "b", "127.0.0.1:2", &[]).unwrap();
        fs::write(d.join("junk.json"), "{not json").unwrap();
        fs::write(d.join("notes.txt"), "[]").unwrap();
        fs::write(d.join(".c.json.1.tmp"), "[]").unwrap();
        let groups = read_targets(&d);
        let targets: Vec<&str> = groups.iter().map(|g| g.targets[0].as_str()).collect();
        assert_eq!(targets, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        let v: serde_json::Value = serde_json::from_str(&targets_json(&d)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        fs::remove_dir_all(&d).unwrap();
    }
}
