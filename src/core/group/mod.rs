//! One group: a lock around the OpenMLS group, every operation one atomic batch.
//!
//! What each file does, as OpenMLS splits `mls_group`:
//! - here: the handle, its lock, loading, and the one way a batch ends
//!   (`commit_or_reload`);
//! - `application`: encrypting application messages;
//! - `commit`: own commits (add, remove, update, extensions, pending proposals);
//! - `proposal`: own proposals (and leaving);
//! - `process`: incoming messages, with the checks RFC 9420 leaves to us;
//! - `merge`: merging or clearing own and incoming commits;
//! - `info`: read-only views (roster, epoch, secrets, exports);
//! - `describe`: OpenMLS types turned into `core::types`.

mod application;
mod commit;
mod describe;
mod info;
mod merge;
mod process;
mod proposal;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

pub(crate) use describe::member as describe_member;
pub use merge::IncomingCommit;
pub use process::Received;

use crate::core::context::{commit, finish, lock, ClientCore};
use crate::core::error::CoreError;
use crate::core::records;
use crate::core::storage::overlay::{not_in_callback, Overlay};
use crate::core::storage::provider::{forget_group_records, Provider};

/// The group as its lock holds it.
struct Slot {
    /// `None` means "load from storage before use".
    mls: Option<MlsGroup>,
    /// Bumped on every write, so a staged incoming commit knows if it went stale.
    generation: u64,
    deleted: bool,
}

/// The shared, locked handle of one group.
pub struct GroupHandle {
    client: Arc<ClientCore>,
    id: Vec<u8>,
    slot: Mutex<Slot>,
    /// The epoch a `merge_pending_commit` that failed in storage was moving
    /// to: the host may have applied the batch before it reported the error.
    unconfirmed_merge: Mutex<Option<u64>>,
}

/// Refuses to act for a member that a merged commit removed.
fn ensure_active(mls: &MlsGroup) -> Result<(), CoreError> {
    if mls.is_active() {
        Ok(())
    } else {
        Err(CoreError::GroupInactive)
    }
}

fn panic_error() -> CoreError {
    CoreError::internal("a panic inside OpenMLS was caught; the group was reloaded from storage")
}

/// Ends a batch: on success its writes are committed (and the slot's
/// generation bumped if there were any); on any failure they are dropped and
/// the group is reloaded from storage before its next use.
fn commit_or_reload<T>(
    slot: &mut Slot,
    provider: &Provider,
    outcome: Result<T, CoreError>,
) -> Result<T, CoreError> {
    let wrote = !provider.overlay().is_empty();
    match commit(provider, outcome) {
        Ok(v) => {
            if wrote {
                slot.generation += 1;
            }
            Ok(v)
        }
        Err(e) => {
            slot.mls = None;
            Err(e)
        }
    }
}

impl GroupHandle {
    pub(crate) fn new(client: Arc<ClientCore>, id: Vec<u8>, mls: Option<MlsGroup>) -> Self {
        Self {
            client,
            id,
            slot: Mutex::new(Slot {
                mls,
                generation: 0,
                deleted: false,
            }),
            unconfirmed_merge: Mutex::new(None),
        }
    }

    /// The group `id` as stored. Errors: `UnknownGroup`, storage errors.
    pub(crate) fn load_from(storage: &Overlay, id: &[u8]) -> Result<MlsGroup, CoreError> {
        match MlsGroup::load(storage, &GroupId::from_slice(id)) {
            Ok(Some(group)) => Ok(group),
            Ok(None) => Err(CoreError::UnknownGroup),
            Err(e) => Err(e.0),
        }
    }

    fn ensure_loaded<'s>(&self, slot: &'s mut Slot) -> Result<&'s mut MlsGroup, CoreError> {
        if slot.deleted {
            return Err(CoreError::UnknownGroup);
        }
        if slot.mls.is_none() {
            let provider = self.client.provider();
            slot.mls = Some(finish(
                &provider,
                Self::load_from(provider.storage(), &self.id),
            )?);
        }
        slot.mls
            .as_mut()
            .ok_or_else(|| CoreError::internal("group slot empty after load"))
    }

    /// Runs a read-only query on the loaded group.
    fn read<T>(&self, query: impl FnOnce(&MlsGroup) -> T) -> Result<T, CoreError> {
        not_in_callback()?;
        let mut slot = lock(&self.slot);
        let mls = self.ensure_loaded(&mut slot)?;
        Ok(query(mls))
    }

    /// Runs `op` with the group, a fresh overlay and our signer; commits its
    /// writes as one batch, or on any failure drops them and reloads the group.
    fn mutate<T>(
        &self,
        op: impl FnOnce(&mut MlsGroup, &Provider, &SignatureKeyPair) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        not_in_callback()?;
        let mut slot = lock(&self.slot);
        let provider = self.client.provider();
        let outcome = {
            let client = &self.client;
            self.ensure_loaded(&mut slot).and_then(|mls| {
                let signer =
                    client.signer(mls.ciphersuite().signature_algorithm(), provider.overlay())?;
                catch_unwind(AssertUnwindSafe(|| op(mls, &provider, &signer)))
                    .unwrap_or_else(|_| Err(panic_error()))
            })
        };
        commit_or_reload(&mut slot, &provider, outcome)
    }

    /// The group id.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Deletes the group from storage (one batch, index included). A group
    /// whose records no longer decode is deleted by key instead, record by
    /// record, so that a damaged record never keeps it in storage.
    pub(crate) fn delete(&self) -> Result<(), CoreError> {
        not_in_callback()?;
        let mut slot = lock(&self.slot);
        let provider = self.client.provider();
        let loaded = self
            .ensure_loaded(&mut slot)
            .and_then(|mls| mls.delete(provider.storage()).map_err(|e| e.0));
        let provider = match loaded {
            Err(CoreError::StorageCorrupt { .. }) => {
                // A fresh overlay: the failed attempt's writes and fault are dropped.
                let fresh = self.client.provider();
                let peek = self.client.provider();
                forget_group_records(fresh.overlay(), peek.overlay(), &self.id).map_err(|e| e.0)?;
                fresh
            }
            Err(e) => {
                slot.mls = None;
                return finish(&provider, Err(e));
            }
            Ok(()) => provider,
        };
        records::delete_group_records(provider.overlay(), &self.id);
        let outcome = records::unindex_group(provider.overlay(), &self.id);
        commit_or_reload(&mut slot, &provider, outcome)?;
        slot.mls = None;
        slot.deleted = true;
        Ok(())
    }
}
