//! The client: identity, the registry of group handles, groups, external PSKs.
//! Key packages are in `key_packages`, joining in `join`.

mod join;
mod key_packages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use openmls::prelude::*;
use openmls::schedule::{ExternalPsk, PreSharedKeyId, Psk};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::storage::StorageProvider as _;

pub use crate::core::records::KeyPackageRecord;
pub use key_packages::{
    DEFAULT_KEY_PACKAGE_LIFETIME_SECS, MAX_KEY_PACKAGES_PER_CALL, MAX_KEY_PACKAGE_LIFETIME_SECS,
};

use crate::core::config::{self, ClientOptions, GroupOptions};
use crate::core::context::{finish, lock, ClientCore};
use crate::core::error::CoreError;
use crate::core::group::GroupHandle;
use crate::core::records;
use crate::core::storage::cache::CachedBackend;
use crate::core::storage::chunked::ChunkedBackend;
use crate::core::storage::lease::LeasedBackend;
use crate::core::storage::overlay::not_in_callback;
use crate::core::storage::Backend;

/// An MLS client: one identity, its key packages and its groups, over one storage.
pub struct Client {
    core: Arc<ClientCore>,
    /// The one live handle of each group (see `register`).
    groups: Mutex<HashMap<Vec<u8>, Weak<GroupHandle>>>,
    /// Joins whose batch failed in storage, by digest of the Welcome or
    /// GroupInfo: the host may have applied the batch before it reported the
    /// error, and a retry with the same input must find the joined group.
    unconfirmed_joins: Mutex<HashMap<Vec<u8>, join::UnconfirmedJoin>>,
}

impl Client {
    /// Opens the client stored in `backend`, creating its identity on first use.
    ///
    /// The storage stack, top to bottom (see `storage`): each operation's
    /// overlay, the read cache, chunking, the lease, then `backend`.
    pub fn open(
        backend: Arc<dyn Backend>,
        identity: Vec<u8>,
        settings: ClientOptions,
    ) -> Result<Self, CoreError> {
        if identity.is_empty() {
            return Err(CoreError::validation("identity must not be empty"));
        }
        let crypto = RustCrypto::default();
        let token: [u8; 16] = crypto.random_array().map_err(CoreError::internal)?;
        let leased = LeasedBackend::new(backend, &token).map_err(CoreError::from)?;
        let acquire = leased.acquire();
        let stack = Arc::new(CachedBackend::new(Arc::new(ChunkedBackend::new(Arc::new(
            leased,
        )))));
        let core = Arc::new(ClientCore::new(stack, crypto, identity, settings));
        core.run(|provider| {
            // Opening takes the store over: a client opened earlier on it
            // fails its next write with `StorageTakenOver` (see `lease`).
            let (key, token) = acquire;
            provider.overlay().put(key, token);
            match records::identity(provider.overlay())? {
                Some(stored) if stored != core.identity => return Err(CoreError::IdentityMismatch),
                Some(_) => {}
                None => records::put_identity(provider.overlay(), &core.identity)?,
            }
            // Every supported scheme's key is made here, in this one batch,
            // so that no later call can race another to create one.
            for cs in config::SUPPORTED_CIPHERSUITES {
                core.ensure_signer(cs.signature_algorithm(), provider.overlay())?;
            }
            Ok(())
        })?;
        Ok(Self {
            core,
            groups: Mutex::new(HashMap::new()),
            unconfirmed_joins: Mutex::new(HashMap::new()),
        })
    }

    /// The identity bytes in this client's basic credential.
    pub fn identity(&self) -> &[u8] {
        &self.core.identity
    }

    /// The public signature key used with `ciphersuite`.
    pub fn signature_public_key(&self, ciphersuite: Option<u16>) -> Result<Vec<u8>, CoreError> {
        let cs = config::ciphersuite(ciphersuite)?;
        self.core.run(|p| {
            Ok(self
                .core
                .signer(cs.signature_algorithm(), p.overlay())?
                .to_public_vec())
        })
    }

    /// The one handle of a group whose state was just committed. If
    /// `Client::group` loaded that committed state in the meantime, its
    /// handle is the group's one handle and `mls` is dropped: both hold the
    /// same state, and two handles would let their epochs drift apart.
    fn register(&self, mls: MlsGroup) -> Arc<GroupHandle> {
        let id = mls.group_id().as_slice().to_vec();
        let mut groups = lock(&self.groups);
        if let Some(live) = groups.get(&id).and_then(Weak::upgrade) {
            return live;
        }
        let handle = Arc::new(GroupHandle::new(self.core.clone(), id.clone(), Some(mls)));
        groups.insert(id, Arc::downgrade(&handle));
        handle
    }

    /// The group's handle, registered without loading its state.
    fn unloaded_handle(&self, id: &[u8]) -> Arc<GroupHandle> {
        let mut groups = lock(&self.groups);
        if let Some(live) = groups.get(id).and_then(Weak::upgrade) {
            return live;
        }
        let handle = Arc::new(GroupHandle::new(self.core.clone(), id.to_vec(), None));
        groups.insert(id.to_vec(), Arc::downgrade(&handle));
        handle
    }

    /// Whether a handle of group `id` is live.
    fn has_live_handle(&self, id: &[u8]) -> bool {
        lock(&self.groups).get(id).and_then(Weak::upgrade).is_some()
    }

    /// Creates a group with us as its only member.
    pub fn create_group(&self, settings: &GroupOptions) -> Result<Arc<GroupHandle>, CoreError> {
        let core = &self.core;
        let cs = config::ciphersuite(settings.ciphersuite)?;
        let extensions = config::group_context_extensions(settings)?;
        not_in_callback()?;
        let _index = lock(&core.index_lock);
        let group = core.run(|provider| {
            let signer = core.signer(cs.signature_algorithm(), provider.overlay())?;
            let join = &settings.join;
            let mut builder = MlsGroup::builder()
                .ciphersuite(cs)
                .with_wire_format_policy(join.wire_format.policy())
                .padding_size(join.padding_size as usize)
                .max_past_epochs(join.max_past_epochs as usize)
                .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                    join.out_of_order_tolerance,
                    join.maximum_forward_distance,
                ))
                .use_ratchet_tree_extension(join.use_ratchet_tree_extension)
                .with_capabilities(core.settings.capabilities())
                .with_group_context_extensions(extensions);
            if let Some(id) = &settings.group_id {
                if id.is_empty() {
                    return Err(CoreError::validation("group id must not be empty"));
                }
                builder = builder.with_group_id(GroupId::from_slice(id));
            }
            let group = builder
                .build(provider, signer.as_ref(), core.credential(&signer))
                .map_err(|e| match e {
                    NewGroupError::GroupAlreadyExists => CoreError::GroupExists,
                    NewGroupError::UnsupportedCiphersuite(cs) => {
                        CoreError::UnsupportedCiphersuite { id: u16::from(cs) }
                    }
                    other => CoreError::validation(other),
                })?;
            records::index_group(provider.overlay(), group.group_id().as_slice())?;
            records::put_policy(
                provider.overlay(),
                group.group_id().as_slice(),
                &settings.join,
            )?;
            Ok(group)
        })?;
        Ok(self.register(group))
    }

    /// The shared handle of a stored group.
    pub fn group(&self, id: &[u8]) -> Result<Arc<GroupHandle>, CoreError> {
        not_in_callback()?;
        let mut groups = lock(&self.groups);
        if let Some(handle) = groups.get(id).and_then(Weak::upgrade) {
            return Ok(handle);
        }
        let provider = self.core.provider();
        let mls = finish(&provider, GroupHandle::load_from(provider.storage(), id))?;
        let handle = Arc::new(GroupHandle::new(self.core.clone(), id.to_vec(), Some(mls)));
        groups.insert(id.to_vec(), Arc::downgrade(&handle));
        Ok(handle)
    }

    /// Ids of every stored group (read from the SDK's index, no scan).
    pub fn group_ids(&self) -> Result<Vec<Vec<u8>>, CoreError> {
        self.core
            .read(|provider| records::group_ids(provider.overlay()))
    }

    /// Deletes a group's state from storage; live handles to it stop working.
    pub fn delete_group(&self, id: &[u8]) -> Result<(), CoreError> {
        not_in_callback()?;
        let handle = match self.group(id) {
            Ok(handle) => handle,
            // Damaged records must not keep a group from being deleted.
            Err(CoreError::StorageCorrupt { .. }) => self.unloaded_handle(id),
            Err(e) => return Err(e),
        };
        let _index = lock(&self.core.index_lock);
        handle.delete()?;
        lock(&self.groups).remove(id);
        self.forget_joins(id);
        Ok(())
    }

    /// Stores an external pre-shared key under `psk_id`.
    pub fn store_external_psk(&self, psk_id: &[u8], secret: &[u8]) -> Result<(), CoreError> {
        if psk_id.is_empty() || secret.is_empty() {
            return Err(CoreError::validation("psk id and secret must not be empty"));
        }
        self.core.run(|provider| {
            PreSharedKeyId::external(psk_id.to_vec(), Vec::new())
                .store(provider, secret)
                .map_err(CoreError::internal)
        })
    }

    /// Deletes an external pre-shared key.
    pub fn delete_external_psk(&self, psk_id: &[u8]) -> Result<(), CoreError> {
        self.core.run(|provider| {
            provider
                .storage()
                .delete_psk(&Psk::External(ExternalPsk::new(psk_id.to_vec())))
                .map_err(|e| e.0)
        })
    }
}
