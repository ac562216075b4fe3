//! Encryption at rest for any store.

use std::sync::Arc;

use crate::core::storage::encrypted::{EncryptedBackend, KEY_LEN};
use crate::ffi::error::MlsError;
use crate::ffi::storage::{core_backend, BuiltIn, StorageBackend};

/// Wraps any store (`memory_storage()`, `sqlite_storage(path)` or your own
/// `StorageBackend`) so that it only ever sees ciphertext: every value is
/// sealed with AES-256-GCM (random 96-bit nonce, the record's key bound as
/// associated data) and every key is replaced by an HMAC-SHA256, under subkeys
/// derived with HKDF-SHA256 from `key`. The host's database then holds no MLS
/// secrets, group ids, identities or messages in the clear.
///
/// `key` must be 32 random bytes that your app keeps in the platform keystore
/// (Android Keystore / iOS Keychain); the same key must be passed every time
/// the store is opened. There is no way to recover the data without it.
///
/// Opening reads one key-check record (and writes it on a new store).
/// A value that was tampered with or moved to another record later makes the
/// call that reads it fail with `StorageCorrupt`, changing nothing.
/// Not hidden: the number, sizes and timing of records; the store can still
/// delete records or roll one back to an older value.
///
/// Errors: `ValidationFailed` if `key` is not 32 bytes; `StorageCorrupt` if
/// the store was encrypted with a different key; `StorageBackend` if the
/// inner store fails.
#[uniffi::export]
pub fn encrypted_storage(
    inner: Arc<dyn StorageBackend>,
    mut key: Vec<u8>,
) -> Result<Arc<dyn StorageBackend>, MlsError> {
    let result = match <[u8; KEY_LEN]>::try_from(key.as_slice()) {
        Ok(mut k) => {
            let backend = EncryptedBackend::open(core_backend(inner), &k);
            k.fill(0);
            std::hint::black_box(&mut k);
            backend
                .map(|b| Arc::new(BuiltIn(b)) as Arc<dyn StorageBackend>)
                .map_err(MlsError::from)
        }
        Err(_) => Err(MlsError::ValidationFailed {
            reason: format!(
                "the storage encryption key must be {KEY_LEN} bytes, not {}",
                key.len()
            ),
        }),
    };
    key.fill(0);
    std::hint::black_box(&mut key);
    result
}
