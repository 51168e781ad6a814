//! The stop-signal flag lives in `holdfast_core::interrupt` (one for every crate); this
//! re-export keeps `holdfast_site::interrupt::*` callers working.

pub use holdfast_core::interrupt::{check, install, is_interrupted, requested, Interrupted};
