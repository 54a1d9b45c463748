//! The gateway's configuration: the `[[device]] kind = "hypercall-gateway"` knobs and
//! the `[[hypercall.service]]` table entries.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::abi::{self, nr};
use crate::error::{Error, Result};
use crate::service::kv::KV_NUMBERS;

/// Guest memory as a file, for direct backends: the memfd and where each guest region
/// sits in it.
#[derive(Clone, Debug)]
pub struct GuestMemoryShare {
    /// The memfd holding guest RAM.
    pub memfd: Arc<OwnedFd>,
    /// `(guest-physical address, size, file offset)` of each region.
    pub regions: Vec<(u64, u64, u64)>,
}

/// How an external backend serves its numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendMode {
    /// The VMM forwards every request and response over the socket.
    #[default]
    Relay,
    /// The backend is handed a queue (memfd, doorbell, irqfd) and serves it itself;
    /// calls to its numbers from other queues and the sync path are still relayed.
    Direct,
}

fn one() -> u32 {
    1
}

/// One `[[hypercall.service]]` entry: numbers from `nr` up routed to a service.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ServiceConfig {
    /// In-process key-value store on its own thread: `nr`..`nr + 4` are PUT, GET,
    /// DELETE, LEN (see docs/hypercall-abi.md).
    Kv {
        /// First number.
        nr: u32,
    },
    /// In-process echo on its own thread: ret = `args[0]`.
    Echo {
        /// The number.
        nr: u32,
    },
    /// An external backend process that connects to `socket`.
    External {
        /// First number.
        nr: u32,
        /// How many consecutive numbers it serves.
        #[serde(default = "one")]
        count: u32,
        /// Unix socket path the VMM listens on.
        socket: PathBuf,
        /// Relay or direct.
        #[serde(default)]
        mode: BackendMode,
        /// Direct mode: the queue the backend is handed.
        #[serde(default)]
        queue: Option<u16>,
    },
}

impl ServiceConfig {
    /// First number served.
    pub fn nr(&self) -> u32 {
        match self {
            ServiceConfig::Kv { nr } | ServiceConfig::Echo { nr } => *nr,
            ServiceConfig::External { nr, .. } => *nr,
        }
    }

    /// How many consecutive numbers are served.
    pub fn count(&self) -> u32 {
        match self {
            ServiceConfig::Kv { .. } => KV_NUMBERS,
            ServiceConfig::Echo { .. } => 1,
            ServiceConfig::External { count, .. } => *count,
        }
    }
}

/// Everything the gateway needs to know at creation.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// VM name (metrics label).
    pub vm: String,
    /// Number of queues (1..=255).
    pub queues: u16,
    /// Largest queue size the guest may set: a power of two, 256..=32768.
    pub queue_size: u16,
    /// MSI-X vectors (1..=2048); MSI gets min(this, 32) rounded down to a power of two.
    pub msix_vectors: u16,
    /// PCI vendor ID.
    pub vendor_id: u16,
    /// PCI device ID.
    pub device_id: u16,
    /// Configured services.
    pub services: Vec<ServiceConfig>,
    /// How long a backend may take before outstanding calls get EBUSY.
    pub backend_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            vm: "vm".into(),
            queues: 1,
            queue_size: 256,
            msix_vectors: 2,
            vendor_id: abi::DEFAULT_VENDOR_ID,
            device_id: abi::DEFAULT_DEVICE_ID,
            services: Vec::new(),
            backend_timeout: Duration::from_secs(1),
        }
    }
}

impl GatewayConfig {
    /// Checks the configuration against the ABI's limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.queues == 0 || self.queues > 255 {
            return bad(format!("queues = {} (expected 1..=255)", self.queues));
        }
        if self.queue_size < abi::MIN_MAX_QUEUE_SIZE
            || self.queue_size > 32768
            || !self.queue_size.is_power_of_two()
        {
            return bad(format!(
                "queue_size = {} (expected a power of two in 256..=32768)",
                self.queue_size
            ));
        }
        if self.msix_vectors == 0 || self.msix_vectors > 2048 {
            return bad(format!(
                "msix_vectors = {} (expected 1..=2048)",
                self.msix_vectors
            ));
        }
        if self.backend_timeout.is_zero() {
            return bad("backend_timeout must be positive".into());
        }
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for s in &self.services {
            let (first, count) = (s.nr(), s.count());
            if first < nr::FIRST_CONFIGURED || count == 0 || first.checked_add(count).is_none() {
                return bad(format!(
                    "service nr = {first:#x}, count = {count}: numbers must be 0x100 and up"
                ));
            }
            if let Some((a, c)) = ranges
                .iter()
                .find(|(a, c)| first < a + c && *a < first + count)
            {
                return bad(format!(
                    "service nr = {first:#x} overlaps the service at {a:#x} ({c} numbers)"
                ));
            }
            ranges.push((first, count));
            if let ServiceConfig::External { mode, queue, .. } = s {
                match (mode, queue) {
                    (BackendMode::Direct, None) => {
                        return bad(format!("direct service {first:#x} needs `queue`"))
                    }
                    (BackendMode::Direct, Some(q)) if *q >= self.queues => {
                        return bad(format!("direct service {first:#x}: no queue {q}"))
                    }
                    _ => {}
                }
            }
        }
        let mut direct: Vec<u16> = self
            .services
            .iter()
            .filter_map(|s| match s {
                ServiceConfig::External {
                    mode: BackendMode::Direct,
                    queue,
                    ..
                } => *queue,
                _ => None,
            })
            .collect();
        direct.sort_unstable();
        if direct.windows(2).any(|w| w[0] == w[1]) {
            return bad("two direct backends share a queue".into());
        }
        Ok(())
    }

    /// True if any external backend is configured.
    pub fn has_external(&self) -> bool {
        self.services
            .iter()
            .any(|s| matches!(s, ServiceConfig::External { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let mut c = GatewayConfig::default();
        c.validate().unwrap();
        c.services = vec![
            ServiceConfig::Kv { nr: 0x100 },
            ServiceConfig::Echo { nr: 0x103 },
        ];
        assert!(c.validate().is_err());
        c.services = vec![ServiceConfig::Echo { nr: 3 }];
        assert!(c.validate().is_err());
        c.services = vec![ServiceConfig::External {
            nr: 0x200,
            count: 4,
            socket: "/tmp/x".into(),
            mode: BackendMode::Direct,
            queue: Some(1),
        }];
        assert!(c.validate().is_err());
        c.queues = 2;
        c.validate().unwrap();
        c.queue_size = 128;
        assert!(c.validate().is_err());
    }
}
