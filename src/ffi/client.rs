//! `Client` and the free functions.

use std::sync::Arc;

use crate::core::client as core_client;
use crate::core::{config, message};
use crate::ffi::error::MlsError;
use crate::ffi::group::Group;
use crate::ffi::storage::{core_backend, StorageBackend};
use crate::ffi::types::*;

/// An MLS client: one identity with its signature keys, key packages and
/// groups, kept in one storage. Thread-safe; calls block, so make them off the
/// UI thread.
#[derive(uniffi::Object)]
pub struct Client {
    inner: core_client::Client,
}

/// The result of joining by external commit.
#[derive(uniffi::Record)]
pub struct ExternalJoin {
    /// The joined group (already at the new epoch).
    pub group: Arc<Group>,
    /// The external commit to send to the group. If the Delivery Service
    /// refuses it, call `delete_group` and try again from a fresh GroupInfo.
    pub commit: Vec<u8>,
}

#[uniffi::export]
impl Client {
    /// Opens the client kept in `storage`, creating its identity (basic
    /// credential with `identity`, a new signature key) on first use.
    /// Writes once on first use. Errors: `IdentityMismatch` if the storage
    /// belongs to another identity; storage errors.
    #[uniffi::constructor(default(options = None))]
    pub fn new(
        storage: Arc<dyn StorageBackend>,
        identity: Vec<u8>,
        options: Option<ClientOptions>,
    ) -> Result<Arc<Self>, MlsError> {
        let settings: config::ClientOptions = options.unwrap_or_default().try_into()?;
        let inner = core_client::Client::open(core_backend(storage), identity, settings)?;
        Ok(Arc::new(Self { inner }))
    }

    /// The identity in this client's credential.
    pub fn identity(&self) -> Vec<u8> {
        self.inner.identity().to_vec()
    }

    /// The signature public key used with `ciphersuite` (default 0x0001).
    /// May write once, when a key for a new signature scheme is created.
    #[uniffi::method(default(ciphersuite = None))]
    pub fn signature_public_key(
        &self,
        ciphersuite: Option<Ciphersuite>,
    ) -> Result<Vec<u8>, MlsError> {
        Ok(self
            .inner
            .signature_public_key(ciphersuite.map(Ciphersuite::id))?)
    }

    /// Creates `count` (1..=1000) key packages to publish; keeps their private
    /// keys and lists them in the inventory. One write.
    #[uniffi::method(default(options = None))]
    pub fn create_key_packages(
        &self,
        count: u32,
        options: Option<KeyPackageOptions>,
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        let options = options.unwrap_or_default().into();
        Ok(self.inner.create_key_packages(count, &options)?)
    }

    /// Our key packages not yet consumed by a Welcome. No write.
    pub fn key_packages(&self) -> Result<Vec<OwnKeyPackage>, MlsError> {
        self.inner
            .key_packages()?
            .into_iter()
            .map(OwnKeyPackage::try_from)
            .collect()
    }

    /// Deletes key packages whose lifetime has ended, with their private keys.
    /// Returns how many were deleted. One write (none if nothing expired).
    pub fn prune_expired_key_packages(&self) -> Result<u32, MlsError> {
        Ok(self.inner.prune_expired_key_packages()?)
    }

    /// Deletes one of our key packages by hash reference. Returns whether it existed.
    pub fn delete_key_package(&self, hash_ref: Vec<u8>) -> Result<bool, MlsError> {
        Ok(self.inner.delete_key_package(&hash_ref)?)
    }

    /// Creates a group with us as its only member. One write.
    /// Errors: `GroupExists`, `UnsupportedCiphersuite`, `ValidationFailed` (bad options).
    #[uniffi::method(default(options = None))]
    pub fn create_group(&self, options: Option<GroupOptions>) -> Result<Arc<Group>, MlsError> {
        let handle = self
            .inner
            .create_group(&options.unwrap_or_default().into())?;
        Ok(Group::wrap(handle))
    }

    /// Reads a Welcome without joining: group, epoch, members, needed PSKs.
    /// Pass `ratchet_tree` if the Welcome does not carry it. No write.
    #[uniffi::method(default(ratchet_tree = None))]
    pub fn inspect_welcome(
        &self,
        welcome: Vec<u8>,
        ratchet_tree: Option<Vec<u8>>,
    ) -> Result<WelcomeInfo, MlsError> {
        self.inner
            .inspect_welcome(&welcome, ratchet_tree.as_deref())?
            .try_into()
    }

    /// Joins the group a Welcome invites us to; consumes the key package it
    /// used (unless last resort). One write.
    /// Errors: `NoMatchingKeyPackage` (join by external commit instead),
    /// `GroupExists`, `MalformedInput`, `ValidationFailed`.
    #[uniffi::method(default(ratchet_tree = None, options = None))]
    pub fn join_group(
        &self,
        welcome: Vec<u8>,
        ratchet_tree: Option<Vec<u8>>,
        options: Option<JoinOptions>,
    ) -> Result<Arc<Group>, MlsError> {
        let settings = options.unwrap_or_default().into();
        let handle = self
            .inner
            .join_group(&welcome, ratchet_tree.as_deref(), &settings)?;
        Ok(Group::wrap(handle))
    }

    /// Joins by external commit from a GroupInfo (with the ratchet tree in it
    /// or passed separately). One write; send the returned commit.
    #[uniffi::method(default(ratchet_tree = None, options = None))]
    pub fn join_by_external_commit(
        &self,
        group_info: Vec<u8>,
        ratchet_tree: Option<Vec<u8>>,
        options: Option<JoinOptions>,
    ) -> Result<ExternalJoin, MlsError> {
        let settings = options.unwrap_or_default().into();
        let (handle, commit) =
            self.inner
                .join_by_external_commit(&group_info, ratchet_tree.as_deref(), &settings)?;
        Ok(ExternalJoin {
            group: Group::wrap(handle),
            commit,
        })
    }

    /// The group with this id. Every call returns a handle to the same locked
    /// state, so two handles never fork a group. Errors: `UnknownGroup`.
    pub fn group(&self, group_id: Vec<u8>) -> Result<Arc<Group>, MlsError> {
        Ok(Group::wrap(self.inner.group(&group_id)?))
    }

    /// Ids of all stored groups. No write.
    pub fn group_ids(&self) -> Result<Vec<Vec<u8>>, MlsError> {
        Ok(self.inner.group_ids()?)
    }

    /// Deletes a group's state; its handles then fail with `UnknownGroup`. One write.
    pub fn delete_group(&self, group_id: Vec<u8>) -> Result<(), MlsError> {
        Ok(self.inner.delete_group(&group_id)?)
    }

    /// Stores an external pre-shared key under `psk_id`. One write.
    pub fn store_external_psk(&self, psk_id: Vec<u8>, secret: Vec<u8>) -> Result<(), MlsError> {
        Ok(self.inner.store_external_psk(&psk_id, &secret)?)
    }

    /// Deletes an external pre-shared key. One write.
    pub fn delete_external_psk(&self, psk_id: Vec<u8>) -> Result<(), MlsError> {
        Ok(self.inner.delete_external_psk(&psk_id)?)
    }
}

/// Reads routing facts (kind, group id, epoch, content type) from any MLS
/// message without keys; usable by a Delivery Service. Errors: `MalformedInput`.
#[uniffi::export]
pub fn parse_message(message: Vec<u8>) -> Result<MessageInfo, MlsError> {
    Ok(message::inspect(&message)?.into())
}

/// Parses and validates a key package (signature, lifetime, keys), bare or
/// wrapped in an MLS message (default input limits). Errors: `MalformedInput`,
/// `InvalidKeyPackage`.
#[uniffi::export]
pub fn validate_key_package(key_package: Vec<u8>) -> Result<KeyPackageInfo, MlsError> {
    message::inspect_key_package(&key_package)?.try_into()
}

/// The ciphersuites MLSKit supports; the first is the default.
#[uniffi::export]
pub fn supported_ciphersuites() -> Vec<Ciphersuite> {
    config::SUPPORTED_CIPHERSUITES
        .iter()
        .filter_map(|cs| Ciphersuite::from_id(u16::from(*cs)).ok())
        .collect()
}
