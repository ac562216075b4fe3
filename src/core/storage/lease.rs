//! The store lease: one live client per store, detected through the store.
//!
//! Two clients writing one store (typically an app and its notification
//! extension on one database) would both encrypt at the same generation and
//! peers would drop one of them as duplicates. `Client::open` writes a fresh
//! random token into the lease record in its first batch, which takes the
//! store over; from then on, before each batch this layer reads the record
//! from the store itself (below every cache) and refuses the batch with
//! `taken_over` set when the token is no longer its own. So the client that
//! opened last owns the store, and an earlier one fails every write with
//! `StorageTakenOver` without writing anything.
//!
//! The check and the host's commit are two calls, not one transaction: a
//! client that opens in between them can still see one batch of the old
//! client land after its own open. The hand-over is meant for clients that
//! take turns (the extension runs while the app is suspended), not for two
//! clients writing at the same moment.

use std::sync::Arc;

use super::codec;
use super::overlay::Overlay;
use super::{Backend, BackendError, Value, Write};

const LEASE: &str = "lease";

/// Key of the lease record.
pub fn lease_key() -> Vec<u8> {
    Overlay::sdk_key(LEASE, b"")
}

/// A backend that sends batches only while its lease token is the stored one.
pub struct LeasedBackend {
    inner: Arc<dyn Backend>,
    key: Vec<u8>,
    /// The stored form of this client's token.
    token: Value,
}

impl LeasedBackend {
    /// Guards `inner` with `token` (random, one per opened client).
    pub fn new(inner: Arc<dyn Backend>, token: &[u8]) -> Result<Self, BackendError> {
        let token = Value::new(codec::encode(&token.to_vec()).map_err(BackendError::new)?);
        Ok(Self {
            inner,
            key: lease_key(),
            token,
        })
    }

    /// The record (key, value) whose write takes the store over; part of
    /// `Client::open`'s batch.
    pub fn acquire(&self) -> (Vec<u8>, Value) {
        (self.key.clone(), self.token.clone())
    }

    fn acquires(&self, batch: &[Write]) -> bool {
        batch.iter().any(|w| match w {
            Write::Put { key, value } => *key == self.key && *value == self.token,
            Write::Delete { .. } => false,
        })
    }
}

impl Backend for LeasedBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        self.inner.read(key)
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        if !self.acquires(&batch) && self.inner.read(&self.key)?.as_ref() != Some(&self.token) {
            return Err(BackendError {
                reason: "another client took this store over".into(),
                taken_over: true,
            });
        }
        self.inner.commit(batch)
    }

    fn invalidate(&self) {
        self.inner.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::storage::memory::MemoryBackend;

    fn take_over(lease: &LeasedBackend) -> Write {
        let (key, value) = lease.acquire();
        Write::Put { key, value }
    }

    fn put(key: &[u8]) -> Write {
        Write::put(key.to_vec(), b"v".to_vec())
    }

    #[test]
    fn the_last_client_to_acquire_owns_the_store() {
        let store = Arc::new(MemoryBackend::new());
        let first = LeasedBackend::new(store.clone(), &[1; 16]).unwrap();
        first.commit(vec![take_over(&first)]).unwrap();
        first.commit(vec![put(b"a")]).unwrap();
        let second = LeasedBackend::new(store.clone(), &[2; 16]).unwrap();
        second.commit(vec![take_over(&second), put(b"b")]).unwrap();
        let err = first.commit(vec![put(b"c")]).unwrap_err();
        assert!(err.taken_over, "{err:?}");
        assert_eq!(
            store.read(b"c").unwrap().map(|v| v.to_vec()),
            None,
            "nothing of a refused batch lands"
        );
        second.commit(vec![put(b"d")]).unwrap();
    }

    #[test]
    fn a_store_without_a_lease_record_is_not_ours() {
        let store = Arc::new(MemoryBackend::new());
        let client = LeasedBackend::new(store.clone(), &[3; 16]).unwrap();
        assert!(client.commit(vec![put(b"a")]).unwrap_err().taken_over);
        client.commit(vec![take_over(&client)]).unwrap();
        store
            .commit(vec![Write::Delete { key: lease_key() }])
            .unwrap();
        assert!(client.commit(vec![put(b"a")]).unwrap_err().taken_over);
    }
}
