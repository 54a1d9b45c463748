//! `[[device]] kind = "hypercall-gateway"`: the hypercall gateway function
//! (`docs/hypercall-abi.md`) with the services of `[[hypercall.service]]`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hypercall_gw::{BackendMode, Gateway, GatewayConfig, GuestMemoryShare, ServiceConfig};
use pci_emu::{Bdf, PciFunction};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{CheckCx, ConfigError, ParseCx, Value};
use crate::devices::registry::PciDeviceSpec;
use crate::devices::wiring::Wiring;
use crate::Result;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    queues: Option<Spanned<i64>>,
    queue_size: Option<Spanned<i64>>,
    msix_vectors: Option<Spanned<i64>>,
}

/// The gateway device's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySpec {
    /// Ring queues (1..=64).
    pub queues: u16,
    /// Maximum queue size (power of two, 256..=32768).
    pub queue_size: u16,
    /// Completion vectors (1..=2048).
    pub msix_vectors: u16,
}

/// Parses a `[[device]]` table of kind "hypercall-gateway".
pub fn parse(
    cx: &ParseCx,
    v: Value<'_>,
) -> std::result::Result<Arc<dyn PciDeviceSpec>, ConfigError> {
    let raw: Raw = cx.deserialize(v)?;
    let t = "[device]";
    Ok(Arc::new(GatewaySpec {
        queues: cx.int(&raw.queues, "queues", t, 1..=64, 1)? as u16,
        queue_size: cx.pow2(&raw.queue_size, "queue_size", t, 256..=32768, 256)? as u16,
        msix_vectors: cx.int(&raw.msix_vectors, "msix_vectors", t, 1..=2048, 2)? as u16,
    }))
}

impl PciDeviceSpec for GatewaySpec {
    fn kind(&self) -> &'static str {
        "hypercall-gateway"
    }

    fn vectors(&self) -> u32 {
        self.msix_vectors as u32
    }

    fn check(&self, cx: &CheckCx<'_>) -> std::result::Result<(), ConfigError> {
        let p = cx.parse;
        let earlier = cx.config.devices[..cx.index]
            .iter()
            .any(|d| d.spec.kind() == self.kind());
        if earlier {
            return p.err(
                cx.at..cx.at,
                "a second [[device]] of kind 'hypercall-gateway': the [[hypercall.service]] routes belong to one gateway".into(),
            );
        }
        let mut owners: Vec<(u16, usize)> = Vec::new();
        for s in cx.services {
            let Some(q) = direct_queue(&s.service) else {
                continue;
            };
            let span = s.queue_span.clone().unwrap_or(s.span.clone());
            if q >= self.queues {
                return p.err(
                    span,
                    format!(
                        "key 'queue' in [[hypercall.service]] is {q}, but the gateway has {} queue(s)",
                        self.queues
                    ),
                );
            }
            if let Some((_, line)) = owners.iter().find(|(o, _)| *o == q) {
                return p.err(
                    span,
                    format!("key 'queue' in [[hypercall.service]]: queue {q} is already handed to the direct service at line {line}"),
                );
            }
            owners.push((q, s.line));
        }
        Ok(())
    }

    fn build(&self, bdf: Bdf, w: &mut Wiring<'_>) -> Result<Arc<Mutex<dyn PciFunction>>> {
        let handles = w
            .router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_device(bdf, "hypercall-gateway", self.msix_vectors)
            .map_err(crate::Error::from)?;
        let config = w.config;
        let gw = Gateway::new(
            GatewayConfig {
                vm: config.name.clone(),
                queues: self.queues,
                queue_size: self.queue_size,
                msix_vectors: self.msix_vectors,
                vendor_id: hypercall_gw::abi::DEFAULT_VENDOR_ID,
                device_id: hypercall_gw::abi::DEFAULT_DEVICE_ID,
                services: config.hypercall.services.clone(),
                backend_timeout: Duration::from_millis(config.hypercall.backend_timeout_ms),
            },
            w.ram.memory.clone(),
            Some(GuestMemoryShare {
                memfd: w.ram.memfd.clone(),
                regions: vec![(0, w.ram.size, 0)],
            }),
            handles,
        )
        .map_err(|e| crate::Error::Device {
            device: format!("hypercall-gateway {bdf}"),
            detail: e.to_string(),
        })?;
        let function = gw.function();
        // A stop request ends every synchronous wait for a service at once (EBUSY), so a
        // vCPU stuck behind a stalled backend does not delay the stop.
        let stopper = gw.stopper();
        w.control.on_stop(move || stopper.stop());
        w.services
            .on_stop(format!("hypercall-gateway {bdf}"), move || gw.shutdown());
        Ok(function)
    }
}

/// The queue a direct-mode service takes over, if it is one.
pub fn direct_queue(s: &ServiceConfig) -> Option<u16> {
    match s {
        ServiceConfig::External {
            mode: BackendMode::Direct,
            queue,
            ..
        } => *queue,
        _ => None,
    }
}
