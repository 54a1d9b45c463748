//! vmm-core
#![deny(missing_docs)]
