//! The client: identity, key packages, group registry, external PSKs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use openmls::prelude::*;
use openmls::schedule::{ExternalPsk, PreSharedKeyId, Psk};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::storage::StorageProvider as _;
use serde::{Deserialize, Serialize};

use crate::core::config::{self, ClientSettings, GroupSettings, JoinSettings};
use crate::core::error::{self, CoreError};
use crate::core::group::{self, GroupHandle};
use crate::core::message;
use crate::core::storage::cache::CachedBackend;
use crate::core::storage::chunked::ChunkedBackend;
use crate::core::storage::codec;
use crate::core::storage::lease::LeasedBackend;
use crate::core::storage::overlay::{not_in_callback, Overlay};
use crate::core::storage::provider::{key_package_key, Provider};
use crate::core::storage::Backend;

const IDENTITY: &str = "identity";
const SIGNER: &str = "signer";
const GROUPS: &str = "groups";
const KEY_PACKAGES: &str = "key_packages";

/// Lifetime of the key packages we create unless the app says otherwise:
/// 12 weeks, as OpenMLS (its `not_before` is one hour back, for clock skew).
pub const DEFAULT_KEY_PACKAGE_LIFETIME_SECS: u64 = 60 * 60 * 24 * 7 * 12;
/// Longest key package lifetime we create: 365 days, the mls-rs default, well
/// inside what we accept from peers (`message::MAX_KEY_PACKAGE_LIFETIME_RANGE_SECS`).
pub const MAX_KEY_PACKAGE_LIFETIME_SECS: u64 = 60 * 60 * 24 * 365;
/// Most key packages created in one call.
pub const MAX_KEY_PACKAGES_PER_CALL: u32 = 1000;

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

/// How to make key packages.
#[derive(Clone, Debug, Default)]
pub struct KeyPackageSettings {
    pub ciphersuite: Option<u16>,
    pub lifetime_seconds: Option<u64>,
    pub last_resort: bool,
}

/// What a Welcome would give us, read without writing anything.
#[derive(Clone, Debug)]
pub struct WelcomeSummary {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub ciphersuite: u16,
    pub sender_index: u32,
    pub own_index: u32,
    pub members: Vec<Member>,
    pub external_psk_ids: Vec<Vec<u8>>,
}

pub(crate) struct ClientCore {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) crypto: RustCrypto,
    pub(crate) identity: Vec<u8>,
    pub(crate) settings: ClientSettings,
    signers: Mutex<HashMap<u16, Arc<SignatureKeyPair>>>,
    groups: Mutex<HashMap<Vec<u8>, Weak<GroupHandle>>>,
    /// Serializes read-modify-write of the SDK index records.
    index_lock: Mutex<()>,
    /// Joins whose batch failed in storage, by digest of the Welcome or
    /// GroupInfo: the host may have applied the batch before it reported the
    /// error, and a retry with the same input must find the joined group.
    unconfirmed_joins: Mutex<HashMap<Vec<u8>, UnconfirmedJoin>>,
}

/// The group a join stored, and the external commit it returned (if any).
type LandedJoin = (Arc<GroupHandle>, Option<Vec<u8>>);

/// Failed joins remembered at most (one per join the app has yet to retry).
const MAX_UNCONFIRMED_JOINS: usize = 64;

/// A join that may have landed: the group it made and what it returned.
struct UnconfirmedJoin {
    group_id: Vec<u8>,
    epoch: u64,
    /// Tells the state this join made from any other state at that epoch.
    authenticator: Vec<u8>,
    settings: JoinSettings,
    /// The external commit to send, for joins by external commit.
    commit: Option<Vec<u8>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ClientCore {
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
        let key = Overlay::sdk_key(SIGNER, &code.to_be_bytes());
        match overlay.get_value::<SignatureKeyPair>(&key)? {
            Some(stored) => {
                let stored = Arc::new(stored);
                lock(&self.signers).insert(code, stored.clone());
                Ok(stored)
            }
            None => Err(CoreError::StorageCorrupt {
                key: SIGNER.into(),
                reason: format!("no signature key for scheme 0x{code:04x}"),
            }),
        }
    }

    /// Creates the signature key for `scheme` into `overlay` unless one is
    /// stored. Only `Client::open` calls it, so two threads can never create
    /// two keys for one scheme.
    /// A stored key is read (so a damaged one fails the open) and cached.
    fn ensure_signer(&self, scheme: SignatureScheme, overlay: &Overlay) -> Result<(), CoreError> {
        let code = scheme as u16;
        let key = Overlay::sdk_key(SIGNER, &code.to_be_bytes());
        match overlay.get_value::<SignatureKeyPair>(&key)? {
            Some(stored) => {
                lock(&self.signers).insert(code, Arc::new(stored));
            }
            None => {
                let created = SignatureKeyPair::new(scheme).map_err(CoreError::internal)?;
                overlay.put_value(key, &created)?;
            }
        }
        Ok(())
    }

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
        let out = finish(&provider, op(&provider))?;
        provider.overlay().flush()?;
        Ok(out)
    }

    fn group_index(&self, overlay: &Overlay) -> Result<Vec<Vec<u8>>, CoreError> {
        Ok(overlay
            .get_value(&Overlay::sdk_key(GROUPS, b""))?
            .unwrap_or_default())
    }

    pub(crate) fn index_group(
        &self,
        overlay: &Overlay,
        id: &[u8],
        present: bool,
    ) -> Result<(), CoreError> {
        let mut ids = self.group_index(overlay)?;
        ids.retain(|g| g != id);
        if present {
            ids.push(id.to_vec());
        }
        overlay.put_value(Overlay::sdk_key(GROUPS, b""), &ids)
    }

    /// Removes `id` from the group index. An index that no longer decodes is
    /// written anew without it: the groups it listed stay in storage and load
    /// by id, but `group_ids()` no longer lists them.
    pub(crate) fn unindex_group(&self, overlay: &Overlay, id: &[u8]) -> Result<(), CoreError> {
        match self.index_group(overlay, id, false) {
            Err(CoreError::StorageCorrupt { .. }) => {
                overlay.clear_fault();
                overlay.put_value(Overlay::sdk_key(GROUPS, b""), &Vec::<Vec<u8>>::new())
            }
            other => other,
        }
    }

    fn key_package_index(&self, overlay: &Overlay) -> Result<Vec<KeyPackageRecord>, CoreError> {
        Ok(overlay
            .get_value(&Overlay::sdk_key(KEY_PACKAGES, b""))?
            .unwrap_or_default())
    }

    fn write_key_package_index(
        &self,
        overlay: &Overlay,
        list: &[KeyPackageRecord],
    ) -> Result<(), CoreError> {
        overlay.put_value(Overlay::sdk_key(KEY_PACKAGES, b""), list)
    }

    /// Drops inventory entries whose key package OpenMLS deleted in this overlay
    /// (a Welcome consumes the key package it used, unless it is last resort).
    fn forget_consumed_key_packages(&self, overlay: &Overlay) -> Result<(), CoreError> {
        let list = self.key_package_index(overlay)?;
        let before = list.len();
        let mut kept = Vec::with_capacity(before);
        for record in list {
            let kp_ref: KeyPackageRef = codec::decode(b"key package index", &record.stored_ref)?;
            if !overlay.deleted_here(&key_package_key(&kp_ref)?) {
                kept.push(record);
            }
        }
        if kept.len() != before {
            self.write_key_package_index(overlay, &kept)?;
        }
        Ok(())
    }

    /// The one handle of a group whose state was just committed. If
    /// `Client::group` loaded that committed state in the meantime, its
    /// handle is the group's one handle and `mls` is dropped: both hold the
    /// same state, and two handles would let their epochs drift apart.
    pub(crate) fn register(self: &Arc<Self>, mls: MlsGroup) -> Arc<GroupHandle> {
        let id = mls.group_id().as_slice().to_vec();
        let mut groups = lock(&self.groups);
        if let Some(live) = groups.get(&id).and_then(Weak::upgrade) {
            return live;
        }
        let handle = Arc::new(GroupHandle::new(self.clone(), id.clone(), Some(mls)));
        groups.insert(id, Arc::downgrade(&handle));
        handle
    }

    /// The group's handle, registered without loading its state.
    pub(crate) fn unloaded_handle(self: &Arc<Self>, id: &[u8]) -> Arc<GroupHandle> {
        let mut groups = lock(&self.groups);
        if let Some(live) = groups.get(id).and_then(Weak::upgrade) {
            return live;
        }
        let handle = Arc::new(GroupHandle::new(self.clone(), id.to_vec(), None));
        groups.insert(id.to_vec(), Arc::downgrade(&handle));
        handle
    }

    pub(crate) fn forget(&self, id: &[u8]) {
        lock(&self.groups).remove(id);
    }

    /// Names one join attempt: its input and the ratchet tree passed with it.
    fn join_digest(&self, input: &[u8], tree: Option<&[u8]>) -> Result<Vec<u8>, CoreError> {
        let mut named = Vec::with_capacity(9 + input.len() + tree.map_or(0, <[u8]>::len));
        named.extend_from_slice(&(input.len() as u64).to_be_bytes());
        named.extend_from_slice(input);
        if let Some(tree) = tree {
            named.push(1);
            named.extend_from_slice(tree);
        }
        self.crypto
            .hash(HashType::Sha2_256, &named)
            .map_err(|e| CoreError::internal(format!("hashing failed: {e:?}")))
    }

    /// The group a failed join of `digest` made, if its batch landed after all
    /// (the group is stored in the very state the join made: same epoch and
    /// epoch authenticator; a Welcome join may also have moved on since), with
    /// the external commit it returned. `None` if it did not land, or the
    /// retry passes other settings: the join runs again. The caller holds the
    /// index lock.
    fn landed_join(
        self: &Arc<Self>,
        digest: &[u8],
        settings: &JoinSettings,
    ) -> Result<Option<LandedJoin>, CoreError> {
        let join = {
            let mut joins = lock(&self.unconfirmed_joins);
            match joins.get(digest) {
                Some(join) if join.settings == *settings => joins.remove(digest),
                // A retry with other settings is another join: it runs again
                // (and fails if the first one landed); the entry stays.
                _ => None,
            }
        };
        let Some(join) = join else {
            return Ok(None);
        };
        let provider = self.provider();
        match finish(
            &provider,
            GroupHandle::load_from(provider.storage(), &join.group_id),
        ) {
            Ok(mls) => {
                let made_here = mls.epoch().as_u64() == join.epoch
                    && mls.epoch_authenticator().as_slice() == join.authenticator.as_slice();
                let moved_on = join.commit.is_none() && mls.epoch().as_u64() > join.epoch;
                if made_here || moved_on {
                    log::info!("a retried join found the batch of the failed attempt stored");
                }
                Ok((made_here || moved_on).then(|| (self.register(mls), join.commit)))
            }
            Err(CoreError::UnknownGroup) => Ok(None),
            Err(e) => {
                lock(&self.unconfirmed_joins).insert(digest.to_vec(), join);
                Err(e)
            }
        }
    }

    /// Remembers a join whose batch failed in storage (see `landed_join`);
    /// a join that succeeded makes earlier failed joins of its group moot.
    fn note_join<T>(
        &self,
        digest: Vec<u8>,
        result: &Result<T, CoreError>,
        join: Option<UnconfirmedJoin>,
    ) {
        let Some(join) = join else { return };
        let mut joins = lock(&self.unconfirmed_joins);
        match result {
            Err(CoreError::StorageBackend { .. }) => {
                if joins.len() >= MAX_UNCONFIRMED_JOINS {
                    joins.clear();
                }
                joins.insert(digest, join);
            }
            Ok(_) => joins.retain(|_, j| j.group_id != join.group_id),
            Err(_) => {}
        }
    }

    /// Forgets failed joins of a deleted group.
    pub(crate) fn forget_joins(&self, id: &[u8]) {
        lock(&self.unconfirmed_joins).retain(|_, j| j.group_id != id);
    }
}

/// Prefers the storage fault recorded in the overlay over OpenMLS's version of it.
pub(crate) fn finish<T>(provider: &Provider, result: Result<T, CoreError>) -> Result<T, CoreError> {
    result.map_err(|e| {
        provider.overlay().backend().invalidate();
        let e = provider.overlay().fault().unwrap_or(e);
        error::log_failure(&e);
        e
    })
}

/// Decrypts a Welcome and builds the group it describes, without writing
/// anything yet; also returns the external PSK ids it needs.
///
/// The lifetimes of leaves already in the tree are not checked: a member who
/// has not committed with a path since it joined still carries its original
/// key package's lifetime, and refusing the tree once that passed would make
/// every quiet member lock newcomers out (mls-rs does not check them either).
/// A key package being added is checked when its commit is processed.
fn stage_welcome(
    provider: &Provider,
    config: &MlsGroupJoinConfig,
    welcome: Welcome,
    tree: Option<RatchetTreeIn>,
) -> Result<(StagedWelcome, Vec<Vec<u8>>), CoreError> {
    let processed = ProcessedWelcome::new_from_welcome(provider, config, welcome)
        .map_err(|e| error::from_welcome_error(&e))?;
    let psks = processed
        .psks()
        .iter()
        .filter_map(|id| match id.psk() {
            Psk::External(ext) => Some(ext.psk_id().to_vec()),
            _ => None,
        })
        .collect();
    let mut join = JoinBuilder::new(provider, processed).skip_lifetime_validation();
    if let Some(tree) = tree {
        join = join.with_ratchet_tree(tree);
    }
    let staged = join.build().map_err(|e| error::from_welcome_error(&e))?;
    Ok((staged, psks))
}

/// An MLS client: one identity, its key packages and its groups, over one storage.
pub struct Client {
    inner: Arc<ClientCore>,
}

impl Client {
    /// Opens the client stored in `backend`, creating its identity on first use.
    pub fn open(
        backend: Arc<dyn Backend>,
        identity: Vec<u8>,
        settings: ClientSettings,
    ) -> Result<Self, CoreError> {
        if identity.is_empty() {
            return Err(CoreError::validation("identity must not be empty"));
        }
        let crypto = RustCrypto::default();
        let token: [u8; 16] = crypto.random_array().map_err(CoreError::internal)?;
        let leased = LeasedBackend::new(backend, &token).map_err(CoreError::from)?;
        let acquire = leased.acquire();
        let inner = Arc::new(ClientCore {
            backend: Arc::new(CachedBackend::new(Arc::new(ChunkedBackend::new(Arc::new(
                leased,
            ))))),
            crypto,
            identity,
            settings,
            signers: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            index_lock: Mutex::new(()),
            unconfirmed_joins: Mutex::new(HashMap::new()),
        });
        inner.run(|provider| {
            // Opening takes the store over: a client opened earlier on it
            // fails its next write with `StorageTakenOver` (see `lease`).
            let (key, token) = acquire;
            provider.overlay().put(key, token);
            let key = Overlay::sdk_key(IDENTITY, b"");
            match provider.overlay().get_value::<Vec<u8>>(&key)? {
                Some(stored) if stored != inner.identity => {
                    return Err(CoreError::IdentityMismatch)
                }
                Some(_) => {}
                None => provider.overlay().put_value(key, &inner.identity)?,
            }
            // Every supported scheme's key is made here, in this one batch,
            // so that no later call can race another to create one.
            for cs in config::SUPPORTED_CIPHERSUITES {
                inner.ensure_signer(cs.signature_algorithm(), provider.overlay())?;
            }
            Ok(())
        })?;
        Ok(Self { inner })
    }

    /// The identity bytes in this client's basic credential.
    pub fn identity(&self) -> &[u8] {
        &self.inner.identity
    }

    /// The public signature key used with `ciphersuite`.
    pub fn signature_public_key(&self, ciphersuite: Option<u16>) -> Result<Vec<u8>, CoreError> {
        let cs = config::ciphersuite(ciphersuite)?;
        self.inner.run(|p| {
            Ok(self
                .inner
                .signer(cs.signature_algorithm(), p.overlay())?
                .to_public_vec())
        })
    }

    /// Creates `count` key packages, stores their private parts, returns them serialized.
    pub fn create_key_packages(
        &self,
        count: u32,
        settings: &KeyPackageSettings,
    ) -> Result<Vec<Vec<u8>>, CoreError> {
        if count == 0 || count > MAX_KEY_PACKAGES_PER_CALL {
            return Err(CoreError::validation(format!(
                "count must be 1..={MAX_KEY_PACKAGES_PER_CALL}"
            )));
        }
        let lifetime = settings
            .lifetime_seconds
            .unwrap_or(DEFAULT_KEY_PACKAGE_LIFETIME_SECS);
        if lifetime == 0 || lifetime > MAX_KEY_PACKAGE_LIFETIME_SECS {
            return Err(CoreError::validation(format!(
                "lifetime must be 1..={MAX_KEY_PACKAGE_LIFETIME_SECS} seconds"
            )));
        }
        let cs = config::ciphersuite(settings.ciphersuite)?;
        let inner = &self.inner;
        not_in_callback()?;
        let _index = lock(&inner.index_lock);
        inner.run(|provider| {
            let signer = inner.signer(cs.signature_algorithm(), provider.overlay())?;
            let mut index = inner.key_package_index(provider.overlay())?;
            let mut out = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let mut builder = KeyPackage::builder()
                    .key_package_lifetime(Lifetime::new(lifetime))
                    .leaf_node_capabilities(inner.settings.capabilities());
                if settings.last_resort {
                    builder = builder.mark_as_last_resort();
                }
                let bundle = builder
                    .build(cs, provider, signer.as_ref(), inner.credential(&signer))
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
            inner.write_key_package_index(provider.overlay(), &index)?;
            Ok(out)
        })
    }

    /// The key packages whose private parts we hold (not yet used by a Welcome).
    pub fn key_packages(&self) -> Result<Vec<KeyPackageRecord>, CoreError> {
        not_in_callback()?;
        let provider = self.inner.provider();
        finish(&provider, self.inner.key_package_index(provider.overlay()))
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
        let inner = &self.inner;
        not_in_callback()?;
        let _index = lock(&inner.index_lock);
        inner.run(|provider| {
            let list = inner.key_package_index(provider.overlay())?;
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
            inner.write_key_package_index(provider.overlay(), &kept)?;
            Ok(gone.len() as u32)
        })
    }

    /// Creates a group with us as its only member.
    pub fn create_group(&self, settings: &GroupSettings) -> Result<Arc<GroupHandle>, CoreError> {
        let inner = &self.inner;
        let cs = config::ciphersuite(settings.ciphersuite)?;
        let extensions = config::group_context_extensions(settings)?;
        not_in_callback()?;
        let _index = lock(&inner.index_lock);
        let group = inner.run(|provider| {
            let signer = inner.signer(cs.signature_algorithm(), provider.overlay())?;
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
                .with_capabilities(inner.settings.capabilities())
                .with_group_context_extensions(extensions);
            if let Some(id) = &settings.group_id {
                if id.is_empty() {
                    return Err(CoreError::validation("group id must not be empty"));
                }
                builder = builder.with_group_id(GroupId::from_slice(id));
            }
            let group = builder
                .build(provider, signer.as_ref(), inner.credential(&signer))
                .map_err(|e| match e {
                    NewGroupError::GroupAlreadyExists => CoreError::GroupExists,
                    NewGroupError::UnsupportedCiphersuite(cs) => {
                        CoreError::UnsupportedCiphersuite { id: u16::from(cs) }
                    }
                    other => CoreError::validation(other),
                })?;
            inner.index_group(provider.overlay(), group.group_id().as_slice(), true)?;
            group::store_policy(
                provider.overlay(),
                group.group_id().as_slice(),
                &settings.join,
            )?;
            Ok(group)
        })?;
        Ok(inner.register(group))
    }

    fn parse_welcome(&self, bytes: &[u8]) -> Result<Welcome, CoreError> {
        match message::parse(bytes, &self.inner.settings.input_limits)?.extract() {
            MlsMessageBodyIn::Welcome(w) => Ok(w),
            _ => Err(CoreError::malformed("expected a Welcome message")),
        }
    }

    /// Reads a Welcome without joining or writing anything.
    pub fn inspect_welcome(
        &self,
        welcome: &[u8],
        ratchet_tree: Option<&[u8]>,
    ) -> Result<WelcomeSummary, CoreError> {
        let welcome = self.parse_welcome(welcome)?;
        let tree = ratchet_tree
            .map(|t| message::parse_ratchet_tree(t, &self.inner.settings.input_limits))
            .transpose()?;
        not_in_callback()?;
        let provider = self.inner.provider();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (staged, psks) = stage_welcome(
                &provider,
                &JoinSettings::default().join_config(),
                welcome,
                tree,
            )?;
            let ctx = staged.group_context();
            Ok(WelcomeSummary {
                group_id: ctx.group_id().as_slice().to_vec(),
                epoch: ctx.epoch().as_u64(),
                ciphersuite: u16::from(ctx.ciphersuite()),
                sender_index: staged.welcome_sender_index().u32(),
                own_index: staged.own_leaf_index().u32(),
                members: staged.members().collect(),
                external_psk_ids: psks,
            })
        }))
        .unwrap_or_else(|_| Err(CoreError::malformed("the Welcome could not be decoded")));
        // The overlay (which holds the consumed key package) is dropped unwritten.
        finish(&provider, result)
    }

    /// Joins the group a Welcome invites us to; one atomic write.
    pub fn join_group(
        &self,
        welcome: &[u8],
        ratchet_tree: Option<&[u8]>,
        settings: &JoinSettings,
    ) -> Result<Arc<GroupHandle>, CoreError> {
        let digest = self.inner.join_digest(welcome, ratchet_tree)?;
        let welcome = self.parse_welcome(welcome)?;
        let tree = ratchet_tree
            .map(|t| message::parse_ratchet_tree(t, &self.inner.settings.input_limits))
            .transpose()?;
        let inner = &self.inner;
        not_in_callback()?;
        let _index = lock(&inner.index_lock);
        if let Some((landed, _)) = inner.landed_join(&digest, settings)? {
            return Ok(landed);
        }
        let made = std::cell::RefCell::new(None);
        let result = inner.run(|provider| {
            let (staged, _) = stage_welcome(provider, &settings.join_config(), welcome, tree)?;
            let group = staged
                .into_group(provider)
                .map_err(|e| error::from_welcome_error(&e))?;
            *made.borrow_mut() = Some(UnconfirmedJoin {
                group_id: group.group_id().as_slice().to_vec(),
                epoch: group.epoch().as_u64(),
                authenticator: group.epoch_authenticator().as_slice().to_vec(),
                settings: settings.clone(),
                commit: None,
            });
            inner.index_group(provider.overlay(), group.group_id().as_slice(), true)?;
            group::store_policy(provider.overlay(), group.group_id().as_slice(), settings)?;
            inner.forget_consumed_key_packages(provider.overlay())?;
            Ok(group)
        });
        inner.note_join(digest, &result, made.into_inner());
        Ok(inner.register(result?))
    }

    /// Joins by external commit from a GroupInfo. The returned commit must be sent
    /// to the group; if the Delivery Service refuses it, delete the group.
    pub fn join_by_external_commit(
        &self,
        group_info: &[u8],
        ratchet_tree: Option<&[u8]>,
        settings: &JoinSettings,
    ) -> Result<(Arc<GroupHandle>, Vec<u8>), CoreError> {
        let info = match message::parse(group_info, &self.inner.settings.input_limits)?.extract() {
            MlsMessageBodyIn::GroupInfo(gi) => gi,
            _ => return Err(CoreError::malformed("expected a GroupInfo message")),
        };
        let tree = ratchet_tree
            .map(|t| message::parse_ratchet_tree(t, &self.inner.settings.input_limits))
            .transpose()?;
        let cs = info.ciphersuite();
        if !config::SUPPORTED_CIPHERSUITES.contains(&cs) {
            return Err(CoreError::UnsupportedCiphersuite { id: u16::from(cs) });
        }
        let inner = &self.inner;
        let digest = inner.join_digest(group_info, ratchet_tree)?;
        not_in_callback()?;
        let _index = lock(&inner.index_lock);
        if let Some((landed, Some(commit))) = inner.landed_join(&digest, settings)? {
            return Ok((landed, commit));
        }
        if lock(&inner.groups)
            .get(info.group_id().as_slice())
            .and_then(Weak::upgrade)
            .is_some()
            || inner
                .group_index(inner.provider().overlay())?
                .iter()
                .any(|g| g == info.group_id().as_slice())
        {
            return Err(CoreError::GroupExists);
        }
        let made = std::cell::RefCell::new(None);
        let result = inner.run(|provider| {
            let signer = inner.signer(cs.signature_algorithm(), provider.overlay())?;
            // Leaf lifetimes in the tree are not checked, as for Welcomes (`stage_welcome`).
            let mut builder = MlsGroup::external_commit_builder()
                .with_config(settings.join_config())
                .skip_lifetime_validation();
            if let Some(tree) = tree {
                builder = builder.with_ratchet_tree(tree);
            }
            let (group, bundle) = builder
                .build_group(provider, info, inner.credential(&signer))
                .map_err(|e| match e {
                    ExternalCommitBuilderError::MissingRatchetTree => CoreError::MissingRatchetTree,
                    other => CoreError::validation(other),
                })?
                .leaf_node_parameters(
                    LeafNodeParameters::builder()
                        .with_capabilities(inner.settings.capabilities())
                        .build(),
                )
                .load_psks(provider.storage())
                .map_err(CoreError::validation)?
                .build(provider.rand(), provider.crypto(), signer.as_ref(), |_| {
                    true
                })
                .map_err(CoreError::validation)?
                .finalize(provider)
                .map_err(CoreError::validation)?;
            let commit = message::serialize(bundle.commit())?;
            *made.borrow_mut() = Some(UnconfirmedJoin {
                group_id: group.group_id().as_slice().to_vec(),
                epoch: group.epoch().as_u64(),
                authenticator: group.epoch_authenticator().as_slice().to_vec(),
                settings: settings.clone(),
                commit: Some(commit.clone()),
            });
            inner.index_group(provider.overlay(), group.group_id().as_slice(), true)?;
            group::store_policy(provider.overlay(), group.group_id().as_slice(), settings)?;
            Ok((group, commit))
        });
        inner.note_join(digest, &result, made.into_inner());
        let (group, commit) = result?;
        Ok((inner.register(group), commit))
    }

    /// The shared handle of a stored group.
    pub fn group(&self, id: &[u8]) -> Result<Arc<GroupHandle>, CoreError> {
        not_in_callback()?;
        let inner = &self.inner;
        let mut groups = lock(&inner.groups);
        if let Some(handle) = groups.get(id).and_then(Weak::upgrade) {
            return Ok(handle);
        }
        let provider = inner.provider();
        let mls = finish(&provider, GroupHandle::load_from(provider.storage(), id))?;
        let handle = Arc::new(GroupHandle::new(inner.clone(), id.to_vec(), Some(mls)));
        groups.insert(id.to_vec(), Arc::downgrade(&handle));
        Ok(handle)
    }

    /// Ids of every stored group (read from the SDK's index, no scan).
    pub fn group_ids(&self) -> Result<Vec<Vec<u8>>, CoreError> {
        not_in_callback()?;
        let provider = self.inner.provider();
        finish(&provider, self.inner.group_index(provider.overlay()))
    }

    /// Deletes a group's state from storage; live handles to it stop working.
    pub fn delete_group(&self, id: &[u8]) -> Result<(), CoreError> {
        not_in_callback()?;
        let inner = &self.inner;
        let handle = match self.group(id) {
            Ok(handle) => handle,
            // Damaged records must not keep a group from being deleted.
            Err(CoreError::StorageCorrupt { .. }) => inner.unloaded_handle(id),
            Err(e) => return Err(e),
        };
        let _index = lock(&inner.index_lock);
        handle.delete()?;
        inner.forget(id);
        inner.forget_joins(id);
        Ok(())
    }

    /// Stores an external pre-shared key under `psk_id`.
    pub fn store_external_psk(&self, psk_id: &[u8], secret: &[u8]) -> Result<(), CoreError> {
        if psk_id.is_empty() || secret.is_empty() {
            return Err(CoreError::validation("psk id and secret must not be empty"));
        }
        self.inner.run(|provider| {
            PreSharedKeyId::external(psk_id.to_vec(), Vec::new())
                .store(provider, secret)
                .map_err(CoreError::internal)
        })
    }

    /// Deletes an external pre-shared key.
    pub fn delete_external_psk(&self, psk_id: &[u8]) -> Result<(), CoreError> {
        self.inner.run(|provider| {
            provider
                .storage()
                .delete_psk(&Psk::External(ExternalPsk::new(psk_id.to_vec())))
                .map_err(|e| e.0)
        })
    }
}
