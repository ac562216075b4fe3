//! Encryption at rest: a wrapper over any [`Backend`] so that the host's
//! database never sees MLS secrets, group ids or identities in the clear.
//!
//! Each store has its own random 32-byte **data key**, made when the store is
//! first opened and kept in the key-check record at [`KEY_CHECK_KEY`], sealed
//! (AES-256-GCM) under a **wrap key** that HKDF-SHA256 derives from the app's
//! key and a random per-store salt kept beside it. From the data key, HKDF
//! derives two subkeys:
//! - the **value key**: every value is sealed with AES-256-GCM under a fresh
//!   random 96-bit nonce, with the (plaintext) storage key as associated data,
//!   so a value moved to another key no longer opens;
//! - the **name key**: every storage key is replaced by HMAC-SHA256(name key,
//!   key), so the inner store sees only 32 opaque bytes per record.
//!
//! So two stores under the same app key share neither record names nor
//! values (a value copied from one does not open in the other), opening with
//! the wrong app key fails at once (the data key does not unseal) instead of
//! looking like an empty store, and [`rekey`] moves a store to a new app key
//! by rewriting the key-check record alone.
//!
//! Key-check record: `VERSION (1) || salt (32) || nonce (12) || sealed data
//! key (32) || tag (16)`. Stored value: `VERSION (1) || nonce (12) ||
//! ciphertext || tag (16)`.
//!
//! A value that fails to open (tampered, truncated, swapped with another
//! record's, or sealed under another key) is returned to the SDK as
//! [`CORRUPT_VALUE`], bytes that never decode, so the SDK reports
//! `StorageCorrupt` naming the record kind, exactly as for any other corrupt
//! value, and the operation fails without writing anything.
//!
//! Not covered: the inner store can still see how many records there are, their
//! sizes and when they change, and it can roll a record (or the whole store)
//! back to an older value it saw, or delete records; see the README.
//!
//! The crypto is RustCrypto's, already used by OpenMLS: HKDF and HMAC through
//! `openmls_rust_crypto`, and `aes-gcm` directly, in place, so that
//! plaintext only lives in buffers that are wiped (`storage::Value`).

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::CryptoError;
use openmls_traits::types::HashType;

use super::{Backend, BackendError, Value, Write};
use crate::core::error::CoreError;

/// Length of the app-provided key.
pub const KEY_LEN: usize = 32;
/// Inner-store key of the key-check record (fixed, so every app key finds it).
pub const KEY_CHECK_KEY: &[u8] = b"mlskit\0encrypted\0key-check";
/// Associated data of the sealed data key (followed by the salt).
const DATA_KEY_AAD: &[u8] = b"mlskit encrypted storage v2 data key\0";
const SALT_LEN: usize = 32;
/// What [`EncryptedBackend::read`] returns for a value that fails to open: a
/// CBOR "break" byte at top level, which no decoder accepts, followed by a note
/// for anyone who looks at it.
pub const CORRUPT_VALUE: &[u8] = b"\xffmlskit: sealed value failed authentication";

/// Format of the key-check record and of sealed values. Version 1 (a
/// constant salt, keys derived from the app key directly) was never released.
const VERSION: u8 = 2;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"mlskit encrypted storage v2 value\0";
const CHECK_LEN: usize = 1 + SALT_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// A 32-byte secret, overwritten with zeros when dropped (best effort).
struct Secret([u8; KEY_LEN]);

impl Secret {
    fn copy_of(bytes: &[u8]) -> Result<Self, CoreError> {
        let mut out = [0u8; KEY_LEN];
        if bytes.len() != KEY_LEN {
            return Err(CoreError::internal("a derived key has a wrong length"));
        }
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// HKDF-SHA256 extract (`salt`, `ikm`) then expand (`info`).
    fn derive(
        crypto: &RustCrypto,
        salt: &[u8],
        ikm: &[u8],
        info: &[u8],
    ) -> Result<Self, CoreError> {
        let kdf = |e: CryptoError| CoreError::internal(format!("key derivation failed: {e:?}"));
        let prk = crypto
            .hkdf_extract(HashType::Sha2_256, salt, ikm)
            .map_err(kdf)?;
        let okm = crypto
            .hkdf_expand(HashType::Sha2_256, prk.as_slice(), info, KEY_LEN)
            .map_err(kdf)?;
        Self::copy_of(okm.as_slice())
    }
}

/// The store's data key, sealed under an app key: the key-check record.
struct KeyCheck {
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    sealed: Vec<u8>,
}

impl KeyCheck {
    fn wrap_key(
        crypto: &RustCrypto,
        app_key: &[u8; KEY_LEN],
        salt: &[u8],
    ) -> Result<Secret, CoreError> {
        Secret::derive(crypto, salt, app_key, b"data key wrap key")
    }

    fn aad(salt: &[u8]) -> Vec<u8> {
        [DATA_KEY_AAD, salt].concat()
    }

    /// Seals `data_key` under `app_key` with a fresh salt and nonce.
    fn seal(
        crypto: &RustCrypto,
        app_key: &[u8; KEY_LEN],
        data_key: &Secret,
    ) -> Result<Self, CoreError> {
        let random = |e| CoreError::internal(format!("randomness failed: {e:?}"));
        let salt: [u8; SALT_LEN] = crypto.random_array().map_err(random)?;
        let nonce: [u8; NONCE_LEN] = crypto.random_array().map_err(random)?;
        let wrap = Self::wrap_key(crypto, app_key, &salt)?;
        let sealed = seal_in_place(&wrap, &nonce, &[], &data_key.0, &Self::aad(&salt))
            .map_err(|e| CoreError::internal(format!("sealing the data key failed: {e}")))?;
        Ok(Self {
            salt,
            nonce,
            sealed,
        })
    }

    fn parse(stored: &[u8]) -> Result<Self, CoreError> {
        match stored.split_first() {
            Some((&VERSION, rest)) if stored.len() == CHECK_LEN => {
                let (salt, rest) = rest.split_at(SALT_LEN);
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                let mut check = Self {
                    salt: [0; SALT_LEN],
                    nonce: [0; NONCE_LEN],
                    sealed: sealed.to_vec(),
                };
                check.salt.copy_from_slice(salt);
                check.nonce.copy_from_slice(nonce);
                Ok(check)
            }
            Some((1, _)) => Err(corrupt_check(
                "the store was written by an unreleased development version of encrypted storage",
            )),
            _ => Err(corrupt_check("the key-check record is malformed")),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        [&[VERSION][..], &self.salt, &self.nonce, &self.sealed].concat()
    }

    /// The data key, if `app_key` is the one it was sealed under.
    fn open(&self, crypto: &RustCrypto, app_key: &[u8; KEY_LEN]) -> Result<Secret, CoreError> {
        let wrap = Self::wrap_key(crypto, app_key, &self.salt)?;
        let data_key = open_in_place(&wrap, &self.nonce, &self.sealed, &Self::aad(&self.salt))
            .ok_or_else(|| corrupt_check("the storage was encrypted with a different key"))?;
        Secret::copy_of(&data_key)
    }
}

/// `prefix || AES-256-GCM(key, nonce, plaintext, aad) || tag`, sealed in one
/// buffer sized up front: the plaintext copied into it is overwritten by its
/// ciphertext in place, and no outgrown buffer is left behind.
fn seal_in_place(
    key: &Secret,
    nonce: &[u8; NONCE_LEN],
    prefix: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, BackendError> {
    let cipher = Aes256Gcm::new_from_slice(&key.0).map_err(BackendError::new)?;
    let mut out = Vec::with_capacity(prefix.len() + plaintext.len() + TAG_LEN);
    out.extend_from_slice(prefix);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut out[prefix.len()..])
        .map_err(|_| BackendError::new("sealing a value failed"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens `sealed` (ciphertext || tag) into a buffer that is wiped when
/// dropped; `None` if it does not authenticate.
fn open_in_place(key: &Secret, nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Option<Value> {
    if nonce.len() != NONCE_LEN || sealed.len() < TAG_LEN {
        return None;
    }
    let cipher = Aes256Gcm::new_from_slice(&key.0).ok()?;
    let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut buffer = Value::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buffer,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(buffer)
}

fn backend_error(e: BackendError) -> CoreError {
    CoreError::from(e)
}

/// Reads the key-check record of `inner` (`None` on a new store).
fn read_check(inner: &dyn Backend) -> Result<Option<KeyCheck>, CoreError> {
    inner
        .read(KEY_CHECK_KEY)
        .map_err(backend_error)?
        .map(|stored| KeyCheck::parse(&stored))
        .transpose()
}

/// Moves the encrypted store `inner` from `old_key` to `new_key`: the data
/// key is sealed anew (fresh salt) in one write of the key-check record; no
/// other record changes, so the data key itself stays: whoever holds
/// `old_key` and any earlier copy of the key-check record can still derive
/// it and read the store, now and later. Rekeying rotates the app's key; it
/// does not recover from a leaked one (for that, start a new store and
/// rejoin). Fails with `StorageCorrupt` if `old_key` does not open the store
/// (or it is not an encrypted store: it has no key-check record) and
/// `StorageBackend` if the store fails. Clients already open on the store
/// keep working; later opens need `new_key`.
pub fn rekey(
    inner: &dyn Backend,
    old_key: &[u8; KEY_LEN],
    new_key: &[u8; KEY_LEN],
) -> Result<(), CoreError> {
    let crypto = RustCrypto::default();
    let check = read_check(inner)?.ok_or_else(|| {
        corrupt_check("the store has no key-check record: it is not an encrypted store")
    })?;
    let data_key = check.open(&crypto, old_key)?;
    let resealed = KeyCheck::seal(&crypto, new_key, &data_key)?;
    inner
        .commit(vec![Write::put(
            KEY_CHECK_KEY.to_vec(),
            resealed.to_bytes(),
        )])
        .map_err(backend_error)
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

impl EncryptedBackend {
    /// Wraps `inner` under the app's `key`. Reads the key-check record: if it
    /// is absent (a new store), a data key is made and written sealed under
    /// `key` (one commit); if `key` does not open it, or it is malformed, this
    /// fails with `StorageCorrupt`. Inner failures are `StorageBackend`.
    pub fn open(inner: Arc<dyn Backend>, key: &[u8; KEY_LEN]) -> Result<Self, CoreError> {
        let crypto = RustCrypto::default();
        let data_key = match read_check(inner.as_ref())? {
            Some(check) => check.open(&crypto, key)?,
            None => {
                let mut fresh: [u8; KEY_LEN] = crypto
                    .random_array()
                    .map_err(|e| CoreError::internal(format!("randomness failed: {e:?}")))?;
                let data_key = Secret(fresh);
                fresh.fill(0);
                std::hint::black_box(&mut fresh);
                let check = KeyCheck::seal(&crypto, key, &data_key)?;
                inner
                    .commit(vec![Write::put(KEY_CHECK_KEY.to_vec(), check.to_bytes())])
                    .map_err(backend_error)?;
                // Two first opens racing on one new store each write a data
                // key; whichever record the store kept is the store's key.
                match read_check(inner.as_ref())? {
                    Some(stored) if stored.to_bytes() != check.to_bytes() => {
                        stored.open(&crypto, key)?
                    }
                    _ => data_key,
                }
            }
        };
        let value_key = Secret::derive(&crypto, &[], &data_key.0, b"value aead key")?;
        let name_key = Secret::derive(&crypto, &[], &data_key.0, b"key hmac key")?;
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
        let mut header = [0u8; 1 + NONCE_LEN];
        header[0] = VERSION;
        header[1..].copy_from_slice(&nonce);
        seal_in_place(&self.value_key, &nonce, &header, value, &Self::aad(key))
    }

    /// `None` if the value does not authenticate under `key`.
    fn unseal(&self, key: &[u8], stored: &[u8]) -> Option<Value> {
        let (&version, rest) = stored.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        open_in_place(&self.value_key, nonce, sealed, &Self::aad(key))
    }
}

impl Backend for EncryptedBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        let name = self.name(key)?;
        Ok(self.inner.read(&name)?.map(|stored| {
            self.unseal(key, &stored)
                .unwrap_or_else(|| Value::new(CORRUPT_VALUE.to_vec()))
        }))
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        let sealed = batch
            .into_iter()
            .map(|w| {
                Ok(match w {
                    Write::Put { key, value } => {
                        Write::put(self.name(&key)?, self.seal(&key, &value)?)
                    }
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
            value: value.to_vec().into(),
        }
    }

    #[test]
    fn round_trip_hides_keys_and_values() {
        let inner = Arc::new(MemoryBackend::new());
        let enc = EncryptedBackend::open(inner.clone(), &[7; 32]).unwrap();
        enc.commit(vec![put(b"secret key", b"secret value")])
            .unwrap();
        assert_eq!(
            enc.read(b"secret key").unwrap().map(|v| v.to_vec()),
            Some(b"secret value".to_vec())
        );
        assert_eq!(enc.read(b"other").unwrap().map(|v| v.to_vec()), None);
        let needle = &b"secret"[..];
        for (k, v) in inner.snapshot() {
            assert!(!k.windows(needle.len()).any(|w| w == needle));
            assert!(!v.windows(needle.len()).any(|w| w == needle));
        }
        enc.commit(vec![Write::Delete {
            key: b"secret key".to_vec(),
        }])
        .unwrap();
        assert_eq!(enc.read(b"secret key").unwrap().map(|v| v.to_vec()), None);
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
            inner.read(&na).unwrap().map(|v| v.to_vec()).unwrap(),
            inner.read(&nb).unwrap().map(|v| v.to_vec()).unwrap(),
        );
        // Swap.
        inner
            .commit(vec![
                Write::Put {
                    key: na.clone(),
                    value: vb.clone().into(),
                },
                Write::Put {
                    key: nb.clone(),
                    value: va.clone().into(),
                },
            ])
            .unwrap();
        assert_eq!(
            enc.read(b"a").unwrap().map(|v| v.to_vec()),
            Some(CORRUPT_VALUE.to_vec())
        );
        assert_eq!(
            enc.read(b"b").unwrap().map(|v| v.to_vec()),
            Some(CORRUPT_VALUE.to_vec())
        );
        // Every single-bit flip, truncations and junk.
        for i in 0..va.len() * 8 {
            let mut t = va.clone();
            t[i / 8] ^= 1 << (i % 8);
            assert_eq!(enc.unseal(b"a", &t), None, "bit {i}");
        }
        for len in 0..va.len() {
            assert_eq!(enc.unseal(b"a", &va[..len]), None, "len {len}");
        }
        assert_eq!(
            enc.unseal(b"a", &va).as_deref().map(Vec::as_slice),
            Some(&b"value a"[..])
        );
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
        assert_eq!(
            enc.read(b"k").unwrap().map(|v| v.to_vec()),
            Some(b"v".to_vec())
        );
        assert_eq!(format!("{enc:?}"), "EncryptedBackend { .. }");
    }

    #[test]
    fn two_stores_under_one_app_key_share_no_names_and_no_values() {
        let (one, two) = (
            Arc::new(MemoryBackend::new()),
            Arc::new(MemoryBackend::new()),
        );
        let a = EncryptedBackend::open(one.clone(), &[5; 32]).unwrap();
        let b = EncryptedBackend::open(two.clone(), &[5; 32]).unwrap();
        assert_ne!(a.name(b"k").unwrap(), b.name(b"k").unwrap());
        a.commit(vec![put(b"k", b"from one")]).unwrap();
        let copied = one
            .read(&a.name(b"k").unwrap())
            .unwrap()
            .map(|v| v.to_vec())
            .unwrap();
        two.commit(vec![Write::Put {
            key: b.name(b"k").unwrap(),
            value: copied.into(),
        }])
        .unwrap();
        assert_eq!(
            b.read(b"k").unwrap().map(|v| v.to_vec()),
            Some(CORRUPT_VALUE.to_vec())
        );
        assert_ne!(
            one.read(KEY_CHECK_KEY).unwrap().map(|v| v.to_vec()),
            two.read(KEY_CHECK_KEY).unwrap().map(|v| v.to_vec()),
            "salts and data keys differ"
        );
    }

    #[test]
    fn rekey_moves_the_store_to_the_new_key_and_nothing_else_changes() {
        let inner = Arc::new(MemoryBackend::new());
        let enc = EncryptedBackend::open(inner.clone(), &[1; 32]).unwrap();
        enc.commit(vec![put(b"k", b"v")]).unwrap();
        let before = inner.snapshot();

        let err = rekey(inner.as_ref(), &[9; 32], &[2; 32]).unwrap_err();
        assert!(matches!(err, CoreError::StorageCorrupt { .. }), "{err:?}");
        assert_eq!(inner.snapshot(), before, "a refused rekey writes nothing");

        rekey(inner.as_ref(), &[1; 32], &[2; 32]).unwrap();
        let after = inner.snapshot();
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .collect();
        assert_eq!(changed.len(), 1, "only the key-check record is rewritten");
        assert_eq!(changed[0].0.as_slice(), KEY_CHECK_KEY);
        assert_eq!(
            enc.read(b"k").unwrap().map(|v| v.to_vec()),
            Some(b"v".to_vec()),
            "an open store keeps working"
        );
        assert!(
            EncryptedBackend::open(inner.clone(), &[1; 32]).is_err(),
            "old key"
        );
        let reopened = EncryptedBackend::open(inner.clone(), &[2; 32]).unwrap();
        assert_eq!(
            reopened.read(b"k").unwrap().map(|v| v.to_vec()),
            Some(b"v".to_vec())
        );

        let plain = MemoryBackend::new();
        assert!(matches!(
            rekey(&plain, &[1; 32], &[2; 32]),
            Err(CoreError::StorageCorrupt { .. })
        ));
        assert_eq!(plain.len(), 0);
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
