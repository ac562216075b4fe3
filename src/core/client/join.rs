//! Joining: by Welcome (and reading one without joining) or by external
//! commit; a retried join whose first attempt's batch landed finds that group.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use openmls::prelude::*;
use openmls::schedule::Psk;

use crate::core::client::Client;
use crate::core::config::{self, JoinOptions};
use crate::core::context::{finish, lock};
use crate::core::error::{self, CoreError};
use crate::core::group::describe_member;
use crate::core::group::GroupHandle;
use crate::core::message;
use crate::core::records;
use crate::core::storage::overlay::not_in_callback;
use crate::core::storage::provider::Provider;
use crate::core::types::WelcomeInfo;

/// The group a join stored, and the external commit it returned (if any).
type LandedJoin = (Arc<GroupHandle>, Option<Vec<u8>>);

/// Failed joins remembered at most (one per join the app has yet to retry).
const MAX_UNCONFIRMED_JOINS: usize = 64;

/// A join that may have landed: the group it made and what it returned.
pub(super) struct UnconfirmedJoin {
    group_id: Vec<u8>,
    epoch: u64,
    /// Tells the state this join made from any other state at that epoch.
    authenticator: Vec<u8>,
    settings: JoinOptions,
    /// The external commit to send, for joins by external commit.
    commit: Option<Vec<u8>>,
}

impl UnconfirmedJoin {
    fn of(group: &MlsGroup, settings: &JoinOptions, commit: Option<Vec<u8>>) -> Self {
        Self {
            group_id: group.group_id().as_slice().to_vec(),
            epoch: group.epoch().as_u64(),
            authenticator: group.epoch_authenticator().as_slice().to_vec(),
            settings: settings.clone(),
            commit,
        }
    }
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

impl Client {
    fn parse_welcome(&self, bytes: &[u8]) -> Result<Welcome, CoreError> {
        match message::parse(bytes, &self.core.settings.input_limits)?.extract() {
            MlsMessageBodyIn::Welcome(w) => Ok(w),
            _ => Err(CoreError::malformed("expected a Welcome message")),
        }
    }

    fn parse_tree(&self, tree: Option<&[u8]>) -> Result<Option<RatchetTreeIn>, CoreError> {
        tree.map(|t| message::parse_ratchet_tree(t, &self.core.settings.input_limits))
            .transpose()
    }

    /// Reads a Welcome without joining or writing anything.
    pub fn inspect_welcome(
        &self,
        welcome: &[u8],
        ratchet_tree: Option<&[u8]>,
    ) -> Result<WelcomeInfo, CoreError> {
        let welcome = self.parse_welcome(welcome)?;
        let tree = self.parse_tree(ratchet_tree)?;
        not_in_callback()?;
        let provider = self.core.provider();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let (staged, psks) = stage_welcome(
                &provider,
                &JoinOptions::default().join_config(),
                welcome,
                tree,
            )?;
            let ctx = staged.group_context();
            Ok(WelcomeInfo {
                group_id: ctx.group_id().as_slice().to_vec(),
                epoch: ctx.epoch().as_u64(),
                ciphersuite: u16::from(ctx.ciphersuite()),
                sender_index: staged.welcome_sender_index().u32(),
                own_index: staged.own_leaf_index().u32(),
                members: staged.members().map(describe_member).collect(),
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
        settings: &JoinOptions,
    ) -> Result<Arc<GroupHandle>, CoreError> {
        let digest = self.join_digest(welcome, ratchet_tree)?;
        let welcome = self.parse_welcome(welcome)?;
        let tree = self.parse_tree(ratchet_tree)?;
        let core = &self.core;
        not_in_callback()?;
        let _index = lock(&core.index_lock);
        if let Some((landed, _)) = self.landed_join(&digest, settings)? {
            return Ok(landed);
        }
        let made = RefCell::new(None);
        let result = core.run(|provider| {
            let (staged, _) = stage_welcome(provider, &settings.join_config(), welcome, tree)?;
            let group = staged
                .into_group(provider)
                .map_err(|e| error::from_welcome_error(&e))?;
            *made.borrow_mut() = Some(UnconfirmedJoin::of(&group, settings, None));
            records::index_group(provider.overlay(), group.group_id().as_slice())?;
            records::put_policy(provider.overlay(), group.group_id().as_slice(), settings)?;
            records::forget_consumed_key_packages(provider.overlay())?;
            Ok(group)
        });
        self.note_join(digest, &result, made.into_inner());
        Ok(self.register(result?))
    }

    /// Joins by external commit from a GroupInfo. The returned commit must be sent
    /// to the group; if the Delivery Service refuses it, delete the group.
    pub fn join_by_external_commit(
        &self,
        group_info: &[u8],
        ratchet_tree: Option<&[u8]>,
        settings: &JoinOptions,
    ) -> Result<(Arc<GroupHandle>, Vec<u8>), CoreError> {
        let info = match message::parse(group_info, &self.core.settings.input_limits)?.extract() {
            MlsMessageBodyIn::GroupInfo(gi) => gi,
            _ => return Err(CoreError::malformed("expected a GroupInfo message")),
        };
        let tree = self.parse_tree(ratchet_tree)?;
        let cs = info.ciphersuite();
        if !config::SUPPORTED_CIPHERSUITES.contains(&cs) {
            return Err(CoreError::UnsupportedCiphersuite { id: u16::from(cs) });
        }
        let core = &self.core;
        let digest = self.join_digest(group_info, ratchet_tree)?;
        not_in_callback()?;
        let _index = lock(&core.index_lock);
        if let Some((landed, Some(commit))) = self.landed_join(&digest, settings)? {
            return Ok((landed, commit));
        }
        let group_id = info.group_id().as_slice();
        if self.has_live_handle(group_id)
            || records::group_ids(core.provider().overlay())?
                .iter()
                .any(|g| g == group_id)
        {
            return Err(CoreError::GroupExists);
        }
        let made = RefCell::new(None);
        let result = core.run(|provider| {
            let signer = core.signer(cs.signature_algorithm(), provider.overlay())?;
            // Leaf lifetimes in the tree are not checked, as for Welcomes (`stage_welcome`).
            let mut builder = MlsGroup::external_commit_builder()
                .with_config(settings.join_config())
                .skip_lifetime_validation();
            if let Some(tree) = tree {
                builder = builder.with_ratchet_tree(tree);
            }
            let (group, bundle) = builder
                .build_group(provider, info, core.credential(&signer))
                .map_err(|e| match e {
                    ExternalCommitBuilderError::MissingRatchetTree => CoreError::MissingRatchetTree,
                    other => CoreError::validation(other),
                })?
                .leaf_node_parameters(
                    LeafNodeParameters::builder()
                        .with_capabilities(core.settings.capabilities())
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
            *made.borrow_mut() = Some(UnconfirmedJoin::of(&group, settings, Some(commit.clone())));
            records::index_group(provider.overlay(), group.group_id().as_slice())?;
            records::put_policy(provider.overlay(), group.group_id().as_slice(), settings)?;
            Ok((group, commit))
        });
        self.note_join(digest, &result, made.into_inner());
        let (group, commit) = result?;
        Ok((self.register(group), commit))
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
        self.core
            .crypto
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
        &self,
        digest: &[u8],
        settings: &JoinOptions,
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
        let provider = self.core.provider();
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
    pub(super) fn forget_joins(&self, id: &[u8]) {
        lock(&self.unconfirmed_joins).retain(|_, j| j.group_id != id);
    }
}
