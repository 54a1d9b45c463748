//! Per-device metrics of a vfio-user client (names in `monitor::names`).

use monitor::names;

/// The series of one device.
#[derive(Clone)]
pub(crate) struct DeviceMetrics {
    pub(crate) reads: metrics::Counter,
    pub(crate) writes: metrics::Counter,
    pub(crate) dropped: metrics::Counter,
    pub(crate) mapped_bytes: metrics::Gauge,
    pub(crate) round_trip: metrics::Histogram,
    pub(crate) connected: metrics::Gauge,
    pub(crate) failures: metrics::Counter,
    pub(crate) reconnects: metrics::Counter,
}

impl DeviceMetrics {
    /// Registers the series for `device` at `bdf` of `vm`.
    pub(crate) fn new(vm: &str, device: &str, bdf: &str) -> DeviceMetrics {
        let l = |v: &str| v.to_string();
        let (vm, device, bdf) = (l(vm), l(device), l(bdf));
        macro_rules! labels {
            () => {
                ["vm", "device", "bdf"]
                    .into_iter()
                    .zip([vm.clone(), device.clone(), bdf.clone()])
                    .map(|(k, v)| metrics::Label::new(k, v))
                    .collect::<Vec<_>>()
            };
        }
        let mut rl = labels!();
        rl.push(metrics::Label::new("dir", "read"));
        let mut wl = labels!();
        wl.push(metrics::Label::new("dir", "write"));
        DeviceMetrics {
            reads: metrics::counter!(names::VFIO_USER_FORWARDED, rl),
            writes: metrics::counter!(names::VFIO_USER_FORWARDED, wl),
            dropped: metrics::counter!(names::VFIO_USER_DROPPED, labels!()),
            mapped_bytes: metrics::gauge!(names::VFIO_USER_MAPPED_BYTES, labels!()),
            round_trip: metrics::histogram!(names::VFIO_USER_ROUND_TRIP_SECONDS, labels!()),
            connected: metrics::gauge!(names::VFIO_USER_CONNECTED, labels!()),
            failures: metrics::counter!(names::VFIO_USER_DISCONNECTS, labels!()),
            reconnects: metrics::counter!(names::VFIO_USER_RECONNECTS, labels!()),
        }
    }

    pub(crate) fn set_connected(&self, on: bool) {
        self.connected.set(if on { 1.0 } else { 0.0 });
    }
}
