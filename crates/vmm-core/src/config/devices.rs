//! The `[[device]]` tables: `kind` picks the parser from the registry, `bdf` places the
//! function (or the loader gives it the next free slot on bus 0, so `check` reports a
//! bus with no room, not `run`).

use std::collections::HashSet;

use pci_emu::Bdf;
use toml::de::DeValue;
use toml::Spanned;

use super::cx::{ParseCx, Value};
use super::schema::DeviceConfig;
use super::ConfigError;
use crate::devices::registry;

/// Slots 1..=31 of bus 0 take devices (slot 0 is the host bridge's).
const SLOTS: std::ops::RangeInclusive<u8> = 1..=31;

/// Where a device's `kind` was written (byte offset), for rules that point at it.
pub(crate) type KindAt = usize;

/// Parses every `[[device]]`, in file order.
pub(crate) fn parse(
    cx: &ParseCx,
    tables: Vec<Value<'_>>,
) -> Result<Vec<(DeviceConfig, KindAt)>, ConfigError> {
    let mut parsed = Vec::new();
    let mut taken: HashSet<Bdf> = HashSet::new();
    for table in tables {
        let span = table.span();
        let line = cx.place(&table).0;
        let DeValue::Table(mut t) = table.into_inner() else {
            return cx.err(
                span,
                "key 'device' must be an array of tables: [[device]]".into(),
            );
        };
        let Some(kind) = t.remove("kind") else {
            return cx.err(span, "missing key 'kind' in [[device]]".into());
        };
        let kind_at = kind.span().start;
        let Some(name) = kind.get_ref().as_str().map(str::to_string) else {
            return cx.err(
                kind.span(),
                "key 'kind' in [[device]] must be a string".into(),
            );
        };
        let Some(entry) = registry::pci_kind(&name) else {
            return cx.err(
                kind.span(),
                format!(
                    "key 'kind' in [[device]] is '{name}', expected one of {}",
                    registry::pci_kind_names()
                ),
            );
        };
        let bdf = match t.remove("bdf") {
            None => None,
            Some(b) => {
                let Some(text) = b.get_ref().as_str() else {
                    return cx.err(b.span(), "key 'bdf' in [[device]] must be a string".into());
                };
                let b = Spanned::new(b.span(), text.to_string());
                let bdf = super::load::bdf(cx, &b)?;
                if !taken.insert(bdf) {
                    return cx.err(
                        b.span(),
                        format!("key 'bdf' in [[device]] repeats {bdf}, already used above"),
                    );
                }
                Some(bdf)
            }
        };
        let spec = (entry.parse)(cx, Spanned::new(span.clone(), DeValue::Table(t)))?;
        parsed.push((spec, bdf, line, kind_at));
    }
    // Devices without a bdf take the free slots in file order.
    let mut used: HashSet<u8> = taken.iter().map(|b| b.device).collect();
    let mut out = Vec::new();
    for (spec, bdf, line, kind_at) in parsed {
        let bdf = match bdf {
            Some(b) => b,
            None => {
                let Some(slot) = SLOTS.clone().find(|s| !used.contains(s)) else {
                    return cx.err(
                        kind_at..kind_at,
                        format!(
                            "[[device]] of kind '{}' does not fit: all {} slots of bus 00 are taken",
                            spec.kind(),
                            SLOTS.count()
                        ),
                    );
                };
                used.insert(slot);
                Bdf {
                    bus: 0,
                    device: slot,
                    function: 0,
                }
            }
        };
        out.push((DeviceConfig { spec, bdf, line }, kind_at));
    }
    Ok(out)
}
