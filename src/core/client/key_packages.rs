//! Our key packages: creating them, the inventory, pruning and deleting.

use openmls::prelude::*;
use openmls_traits::storage::StorageProvider as _;

use crate::core::client::Client;
use crate::core::config;
use crate::core::context::{lock, now_secs};
use crate::core::error::CoreError;
use crate::core::message;
use crate::core::records::{self, KeyPackageRecord};
use crate::core::storage::codec;
use crate::core::storage::overlay::not_in_callback;
use crate::core::types::KeyPackageOptions;

/// Lifetime of the key packages we create unless the app says otherwise:
/// 12 weeks, as OpenMLS (its `not_before` is one hour back, for clock skew).
pub const DEFAULT_KEY_PACKAGE_LIFETIME_SECS: u64 = 60 * 60 * 24 * 7 * 12;
/// Longest key package lifetime we create: 365 days, the mls-rs default, well
/// inside what we accept from peers (`message::MAX_KEY_PACKAGE_LIFETIME_RANGE_SECS`).
pub const MAX_KEY_PACKAGE_LIFETIME_SECS: u64 = 60 * 60 * 24 * 365;
/// Most key packages created in one call.
pub const MAX_KEY_PACKAGES_PER_CALL: u32 = 1000;

impl Client {
    /// Creates `count` key packages, stores their private parts, returns them serialized.
    pub fn create_key_packages(
        &self,
        count: u32,
        options: &KeyPackageOptions,
    ) -> Result<Vec<Vec<u8>>, CoreError> {
        if count == 0 || count > MAX_KEY_PACKAGES_PER_CALL {
            return Err(CoreError::validation(format!(
                "count must be 1..={MAX_KEY_PACKAGES_PER_CALL}"
            )));
        }
        let lifetime = options
            .lifetime_seconds
            .unwrap_or(DEFAULT_KEY_PACKAGE_LIFETIME_SECS);
        if lifetime == 0 || lifetime > MAX_KEY_PACKAGE_LIFETIME_SECS {
            return Err(CoreError::validation(format!(
                "lifetime must be 1..={MAX_KEY_PACKAGE_LIFETIME_SECS} seconds"
            )));
        }
        let cs = config::ciphersuite(options.ciphersuite)?;
        let core = &self.core;
        not_in_callback()?;
        let _index = lock(&core.index_lock);
        core.run(|provider| {
            let signer = core.signer(cs.signature_algorithm(), provider.overlay())?;
            let mut index = records::key_packages(provider.overlay())?;
            let mut out = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let mut builder = KeyPackage::builder()
                    .key_package_lifetime(Lifetime::new(lifetime))
                    .leaf_node_capabilities(core.settings.capabilities());
                if options.last_resort {
                    builder = builder.mark_as_last_resort();
                }
                let bundle = builder
                    .build(cs, provider, signer.as_ref(), core.credential(&signer))
                    .map_err(|e| {
                        provider
                            .overlay()
                            .fault()
                            .unwrap_or_else(|| CoreError::internal(e))
                    })?;
                let kp = bundle.key_package();
                let bytes = message::serialize(&MlsMessageOut::from(kp.clone()))?;
                let hash_ref = kp
                    .hash_ref(provider.crypto())
                    .map_err(CoreError::internal)?;
                index.push(KeyPackageRecord {
                    hash_ref: hash_ref.as_slice().to_vec(),
                    stored_ref: codec::encode(&hash_ref)?,
                    ciphersuite: u16::from(cs),
                    not_before: kp.life_time().not_before(),
                    not_after: kp.life_time().not_after(),
                    last_resort: kp.last_resort(),
                    key_package: bytes.clone(),
                });
                out.push(bytes);
            }
            records::put_key_packages(provider.overlay(), &index)?;
            Ok(out)
        })
    }

    /// The key packages whose private parts we hold (not yet used by a Welcome).
    pub fn key_packages(&self) -> Result<Vec<KeyPackageRecord>, CoreError> {
        self.core
            .read(|provider| records::key_packages(provider.overlay()))
    }

    /// Deletes key packages whose lifetime has ended; returns how many.
    pub fn prune_expired_key_packages(&self) -> Result<u32, CoreError> {
        let now = now_secs();
        self.delete_key_packages_where(|r| r.not_after < now)
    }

    /// Deletes one key package (by its hash reference) and its private keys.
    pub fn delete_key_package(&self, hash_ref: &[u8]) -> Result<bool, CoreError> {
        Ok(self.delete_key_packages_where(|r| r.hash_ref == hash_ref)? > 0)
    }

    fn delete_key_packages_where(
        &self,
        pick: impl Fn(&KeyPackageRecord) -> bool,
    ) -> Result<u32, CoreError> {
        let core = &self.core;
        not_in_callback()?;
        let _index = lock(&core.index_lock);
        core.run(|provider| {
            let list = records::key_packages(provider.overlay())?;
            let (gone, kept): (Vec<_>, Vec<_>) = list.into_iter().partition(|r| pick(r));
            if gone.is_empty() {
                return Ok(0);
            }
            for record in &gone {
                provider
                    .storage()
                    .delete_key_package(&codec::decode::<KeyPackageRef>(
                        b"key package index",
                        &record.stored_ref,
                    )?)
                    .map_err(|e| e.0)?;
            }
            records::put_key_packages(provider.overlay(), &kept)?;
            Ok(gone.len() as u32)
        })
    }
}
