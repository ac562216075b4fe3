//! The pure-Rust core on OpenMLS. Nothing here knows about FFI.
//!
//! Dependencies run one way: `types`, `config`, `error`, `message`, `limits`
//! and `storage` at the bottom; `context` (what a client and its groups
//! share) and `records` (the SDK's own records) above them; then `group`;
//! then `client`, which makes groups.

pub mod client;
pub mod config;
pub(crate) mod context;
pub mod error;
pub mod group;
pub mod limits;
pub mod message;
pub(crate) mod records;
pub mod storage;
pub mod types;

pub use error::CoreError;
