//! Encryption at rest for any store.

use std::sync::Arc;

use crate::core::storage::encrypted::{self, EncryptedBackend, KEY_LEN};
use crate::ffi::error::MlsError;
use crate::ffi::storage::{core_backend, BuiltIn, StorageBackend};

/// Wraps any store (`memory_storage()`, `sqlite_storage(path)` or your own
/// `StorageBackend`) so that it only ever sees ciphertext: every value is
/// sealed with AES-256-GCM (random 96-bit nonce, the record's key bound as
/// associated data) and every key is replaced by an HMAC-SHA256, under
/// subkeys of a random per-store data key, which is kept in the store sealed
/// under `key` (with a random per-store salt). The host's database then holds
/// no MLS secrets, group ids, identities or messages in the clear, and two
/// stores under one `key` share nothing.
///
/// `key` must be 32 random bytes that your app keeps in the platform keystore
/// (Android Keystore / iOS Keychain); the same key must be passed every time
/// the store is opened. There is no way to recover the data without it.
///
/// Opening reads one key-check record (and writes it on a new store).
/// A value that was tampered with or moved to another record later makes the
/// call that reads it fail with `StorageCorrupt`, changing nothing.
/// Not hidden: the number, sizes and timing of records; the store can still
/// delete records or roll them back to older values (which brings used
/// message keys back: see the README's Guarantees).
///
/// Errors: `ValidationFailed` if `key` is not 32 bytes; `StorageCorrupt` if
/// the store was encrypted with a different key; `StorageBackend` if the
/// inner store fails.
#[uniffi::export]
pub fn encrypted_storage(
    inner: Arc<dyn StorageBackend>,
    mut key: Vec<u8>,
) -> Result<Arc<dyn StorageBackend>, MlsError> {
    let result = app_key(&key, "storage encryption key").and_then(|mut k| {
        let backend = EncryptedBackend::open(core_backend(inner), &k);
        k.fill(0);
        std::hint::black_box(&mut k);
        backend
            .map(|b| Arc::new(BuiltIn(b)) as Arc<dyn StorageBackend>)
            .map_err(MlsError::from)
    });
    key.fill(0);
    std::hint::black_box(&mut key);
    result
}

/// The 32-byte key as an array, or `ValidationFailed`.
fn app_key(key: &[u8], what: &str) -> Result<[u8; KEY_LEN], MlsError> {
    <[u8; KEY_LEN]>::try_from(key).map_err(|_| MlsError::ValidationFailed {
        reason: format!("the {what} must be {KEY_LEN} bytes, not {}", key.len()),
    })
}

/// Moves a store made by `encrypted_storage` from `old_key` to `new_key`
/// (e.g. when the keystore entry is rotated): its data key is sealed anew in
/// one write of the key-check record; no other record is rewritten. Clients
/// open on the store keep working; from now on it opens with `new_key` only.
///
/// The store's own data key does not change (there is no way to list and
/// re-encrypt every record): whoever holds `old_key` and any earlier copy of
/// the key-check record can still read the store, including what is written
/// after the rekey. Rekeying rotates the app's key; it does not recover from
/// a leaked one: for that, start a new store and rejoin your groups.
///
/// Errors: `ValidationFailed` if a key is not 32 bytes; `StorageCorrupt` if
/// `old_key` does not open the store or it is not an encrypted store;
/// `StorageBackend` if the store fails.
#[uniffi::export]
pub fn rekey_encrypted_storage(
    inner: Arc<dyn StorageBackend>,
    mut old_key: Vec<u8>,
    mut new_key: Vec<u8>,
) -> Result<(), MlsError> {
    let result = (|| {
        let mut old = app_key(&old_key, "old storage encryption key")?;
        let mut new = app_key(&new_key, "new storage encryption key")?;
        let done = encrypted::rekey(core_backend(inner).as_ref(), &old, &new);
        old.fill(0);
        new.fill(0);
        std::hint::black_box((&mut old, &mut new));
        done.map_err(MlsError::from)
    })();
    old_key.fill(0);
    new_key.fill(0);
    std::hint::black_box((&mut old_key, &mut new_key));
    result
}
