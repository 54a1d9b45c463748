//! monitor
#![deny(missing_docs)]
