//! OpenMLS's storage on top of the overlay: the per-operation
//! `OpenMlsProvider` that pairs it with the crypto provider, the keys of
//! OpenMLS's records, and deleting a damaged group by key. The
//! `StorageProvider` implementation itself is in `store`.

mod store;

use openmls_rust_crypto::RustCrypto;
use openmls_traits::storage::{Entity, Key, StorageProvider, CURRENT_VERSION};
use openmls_traits::OpenMlsProvider;
use serde::Serialize;

use super::codec::{self, Namespace};
use super::overlay::Overlay;
use crate::core::error::CoreError;

/// The error OpenMLS sees from our storage. The real cause is also recorded in
/// the overlay, because OpenMLS sometimes replaces storage errors with its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageFault(pub CoreError);

type R<T> = Result<T, StorageFault>;

/// Record labels; part of the persisted format, never change them.
pub(crate) mod label {
    pub const JOIN_CONFIG: &str = "join_config";
    pub const OWN_LEAF_NODES: &str = "own_leaf_nodes";
    pub const PROPOSAL: &str = "proposal";
    pub const PROPOSAL_REFS: &str = "proposal_refs";
    pub const TREE: &str = "tree";
    pub const INTERIM_TRANSCRIPT_HASH: &str = "interim_transcript_hash";
    pub const CONTEXT: &str = "group_context";
    pub const CONFIRMATION_TAG: &str = "confirmation_tag";
    pub const GROUP_STATE: &str = "group_state";
    pub const MESSAGE_SECRETS: &str = "message_secrets";
    pub const RESUMPTION_PSK_STORE: &str = "resumption_psk_store";
    pub const OWN_LEAF_INDEX: &str = "own_leaf_index";
    pub const EPOCH_SECRETS: &str = "epoch_secrets";
    pub const SIGNATURE_KEY_PAIR: &str = "signature_key_pair";
    pub const ENCRYPTION_KEY_PAIR: &str = "encryption_key_pair";
    pub const EPOCH_KEY_PAIRS: &str = "epoch_key_pairs";
    pub const KEY_PACKAGE: &str = "key_package";
    pub const PSK: &str = "psk";
}

/// The per-operation provider handed to OpenMLS.
pub struct Provider<'a> {
    crypto: &'a RustCrypto,
    storage: Overlay,
}

impl<'a> Provider<'a> {
    /// Pairs the crypto provider with an operation's overlay.
    pub fn new(crypto: &'a RustCrypto, storage: Overlay) -> Self {
        Self { crypto, storage }
    }

    /// The overlay holding this operation's writes.
    pub fn overlay(&self) -> &Overlay {
        &self.storage
    }

    /// Gives back the overlay.
    pub fn into_overlay(self) -> Overlay {
        self.storage
    }
}

impl OpenMlsProvider for Provider<'_> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = Overlay;

    fn storage(&self) -> &Overlay {
        &self.storage
    }
    fn crypto(&self) -> &RustCrypto {
        self.crypto
    }
    fn rand(&self) -> &RustCrypto {
        self.crypto
    }
}

/// Storage key of an OpenMLS record: the label carries OpenMLS's storage version.
pub fn mls_key<K: Serialize + ?Sized>(label: &str, key: &K) -> R<Vec<u8>> {
    let encoded = codec::encode(key).map_err(StorageFault)?;
    Ok(codec::key(
        Namespace::Mls,
        &format!("{label}@{CURRENT_VERSION}"),
        &encoded,
    ))
}

/// Storage key of a key package bundle (as OpenMLS writes and deletes it).
pub fn key_package_key<K: Serialize>(hash_ref: &K) -> Result<Vec<u8>, CoreError> {
    mls_key(label::KEY_PACKAGE, hash_ref).map_err(|e| e.0)
}

/// Storage key of a pre-shared key (as OpenMLS writes it).
pub fn psk_key<K: Serialize>(psk: &K) -> Result<Vec<u8>, CoreError> {
    mls_key(label::PSK, psk).map_err(|e| e.0)
}

/// Typed access to OpenMLS entities, for `store`.
impl Overlay {
    fn read_entity<T: Entity<CURRENT_VERSION>>(&self, key: &[u8]) -> R<Option<T>> {
        self.get_value(key).map_err(StorageFault)
    }

    fn write_entity<T: Serialize + ?Sized>(&self, key: Vec<u8>, value: &T) -> R<()> {
        self.put_value(key, value).map_err(StorageFault)
    }

    fn read_one<K: Key<CURRENT_VERSION>, T: Entity<CURRENT_VERSION>>(
        &self,
        label: &str,
        key: &K,
    ) -> R<Option<T>> {
        let key = mls_key(label, key)?;
        self.read_entity(&key)
    }

    fn write_one<K: Key<CURRENT_VERSION>, T: Serialize + ?Sized>(
        &self,
        label: &str,
        key: &K,
        value: &T,
    ) -> R<()> {
        let key = mls_key(label, key)?;
        self.write_entity(key, value)
    }

    fn delete_one<K: Key<CURRENT_VERSION>>(&self, label: &str, key: &K) -> R<()> {
        let key = mls_key(label, key)?;
        self.delete(key);
        Ok(())
    }

    /// Lists are one record holding the CBOR encoding of each item.
    fn read_list_raw(&self, key: &[u8]) -> R<Vec<Vec<u8>>> {
        Ok(self.read_entity_raw(key)?.unwrap_or_default())
    }

    fn read_entity_raw(&self, key: &[u8]) -> R<Option<Vec<Vec<u8>>>> {
        self.get_value(key).map_err(StorageFault)
    }

    fn read_list<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> R<Vec<T>> {
        self.read_list_raw(key)?
            .iter()
            .map(|item| codec::decode(key, item).map_err(|e| StorageFault(self.record(e))))
            .collect()
    }
}

/// Deletes every OpenMLS record of a group by its key, without decoding any
/// value: for a group whose records no longer decode. Records whose keys
/// depend on another record (queued proposals, epoch key pairs) are deleted
/// when that record still decodes; `peek` is read from, never written to.
pub fn forget_group_records(overlay: &Overlay, peek: &Overlay, group_id: &[u8]) -> R<()> {
    use openmls::prelude::hash_ref::ProposalRef;
    use openmls::prelude::{GroupContext, GroupId, LeafNodeIndex};
    let id = GroupId::from_slice(group_id);
    for name in [
        label::JOIN_CONFIG,
        label::TREE,
        label::INTERIM_TRANSCRIPT_HASH,
        label::CONTEXT,
        label::CONFIRMATION_TAG,
        label::MESSAGE_SECRETS,
        label::RESUMPTION_PSK_STORE,
        label::OWN_LEAF_INDEX,
        label::EPOCH_SECRETS,
        label::GROUP_STATE,
        label::OWN_LEAF_NODES,
        label::PROPOSAL_REFS,
    ] {
        overlay.delete(mls_key(name, &id)?);
    }
    if let Ok(refs) = peek.queued_proposal_refs::<GroupId, ProposalRef>(&id) {
        for proposal_ref in &refs {
            overlay.delete(mls_key(label::PROPOSAL, &(&id, proposal_ref))?);
        }
    }
    let context = peek.group_context::<GroupId, GroupContext>(&id);
    let leaf = peek.own_leaf_index::<GroupId, LeafNodeIndex>(&id);
    if let (Ok(Some(context)), Ok(Some(leaf))) = (context, leaf) {
        let epoch = context.epoch();
        overlay.delete(mls_key(label::EPOCH_KEY_PAIRS, &(&id, &epoch, leaf.u32()))?);
    }
    Ok(())
}
