//! MLSKit: Messaging Layer Security (RFC 9420) on OpenMLS, with crash-safe host
//! storage, for Kotlin, Swift and Python through UniFFI.
//!
//! `core` is pure Rust; `ffi` is the thin exported surface.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented
    )
)]

uniffi::setup_scaffolding!();

pub mod core;
pub mod ffi;

pub use ffi::*;
