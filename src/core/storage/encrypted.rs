//! Encryption at rest: a wrapper over any [`Backend`] so that the host's
//! database never sees MLS secrets, group ids or identities in the clear.
//!
//! From the app's 32-byte key, HKDF-SHA256 (salt [`KDF_SALT`]) derives three
//! independent subkeys:
//! - the **value key**: every value is sealed with AES-256-GCM under a fresh
//!   random 96-bit nonce, with the (plaintext) storage key as associated data,
//!   so a value moved to another key no longer opens;
//! - the **name key**: every storage key is replaced by HMAC-SHA256(name key,
//!   key), so the inner store sees only 32 opaque bytes per record;
//! - the **check key**: one record at the fixed key [`KEY_CHECK_KEY`] holds
//!   HMAC-SHA256(check key, [`KEY_CHECK_LABEL`]), a commitment to the app key,
//!   so opening a store with the wrong key fails at once instead of looking
//!   like an empty store.
//!
//! Stored value layout: `VERSION (1 byte) || nonce (12) || ciphertext || tag (16)`.
//!
//! A value that fails to open (tampered, truncated, swapped with another
//! record's, or sealed under another key) is returned to the SDK as
//! [`CORRUPT_VALUE`], bytes that never decode, so the SDK reports
//! `StorageCorrupt` naming the record kind, exactly as for any other corrupt
//! value, and the operation fails without writing anything.
//!
//! Not covered: the inner store can still see how many records there are, their
//! sizes and when they change, and it can roll a record back to an older value
//! it saw under the same key, or delete records.
//!
//! The crypto comes from `openmls_rust_crypto` (RustCrypto's `aes-gcm`, `hkdf`,
//! `hmac`, `sha2`), already used by OpenMLS; no extra dependency.

use std::fmt;
use std::sync::Arc;

use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::{AeadType, HashType};

use super::{Backend, BackendError, Write};
use crate::core::error::CoreError;

/// Length of the app-provided key.
pub const KEY_LEN: usize = 32;
/// HKDF salt; part of the persisted format.
pub const KDF_SALT: &[u8] = b"mlskit encrypted storage v1";
/// Inner-store key of the key-check record (fixed, so a wrong key can find it).
pub const KEY_CHECK_KEY: &[u8] = b"mlskit\0encrypted\0key-check";
/// Message authenticated by the key-check record.
pub const KEY_CHECK_LABEL: &[u8] = b"mlskit encrypted storage key check";
/// What [`EncryptedBackend::read`] returns for a value that fails to open: a
/// CBOR "break" byte at top level, which no decoder accepts, followed by a note
/// for anyone who looks at it.
pub const CORRUPT_VALUE: &[u8] = b"\xffmlskit: sealed value failed authentication";

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"mlskit encrypted storage v1 value\0";

/// A 32-byte secret, overwritten with zeros when dropped (best effort).
struct Secret([u8; KEY_LEN]);

impl Secret {
    fn derive(crypto: &RustCrypto, prk: &[u8], info: &[u8]) -> Result<Self, CoreError> {
        let okm = crypto
            .hkdf_expand(HashType::Sha2_256, prk, info, KEY_LEN)
            .map_err(|e| CoreError::internal(format!("key derivation failed: {e:?}")))?;
        let mut out = [0u8; KEY_LEN];
        if okm.as_slice().len() != KEY_LEN {
            return Err(CoreError::internal(
                "key derivation returned a wrong length",
            ));
        }
        out.copy_from_slice(okm.as_slice());
        Ok(Self(out))
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

/// Seals values and hashes keys on their way to `inner`.
pub struct EncryptedBackend {
    inner: Arc<dyn Backend>,
    crypto: RustCrypto,
    value_key: Secret,
    name_key: Secret,
}

impl fmt::Debug for EncryptedBackend {
    // Never print the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptedBackend { .. }")
    }
}

fn corrupt_check(reason: &str) -> CoreError {
    CoreError::StorageCorrupt {
        key: "encryption key check".to_string(),
        reason: reason.to_string(),
    }
}

/// Equality that does not stop at the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl EncryptedBackend {
    /// Wraps `inner` under `key`. Reads the key-check record: if it is absent
    /// (a new store) it is written (one commit); if it was written with another
    /// key, or is malformed, this fails with `StorageCorrupt`. Inner failures
    /// are `StorageBackend`.
    pub fn open(inner: Arc<dyn Backend>, key: &[u8; KEY_LEN]) -> Result<Self, CoreError> {
        let crypto = RustCrypto::default();
        let prk = crypto
            .hkdf_extract(HashType::Sha2_256, KDF_SALT, key)
            .map_err(|e| CoreError::internal(format!("key derivation failed: {e:?}")))?;
        let prk = prk.as_slice();
        let value_key = Secret::derive(&crypto, prk, b"value aead key")?;
        let name_key = Secret::derive(&crypto, prk, b"key hmac key")?;
        let check_key = Secret::derive(&crypto, prk, b"key check key")?;
        let check = crypto
            .hmac(HashType::Sha2_256, &check_key.0, KEY_CHECK_LABEL)
            .map_err(|e| CoreError::internal(format!("hmac failed: {e:?}")))?;
        let mut expected = vec![VERSION];
        expected.extend_from_slice(check.as_slice());

        let backend_err = |e: BackendError| CoreError::StorageBackend { reason: e.reason };
        match inner.read(KEY_CHECK_KEY).map_err(backend_err)? {
            Some(found) if same(&found, &expected) => {}
            Some(found) if found.first() == Some(&VERSION) && found.len() == expected.len() => {
                return Err(corrupt_check(
                    "the storage was encrypted with a different key",
                ))
            }
            Some(_) => return Err(corrupt_check("the key-check record is malformed")),
            None => inner
                .commit(vec![Write::Put {
                    key: KEY_CHECK_KEY.to_vec(),
                    value: expected,
                }])
                .map_err(backend_err)?,
        }
        Ok(Self {
            inner,
            crypto,
            value_key,
            name_key,
        })
    }

    /// The inner-store key for a storage key.
    fn name(&self, key: &[u8]) -> Result<Vec<u8>, BackendError> {
        self.crypto
            .hmac(HashType::Sha2_256, &self.name_key.0, key)
            .map(|h| h.as_slice().to_vec())
            .map_err(|e| BackendError::new(format!("hmac failed: {e:?}")))
    }

    fn aad(key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_PREFIX.len() + key.len());
        aad.extend_from_slice(AAD_PREFIX);
        aad.extend_from_slice(key);
        aad
    }

    fn seal(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, BackendError> {
        let nonce: [u8; NONCE_LEN] = self
            .crypto
            .random_array()
            .map_err(|e| BackendError::new(format!("random nonce failed: {e:?}")))?;
        let sealed = self
            .crypto
            .aead_encrypt(
                AeadType::Aes256Gcm,
                &self.value_key.0,
                value,
                &nonce,
                &Self::aad(key),
            )
            .map_err(|e| BackendError::new(format!("sealing a value failed: {e:?}")))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// `None` if the value does not authenticate under `key`.
    fn unseal(&self, key: &[u8], stored: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = stored.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.crypto
            .aead_decrypt(
                AeadType::Aes256Gcm,
                &self.value_key.0,
                sealed,
                nonce,
                &Self::aad(key),
            )
            .ok()
    }
}

impl Backend for EncryptedBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let name = self.name(key)?;
        Ok(self.inner.read(&name)?.map(|stored| {
            self.unseal(key, &stored)
                .unwrap_or_else(|| CORRUPT_VALUE.to_vec())
        }))
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        let sealed = batch
            .into_iter()
            .map(|w| {
                Ok(match w {
                    Write::Put { key, value } => Write::Put {
                        key: self.name(&key)?,
                        value: self.seal(&key, &value)?,
                    },
                    Write::Delete { key } => Write::Delete {
                        key: self.name(&key)?,
                    },
                })
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        self.inner.commit(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::storage::memory::MemoryBackend;

    fn put(key: &[u8], value: &[u8]) -> Write {
        Write::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn round_trip_hides_keys_and_values() {
        let inner = Arc::new(MemoryBackend::new());
        let enc = EncryptedBackend::open(inner.clone(), &[7; 32]).unwrap();
        enc.commit(vec![put(b"secret key", b"secret value")])
            .unwrap();
        assert_eq!(
            enc.read(b"secret key").unwrap(),
            Some(b"secret value".to_vec())
        );
        assert_eq!(enc.read(b"other").unwrap(), None);
        let needle = &b"secret"[..];
        for (k, v) in inner.snapshot() {
            assert!(!k.windows(needle.len()).any(|w| w == needle));
            assert!(!v.windows(needle.len()).any(|w| w == needle));
        }
        enc.commit(vec![Write::Delete {
            key: b"secret key".to_vec(),
        }])
        .unwrap();
        assert_eq!(enc.read(b"secret key").unwrap(), None);
        assert_eq!(inner.len(), 1, "only the key check is left");
    }

    #[test]
    fn tampered_swapped_and_truncated_values_read_as_corrupt() {
        let inner = Arc::new(MemoryBackend::new());
        let enc = EncryptedBackend::open(inner.clone(), &[9; 32]).unwrap();
        enc.commit(vec![put(b"a", b"value a"), put(b"b", b"value b")])
            .unwrap();
        let (na, nb) = (enc.name(b"a").unwrap(), enc.name(b"b").unwrap());
        let (va, vb) = (
            inner.read(&na).unwrap().unwrap(),
            inner.read(&nb).unwrap().unwrap(),
        );
        // Swap.
        inner
            .commit(vec![
                Write::Put {
                    key: na.clone(),
                    value: vb.clone(),
                },
                Write::Put {
                    key: nb.clone(),
                    value: va.clone(),
                },
            ])
            .unwrap();
        assert_eq!(enc.read(b"a").unwrap(), Some(CORRUPT_VALUE.to_vec()));
        assert_eq!(enc.read(b"b").unwrap(), Some(CORRUPT_VALUE.to_vec()));
        // Every single-bit flip, truncations and junk.
        for i in 0..va.len() * 8 {
            let mut t = va.clone();
            t[i / 8] ^= 1 << (i % 8);
            assert_eq!(enc.unseal(b"a", &t), None, "bit {i}");
        }
        for len in 0..va.len() {
            assert_eq!(enc.unseal(b"a", &va[..len]), None, "len {len}");
        }
        assert_eq!(enc.unseal(b"a", &va).as_deref(), Some(&b"value a"[..]));
    }

    #[test]
    fn the_wrong_key_is_refused_and_the_right_one_reopens() {
        let inner = Arc::new(MemoryBackend::new());
        let enc = EncryptedBackend::open(inner.clone(), &[1; 32]).unwrap();
        enc.commit(vec![put(b"k", b"v")]).unwrap();
        drop(enc);
        let err = EncryptedBackend::open(inner.clone(), &[2; 32]).unwrap_err();
        assert!(matches!(err, CoreError::StorageCorrupt { .. }), "{err:?}");
        let enc = EncryptedBackend::open(inner.clone(), &[1; 32]).unwrap();
        assert_eq!(enc.read(b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(format!("{enc:?}"), "EncryptedBackend { .. }");
    }

    #[test]
    fn corrupt_value_never_decodes() {
        let key = crate::core::storage::codec::key(
            crate::core::storage::codec::Namespace::Sdk,
            "groups",
            b"",
        );
        let r = crate::core::storage::codec::decode::<Vec<Vec<u8>>>(&key, CORRUPT_VALUE);
        assert!(matches!(r, Err(CoreError::StorageCorrupt { .. })));
        let r = crate::core::storage::codec::decode::<String>(&key, CORRUPT_VALUE);
        assert!(matches!(r, Err(CoreError::StorageCorrupt { .. })));
        let r = crate::core::storage::codec::decode::<Option<u8>>(&key, CORRUPT_VALUE);
        assert!(matches!(r, Err(CoreError::StorageCorrupt { .. })));
    }
}
