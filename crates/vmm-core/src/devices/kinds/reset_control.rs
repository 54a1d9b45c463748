//! The reset control register (port 0xCF9) as a registry device: always present, no
//! section of its own; mapped as an overlay above the PCI CAM ports (see
//! [`crate::devices::reset_control`]).

use std::sync::Arc;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::registry::PlatformSpec;
use crate::devices::reset_control::{ResetControl, RESET_CONTROL_PORT};
use crate::devices::wiring::Wiring;
use crate::Result;

/// The reset control register's spec (nothing to configure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetControlSpec;

/// Always present.
pub fn parse(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    Ok(Some(Arc::new(ResetControlSpec)))
}

impl PlatformSpec for ResetControlSpec {
    fn name(&self) -> &'static str {
        "reset-control"
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        w.pio.insert_overlay(
            RESET_CONTROL_PORT as u64,
            1,
            "reset-control",
            Arc::new(ResetControl::new(w.control.clone())),
        )
    }
}
