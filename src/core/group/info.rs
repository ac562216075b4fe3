//! Read-only views of a group: roster, epoch, pending state, secrets, exports.
//! None writes, except `export_group_info` (signing may touch the key store).

use openmls::prelude::*;

use crate::core::context::{finish, lock};
use crate::core::error::CoreError;
use crate::core::group::describe::{commit_info, custom_of, member, proposal_info};
use crate::core::group::GroupHandle;
use crate::core::message;
use crate::core::records;
use crate::core::storage::overlay::not_in_callback;
use crate::core::types::{CommitBundle, CommitInfo, Member, ProposalInfo, Sender};

impl GroupHandle {
    /// The current epoch.
    pub fn epoch(&self) -> Result<u64, CoreError> {
        self.read(|mls| mls.epoch().as_u64())
    }

    /// The group's ciphersuite code.
    pub fn ciphersuite(&self) -> Result<u16, CoreError> {
        self.read(|mls| u16::from(mls.ciphersuite()))
    }

    /// The members, by leaf index.
    pub fn members(&self) -> Result<Vec<Member>, CoreError> {
        self.read(|mls| mls.members().map(member).collect())
    }

    /// Our own leaf index.
    pub fn own_index(&self) -> Result<u32, CoreError> {
        self.read(|mls| mls.own_leaf_index().u32())
    }

    /// Whether we are still a member (false after a commit removed us).
    pub fn is_active(&self) -> Result<bool, CoreError> {
        self.read(|mls| mls.is_active())
    }

    /// The custom group context extensions in force, as (type, data).
    pub fn custom_extensions(&self) -> Result<Vec<(u16, Vec<u8>)>, CoreError> {
        self.read(|mls| custom_of(mls.extensions()))
    }

    /// Derives a secret from the current epoch (RFC 9420 exporter).
    pub fn export_secret(
        &self,
        label: &str,
        context: &[u8],
        length: u32,
    ) -> Result<Vec<u8>, CoreError> {
        if length == 0 || length > 1024 {
            return Err(CoreError::validation("length must be 1..=1024"));
        }
        let crypto = &self.client.crypto;
        self.read(|mls| mls.export_secret(crypto, label, context, length as usize))?
            .map_err(CoreError::validation)
    }

    /// The epoch authenticator of the current epoch.
    pub fn epoch_authenticator(&self) -> Result<Vec<u8>, CoreError> {
        self.read(|mls| mls.epoch_authenticator().as_slice().to_vec())
    }

    /// A signed GroupInfo for external joiners.
    pub fn export_group_info(&self, with_ratchet_tree: bool) -> Result<Vec<u8>, CoreError> {
        self.mutate(|mls, provider, signer| {
            let info = mls
                .export_group_info(provider.crypto(), signer, with_ratchet_tree)
                .map_err(CoreError::validation)?;
            message::serialize(&info)
        })
    }

    /// The public ratchet tree, for joiners when it is not sent in-band.
    pub fn export_ratchet_tree(&self) -> Result<Vec<u8>, CoreError> {
        use openmls::prelude::tls_codec::Serialize as _;
        self.read(|mls| mls.export_ratchet_tree().tls_serialize_detached())?
            .map_err(CoreError::internal)
    }

    /// Pending proposals, in the order they were received.
    pub fn pending_proposals(&self) -> Result<Vec<ProposalInfo>, CoreError> {
        self.read(|mls| {
            mls.pending_proposals()
                .map(|qp| proposal_info(mls, qp))
                .collect()
        })
    }

    /// What our staged commit does, if one is pending.
    pub fn pending_commit(&self) -> Result<Option<CommitInfo>, CoreError> {
        self.read(|mls| {
            mls.pending_commit().map(|staged| {
                let me = Sender::Member {
                    index: mls.own_leaf_index().u32(),
                    identity: self.client.identity.clone(),
                };
                commit_info(mls, staged, me)
            })
        })
    }

    /// The messages of our staged commit, exactly as its operation returned
    /// them; none without a staged commit.
    pub fn pending_commit_bundle(&self) -> Result<Option<CommitBundle>, CoreError> {
        not_in_callback()?;
        let mut slot = lock(&self.slot);
        if self.ensure_loaded(&mut slot)?.pending_commit().is_none() {
            return Ok(None);
        }
        let provider = self.client.provider();
        let out = records::pending_commit(provider.overlay(), &self.id);
        finish(&provider, out)
    }
}
