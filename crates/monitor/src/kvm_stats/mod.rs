//! KVM's own statistics, read from the binary stats fd (`KVM_GET_STATS_FD`) of the VM
//! and of every vCPU, and published through `metrics` beside the userspace counts.
//!
//! Naming (see `docs/metrics.md`): a stat `<name>` becomes
//! `kvmbus_kvm_vcpu_<name>` with labels `vm`, `vcpu`, or `kvmbus_kvm_vm_<name>` with `vm`:
//! * cumulative counts: counter `..._<name>_total`, set to KVM's absolute value;
//! * cumulative or instant times (unit seconds): gauge in seconds, a trailing `_ns`/`_us`
//!   replaced by `_seconds` (a `metrics` counter holds only integers);
//! * instant and peak values, booleans: gauge, scaled to the base unit;
//! * linear and logarithmic histograms: skipped.

mod format;
mod sampler;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use metrics::{Counter, Gauge, Label};

pub use sampler::spawn_stats_sampler;

use crate::names::{KVM_VCPU_PREFIX, KVM_VM_PREFIX};
use crate::{Error, Result};
use format::{Desc, StatType, Unit};

/// `KVM_GET_STATS_FD` = `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xAE << 8 | 0xCE;

/// Whose statistics a stats fd holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsScope {
    /// The VM fd's statistics.
    Vm,
    /// One vCPU fd's statistics, by index.
    Vcpu(u32),
}

/// Asks KVM for the binary statistics fd of a VM or vCPU fd (`KVM_GET_STATS_FD`).
/// Takes `AsRawFd` because kvm-ioctls' `VmFd` and `VcpuFd` implement only that.
pub fn get_stats_fd(kvm_fd: &impl AsRawFd) -> Result<OwnedFd> {
    let raw = kvm_fd.as_raw_fd();
    // SAFETY: KVM_GET_STATS_FD takes no argument and only returns a new fd or -1; `raw`
    // is a live fd borrowed for the call. On a non-KVM fd the kernel returns ENOTTY.
    let ret = unsafe { libc::ioctl(raw, KVM_GET_STATS_FD as _) };
    if ret < 0 {
        return Err(Error::StatsFd(std::io::Error::last_os_error()));
    }
    // SAFETY: `ret` is a fresh fd the kernel just created for us and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

enum Sink {
    Counter(Counter),
    Gauge(Gauge, f64),
}

struct Stat {
    desc: Desc,
    metric: Option<(String, bool)>,
}

/// One VM's or vCPU's KVM statistics: descriptors parsed once, values read per sample.
pub struct KvmStats {
    file: File,
    vm: String,
    scope: StatsScope,
    data_offset: u64,
    stats: Vec<Stat>,
    data: Vec<u8>,
    /// Handles, registered on the first sample with the recorder current then.
    sinks: Option<Vec<Option<Sink>>>,
}

impl std::fmt::Debug for KvmStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmStats")
            .field("vm", &self.vm)
            .field("scope", &self.scope)
            .field("stats", &self.stats.len())
            .finish()
    }
}

impl KvmStats {
    /// Parses the stats fd's header and descriptors.
    pub fn new(vm: &str, scope: StatsScope, fd: OwnedFd) -> Result<KvmStats> {
        let file = File::from(fd);
        let mut hdr = [0u8; format::HEADER_SIZE];
        file.read_exact_at(&mut hdr, 0).map_err(Error::StatsRead)?;
        let header = format::parse_header(&hdr)?;
        let stride = format::DESC_FIXED + header.name_size as usize;
        let mut raw = vec![0u8; stride * header.num_desc as usize];
        file.read_exact_at(&mut raw, header.desc_offset.into())
            .map_err(Error::StatsRead)?;
        let descs = format::parse_descs(&raw, &header)?;
        let data = vec![0u8; format::data_len(&descs)];
        let prefix = match scope {
            StatsScope::Vm => KVM_VM_PREFIX,
            StatsScope::Vcpu(_) => KVM_VCPU_PREFIX,
        };
        let stats = descs
            .into_iter()
            .map(|desc| Stat {
                metric: metric_name(prefix, &desc),
                desc,
            })
            .collect();
        Ok(KvmStats {
            file,
            vm: vm.to_owned(),
            scope,
            data_offset: header.data_offset.into(),
            stats,
            data,
            sinks: None,
        })
    }

    /// The exported metric names, in descriptor order (histograms left out).
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.stats
            .iter()
            .filter_map(|s| s.metric.as_ref().map(|(n, _)| n.as_str()))
    }

    /// Reads the data block and publishes every value through `metrics`.
    pub fn sample(&mut self) -> Result<()> {
        self.file
            .read_exact_at(&mut self.data, self.data_offset)
            .map_err(Error::StatsRead)?;
        if self.sinks.is_none() {
            self.sinks = Some(self.register());
        }
        let sinks = self.sinks.as_ref().into_iter().flatten();
        for (stat, sink) in self.stats.iter().zip(sinks) {
            let Some(sink) = sink else { continue };
            let at = stat.desc.offset as usize;
            let Some(bytes) = self.data.get(at..at + 8) else {
                continue;
            };
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes);
            let value = u64::from_le_bytes(raw);
            match sink {
                Sink::Counter(c) => c.absolute(value),
                Sink::Gauge(g, scale) => g.set(value as f64 * scale),
            }
        }
        Ok(())
    }

    fn labels(&self) -> Vec<Label> {
        let mut labels = vec![Label::new("vm", self.vm.clone())];
        if let StatsScope::Vcpu(i) = self.scope {
            labels.push(Label::new("vcpu", i.to_string()));
        }
        labels
    }

    fn register(&self) -> Vec<Option<Sink>> {
        let labels = self.labels();
        self.stats
            .iter()
            .map(|stat| {
                let (name, counter) = stat.metric.clone()?;
                let help = format!("KVM in-kernel statistic {}.", stat.desc.name);
                Some(if counter {
                    metrics::describe_counter!(name.clone(), help);
                    Sink::Counter(metrics::counter!(name, labels.clone()))
                } else {
                    metrics::describe_gauge!(name.clone(), help);
                    Sink::Gauge(metrics::gauge!(name, labels.clone()), stat.desc.scale)
                })
            })
            .collect()
    }
}

/// The exported name of a stat and whether it is a counter; `None` for histograms.
fn metric_name(prefix: &str, desc: &Desc) -> Option<(String, bool)> {
    if desc.stat_type == StatType::Histogram || desc.size == 0 {
        return None;
    }
    let base: String = desc
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if desc.unit == Unit::Seconds {
        let stem = ["_ns", "_us", "_ms", "_s"]
            .iter()
            .find_map(|s| base.strip_suffix(s))
            .unwrap_or(&base);
        return Some((format!("{prefix}{stem}_seconds"), false));
    }
    if desc.stat_type == StatType::Cumulative && desc.scale == 1.0 {
        return Some((format!("{prefix}{base}_total"), true));
    }
    Some((format!("{prefix}{base}"), false))
}

#[cfg(test)]
mod tests;
