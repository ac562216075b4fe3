//! The host storage contract and the built-in stores.

use std::sync::Arc;

use crate::core::storage::memory::MemoryBackend;
use crate::core::storage::sqlite::{OpenError, SqliteBackend};
use crate::core::storage::{Backend, BackendError, Value, Write};
use crate::ffi::error::{MlsError, StorageError};

/// One change in an atomic storage batch. Values hold private keys: its text
/// forms in every language print sizes only.
#[derive(Clone, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Debug, Display)]
pub enum StorageWrite {
    /// Store `value` under `key`, replacing any previous value.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// Remove `key`; removing an absent key is not an error.
    Delete { key: Vec<u8> },
}

impl std::fmt::Display for StorageWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::fmt::Debug for StorageWrite {
    // Values hold private keys: print sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageWrite::Put { key, value } => {
                write!(
                    f,
                    "Put({} key bytes, {} value bytes)",
                    key.len(),
                    value.len()
                )
            }
            StorageWrite::Delete { key } => write!(f, "Delete({} key bytes)", key.len()),
        }
    }
}

/// Where MLSKit keeps its state. Implement this in your app, or use
/// `memory_storage()` / `sqlite_storage(path)`.
///
/// Contract:
/// - `read` returns the bytes last committed under `key`, or null/None.
/// - `commit` applies every write of the batch, in order, **atomically**:
///   all of them or none (one database transaction). Throw/raise on failure;
///   the reason reaches the app inside `MlsError.StorageBackend`.
/// - Called from any thread, one call at a time per group. Must not call back
///   into MLSKit: such a call fails at once with `MlsError.ReentrantCall`.
///   Values contain private keys: protect them at rest (see `encrypted_storage`).
/// - One live `Client` per store: opening a client takes the store over (a
///   lease record, read before every batch), and a client opened earlier on
///   it then refuses to write (`MlsError.StorageTakenOver`). A client caches
///   what it wrote, so nothing else may change the store while it is open.
#[uniffi::export(with_foreign)]
pub trait StorageBackend: Send + Sync {
    /// Returns the value stored under `key`, or none if it is absent.
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError>;
    /// Applies all writes atomically (all or none).
    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError>;
}

/// Adapts an exported backend (host or built-in) to the core trait.
pub(crate) struct HostBackend(pub Arc<dyn StorageBackend>);

impl Backend for HostBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        self.0
            .read(key.to_vec())
            .map(|v| v.map(Value::new))
            .map_err(to_backend_error)
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        let writes = batch
            .into_iter()
            .map(|w| match w {
                // The host gets the buffer itself: its copies are its own.
                Write::Put { key, mut value } => StorageWrite::Put {
                    key,
                    value: std::mem::take(&mut *value),
                },
                Write::Delete { key } => StorageWrite::Delete { key },
            })
            .collect();
        self.0.commit(writes).map_err(to_backend_error)
    }
}

fn to_backend_error(e: StorageError) -> BackendError {
    match e {
        StorageError::Backend { reason } => BackendError::new(reason),
    }
}

/// Exposes a core backend through the exported trait.
pub(crate) struct BuiltIn<B: Backend>(pub(crate) B);

impl<B: Backend> StorageBackend for BuiltIn<B> {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.0
            .read(&key)
            .map(|v| v.map(|mut v| std::mem::take(&mut *v)))
            .map_err(|e| StorageError::Backend { reason: e.reason })
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let batch = writes
            .into_iter()
            .map(|w| match w {
                StorageWrite::Put { key, value } => Write::put(key, value),
                StorageWrite::Delete { key } => Write::Delete { key },
            })
            .collect();
        self.0
            .commit(batch)
            .map_err(|e| StorageError::Backend { reason: e.reason })
    }
}

/// The core's view of an exported store: every store, built-in or the
/// host's, goes through the `HostBackend` adapter (for a built-in one that is
/// a plain Rust call, no foreign callback).
pub(crate) fn core_backend(storage: Arc<dyn StorageBackend>) -> Arc<dyn Backend> {
    Arc::new(HostBackend(storage))
}

/// A store in process memory (`MemoryStorage`): fast, lost when the process ends.
#[uniffi::export]
pub fn memory_storage() -> Arc<dyn StorageBackend> {
    Arc::new(BuiltIn(MemoryBackend::new()))
}

/// A store in one SQLite file (`SqliteStorage`), created if absent: one
/// transaction per batch. Use one file per client.
///
/// Only one store may have a file open at a time (an OS lock on
/// `<path>-lock`, held until the store is dropped): a second opener, in this
/// process or another (an iOS notification extension beside its app), gets
/// `StorageInUse` at once. The files are created readable by their owner
/// only; deleted and replaced values (old keys, deleted PSKs) are
/// overwritten in the file and the journal is emptied at the end of every
/// batch, so they leave the disk as soon as the call returns.
///
/// Errors: `StorageInUse`; `StorageBackend` if the file cannot be opened or
/// is not a database.
#[uniffi::export]
pub fn sqlite_storage(path: String) -> Result<Arc<dyn StorageBackend>, MlsError> {
    let backend = SqliteBackend::open(&path).map_err(|e| match e {
        OpenError::InUse { path } => MlsError::StorageInUse { path },
        OpenError::Failed(e) => MlsError::StorageBackend { reason: e.reason },
    })?;
    Ok(Arc::new(BuiltIn(backend)))
}
