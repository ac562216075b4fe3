//! Storage: the byte-level backend contract, the codec, the write overlay that
//! makes every SDK operation one atomic batch, and the built-in backends.
//!
//! The layers a client stacks over its store (`Client::open`), top to bottom:
//!
//! 1. [`overlay::Overlay`]: one per operation; OpenMLS (through
//!    [`provider::Provider`]) and the SDK read through it and write only into
//!    it; on success its writes become one batch.
//! 2. [`cache::CachedBackend`]: small OpenMLS records, learned from reads and
//!    committed batches.
//! 3. [`chunked::ChunkedBackend`]: large message-secrets records as a header
//!    plus the chunks that changed.
//! 4. [`lease::LeasedBackend`]: refuses the batch if another client took the
//!    store over since this one opened.
//! 5. The exported store (`ffi::storage::HostBackend`): the host's
//!    `StorageBackend`, or a built-in one ([`memory`], [`sqlite`]), optionally
//!    wrapped by [`encrypted::EncryptedBackend`] (`encrypted_storage`), which
//!    the app puts in front of its store before it opens the client.
//!
//! A batch goes down the same way: the overlay's writes in key order, the
//! cache forgets their keys, the chunk layer turns each large put into chunk
//! puts and deletes, the lease layer reads the lease record, encryption
//! replaces each key by its HMAC and seals each value, and the store applies
//! the batch in one transaction. Reads go down until a layer answers. Every
//! value on the way is a [`Value`], wiped when dropped.

pub mod cache;
pub mod chunked;
pub mod codec;
pub mod encrypted;
pub mod lease;
pub mod memory;
pub mod overlay;
pub mod provider;
pub mod sqlite;

use std::fmt;

use zeroize::Zeroizing;

/// A stored value. Values hold private keys, epoch secrets and PSKs, so every
/// copy the SDK makes of one (the write overlay, the read cache, staged
/// commits, chunks, plaintext inside `encrypted_storage`) is overwritten with
/// zeros when dropped. Copies that OpenMLS keeps inside its own types, and the
/// host's copies, are outside the SDK's reach.
pub type Value = Zeroizing<Vec<u8>>;

/// Appends `bytes` to `buf`. When `buf` must grow, its contents move to a
/// new, larger buffer and the old one is wiped (a plain `Vec` would leave its
/// old allocation behind unwiped).
pub fn extend_wiped(buf: &mut Value, bytes: &[u8]) {
    if buf.capacity() - buf.len() < bytes.len() {
        let wanted = (buf.len() + bytes.len()).max(buf.capacity().saturating_mul(2));
        let mut grown = Zeroizing::new(Vec::with_capacity(wanted));
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(bytes);
}

/// One change inside an atomic batch.
#[derive(Clone, PartialEq, Eq)]
pub enum Write {
    /// Store `value` under `key`, replacing any previous value.
    Put { key: Vec<u8>, value: Value },
    /// Remove `key` (a no-op if it is absent).
    Delete { key: Vec<u8> },
}

impl Write {
    /// A put of `value` under `key`.
    pub fn put(key: Vec<u8>, value: Vec<u8>) -> Self {
        Write::Put {
            key,
            value: Zeroizing::new(value),
        }
    }

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
    /// Set by the lease layer: another client took the store over, so this
    /// batch was not sent (`CoreError::StorageTakenOver`).
    pub taken_over: bool,
}

impl BackendError {
    /// Wraps any displayable reason.
    pub fn new(reason: impl fmt::Display) -> Self {
        Self {
            reason: reason.to_string(),
            taken_over: false,
        }
    }
}

impl From<BackendError> for crate::core::error::CoreError {
    fn from(e: BackendError) -> Self {
        if e.taken_over {
            Self::StorageTakenOver
        } else {
            Self::StorageBackend { reason: e.reason }
        }
    }
}

/// The whole storage contract: point reads and atomic batches.
///
/// `commit` must apply every write of the batch or none of them. Implementations
/// are called from any thread and must not call back into the SDK.
pub trait Backend: Send + Sync {
    /// Returns the value stored under `key`, or `None` if there is none.
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError>;
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
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
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

#[cfg(test)]
mod value_tests {
    use super::*;

    #[test]
    fn extend_wiped_grows_and_keeps_every_byte() {
        let mut buf = Value::default();
        let mut expected = Vec::new();
        for i in 0..200u8 {
            let piece = vec![i; usize::from(i) % 37 + 1];
            extend_wiped(&mut buf, &piece);
            expected.extend_from_slice(&piece);
        }
        assert_eq!(*buf, expected);
    }
}
