//! `Group` and `StagedCommit`.

use std::sync::Arc;

use crate::core::group::{GroupHandle, IncomingCommit, Received};
use crate::core::types::NewProposal;
use crate::ffi::error::MlsError;
use crate::ffi::types::*;

/// One MLS group. All handles for a group id share one lock: operations on a
/// group run one at a time, different groups run in parallel. Every mutating
/// call is one atomic storage write; on any error nothing is written and the
/// group is reloaded from storage.
#[derive(uniffi::Object)]
pub struct Group {
    inner: Arc<GroupHandle>,
}

/// What `process_message` found.
#[derive(uniffi::Enum)]
pub enum ReceivedMessage {
    /// An application message, decrypted.
    Application { message: ApplicationMessage },
    /// A proposal, now stored as pending until a commit includes it.
    Proposal { proposal: ProposalInfo },
    /// A commit, staged: inspect it, then `merge()` or `discard()`.
    Commit { commit: Arc<StagedCommit> },
    /// Our own pending commit echoed back by the Delivery Service (in either
    /// framing): the Delivery Service accepted it, so call
    /// `merge_pending_commit()`; the group then is at `new_epoch`. Nothing was
    /// written. The echo of an own commit that is no longer pending (already
    /// merged) is refused as `WrongEpoch` and changes nothing.
    OwnCommit { new_epoch: u64 },
    /// Our own application message or proposal echoed back by the Delivery
    /// Service; nothing to do.
    OwnMessage,
}

impl Group {
    pub(crate) fn wrap(inner: Arc<GroupHandle>) -> Arc<Self> {
        Arc::new(Self { inner })
    }

    fn propose(
        &self,
        proposal: NewProposal,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, MlsError> {
        Ok(self.inner.propose(proposal, mode.into())?.into())
    }
}

#[uniffi::export]
impl Group {
    /// The group id.
    pub fn id(&self) -> Vec<u8> {
        self.inner.id().to_vec()
    }

    /// The current epoch.
    pub fn epoch(&self) -> Result<u64, MlsError> {
        Ok(self.inner.epoch()?)
    }

    /// The group's ciphersuite.
    pub fn ciphersuite(&self) -> Result<Ciphersuite, MlsError> {
        Ok(Ciphersuite::from_id(self.inner.ciphersuite()?)?)
    }

    /// The members, by leaf index.
    pub fn members(&self) -> Result<Vec<Member>, MlsError> {
        Ok(self
            .inner
            .members()?
            .into_iter()
            .map(Member::from)
            .collect())
    }

    /// Our own leaf index.
    pub fn own_index(&self) -> Result<u32, MlsError> {
        Ok(self.inner.own_index()?)
    }

    /// Whether we are still a member (false after a commit removed us).
    pub fn is_active(&self) -> Result<bool, MlsError> {
        Ok(self.inner.is_active()?)
    }

    /// The custom group context extensions in force.
    pub fn custom_extensions(&self) -> Result<Vec<GroupExtension>, MlsError> {
        Ok(ext_records(self.inner.custom_extensions()?))
    }

    /// Proposals received or sent and not yet committed.
    pub fn pending_proposals(&self) -> Result<Vec<ProposalInfo>, MlsError> {
        Ok(self
            .inner
            .pending_proposals()?
            .into_iter()
            .map(ProposalInfo::from)
            .collect())
    }

    /// What our staged commit does, or none. A pending commit survives restarts:
    /// merge or clear it once you know what the Delivery Service did.
    pub fn pending_commit(&self) -> Result<Option<CommitInfo>, MlsError> {
        Ok(self.inner.pending_commit()?.map(CommitInfo::from))
    }

    /// The messages of our staged commit (commit, Welcome, GroupInfo), exactly
    /// as the call that staged it returned them; they are stored with it. After
    /// a crash or restart, send these again rather than clearing and committing
    /// anew: if the Delivery Service had already accepted them, a new commit
    /// would fork the group. None without a staged commit. No write.
    pub fn pending_commit_bundle(&self) -> Result<Option<CommitBundle>, MlsError> {
        Ok(self.inner.pending_commit_bundle()?.map(CommitBundle::from))
    }

    /// Encrypts an application message; `aad` is authenticated, not encrypted.
    /// One write. Errors: `PendingProposals`, `GroupInactive`.
    #[uniffi::method(default(aad))]
    pub fn encrypt(&self, plaintext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, MlsError> {
        Ok(self.inner.encrypt(&plaintext, &aad)?)
    }

    /// Stages a commit adding the members of these key packages (each is
    /// validated first). One write. Errors: `InvalidKeyPackage`, `PendingCommit`.
    pub fn add_members(&self, key_packages: Vec<Vec<u8>>) -> Result<CommitBundle, MlsError> {
        Ok(self.inner.add_members(&key_packages)?.into())
    }

    /// Stages a commit removing the members at these leaf indices. One write.
    /// Errors: `UnknownMember`, `PendingCommit`.
    pub fn remove_members(&self, indices: Vec<u32>) -> Result<CommitBundle, MlsError> {
        Ok(self.inner.remove_members(&indices)?.into())
    }

    /// Stages a commit refreshing our own keys. One write.
    pub fn self_update(&self) -> Result<CommitBundle, MlsError> {
        Ok(self.inner.self_update()?.into())
    }

    /// Proposes our removal; send the message, another member commits it. One write.
    pub fn leave(&self) -> Result<Vec<u8>, MlsError> {
        Ok(self.inner.leave()?)
    }

    /// Stages a commit replacing the custom group context extensions. One write.
    pub fn update_custom_extensions(
        &self,
        extensions: Vec<GroupExtension>,
    ) -> Result<CommitBundle, MlsError> {
        Ok(self
            .inner
            .update_custom_extensions(&ext_pairs(extensions))?
            .into())
    }

    /// Proposes adding the member of `key_package`. One write.
    pub fn propose_add(
        &self,
        key_package: Vec<u8>,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, MlsError> {
        self.propose(NewProposal::Add(key_package), mode)
    }

    /// Proposes removing the member at `index`. One write.
    pub fn propose_remove(
        &self,
        index: u32,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, MlsError> {
        self.propose(NewProposal::Remove(index), mode)
    }

    /// Proposes refreshing our own leaf (always by reference). One write.
    pub fn propose_self_update(&self) -> Result<ProposalBundle, MlsError> {
        self.propose(NewProposal::SelfUpdate, ProposalMode::ByReference)
    }

    /// Proposes injecting the stored external PSK `psk_id`. One write.
    pub fn propose_external_psk(
        &self,
        psk_id: Vec<u8>,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, MlsError> {
        self.propose(NewProposal::ExternalPsk(psk_id), mode)
    }

    /// Proposes replacing the custom group context extensions. One write.
    pub fn propose_custom_extensions(
        &self,
        extensions: Vec<GroupExtension>,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, MlsError> {
        self.propose(
            NewProposal::GroupContextExtensions(ext_pairs(extensions)),
            mode,
        )
    }

    /// Sends an application-defined proposal; every member must list
    /// `proposal_type` in `ClientOptions.custom_proposal_types`. One write.
    pub fn propose_custom(
        &self,
        proposal_type: u16,
        payload: Vec<u8>,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, MlsError> {
        self.propose(
            NewProposal::Custom {
                proposal_type,
                payload,
            },
            mode,
        )
    }

    /// Stages a commit of all pending proposals. One write.
    pub fn commit_pending_proposals(&self) -> Result<CommitBundle, MlsError> {
        Ok(self.inner.commit_pending_proposals()?.into())
    }

    /// Applies our staged commit once the Delivery Service accepted it. One write.
    /// Errors: `NoPendingCommit`.
    pub fn merge_pending_commit(&self) -> Result<(), MlsError> {
        Ok(self.inner.merge_pending_commit()?)
    }

    /// Drops our staged commit after the Delivery Service refused it (for
    /// example another commit won the epoch). One write. Errors: `NoPendingCommit`.
    pub fn clear_pending_commit(&self) -> Result<(), MlsError> {
        Ok(self.inner.clear_pending_commit()?)
    }

    /// Drops all pending proposals. One write.
    pub fn clear_pending_proposals(&self) -> Result<(), MlsError> {
        Ok(self.inner.clear_pending_proposals()?)
    }

    /// Processes an incoming message. Application messages and proposals are
    /// stored at once (one write); a commit is returned staged and nothing is
    /// written until `StagedCommit.merge()`. Errors: `MalformedInput`,
    /// `WrongGroup`, `WrongEpoch`, `DuplicateMessage`, `ValidationFailed`.
    pub fn process_message(&self, message: Vec<u8>) -> Result<ReceivedMessage, MlsError> {
        Ok(match self.inner.process_message(&message)? {
            Received::Application {
                sender,
                plaintext,
                aad,
                epoch,
            } => ReceivedMessage::Application {
                message: ApplicationMessage {
                    sender: sender.into(),
                    plaintext,
                    aad,
                    epoch,
                },
            },
            Received::Proposal(p) => ReceivedMessage::Proposal { proposal: p.into() },
            Received::Commit(c) => ReceivedMessage::Commit {
                commit: Arc::new(StagedCommit { inner: c }),
            },
            Received::OwnCommit { new_epoch } => ReceivedMessage::OwnCommit { new_epoch },
            Received::OwnMessage => ReceivedMessage::OwnMessage,
        })
    }

    /// Derives `length` (1..=1024) bytes from the current epoch (RFC 9420 exporter).
    pub fn export_secret(
        &self,
        label: String,
        context: Vec<u8>,
        length: u32,
    ) -> Result<Vec<u8>, MlsError> {
        Ok(self.inner.export_secret(&label, &context, length)?)
    }

    /// The epoch authenticator: equal on all members that agree on the group state.
    pub fn epoch_authenticator(&self) -> Result<Vec<u8>, MlsError> {
        Ok(self.inner.epoch_authenticator()?)
    }

    /// A signed GroupInfo for external joiners, with or without the ratchet tree.
    #[uniffi::method(default(with_ratchet_tree = true))]
    pub fn export_group_info(&self, with_ratchet_tree: bool) -> Result<Vec<u8>, MlsError> {
        Ok(self.inner.export_group_info(with_ratchet_tree)?)
    }

    /// The public ratchet tree, for joiners when it is not sent in-band.
    pub fn export_ratchet_tree(&self) -> Result<Vec<u8>, MlsError> {
        Ok(self.inner.export_ratchet_tree()?)
    }
}

/// An incoming commit, verified but not applied. Nothing is stored until
/// `merge()`; if the app crashes before, it can process the message again.
#[derive(uniffi::Object)]
pub struct StagedCommit {
    inner: Arc<IncomingCommit>,
}

#[uniffi::export]
impl StagedCommit {
    /// What the commit does: sender, adds, removes, updates, PSKs, custom
    /// proposals, extension changes, and whether it removes us.
    pub fn info(&self) -> CommitInfo {
        self.inner.info().clone().into()
    }

    /// Applies the commit: the group moves to the new epoch. One write.
    /// After a storage error it can be retried. Errors: `StagedCommitOutdated`
    /// if the group changed since processing (process the message again).
    pub fn merge(&self) -> Result<(), MlsError> {
        Ok(self.inner.merge()?)
    }

    /// Drops the commit without writing anything.
    pub fn discard(&self) {
        self.inner.discard()
    }
}
