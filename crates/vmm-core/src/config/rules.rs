//! The rules that span sections, checked once after every section parsed, each error
//! placed at the key it is about. A device kind's own cross-section rules are its
//! spec's [`check`](crate::devices::registry::PciDeviceSpec::check).

/// What a device's cross-section check sees.
pub struct CheckCx<'a> {
    /// The file (to place errors).
    pub parse: &'a ParseCx<'a>,
    /// The whole configuration.
    pub config: &'a Config,
    /// Byte offset of the device's `kind` value.
    pub at: usize,
    /// The device's index in `config.devices`.
    pub index: usize,
    /// The `[[hypercall.service]]` tables with their places.
    pub services: &'a [PlacedService],
}

use std::collections::HashSet;
use std::path::PathBuf;

use super::cx::ParseCx;
use super::devices::KindAt;
use super::hypercall::PlacedService;
use super::schema::Config;
use super::ConfigError;

/// Checks `config` as a whole.
pub(crate) fn check(
    cx: &ParseCx,
    config: &Config,
    kinds: &[KindAt],
    services: &[PlacedService],
) -> Result<(), ConfigError> {
    for (index, (d, at)) in config.devices.iter().zip(kinds).enumerate() {
        d.spec.check(&CheckCx {
            parse: cx,
            config,
            at: *at,
            index,
            services,
        })?;
    }
    gateway_services(cx, config, services)?;
    sockets(cx, config, kinds)
}

/// Services need a gateway to serve them.
fn gateway_services(
    cx: &ParseCx,
    config: &Config,
    services: &[PlacedService],
) -> Result<(), ConfigError> {
    match services.first() {
        Some(first)
            if !config
                .devices
                .iter()
                .any(|d| d.spec.kind() == "hypercall-gateway") =>
        {
            cx.err(
                first.span.clone(),
                "[[hypercall.service]] needs a [[device]] of kind 'hypercall-gateway' to serve it"
                    .into(),
            )
        }
        _ => Ok(()),
    }
}

/// No socket path is used twice.
fn sockets(cx: &ParseCx, config: &Config, kinds: &[KindAt]) -> Result<(), ConfigError> {
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for (d, at) in config.devices.iter().zip(kinds) {
        for p in d.spec.sockets() {
            if !seen.insert(p.clone()) {
                return cx.err(
                    *at..*at,
                    format!(
                        "[[device]] of kind '{}' uses socket {} that another device uses",
                        d.spec.kind(),
                        p.display()
                    ),
                );
            }
        }
    }
    Ok(())
}
