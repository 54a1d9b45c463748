//! View models: what each view shows, computed from three snapshots (the baseline of the
//! last reset, the previous and the current scrape). Pure functions, tested without a
//! terminal.

use std::collections::BTreeMap;

use crate::model::{rate, Histogram, Sample, Snapshot};
use crate::names;

mod vfio_user;
pub(crate) use vfio_user::{vfio_user, vfio_user_line};

/// Baseline, previous and current snapshots.
pub(crate) struct Frames<'a> {
    pub base: &'a Snapshot,
    pub prev: &'a Snapshot,
    pub cur: &'a Snapshot,
}

impl Frames<'_> {
    /// A counter's increase since the baseline (its value when the baseline lacks it).
    pub fn total(&self, s: &Sample) -> f64 {
        match self.base.get_sample(&s.name, &s.labels) {
            Some(b) if s.value >= b.value && !std::ptr::eq(self.base, self.cur) => {
                s.value - b.value
            }
            _ => s.value,
        }
    }

    /// A counter's rate over the last interval.
    pub fn rate(&self, s: &Sample) -> Option<f64> {
        if std::ptr::eq(self.prev, self.cur) {
            return None;
        }
        rate(self.prev, self.cur, s)
    }

    /// Sum of totals and rates of every series of `name` matching `pred`.
    pub fn sum(&self, name: &str, pred: impl Fn(&Sample) -> bool) -> (Option<f64>, Option<f64>) {
        let mut total = None;
        let mut per_s = None;
        for s in self.cur.series(name).filter(|s| pred(s)) {
            *total.get_or_insert(0.0) += self.total(s);
            if let Some(r) = self.rate(s) {
                *per_s.get_or_insert(0.0) += r;
            }
        }
        (total, per_s)
    }

    /// A histogram over the last interval, or since the baseline when the interval saw
    /// nothing.
    pub fn recent(&self, name: &str, h: &Histogram) -> Histogram {
        let since = |older: &Snapshot| match older.histogram(name, &h.labels) {
            Some(o) if !std::ptr::eq(older, self.cur) => h.since(&o),
            _ => h.clone(),
        };
        let last = since(self.prev);
        if last.count > 0.0 {
            last
        } else {
            since(self.base)
        }
    }
}

/// One VM on the overview.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VmOverview {
    pub vm: String,
    pub state: Option<String>,
    pub uptime: Option<f64>,
    pub vcpus: Option<f64>,
    pub memory: Option<f64>,
    pub user_exits: (Option<f64>, Option<f64>),
    pub kvm_exits: (Option<f64>, Option<f64>),
    pub irqs: (Option<f64>, Option<f64>),
    pub kvm_injections: (Option<f64>, Option<f64>),
    pub hypercalls: (Option<f64>, Option<f64>),
    pub unclaimed: (Option<f64>, Option<f64>),
    pub pci_config: (Option<f64>, Option<f64>),
}

pub(crate) fn overview(f: &Frames) -> Vec<VmOverview> {
    let gauge = |name: &str, vm: &str| f.cur.get(name, &[("vm", vm)]);
    f.cur
        .vms()
        .into_iter()
        .map(|vm| {
            let of_vm = |s: &Sample| s.label("vm") == Some(vm.as_str());
            VmOverview {
                state: f
                    .cur
                    .series(names::VM_STATE)
                    .find(|s| of_vm(s) && s.value == 1.0)
                    .map(|s| s.l("state").to_owned()),
                uptime: gauge(names::VM_UPTIME_SECONDS, &vm),
                vcpus: gauge(names::VM_VCPUS, &vm),
                memory: gauge(names::VM_MEMORY_BYTES, &vm),
                user_exits: f.sum(names::VCPU_EXITS, of_vm),
                kvm_exits: f.sum(&format!("{}exits_total", names::KVM_VCPU_PREFIX), of_vm),
                irqs: f.sum(names::IRQ_TRIGGERS, of_vm),
                kvm_injections: f.sum(
                    &format!("{}irq_injections_total", names::KVM_VCPU_PREFIX),
                    of_vm,
                ),
                hypercalls: f.sum(names::HYPERCALLS, of_vm),
                unclaimed: f.sum(names::UNCLAIMED_ACCESSES, of_vm),
                pci_config: f.sum(names::PCI_CONFIG_ACCESSES, of_vm),
                vm,
            }
        })
        .collect()
}

/// One exit class of one vCPU: userspace and in-kernel side by side.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ExitRow {
    pub vm: String,
    pub vcpu: String,
    pub reason: String,
    pub user_total: Option<f64>,
    pub user_rate: Option<f64>,
    pub kvm_total: Option<f64>,
    pub kvm_rate: Option<f64>,
    /// Mean userspace handling time, seconds.
    pub avg: Option<f64>,
}

/// The exit class a userspace `reason` label belongs to, named like KVM's `<class>_exits`.
pub(crate) fn exit_class(reason: &str) -> &str {
    match reason {
        "io_in" | "io_out" | "io" => "io",
        "mmio_read" | "mmio_write" | "mmio" => "mmio",
        "hlt" | "halt" => "halt",
        "intr" => "signal",
        r => r,
    }
}

/// The label of the per-vCPU total row.
pub(crate) const ALL_EXITS: &str = "ALL";

fn add(slot: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *slot.get_or_insert(0.0) += v;
    }
}

pub(crate) fn exits(f: &Frames) -> Vec<ExitRow> {
    type Key = (String, String, String);
    let mut rows: BTreeMap<Key, ExitRow> = BTreeMap::new();
    let mut times: BTreeMap<Key, (f64, f64)> = BTreeMap::new();
    for s in f.cur.series(names::VCPU_EXITS) {
        for class in [exit_class(s.l("reason")), ALL_EXITS] {
            let r = rows_entry(&mut rows, s, class);
            add(&mut r.user_total, Some(f.total(s)));
            add(&mut r.user_rate, f.rate(s));
        }
    }
    let prefix = names::KVM_VCPU_PREFIX;
    for s in f.cur.samples.iter().filter(|s| s.name.starts_with(prefix)) {
        let stem = &s.name[prefix.len()..];
        let class = if stem == "exits_total" {
            ALL_EXITS
        } else if let Some(c) = stem.strip_suffix("_exits_total") {
            c
        } else {
            continue;
        };
        let r = rows_entry(&mut rows, s, class);
        add(&mut r.kvm_total, Some(f.total(s)));
        add(&mut r.kvm_rate, f.rate(s));
    }
    for h in f.cur.histograms(names::VCPU_EXIT_HANDLE_SECONDS) {
        let recent = f.recent(names::VCPU_EXIT_HANDLE_SECONDS, &h);
        let label = |k: &str| {
            h.labels
                .iter()
                .find(|(n, _)| n == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let reason = label("reason");
        for class in [exit_class(reason), ALL_EXITS] {
            let key = (
                label("vm").to_owned(),
                label("vcpu").to_owned(),
                class.to_owned(),
            );
            let t = times.entry(key).or_default();
            t.0 += recent.sum;
            t.1 += recent.count;
        }
    }
    for (key, (sum, count)) in times {
        if let Some(r) = rows.get_mut(&key) {
            r.avg = (count > 0.0).then(|| sum / count);
        }
    }
    rows.into_values().collect()
}

/// Exit rows summed over vCPUs, one per VM and class; `vcpu` is `all`.
pub(crate) fn fold_vcpus(rows: Vec<ExitRow>) -> Vec<ExitRow> {
    let mut out: BTreeMap<(String, String), (ExitRow, f64)> = BTreeMap::new();
    for r in rows {
        let key = (r.vm.clone(), r.reason.clone());
        let (f, weight) = out.entry(key).or_insert_with(|| {
            (
                ExitRow {
                    vm: r.vm.clone(),
                    vcpu: "all".into(),
                    reason: r.reason.clone(),
                    ..Default::default()
                },
                0.0,
            )
        });
        add(&mut f.user_total, r.user_total);
        add(&mut f.user_rate, r.user_rate);
        add(&mut f.kvm_total, r.kvm_total);
        add(&mut f.kvm_rate, r.kvm_rate);
        // The mean handling time, weighted by each vCPU's exits.
        if let Some(avg) = r.avg {
            let w = r.user_rate.or(r.user_total).unwrap_or(0.0).max(1e-9);
            let prev = f.avg.unwrap_or(0.0) * *weight;
            *weight += w;
            f.avg = Some((prev + avg * w) / *weight);
        }
    }
    out.into_values().map(|(r, _)| r).collect()
}

fn rows_entry<'a>(
    rows: &'a mut BTreeMap<(String, String, String), ExitRow>,
    s: &Sample,
    class: &str,
) -> &'a mut ExitRow {
    let key = (
        s.l("vm").to_owned(),
        s.l("vcpu").to_owned(),
        class.to_owned(),
    );
    rows.entry(key.clone()).or_insert_with(|| ExitRow {
        vm: key.0,
        vcpu: key.1,
        reason: key.2,
        ..Default::default()
    })
}

/// One device vector with its route.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct IrqRow {
    pub vm: String,
    pub device: String,
    pub vector: String,
    pub source: String,
    pub gsi: Option<f64>,
    pub dest: String,
    pub masked: String,
    pub total: Option<f64>,
    pub rate: Option<f64>,
}

pub(crate) fn interrupts(f: &Frames) -> Vec<IrqRow> {
    let mut rows: BTreeMap<(String, String, String), IrqRow> = BTreeMap::new();
    for s in f.cur.series(names::IRQ_TRIGGERS) {
        let total = f.total(s);
        let rate = f.rate(s);
        let r = irq_entry(&mut rows, s);
        r.total = Some(total);
        r.rate = rate;
    }
    for s in f.cur.series(names::IRQ_ROUTE_GSI) {
        let r = irq_entry(&mut rows, s);
        // A vector whose labels changed leaves its old series behind at -1: a routed
        // series wins over unrouted ones.
        if r.gsi.is_some_and(|g| g >= 0.0) && s.value < 0.0 {
            continue;
        }
        r.gsi = Some(s.value);
        r.source = s.l("source").to_owned();
    }
    for s in f.cur.series(names::IRQ_ROUTE_DEST) {
        irq_entry(&mut rows, s).dest = format!("{}", s.value as i64);
    }
    for s in f.cur.series(names::IRQ_ROUTE_MASKED) {
        irq_entry(&mut rows, s).masked = format!("{}", s.value as i64);
    }
    let mut out: Vec<IrqRow> = rows.into_values().collect();
    out.sort_by(|a, b| {
        (&a.vm, &a.device, vector_num(&a.vector)).cmp(&(&b.vm, &b.device, vector_num(&b.vector)))
    });
    out
}

fn irq_entry<'a>(
    rows: &'a mut BTreeMap<(String, String, String), IrqRow>,
    s: &Sample,
) -> &'a mut IrqRow {
    let k = (
        s.l("vm").to_owned(),
        s.l("device").to_owned(),
        s.l("vector").to_owned(),
    );
    rows.entry(k.clone()).or_insert_with(|| IrqRow {
        vm: k.0,
        device: k.1,
        vector: k.2,
        ..Default::default()
    })
}

fn vector_num(v: &str) -> (u64, String) {
    (v.parse().unwrap_or(u64::MAX), v.to_owned())
}

/// MSI route updates per (vm, device): total and rate.
pub(crate) fn route_updates(f: &Frames) -> Vec<(String, String, f64, Option<f64>)> {
    f.cur
        .series(names::MSI_ROUTE_UPDATES)
        .map(|s| {
            (
                s.l("vm").to_owned(),
                s.l("device").to_owned(),
                f.total(s),
                f.rate(s),
            )
        })
        .collect()
}

/// One line of the PCI tree and its depth (0 VM, 1 function, 2 BAR or capability).
pub(crate) fn pci_tree(f: &Frames) -> Vec<(u8, String)> {
    let cur = f.cur;
    let vfio = vfio_user(f);
    let mut out = Vec::new();
    for vm in cur.vms() {
        let of_vm = |s: &&Sample| s.l("vm") == vm;
        let mut funcs: Vec<&Sample> = cur.series(names::PCI_FUNCTION_INFO).filter(of_vm).collect();
        if funcs.is_empty() {
            continue;
        }
        funcs.sort_by(|a, b| a.l("bdf").cmp(b.l("bdf")));
        out.push((0, format!("vm {vm}")));
        for func in funcs {
            let bdf = func.l("bdf");
            out.push((
                1,
                format!(
                    "{bdf} {} [{}:{}] class {}",
                    func.l("device"),
                    func.l("vendor_id"),
                    func.l("device_id"),
                    func.l("class")
                ),
            ));
            let mut bars: Vec<&Sample> = cur
                .series(names::PCI_BAR_SIZE_BYTES)
                .filter(|s| s.l("vm") == vm && s.l("bdf") == bdf)
                .collect();
            bars.sort_by(|a, b| a.l("bar").cmp(b.l("bar")));
            let kind_width = bars
                .iter()
                .map(|b| bar_kind(b.l("kind")).len())
                .max()
                .unwrap_or(0);
            for bar in bars {
                let addr = cur
                    .get_sample(names::PCI_BAR_ADDRESS, &bar.labels)
                    .map(|s| s.value);
                let addr = match addr {
                    Some(a) if a > 0.0 => format!("{:#010x}", a as u64),
                    Some(_) => "off".to_owned(),
                    None => "?".to_owned(),
                };
                out.push((
                    2,
                    format!(
                        "BAR{} {:<kind_width$} {addr} size {}",
                        bar.l("bar"),
                        bar_kind(bar.l("kind")),
                        size(bar.value)
                    ),
                ));
            }
            let mut caps: Vec<&Sample> = cur
                .series(names::PCI_CAPABILITY_INFO)
                .filter(|s| s.l("vm") == vm && s.l("bdf") == bdf)
                .collect();
            caps.sort_by(|a, b| a.l("offset").cmp(b.l("offset")));
            for cap in caps {
                out.push((2, format!("cap {} @{}", cap.l("cap"), cap.l("offset"))));
            }
            if let Some(r) = vfio.iter().find(|r| r.vm == vm && r.bdf == bdf) {
                out.push((2, vfio_user_line(r)));
            }
        }
    }
    out
}

/// A BAR kind label as a person reads it: `io`, `mem32`, `mem64`, `+ pref` when
/// prefetchable; also accepts the Rust `Debug` spelling (`Mem32 { prefetchable: false }`).
pub(crate) fn bar_kind(label: &str) -> String {
    let l = label.to_ascii_lowercase();
    let base = ["mem64", "mem32", "io"]
        .into_iter()
        .find(|k| l.starts_with(k))
        .unwrap_or(label);
    if l.contains("prefetchable: true") || l.ends_with("-pref") || l.ends_with(" pref") {
        format!("{base} pref")
    } else {
        base.to_owned()
    }
}

fn size(bytes: f64) -> String {
    let b = bytes as u64;
    match b {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// One hypercall number on one path.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct HypercallRow {
    pub vm: String,
    pub nr: String,
    pub path: String,
    pub total: Option<f64>,
    pub rate: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// `(status, count since baseline)`, most frequent first.
    pub statuses: Vec<(String, f64)>,
}

pub(crate) fn hypercalls(f: &Frames) -> Vec<HypercallRow> {
    type Key = (String, String, String);
    let mut rows: BTreeMap<Key, HypercallRow> = BTreeMap::new();
    let key = |get: &dyn Fn(&str) -> String| (get("vm"), get("nr"), get("path"));
    for s in f.cur.series(names::HYPERCALLS) {
        let k = key(&|l| s.l(l).to_owned());
        let r = rows.entry(k.clone()).or_insert_with(|| HypercallRow {
            vm: k.0,
            nr: k.1,
            path: k.2,
            ..Default::default()
        });
        let total = f.total(s);
        add(&mut r.total, Some(total));
        add(&mut r.rate, f.rate(s));
        r.statuses.push((s.l("status").to_owned(), total));
    }
    for h in f.cur.histograms(names::HYPERCALL_SECONDS) {
        let label = |l: &str| {
            h.labels
                .iter()
                .find(|(n, _)| n == l)
                .map_or(String::new(), |(_, v)| v.clone())
        };
        let k = key(&label);
        let r = rows.entry(k.clone()).or_insert_with(|| HypercallRow {
            vm: k.0,
            nr: k.1,
            path: k.2,
            ..Default::default()
        });
        let recent = f.recent(names::HYPERCALL_SECONDS, &h);
        r.p50 = recent.quantile(0.5);
        r.p99 = recent.quantile(0.99);
    }
    let mut out: Vec<HypercallRow> = rows.into_values().collect();
    for r in &mut out {
        r.statuses
            .sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    out.sort_by(|a, b| (&a.vm, nr_num(&a.nr), &a.path).cmp(&(&b.vm, nr_num(&b.nr), &b.path)));
    out
}

fn nr_num(nr: &str) -> (u64, String) {
    let n = nr
        .strip_prefix("0x")
        .map_or_else(|| nr.parse().ok(), |h| u64::from_str_radix(h, 16).ok());
    (n.unwrap_or(u64::MAX), nr.to_owned())
}

#[cfg(test)]
mod tests;
