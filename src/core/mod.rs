//! The pure-Rust core on OpenMLS. Nothing here knows about FFI.

pub mod client;
pub mod config;
pub mod error;
pub mod group;
pub mod limits;
pub mod message;
pub mod storage;

pub use error::CoreError;
