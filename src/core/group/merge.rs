//! Merging and clearing commits: our own staged one, and incoming ones.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use openmls::prelude::*;

use crate::core::context::{finish, lock};
use crate::core::error::{from_operation_error, CoreError};
use crate::core::group::{commit_or_reload, panic_error, GroupHandle};
use crate::core::records;
use crate::core::storage::codec;
use crate::core::storage::overlay::{not_in_callback, Overlay};
use crate::core::storage::provider::Provider;
use crate::core::storage::{Value, Write};
use crate::core::types::CommitInfo;

impl GroupHandle {
    /// Applies our staged commit after the Delivery Service accepted it.
    ///
    /// A retry after a storage error succeeds without merging again when the
    /// failed attempt's batch landed after all (the group, reloaded from
    /// storage, is at the commit's epoch with nothing pending).
    pub fn merge_pending_commit(&self) -> Result<(), CoreError> {
        let target = std::cell::Cell::new(None);
        let result = self.mutate(|mls, provider, _| {
            if mls.pending_commit().is_none() {
                let landed = lock(&self.unconfirmed_merge).take();
                if landed == Some(mls.epoch().as_u64()) {
                    log::info!("a retried merge found the batch of the failed attempt stored");
                    return Ok(());
                }
                return Err(CoreError::NoPendingCommit);
            }
            target.set(Some(mls.epoch().as_u64() + 1));
            records::delete_pending_commit(provider.overlay(), &self.id);
            mls.merge_pending_commit(provider)
                .map_err(from_operation_error)
        });
        *lock(&self.unconfirmed_merge) = match &result {
            Err(CoreError::StorageBackend { .. }) => target.get(),
            _ => None,
        };
        result
    }

    /// Drops our staged commit after the Delivery Service refused it.
    pub fn clear_pending_commit(&self) -> Result<(), CoreError> {
        self.mutate(|mls, provider, _| {
            if mls.pending_commit().is_none() {
                return Err(CoreError::NoPendingCommit);
            }
            records::delete_pending_commit(provider.overlay(), &self.id);
            mls.clear_pending_commit(provider.storage())
                .map_err(|e| e.0)
        })
    }

    /// Drops every pending proposal.
    pub fn clear_pending_proposals(&self) -> Result<(), CoreError> {
        self.mutate(|mls, provider, _| {
            mls.clear_pending_proposals(provider.storage())
                .map_err(|e| e.0)
        })
    }
}

pub(super) struct PendingMerge {
    /// The processed group and commit, if nothing reloaded them since.
    pub(super) live: Option<(MlsGroup, StagedCommit)>,
    /// The staged commit, to rebuild it after a failed merge (it holds the
    /// next epoch's secrets and private keys: wiped when dropped).
    pub(super) staged_bytes: Value,
    /// The writes processing made (ratchet state), applied only with the merge.
    pub(super) writes: Vec<Write>,
}

/// An incoming commit, processed but not applied: nothing is written until `merge`.
pub struct IncomingCommit {
    pub(super) group: Arc<GroupHandle>,
    pub(super) generation: u64,
    pub(super) info: CommitInfo,
    pub(super) pending: Mutex<Option<PendingMerge>>,
}

impl IncomingCommit {
    /// What the commit does.
    pub fn info(&self) -> &CommitInfo {
        &self.info
    }

    /// Applies the commit: one atomic batch. After a storage failure it can be retried.
    pub fn merge(&self) -> Result<(), CoreError> {
        not_in_callback()?;
        let group = &self.group;
        let mut slot = lock(&group.slot);
        let mut pending = lock(&self.pending);
        if slot.deleted {
            return Err(CoreError::UnknownGroup);
        }
        let Some(state) = pending.as_mut() else {
            return Err(CoreError::StagedCommitOutdated);
        };
        if slot.generation != self.generation {
            return Err(CoreError::StagedCommitOutdated);
        }
        if state.live.is_none() {
            // A retry after a failed merge: if the host applied that batch
            // before it reported the error, storage is at the new epoch
            // already, and merging again would apply the commit twice.
            let stored = group.client.provider();
            let epoch = finish(&stored, GroupHandle::load_from(stored.storage(), &group.id))?
                .epoch()
                .as_u64();
            if epoch == self.info.new_epoch {
                slot.mls = None;
                slot.generation += 1;
                *pending = None;
                return Ok(());
            }
        }
        let provider = Provider::new(
            &group.client.crypto,
            Overlay::with_writes(group.client.backend.clone(), state.writes.clone()),
        );
        let outcome = (|| {
            let (mut mls, staged) = match state.live.take() {
                Some(live) => live,
                None => (
                    GroupHandle::load_from(provider.storage(), &group.id)?,
                    codec::decode::<StagedCommit>(b"staged commit", &state.staged_bytes)?,
                ),
            };
            // Merging another member's commit discards our own staged one.
            records::delete_pending_commit(provider.overlay(), &group.id);
            catch_unwind(AssertUnwindSafe(|| {
                mls.merge_staged_commit(&provider, staged)
            }))
            .map_err(|_| panic_error())?
            .map_err(CoreError::validation)?;
            if !mls.is_active() {
                // Proposals of a group we left can never be committed by us.
                mls.clear_pending_proposals(provider.storage())
                    .map_err(|e| e.0)?;
            }
            Ok(mls)
        })();
        let mls = commit_or_reload(&mut slot, &provider, outcome)?;
        slot.mls = Some(mls);
        *pending = None;
        Ok(())
    }

    /// Drops the commit without writing anything; the message can be processed again.
    /// Called from inside a storage callback it does nothing (it cannot report
    /// `ReentrantCall`, and waiting for the lock the callback's thread holds would deadlock).
    pub fn discard(&self) {
        if not_in_callback().is_err() {
            return;
        }
        *lock(&self.pending) = None;
    }
}
