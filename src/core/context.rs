//! What the client and its groups share: the client core (storage stack,
//! crypto, identity, settings, signers), the batch runner and the lock helper.
//! Depends on neither `client` nor `group`, so neither imports the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;

use crate::core::config::ClientOptions;
use crate::core::error::{self, CoreError};
use crate::core::records;
use crate::core::storage::overlay::{not_in_callback, Overlay};
use crate::core::storage::provider::Provider;
use crate::core::storage::Backend;

/// One client's shared state; every group handle holds it.
pub(crate) struct ClientCore {
    /// The storage stack (cache over chunks over the lease over the host).
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) crypto: RustCrypto,
    pub(crate) identity: Vec<u8>,
    pub(crate) settings: ClientOptions,
    signers: Mutex<HashMap<u16, Arc<SignatureKeyPair>>>,
    /// Serializes read-modify-write of the SDK index records.
    pub(crate) index_lock: Mutex<()>,
}

/// Locks `m`, ignoring poisoning (every critical section leaves consistent state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Prefers the storage fault recorded in the overlay over OpenMLS's version
/// of it, drops cached reads and logs the failure.
pub(crate) fn finish<T>(provider: &Provider, result: Result<T, CoreError>) -> Result<T, CoreError> {
    result.map_err(|e| {
        provider.overlay().backend().invalidate();
        let e = provider.overlay().fault().unwrap_or(e);
        error::log_failure(&e);
        e
    })
}

/// `finish`, then the overlay's writes as one batch.
pub(crate) fn commit<T>(provider: &Provider, result: Result<T, CoreError>) -> Result<T, CoreError> {
    finish(provider, result).and_then(|v| provider.overlay().flush().map(|_| v))
}

impl ClientCore {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        crypto: RustCrypto,
        identity: Vec<u8>,
        settings: ClientOptions,
    ) -> Self {
        Self {
            backend,
            crypto,
            identity,
            settings,
            signers: Mutex::new(HashMap::new()),
            index_lock: Mutex::new(()),
        }
    }

    /// A provider over a fresh overlay (nothing written until it is flushed).
    pub(crate) fn provider(&self) -> Provider<'_> {
        Provider::new(&self.crypto, Overlay::new(self.backend.clone()))
    }

    /// Our signature key for `scheme`, from the cache or storage. Every
    /// supported scheme's key exists once `Client::open` returned.
    pub(crate) fn signer(
        &self,
        scheme: SignatureScheme,
        overlay: &Overlay,
    ) -> Result<Arc<SignatureKeyPair>, CoreError> {
        let code = scheme as u16;
        if let Some(s) = lock(&self.signers).get(&code) {
            return Ok(s.clone());
        }
        match records::signer(overlay, code)? {
            Some(stored) => {
                let stored = Arc::new(stored);
                lock(&self.signers).insert(code, stored.clone());
                Ok(stored)
            }
            None => Err(CoreError::StorageCorrupt {
                key: records::SIGNER.into(),
                reason: format!("no signature key for scheme 0x{code:04x}"),
            }),
        }
    }

    /// Creates the signature key for `scheme` into `overlay` unless one is
    /// stored. Only `Client::open` calls it, so two threads can never create
    /// two keys for one scheme.
    /// A stored key is read (so a damaged one fails the open) and cached.
    pub(crate) fn ensure_signer(
        &self,
        scheme: SignatureScheme,
        overlay: &Overlay,
    ) -> Result<(), CoreError> {
        let code = scheme as u16;
        match records::signer(overlay, code)? {
            Some(stored) => {
                lock(&self.signers).insert(code, Arc::new(stored));
            }
            None => {
                let created = SignatureKeyPair::new(scheme).map_err(CoreError::internal)?;
                records::put_signer(overlay, code, &created)?;
            }
        }
        Ok(())
    }

    /// Our basic credential with the public key of `signer`.
    pub(crate) fn credential(&self, signer: &SignatureKeyPair) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.identity.clone()).into(),
            signature_key: signer.public().into(),
        }
    }

    /// Runs `op` against a fresh overlay and commits its writes as one batch.
    pub(crate) fn run<T>(
        &self,
        op: impl FnOnce(&Provider) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        not_in_callback()?;
        let provider = self.provider();
        let out = op(&provider);
        commit(&provider, out)
    }

    /// Runs a read-only `query` against a fresh overlay (nothing is written).
    pub(crate) fn read<T>(
        &self,
        query: impl FnOnce(&Provider) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        not_in_callback()?;
        let provider = self.provider();
        let out = query(&provider);
        finish(&provider, out)
    }
}
