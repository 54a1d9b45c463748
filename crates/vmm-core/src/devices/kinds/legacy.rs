//! The one-register platform devices: debug-exit, power-off and the POST port. They
//! have no section of their own and are always present.

use std::sync::Arc;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::devices::{DebugExit, PostPort, PowerOff, DEBUG_EXIT_PORT, POST_PORT, POWER_OFF_PORT};
use crate::Result;

/// Which of the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySpec {
    /// QEMU's isa-debug-exit at 0xF4.
    DebugExit,
    /// The power-off register at 0x604.
    PowerOff,
    /// The POST port 0x80.
    Post,
}

fn always(spec: LegacySpec) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    Ok(Some(Arc::new(spec)))
}

/// Debug-exit is always present.
pub fn parse_debug_exit(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    always(LegacySpec::DebugExit)
}

/// Power-off is always present.
pub fn parse_power_off(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    always(LegacySpec::PowerOff)
}

/// The POST port is always present.
pub fn parse_post(
    _cx: &ParseCx,
    _v: Option<Value<'_>>,
) -> std::result::Result<Option<Arc<dyn PlatformSpec>>, ConfigError> {
    always(LegacySpec::Post)
}

impl PlatformSpec for LegacySpec {
    fn name(&self) -> &'static str {
        match self {
            LegacySpec::DebugExit => "debug-exit",
            LegacySpec::PowerOff => "power-off",
            LegacySpec::Post => "post",
        }
    }

    fn build(&self, w: &mut Wiring<'_>) -> Result<()> {
        let control = w.control.clone();
        match self {
            LegacySpec::DebugExit => w.pio.insert(
                DEBUG_EXIT_PORT as u64,
                1,
                self.name(),
                Arc::new(DebugExit(control)),
            ),
            LegacySpec::PowerOff => w.pio.insert(
                POWER_OFF_PORT as u64,
                2,
                self.name(),
                Arc::new(PowerOff(control)),
            ),
            LegacySpec::Post => w.pio.insert(
                POST_PORT as u64,
                1,
                self.name(),
                Arc::new(PostPort::default()),
            ),
        }
    }
}
