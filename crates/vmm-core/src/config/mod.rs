//! The TOML configuration: schema, loading and validation.
//!
//! Every error names the file, line, column and key, e.g.
//! `configs/x.toml:4:1: unknown key 'vcpu' in [vm]`. Unknown keys are rejected.

mod error;
mod load;
mod schema;

pub use error::ConfigError;
pub use load::{load, parse};
pub use schema::{
    BootKind, BootSource, Config, DeviceConfig, DeviceKind, HypercallServiceConfig, SerialOutput,
};

#[cfg(test)]
mod tests;
