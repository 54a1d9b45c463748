//! Flat per-VM statistics for `kvmbus top --log`/`--csv`: every counter the dashboard
//! shows, summed over vCPUs, as named fields (`<vm>.exits_io`, `<vm>.kvm_exits`,
//! `<vm>.irqs_<device>`, ...) with their increase over the last interval, as kvm_stat's
//! log mode prints them.

use std::collections::{BTreeMap, BTreeSet};

use super::data::exit_class;
use crate::model::{Sample, Snapshot};
use crate::names;

/// The field names and the per-interval increase of each, sorted by name.
pub(crate) type Fields = BTreeMap<String, f64>;

/// The field a counter sample feeds, and the aggregate field it also adds to.
fn field_of(s: &Sample) -> Option<(String, Option<String>)> {
    let kvm = names::KVM_VCPU_PREFIX;
    let f = |stat: String, total: &str| Some((stat, Some(total.to_owned())));
    match s.name.as_str() {
        names::VCPU_EXITS => f(format!("exits_{}", exit_class(s.l("reason"))), "exits"),
        names::IRQ_TRIGGERS => f(format!("irqs_{}", s.l("device")), "irqs"),
        names::HYPERCALLS => f(format!("hypercalls_{}", s.l("nr")), "hypercalls"),
        names::UNCLAIMED_ACCESSES => Some(("unclaimed".into(), None)),
        names::PCI_CONFIG_ACCESSES => Some(("pci_config".into(), None)),
        names::MSI_ROUTE_UPDATES => Some(("msi_route_updates".into(), None)),
        n if n == format!("{kvm}exits_total") => Some(("kvm_exits".into(), None)),
        n => n
            .strip_prefix(kvm)
            .and_then(|stem| stem.strip_suffix("_exits_total"))
            .map(|class| (format!("kvm_exits_{class}"), None)),
    }
}

/// The increase of every field from `prev` to `cur`. A counter that went down was reset
/// (its whole value counts); a series new in `cur` counts whole if `prev` already had its
/// VM (the counter started at zero in between) and as zero for a VM seen first now.
pub(crate) fn deltas(prev: &Snapshot, cur: &Snapshot) -> Fields {
    let known: BTreeSet<String> = prev.vms().into_iter().collect();
    let mut out = Fields::new();
    for s in &cur.samples {
        let Some((field, total)) = field_of(s) else {
            continue;
        };
        let vm = s.l("vm");
        let d = match prev.get_sample(&s.name, &s.labels) {
            Some(p) if s.value >= p.value => s.value - p.value,
            Some(_) => s.value,
            None if known.contains(vm) => s.value,
            None => 0.0,
        };
        for name in std::iter::once(field).chain(total) {
            *out.entry(format!("{vm}.{name}")).or_default() += d;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture;

    #[test]
    fn sums_fields_over_vcpus() {
        let (s0, s1) = fixture::pair();
        let d = deltas(&s0, &s1);
        // io_out 500 + 1000, io_in 5 + 5 per second (fixture), one second apart.
        assert_eq!(d["demo.exits_io"], 1510.0);
        assert_eq!(d["demo.exits"], 1510.0);
        assert_eq!(d["demo.exits_mmio"], 0.0);
        assert_eq!(d["demo.kvm_exits"], 27000.0);
        assert_eq!(d["demo.kvm_exits_halt"], 60.0);
        assert!(!d.contains_key("demo.kvm_exits_irq_injections"));
        assert!(d.keys().all(|k| k.starts_with("demo.")));
    }

    #[test]
    fn resets_new_series_and_new_vms() {
        let a = Snapshot::parse("kvmbus_vcpu_exits_total{vm=\"a\",vcpu=\"0\",reason=\"hlt\"} 50\n")
            .unwrap();
        let b = Snapshot::parse(
            "kvmbus_vcpu_exits_total{vm=\"a\",vcpu=\"0\",reason=\"hlt\"} 7\n\
             kvmbus_vcpu_exits_total{vm=\"a\",vcpu=\"0\",reason=\"io_in\"} 3\n\
             kvmbus_vcpu_exits_total{vm=\"b\",vcpu=\"0\",reason=\"hlt\"} 900\n",
        )
        .unwrap();
        let d = deltas(&a, &b);
        assert_eq!(d["a.exits_halt"], 7.0, "reset");
        assert_eq!(d["a.exits_io"], 3.0, "new series of a known VM");
        assert_eq!(d["b.exits_halt"], 0.0, "a VM seen first");
        assert_eq!(d["a.exits"], 10.0);
    }
}
