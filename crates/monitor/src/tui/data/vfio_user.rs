//! vfio-user devices (a PCI function served by another process): server state,
//! forwarded vs mapped accesses, dropped accesses and the round trip, from the
//! `kvmbus_vfio_user_*` series.

use std::collections::BTreeMap;

use super::{add, Frames};
use crate::names;

/// One vfio-user device of one VM.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct VfioUserRow {
    pub vm: String,
    pub bdf: String,
    /// 1 connected, 0 not (None: no gauge yet).
    pub connected: Option<f64>,
    pub reads: (Option<f64>, Option<f64>),
    pub writes: (Option<f64>, Option<f64>),
    /// Bytes of BAR areas mapped into the guest (accesses there cost no exit).
    pub mapped_bytes: Option<f64>,
    pub dropped: Option<f64>,
    pub disconnects: Option<f64>,
    pub reconnects: Option<f64>,
    /// Round trip of a forwarded access, seconds.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

fn entry<'a>(
    rows: &'a mut BTreeMap<(String, String), VfioUserRow>,
    vm: &str,
    bdf: &str,
) -> &'a mut VfioUserRow {
    rows.entry((vm.to_owned(), bdf.to_owned()))
        .or_insert_with(|| VfioUserRow {
            vm: vm.to_owned(),
            bdf: bdf.to_owned(),
            ..Default::default()
        })
}

pub(crate) fn vfio_user(f: &Frames) -> Vec<VfioUserRow> {
    let mut rows: BTreeMap<(String, String), VfioUserRow> = BTreeMap::new();
    for s in f.cur.series(names::VFIO_USER_CONNECTED) {
        entry(&mut rows, s.l("vm"), s.l("bdf")).connected = Some(s.value);
    }
    for s in f.cur.series(names::VFIO_USER_MAPPED_BYTES) {
        entry(&mut rows, s.l("vm"), s.l("bdf")).mapped_bytes = Some(s.value);
    }
    for s in f.cur.series(names::VFIO_USER_FORWARDED) {
        let r = entry(&mut rows, s.l("vm"), s.l("bdf"));
        let slot = if s.l("dir") == "write" {
            &mut r.writes
        } else {
            &mut r.reads
        };
        add(&mut slot.0, Some(f.total(s)));
        add(&mut slot.1, f.rate(s));
    }
    for s in f.cur.series(names::VFIO_USER_DROPPED) {
        add(
            &mut entry(&mut rows, s.l("vm"), s.l("bdf")).dropped,
            Some(f.total(s)),
        );
    }
    for s in f.cur.series(names::VFIO_USER_DISCONNECTS) {
        add(
            &mut entry(&mut rows, s.l("vm"), s.l("bdf")).disconnects,
            Some(f.total(s)),
        );
    }
    for s in f.cur.series(names::VFIO_USER_RECONNECTS) {
        add(
            &mut entry(&mut rows, s.l("vm"), s.l("bdf")).reconnects,
            Some(f.total(s)),
        );
    }
    for h in f.cur.histograms(names::VFIO_USER_ROUND_TRIP_SECONDS) {
        let label = |k: &str| {
            h.labels
                .iter()
                .find(|(n, _)| n == k)
                .map_or(String::new(), |(_, v)| v.clone())
        };
        let recent = f.recent(names::VFIO_USER_ROUND_TRIP_SECONDS, &h);
        let r = entry(&mut rows, &label("vm"), &label("bdf"));
        r.p50 = recent.quantile(0.5);
        r.p99 = recent.quantile(0.99);
    }
    rows.into_values().collect()
}

/// The line the PCI view shows under a vfio-user function.
pub(crate) fn vfio_user_line(r: &VfioUserRow) -> String {
    use crate::tui::fmt;
    let state = match r.connected {
        Some(c) if c > 0.0 => "connected",
        Some(_) => "DISCONNECTED",
        None => "?",
    };
    format!(
        "vfio-user {state}  fwd r {} ({}/s) w {} ({}/s)  mapped {}  rtt p50 {} p99 {}  dropped {}  reconnects {}",
        fmt::count(r.reads.0),
        fmt::rate(r.reads.1),
        fmt::count(r.writes.0),
        fmt::rate(r.writes.1),
        match r.mapped_bytes {
            Some(b) if b < (1u64 << 20) as f64 => format!("{:.1} KiB", b / 1024.0),
            b => fmt::bytes(b),
        },
        fmt::secs(r.p50),
        fmt::secs(r.p99),
        fmt::count(r.dropped),
        fmt::count(r.reconnects),
    )
}
