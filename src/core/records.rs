//! The SDK's own records, beside OpenMLS's: identity, signature keys, the
//! group and key package indexes, each group's external-commit policy and the
//! messages of its staged own commit. Every key is `Overlay::sdk_key(NAME, ..)`;
//! reads and writes go through the caller's overlay (so they join its batch).

use openmls::prelude::KeyPackageRef;
use openmls_basic_credential::SignatureKeyPair;
use serde::{Deserialize, Serialize};

use crate::core::config::JoinOptions;
use crate::core::error::CoreError;
use crate::core::storage::codec;
use crate::core::storage::overlay::Overlay;
use crate::core::storage::provider::key_package_key;
use crate::core::types::CommitBundle;

/// The identity bytes of the client that owns the store.
const IDENTITY: &str = "identity";
/// One signature key pair per signature scheme (sub-key: the scheme's code).
pub(crate) const SIGNER: &str = "signer";
/// The ids of every stored group.
const GROUPS: &str = "groups";
/// The key package inventory (`KeyPackageRecord`s).
const KEY_PACKAGES: &str = "key_packages";
/// Per group: the messages of its staged own commit.
const PENDING_COMMIT_OUT: &str = "pending_commit_out";
/// Per group: present (as `false`) only for a group that refuses external commits.
const EXTERNAL_COMMITS: &str = "external_commits";

/// One entry of the key package inventory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPackageRecord {
    pub hash_ref: Vec<u8>,
    /// The reference as OpenMLS stores it (CBOR of `KeyPackageRef`).
    pub stored_ref: Vec<u8>,
    pub ciphersuite: u16,
    pub not_before: u64,
    pub not_after: u64,
    pub last_resort: bool,
    /// The serialized public key package (an `MlsMessage`), for re-publishing.
    pub key_package: Vec<u8>,
}

fn key(name: &str, sub_key: &[u8]) -> Vec<u8> {
    Overlay::sdk_key(name, sub_key)
}

/// The stored identity, if the store has one.
pub(crate) fn identity(overlay: &Overlay) -> Result<Option<Vec<u8>>, CoreError> {
    overlay.get_value(&key(IDENTITY, b""))
}

pub(crate) fn put_identity(overlay: &Overlay, identity: &[u8]) -> Result<(), CoreError> {
    overlay.put_value(key(IDENTITY, b""), identity)
}

/// The signature key for the scheme `code`, if stored.
pub(crate) fn signer(overlay: &Overlay, code: u16) -> Result<Option<SignatureKeyPair>, CoreError> {
    overlay.get_value(&key(SIGNER, &code.to_be_bytes()))
}

pub(crate) fn put_signer(
    overlay: &Overlay,
    code: u16,
    signer: &SignatureKeyPair,
) -> Result<(), CoreError> {
    overlay.put_value(key(SIGNER, &code.to_be_bytes()), signer)
}

/// The ids in the group index.
pub(crate) fn group_ids(overlay: &Overlay) -> Result<Vec<Vec<u8>>, CoreError> {
    Ok(overlay.get_value(&key(GROUPS, b""))?.unwrap_or_default())
}

/// Adds `id` to the group index.
pub(crate) fn index_group(overlay: &Overlay, id: &[u8]) -> Result<(), CoreError> {
    let mut ids = group_ids(overlay)?;
    ids.retain(|g| g != id);
    ids.push(id.to_vec());
    overlay.put_value(key(GROUPS, b""), &ids)
}

/// Removes `id` from the group index. An index that no longer decodes is
/// written anew without it: the groups it listed stay in storage and load
/// by id, but `group_ids()` no longer lists them.
pub(crate) fn unindex_group(overlay: &Overlay, id: &[u8]) -> Result<(), CoreError> {
    let ids = match group_ids(overlay) {
        Ok(mut ids) => {
            ids.retain(|g| g != id);
            ids
        }
        Err(CoreError::StorageCorrupt { .. }) => {
            overlay.clear_fault();
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    overlay.put_value(key(GROUPS, b""), &ids)
}

/// The key package inventory.
pub(crate) fn key_packages(overlay: &Overlay) -> Result<Vec<KeyPackageRecord>, CoreError> {
    Ok(overlay
        .get_value(&key(KEY_PACKAGES, b""))?
        .unwrap_or_default())
}

pub(crate) fn put_key_packages(
    overlay: &Overlay,
    list: &[KeyPackageRecord],
) -> Result<(), CoreError> {
    overlay.put_value(key(KEY_PACKAGES, b""), list)
}

/// Drops inventory entries whose key package OpenMLS deleted in this overlay
/// (a Welcome consumes the key package it used, unless it is last resort).
pub(crate) fn forget_consumed_key_packages(overlay: &Overlay) -> Result<(), CoreError> {
    let list = key_packages(overlay)?;
    let before = list.len();
    let mut kept = Vec::with_capacity(before);
    for record in list {
        let kp_ref: KeyPackageRef = codec::decode(b"key package index", &record.stored_ref)?;
        if !overlay.deleted_here(&key_package_key(&kp_ref)?) {
            kept.push(record);
        }
    }
    if kept.len() != before {
        put_key_packages(overlay, &kept)?;
    }
    Ok(())
}

/// Records the group's own policy (part of the batch that creates or joins it).
pub(crate) fn put_policy(
    overlay: &Overlay,
    group_id: &[u8],
    settings: &JoinOptions,
) -> Result<(), CoreError> {
    if settings.allow_external_commits {
        return Ok(());
    }
    overlay.put_value(key(EXTERNAL_COMMITS, group_id), &false)
}

/// Whether the group takes external commits.
pub(crate) fn allows_external_commits(
    overlay: &Overlay,
    group_id: &[u8],
) -> Result<bool, CoreError> {
    Ok(overlay.get_value::<bool>(&key(EXTERNAL_COMMITS, group_id))? != Some(false))
}

/// The messages of the group's staged own commit, if stored.
pub(crate) fn pending_commit(
    overlay: &Overlay,
    group_id: &[u8],
) -> Result<Option<CommitBundle>, CoreError> {
    overlay.get_value(&key(PENDING_COMMIT_OUT, group_id))
}

pub(crate) fn put_pending_commit(
    overlay: &Overlay,
    group_id: &[u8],
    bundle: &CommitBundle,
) -> Result<(), CoreError> {
    overlay.put_value(key(PENDING_COMMIT_OUT, group_id), bundle)
}

pub(crate) fn delete_pending_commit(overlay: &Overlay, group_id: &[u8]) {
    overlay.delete(key(PENDING_COMMIT_OUT, group_id));
}

/// Deletes the group's own SDK records (its index entry is `unindex_group`'s).
pub(crate) fn delete_group_records(overlay: &Overlay, group_id: &[u8]) {
    delete_pending_commit(overlay, group_id);
    overlay.delete(key(EXTERNAL_COMMITS, group_id));
}
