//! The exported surface: thin wrappers that convert types and errors.
//! Every item here becomes Kotlin, Swift and Python API; keep it documented.

mod client;
mod encrypted;
mod error;
mod group;
mod logging;
mod storage;
mod types;

pub use client::{
    parse_message, supported_ciphersuites, validate_key_package, Client, ExternalJoin,
};
pub use encrypted::*;
pub use error::{MlsError, StorageError};
pub use group::{Group, ReceivedMessage, StagedCommit};
pub use logging::{set_log_level, set_logger, LogLevel, Logger};
pub use storage::{memory_storage, sqlite_storage, StorageBackend, StorageWrite};
pub use types::*;
