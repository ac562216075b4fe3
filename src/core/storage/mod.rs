//! Storage: the byte-level backend contract, the codec, the write overlay that
//! makes every SDK operation one atomic batch, and the built-in backends.

pub mod cache;
pub mod chunked;
pub mod codec;
pub mod encrypted;
pub mod memory;
pub mod overlay;
pub mod provider;
pub mod sqlite;

use std::fmt;

/// One change inside an atomic batch.
#[derive(Clone, PartialEq, Eq)]
pub enum Write {
    /// Store `value` under `key`, replacing any previous value.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// Remove `key` (a no-op if it is absent).
    Delete { key: Vec<u8> },
}

impl Write {
    /// The key this write touches.
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

impl fmt::Debug for Write {
    // Values hold private keys: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Write::Put { key, value } => write!(
                f,
                "Put({} key bytes, {} value bytes)",
                key.len(),
                value.len()
            ),
            Write::Delete { key } => write!(f, "Delete({} key bytes)", key.len()),
        }
    }
}

/// A failure reported by a storage backend, with the backend's own reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage backend failed: {reason}")]
pub struct BackendError {
    /// The backend's own description of what went wrong.
    pub reason: String,
}

impl BackendError {
    /// Wraps any displayable reason.
    pub fn new(reason: impl fmt::Display) -> Self {
        Self {
            reason: reason.to_string(),
        }
    }
}

/// The whole storage contract: point reads and atomic batches.
///
/// `commit` must apply every write of the batch or none of them. Implementations
/// are called from any thread and must not call back into the SDK.
pub trait Backend: Send + Sync {
    /// Returns the value stored under `key`, or `None` if there is none.
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Applies all writes atomically, in order.
    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError>;
    /// Forgets anything cached about the stored values; called after any failed
    /// operation, whose cause may be a value that is broken in the store.
    fn invalidate(&self) {}
}

/// A memory backend that counts reads and commits and can refuse commits
/// (for the unit tests of the layers above a backend).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct CountingBackend {
    pub inner: memory::MemoryBackend,
    pub reads: std::sync::atomic::AtomicUsize,
    pub commits: std::sync::atomic::AtomicUsize,
    /// Value bytes of the puts committed.
    pub bytes: std::sync::atomic::AtomicUsize,
    pub refuse: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Backend for CountingBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        use std::sync::atomic::Ordering;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(key)
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        use std::sync::atomic::Ordering;
        self.commits.fetch_add(1, Ordering::SeqCst);
        if self.refuse.load(Ordering::SeqCst) {
            return Err(BackendError::new("refused"));
        }
        let bytes: usize = batch
            .iter()
            .map(|w| match w {
                Write::Put { value, .. } => value.len(),
                Write::Delete { .. } => 0,
            })
            .sum();
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
        self.inner.commit(batch)
    }
}
