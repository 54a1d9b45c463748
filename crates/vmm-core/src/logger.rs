//! A minimal `log` backend: lines to stderr (or a file while the dashboard owns the
//! terminal), level from `KVMBUS_LOG` (error, warn, info, debug, trace; default warn).

use std::io::Write;
use std::sync::Mutex;

struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
    level: log::LevelFilter,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                out,
                "kvmbus: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// Installs the logger writing to `out` (stderr when `None`). Call once.
pub fn init(out: Option<Box<dyn Write + Send>>) {
    let level = std::env::var("KVMBUS_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    let logger = Logger {
        out: Mutex::new(out.unwrap_or_else(|| Box::new(std::io::stderr()))),
        level,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}
