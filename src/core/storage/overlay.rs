//! The write overlay: every SDK operation reads through it and writes only into
//! it; on success its contents become exactly one atomic backend batch.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{de::DeserializeOwned, Serialize};

use super::codec::{self, Namespace};
use super::{Backend, BackendError, Value, Write};
use crate::core::error::CoreError;

thread_local! {
    /// How many backend calls (storage callbacks) this thread is inside.
    static CALLBACK_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks this thread as inside a backend call until dropped (panic-safe).
struct InCallback;

impl InCallback {
    fn enter() -> Self {
        CALLBACK_DEPTH.with(|d| d.set(d.get().saturating_add(1)));
        InCallback
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        CALLBACK_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Calls a backend; a backend that panics (a bug in a Rust backend) counts as a
/// failed call, so the operation is rolled back like any other storage failure.
fn guard_backend<T>(call: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(BackendError::new("the storage backend panicked")))
}

/// Runs `f` (a call into the app, such as its logger) marked as a callback,
/// so that a call back into the SDK from it fails with `ReentrantCall`.
pub(crate) fn as_callback<T>(f: impl FnOnce() -> T) -> T {
    let _guard = InCallback::enter();
    f()
}

/// Fails with `ReentrantCall` when called from inside a storage callback.
/// Every SDK entry point calls this before it takes any lock: a callback that
/// called back into the SDK would otherwise wait for a lock its own thread holds.
pub(crate) fn not_in_callback() -> Result<(), CoreError> {
    if CALLBACK_DEPTH.with(Cell::get) > 0 {
        Err(CoreError::ReentrantCall)
    } else {
        Ok(())
    }
}

/// Buffered writes over a backend. Reads see buffered writes first.
pub struct Overlay {
    base: Arc<dyn Backend>,
    writes: Mutex<BTreeMap<Vec<u8>, Option<Value>>>,
    /// The first failure seen, kept because OpenMLS masks some storage errors.
    fault: Mutex<Option<CoreError>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock can only come from our own code; the data
    // is a plain map, so continuing with it is sound.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Overlay {
    /// An empty overlay over `base`.
    pub fn new(base: Arc<dyn Backend>) -> Self {
        Self::with_writes(base, Vec::new())
    }

    /// An overlay that starts with `writes` already buffered (a staged commit's).
    pub fn with_writes(base: Arc<dyn Backend>, writes: Vec<Write>) -> Self {
        let overlay = Self {
            base,
            writes: Mutex::new(BTreeMap::new()),
            fault: Mutex::new(None),
        };
        for w in writes {
            match w {
                Write::Put { key, value } => overlay.put(key, value),
                Write::Delete { key } => overlay.delete(key),
            }
        }
        overlay
    }

    /// The backend under this overlay.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.base
    }

    /// Remembers the first failure of this operation (and drops the backend's cache).
    pub fn record(&self, error: CoreError) -> CoreError {
        self.base.invalidate();
        let mut fault = locked(&self.fault);
        if fault.is_none() {
            *fault = Some(error.clone());
        }
        error
    }

    /// Forgets the recorded failure, for a caller that handled it.
    pub fn clear_fault(&self) {
        *locked(&self.fault) = None;
    }

    /// The first storage failure seen during this operation, if any.
    pub fn fault(&self) -> Option<CoreError> {
        locked(&self.fault).clone()
    }

    /// Reads raw bytes: buffered writes first, then the backend.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, CoreError> {
        if let Some(buffered) = locked(&self.writes).get(key) {
            return Ok(buffered.clone());
        }
        let _guard = InCallback::enter();
        guard_backend(|| self.base.read(key)).map_err(|e| self.record(e.into()))
    }

    /// Buffers a put.
    pub fn put(&self, key: Vec<u8>, value: Value) {
        locked(&self.writes).insert(key, Some(value));
    }

    /// Buffers a delete.
    pub fn delete(&self, key: Vec<u8>) {
        locked(&self.writes).insert(key, None);
    }

    /// Whether this operation deleted `key` (without writing it again).
    pub fn deleted_here(&self, key: &[u8]) -> bool {
        matches!(locked(&self.writes).get(key), Some(None))
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        locked(&self.writes).is_empty()
    }

    /// The buffered writes as a batch, in key order.
    pub fn batch(&self) -> Vec<Write> {
        locked(&self.writes)
            .iter()
            .map(|(key, value)| match value {
                Some(value) => Write::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                None => Write::Delete { key: key.clone() },
            })
            .collect()
    }

    /// Sends the buffered writes to the backend as one atomic batch (none if empty).
    pub fn flush(&self) -> Result<(), CoreError> {
        let batch = self.batch();
        if batch.is_empty() {
            return Ok(());
        }
        let _guard = InCallback::enter();
        guard_backend(|| self.base.commit(batch)).map_err(|e| {
            let e = CoreError::from(e);
            crate::core::error::log_failure(&e);
            e
        })
    }

    /// Reads and decodes a typed value.
    pub fn get_value<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, CoreError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(key, &bytes)
                .map(Some)
                .map_err(|e| self.record(e)),
        }
    }

    /// Encodes and buffers a typed value.
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), CoreError> {
        let bytes = codec::encode_value(value).map_err(|e| self.record(e))?;
        self.put(key, bytes);
        Ok(())
    }

    /// Key of an SDK-owned record.
    pub fn sdk_key(label: &str, sub_key: &[u8]) -> Vec<u8> {
        codec::key(Namespace::Sdk, label, sub_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::storage::memory::MemoryBackend;
    use crate::core::storage::CountingBackend as Counting;
    use std::sync::atomic::Ordering;

    #[test]
    fn reads_see_buffered_writes_and_tombstones_first() {
        let base = Arc::new(Counting::default());
        base.inner
            .commit(vec![Write::Put {
                key: b"a".to_vec(),
                value: b"old".to_vec().into(),
            }])
            .unwrap();
        let overlay = Overlay::new(base.clone());
        assert_eq!(
            overlay.get(b"a").unwrap().map(|v| v.to_vec()),
            Some(b"old".to_vec())
        );
        overlay.put(b"a".to_vec(), b"new".to_vec().into());
        assert_eq!(
            overlay.get(b"a").unwrap().map(|v| v.to_vec()),
            Some(b"new".to_vec())
        );
        overlay.delete(b"a".to_vec());
        assert_eq!(overlay.get(b"a").unwrap().map(|v| v.to_vec()), None);
        assert!(overlay.deleted_here(b"a"));
        // Nothing reached the backend yet.
        assert_eq!(
            base.inner.read(b"a").unwrap().map(|v| v.to_vec()),
            Some(b"old".to_vec())
        );
        assert_eq!(base.commits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn flush_is_one_commit_and_an_empty_overlay_none() {
        let base = Arc::new(Counting::default());
        let overlay = Overlay::new(base.clone());
        overlay.flush().unwrap();
        assert_eq!(base.commits.load(Ordering::SeqCst), 0);
        overlay.put(b"x".to_vec(), b"1".to_vec().into());
        overlay.put(b"y".to_vec(), b"2".to_vec().into());
        overlay.delete(b"z".to_vec());
        overlay.flush().unwrap();
        assert_eq!(base.commits.load(Ordering::SeqCst), 1);
        assert_eq!(base.inner.len(), 2);
    }

    #[test]
    fn a_refused_flush_writes_nothing_and_reports_the_reason() {
        let base = Arc::new(Counting::default());
        base.refuse.store(true, Ordering::SeqCst);
        let overlay = Overlay::new(base.clone());
        overlay.put(b"x".to_vec(), b"1".to_vec().into());
        let err = overlay.flush().unwrap_err();
        assert_eq!(
            err,
            CoreError::StorageBackend {
                reason: "refused".into()
            }
        );
        assert!(base.inner.is_empty());
    }

    #[test]
    fn a_value_that_does_not_decode_is_storage_corrupt_and_recorded() {
        let base = Arc::new(MemoryBackend::new());
        let key = Overlay::sdk_key("groups", b"");
        base.commit(vec![Write::Put {
            key: key.clone(),
            value: vec![0xff, 0x00, 0x13].into(),
        }])
        .unwrap();
        let overlay = Overlay::new(base);
        let err = overlay.get_value::<Vec<Vec<u8>>>(&key).unwrap_err();
        assert!(matches!(&err, CoreError::StorageCorrupt { key, .. } if key == "sdk/groups"));
        assert_eq!(overlay.fault(), Some(err));
    }
}
