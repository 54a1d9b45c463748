//! hypercall-gw
#![deny(missing_docs)]
