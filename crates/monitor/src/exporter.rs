//! The Prometheus exporter: installs the `metrics` recorder and serves `GET /metrics`.
//!
//! The listener is a plain `std::net::TcpListener` bound synchronously by
//! [`Exporter::install`], so a taken port is an error at start-up and port 0 reports the
//! address it got. Rendering uses `metrics-exporter-prometheus`; no async runtime runs.
//!
//! The endpoint renders at most once per [`RENDER_INTERVAL`]: a scrape arriving while
//! the last rendering is younger than that gets the same text, so a scrape may show
//! values up to [`RENDER_INTERVAL`] old, and the CPU spent rendering is bounded
//! whatever the clients do. [`Exporter::render`] always renders afresh.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::catalog::describe_catalog;
use crate::http_server;
use crate::{Error, Result};

/// Histogram bucket bounds in seconds, 1 µs to 1 s (1-2-5 steps).
pub const LATENCY_BUCKETS: &[f64] = &[
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,
    0.2, 0.5, 1.0,
];

/// Default metrics address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// How long one rendering of the exposition serves the scrapes that follow it: the
/// most a scrape's values may lag behind the recorder.
pub const RENDER_INTERVAL: Duration = Duration::from_millis(100);

/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// The installed exporter; cheap to clone (the TUI keeps one to render in-process).
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
    local_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl Exporter {
    /// Installs the global recorder (once per process) and, with `listen`, serves
    /// `GET /metrics` (and `/`) there. A taken port is [`Error::Bind`]; a second
    /// installation is [`Error::AlreadyInstalled`].
    pub fn install(listen: Option<SocketAddr>) -> Result<Exporter> {
        let listener = listen.map(bind).transpose()?;
        let recorder = build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|_| Error::AlreadyInstalled)?;
        describe_catalog();
        Self::start(handle, listener)
    }

    /// Builds a recorder without installing it, serving it on `listen` like
    /// [`Exporter::install`]. For tests and embedders that install the recorder
    /// themselves or use it through `metrics::with_local_recorder`.
    pub fn unregistered(listen: Option<SocketAddr>) -> Result<(Exporter, PrometheusRecorder)> {
        let listener = listen.map(bind).transpose()?;
        let recorder = build_recorder();
        metrics::with_local_recorder(&recorder, describe_catalog);
        let exporter = Self::start(recorder.handle(), listener)?;
        Ok((exporter, recorder))
    }

    fn start(handle: PrometheusHandle, listener: Option<TcpListener>) -> Result<Exporter> {
        let local_addr = match listener {
            Some(listener) => {
                let addr = listener.local_addr().map_err(|source| Error::Bind {
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    source,
                })?;
                let render = handle.clone();
                let mut shared = SharedRender::new(RENDER_INTERVAL, move || render.render());
                let handler: http_server::Handler = Box::new(move |path: &str| {
                    matches!(path, "/metrics" | "/")
                        .then(|| (http_server::TEXT_FORMAT, shared.get(Instant::now())))
                });
                http_server::spawn(listener, "metrics-http", handler)?;
                log::info!("metrics: serving http://{addr}/metrics");
                Some(addr)
            }
            None => None,
        };
        let upkeep = handle.clone();
        thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                thread::sleep(UPKEEP_PERIOD);
                upkeep.run_upkeep();
            })
            .map_err(|e| Error::Thread("metrics-upkeep", e))?;
        Ok(Exporter { handle, local_addr })
    }

    /// The text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Writes the text exposition to `path` whole: rendered into a temporary file beside
    /// it, then renamed over it, so that a reader sees the old file or the new one.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The address the HTTP listener is bound to, if any.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    if let Some(w) = exposure_warning(addr) {
        log::warn!("{w}");
    }
    TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })
}

/// The warning for a metrics address reachable from other hosts (anything but
/// loopback), if `addr` is one.
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "metrics: {addr} is not a loopback address; the endpoint (VM names, \
             devices, hypercall numbers) is reachable from other hosts"
        )
    })
}

/// One rendering shared by every request within `interval` of it.
struct SharedRender<F> {
    interval: Duration,
    render: F,
    last: Option<(Instant, http_server::Body)>,
}

impl<F: FnMut() -> String> SharedRender<F> {
    fn new(interval: Duration, render: F) -> Self {
        SharedRender {
            interval,
            render,
            last: None,
        }
    }

    /// The text for a request at `now`: the last rendering if it is younger than the
    /// interval, else a new one.
    fn get(&mut self, now: Instant) -> http_server::Body {
        match &self.last {
            Some((at, body)) if now.saturating_duration_since(*at) < self.interval => body.clone(),
            _ => {
                let body: http_server::Body = (self.render)().into();
                self.last = Some((now, body.clone()));
                body
            }
        }
    }
}

fn build_recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .expect("LATENCY_BUCKETS is not empty")
        .build_recorder()
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_non_loopback_addresses_warn() {
        assert!(exposure_warning("127.0.0.1:9464".parse().unwrap()).is_none());
        assert!(exposure_warning("[::1]:9464".parse().unwrap()).is_none());
        let w = exposure_warning("0.0.0.0:9464".parse().unwrap()).unwrap();
        assert!(w.contains("not a loopback address"), "{w}");
        assert!(exposure_warning("10.1.2.3:80".parse().unwrap()).is_some());
    }

    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The only test in this binary that installs the global recorder.
    #[test]
    fn install_serves_metrics_and_refuses_a_second_install() {
        let exp = Exporter::install(Some("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = exp.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        metrics::counter!(crate::names::VCPU_EXITS, "vm" => "a", "vcpu" => "0", "reason" => "io")
            .increment(3);
        metrics::histogram!(crate::names::HYPERCALL_SECONDS, "vm" => "a", "nr" => "1", "path" => "sync")
            .record(3e-6);
        let resp = get(addr, "/metrics");
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(resp.contains("text/plain; version=0.0.4"));
        assert!(resp.contains("kvmbus_vcpu_exits_total{vm=\"a\",vcpu=\"0\",reason=\"io\"} 3"));
        assert!(resp.contains("# HELP kvmbus_vcpu_exits_total"));
        assert!(resp.contains("kvmbus_hypercall_seconds_bucket{vm=\"a\",nr=\"1\",path=\"sync\",le=\"0.000005\"} 1"), "{resp}");
        assert!(get(addr, "/").contains("kvmbus_vcpu_exits_total"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        assert!(exp.render().contains("kvmbus_vcpu_exits_total"));
        assert!(matches!(
            Exporter::install(None),
            Err(Error::AlreadyInstalled)
        ));
    }

    #[test]
    fn taken_port_is_an_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Exporter::install(Some(addr)).unwrap_err();
        assert!(matches!(err, Error::Bind { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()));
        assert!(matches!(
            Exporter::unregistered(Some(addr)),
            Err(Error::Bind { .. })
        ));
    }

    #[test]
    fn one_rendering_serves_every_request_within_the_interval() {
        let mut n = 0;
        let mut shared = SharedRender::new(Duration::from_millis(100), || {
            n += 1;
            format!("render {n}\n")
        });
        let t0 = Instant::now();
        let a = shared.get(t0);
        let b = shared.get(t0 + Duration::from_millis(99));
        assert_eq!(&*a, "render 1\n");
        assert!(Arc::ptr_eq(&a, &b), "the same text within the interval");
        let c = shared.get(t0 + Duration::from_millis(100));
        assert_eq!(&*c, "render 2\n");
        assert_eq!(&*shared.get(t0 + Duration::from_millis(150)), "render 2\n");
        assert_eq!(&*shared.get(t0 + Duration::from_millis(250)), "render 3\n");
    }

    fn body(resp: &str) -> &str {
        resp.split_once("\r\n\r\n").unwrap().1
    }

    #[test]
    fn scrapes_within_the_render_interval_share_a_body_and_later_ones_differ() {
        let (exp, rec) = Exporter::unregistered(Some("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = exp.local_addr().unwrap();
        let bump = |v: u64| {
            metrics::with_local_recorder(&rec, || {
                metrics::counter!(crate::names::VCPU_EXITS, "vm" => "c", "vcpu" => "0", "reason" => "io")
                    .increment(v)
            })
        };
        bump(1);
        // Retry if the machine stalls between the two scrapes past the interval.
        let (first, second) = (0..20)
            .find_map(|_| {
                std::thread::sleep(RENDER_INTERVAL + Duration::from_millis(20));
                let t = Instant::now();
                let first = get(addr, "/metrics");
                bump(1);
                let second = get(addr, "/metrics");
                (t.elapsed() < RENDER_INTERVAL / 2).then_some((first, second))
            })
            .expect("two scrapes within half the interval");
        assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
        assert_eq!(
            body(&first),
            body(&second),
            "a scrape within the interval is shared"
        );
        std::thread::sleep(RENDER_INTERVAL + Duration::from_millis(10));
        let later = get(addr, "/metrics");
        assert_ne!(body(&later), body(&first), "a later scrape renders afresh");
        assert!(body(&later).contains(&format!(
            "kvmbus_vcpu_exits_total{{vm=\"c\",vcpu=\"0\",reason=\"io\"}} {}",
            exp.render()
                .lines()
                .find(|l| l.starts_with("kvmbus_vcpu_exits_total{vm=\"c\""))
                .and_then(|l| l.split_whitespace().last())
                .unwrap()
        )));
    }

    #[test]
    fn unregistered_recorder_renders_locally() {
        let (exp, rec) = Exporter::unregistered(None).unwrap();
        assert_eq!(exp.local_addr(), None);
        metrics::with_local_recorder(&rec, || {
            metrics::gauge!(crate::names::VM_VCPUS, "vm" => "b").set(2.0);
        });
        assert!(exp.render().contains("kvmbus_vm_vcpus{vm=\"b\"} 2"));
    }
}
