//! The TOML configuration: schema, loading and validation.
//!
//! Every error names the file, line, column and key, e.g.
//! `configs/x.toml:4:1: unknown key 'vcpu' in [vm]`. Unknown keys are rejected.

mod cx;
mod devices;
mod error;
mod hypercall;
mod load;
mod rules;
mod schema;

pub use cx::{ParseCx, Value};
pub use error::ConfigError;
pub use hypercall::PlacedService;
pub use load::{load, parse, DEFAULT_ECAM_BASE};
pub use rules::CheckCx;
pub use schema::{
    BootKind, BootSource, Config, DeviceConfig, HypercallConfig, ModuleSource, OnReset, Places,
    SerialOutput,
};

#[cfg(test)]
mod tests;
