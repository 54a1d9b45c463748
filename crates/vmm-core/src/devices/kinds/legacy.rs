//! The one-register platform devices: debug-exit and the POST port. They have no
//! section of their own and are always present. (Power-off is ACPI's PM1a_CNT: see
//! `kinds/acpi.rs`.)

use std::sync::Arc;

use crate::config::{ConfigError, ParseCx, Value};
use crate::devices::registry::PlatformSpec;
use crate::devices::wiring::Wiring;
use crate::devices::{DebugExit, PostPort, DEBUG_EXIT_PORT, POST_PORT};
use crate::Result;

/// Which of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySpec {
    /// QEMU's isa-debug-exit at 0xF4.
    DebugExit,
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
            LegacySpec::Post => w.pio.insert(
                POST_PORT as u64,
                1,
                self.name(),
                Arc::new(PostPort::default()),
            ),
        }
    }
}
