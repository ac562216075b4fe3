//! One group: a lock around the OpenMLS group, every operation one atomic batch.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use openmls::prelude::*;
use openmls::schedule::{PreSharedKeyId, Psk};
use openmls_basic_credential::SignatureKeyPair;

use crate::core::client::{finish, lock, ClientCore};
use crate::core::config::{custom_extensions, require_extension_types, JoinSettings};
use crate::core::error::{self, CoreError};
use crate::core::message::{self, credential_identity};
use crate::core::storage::codec;
use crate::core::storage::overlay::{not_in_callback, Overlay};
use crate::core::storage::provider::{forget_group_records, psk_key, Provider};
use crate::core::storage::{Value, Write};

/// The messages an own commit produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutput {
    pub commit: Vec<u8>,
    pub welcome: Option<Vec<u8>>,
    pub group_info: Option<Vec<u8>>,
}

/// SDK record holding the messages of a group's staged own commit.
const PENDING_COMMIT_OUT: &str = "pending_commit_out";

fn pending_out_key(group_id: &[u8]) -> Vec<u8> {
    Overlay::sdk_key(PENDING_COMMIT_OUT, group_id)
}

/// SDK record, present (as `false`) only for a group that refuses external commits.
const EXTERNAL_COMMITS: &str = "external_commits";

fn external_commits_key(group_id: &[u8]) -> Vec<u8> {
    Overlay::sdk_key(EXTERNAL_COMMITS, group_id)
}

/// Records the group's own policy (part of the batch that creates or joins it).
pub(crate) fn store_policy(
    overlay: &Overlay,
    group_id: &[u8],
    settings: &JoinSettings,
) -> Result<(), CoreError> {
    if settings.allow_external_commits {
        return Ok(());
    }
    overlay.put_value(external_commits_key(group_id), &false)
}

/// How a [`CommitOutput`] is stored: byte strings, not arrays of numbers.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredCommitOutput {
    commit: codec::Bytes,
    welcome: Option<codec::Bytes>,
    group_info: Option<codec::Bytes>,
}

impl From<&CommitOutput> for StoredCommitOutput {
    fn from(o: &CommitOutput) -> Self {
        Self {
            commit: codec::Bytes(o.commit.clone()),
            welcome: o.welcome.clone().map(codec::Bytes),
            group_info: o.group_info.clone().map(codec::Bytes),
        }
    }
}

impl From<StoredCommitOutput> for CommitOutput {
    fn from(s: StoredCommitOutput) -> Self {
        Self {
            commit: s.commit.0,
            welcome: s.welcome.map(|b| b.0),
            group_info: s.group_info.map(|b| b.0),
        }
    }
}

/// Who sent a message or proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderInfo {
    Member { index: u32, identity: Vec<u8> },
    External { index: u32 },
    NewMemberProposal,
    NewMemberCommit,
}

/// What a proposal asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalKind {
    Add {
        identity: Vec<u8>,
        signature_key: Vec<u8>,
    },
    Update,
    Remove {
        index: u32,
        identity: Option<Vec<u8>>,
    },
    PreSharedKey {
        psk_id: Vec<u8>,
    },
    GroupContextExtensions {
        custom_extensions: Vec<(u16, Vec<u8>)>,
    },
    Custom {
        proposal_type: u16,
        payload: Vec<u8>,
    },
    ExternalInit,
    ReInit,
    SelfRemove,
}

/// A proposal with its sender and reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalInfo {
    pub kind: ProposalKind,
    pub sender: SenderInfo,
    /// `None` for a proposal a commit carries by value (it has no reference
    /// that all members agree on).
    pub proposal_ref: Option<Vec<u8>>,
}

/// A leaf as a commit leaves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafInfo {
    pub index: u32,
    pub identity: Vec<u8>,
    pub signature_key: Vec<u8>,
}

/// Everything a commit does, for the app to check before merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSummary {
    pub sender: SenderInfo,
    /// The committer's new leaf, for commits with a path (every external
    /// commit has one: then it is the joiner).
    pub committer_leaf: Option<LeafInfo>,
    pub new_epoch: u64,
    pub proposals: Vec<ProposalInfo>,
    pub has_path: bool,
    pub self_removed: bool,
    /// Custom group context extensions after the commit, if it changes them.
    pub new_custom_extensions: Option<Vec<(u16, Vec<u8>)>>,
}

/// What `process_message` found.
pub enum Received {
    Application {
        sender: SenderInfo,
        plaintext: Vec<u8>,
        aad: Vec<u8>,
        epoch: u64,
    },
    Proposal(ProposalInfo),
    Commit(Arc<IncomingCommit>),
    /// Our own still-pending commit, echoed back by the Delivery Service (the
    /// acknowledgement many of them send): merge it with `merge_pending_commit`.
    OwnCommit {
        new_epoch: u64,
    },
    /// Another own message (application message or proposal), echoed back.
    OwnMessage,
}

/// How a proposal is referenced by the commit that includes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalMode {
    ByReference,
    ByValue,
}

/// A proposal to make.
#[derive(Clone, Debug)]
pub enum NewProposal {
    Add(Vec<u8>),
    Remove(u32),
    SelfUpdate,
    ExternalPsk(Vec<u8>),
    GroupContextExtensions(Vec<(u16, Vec<u8>)>),
    Custom {
        proposal_type: u16,
        payload: Vec<u8>,
    },
}

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
    pub fn read<T>(&self, query: impl FnOnce(&MlsGroup) -> T) -> Result<T, CoreError> {
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
        let wrote = !provider.overlay().is_empty();
        match finish(&provider, outcome).and_then(|v| provider.overlay().flush().map(|_| v)) {
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

    /// The group id.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Encrypts an application message with optional authenticated data.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.mutate(|mls, provider, signer| {
            ensure_active(mls)?;
            if mls.pending_proposals().next().is_some() {
                return Err(CoreError::PendingProposals);
            }
            mls.set_aad(aad.to_vec());
            let out = mls
                .create_message(provider, signer, plaintext)
                .map_err(|e| match e {
                    CreateMessageError::GroupStateError(s) => error::from_state_error(&s),
                    other => CoreError::validation(other),
                })?;
            message::serialize(&out)
        })
    }

    fn key_packages(&self, key_packages: &[Vec<u8>]) -> Result<Vec<KeyPackage>, CoreError> {
        if key_packages.is_empty() {
            return Err(CoreError::validation("no key packages given"));
        }
        key_packages
            .iter()
            .map(|b| {
                message::validate_key_package(
                    &self.client.crypto,
                    b,
                    &self.client.settings.input_limits,
                )
            })
            .collect()
    }

    /// Runs an operation that stages an own commit, and stores the commit's
    /// messages with it (same batch): after a restart the app can send the very
    /// same commit again (`pending_commit_output`).
    fn stage_commit(
        &self,
        op: impl FnOnce(&mut MlsGroup, &Provider, &SignatureKeyPair) -> Result<CommitOutput, CoreError>,
    ) -> Result<CommitOutput, CoreError> {
        self.mutate(|mls, provider, signer| {
            let out = op(mls, provider, signer)?;
            provider
                .overlay()
                .put_value(pending_out_key(&self.id), &StoredCommitOutput::from(&out))?;
            Ok(out)
        })
    }

    /// Stages a commit adding members; merge it once the Delivery Service accepts it.
    pub fn add_members(&self, key_packages: &[Vec<u8>]) -> Result<CommitOutput, CoreError> {
        let kps = self.key_packages(key_packages)?;
        self.stage_commit(|mls, provider, signer| {
            ensure_active(mls)?;
            let (commit, welcome, info) =
                mls.add_members(provider, signer, &kps)
                    .map_err(|e| match e {
                        AddMembersError::GroupStateError(s) => error::from_state_error(&s),
                        other => CoreError::validation(other),
                    })?;
            output(
                &commit,
                Some(&welcome),
                info.map(MlsMessageOut::from).as_ref(),
            )
        })
    }

    /// Stages a commit removing the members at these leaf indices.
    pub fn remove_members(&self, indices: &[u32]) -> Result<CommitOutput, CoreError> {
        if indices.is_empty() {
            return Err(CoreError::validation("no members given"));
        }
        self.stage_commit(|mls, provider, signer| {
            ensure_active(mls)?;
            for index in indices {
                if mls.member(LeafNodeIndex::new(*index)).is_none() {
                    return Err(CoreError::UnknownMember { index: *index });
                }
            }
            let leaves: Vec<LeafNodeIndex> =
                indices.iter().map(|i| LeafNodeIndex::new(*i)).collect();
            let (commit, welcome, info) =
                mls.remove_members(provider, signer, &leaves)
                    .map_err(|e| match e {
                        RemoveMembersError::GroupStateError(s) => error::from_state_error(&s),
                        other => CoreError::validation(other),
                    })?;
            output(
                &commit,
                welcome.as_ref(),
                info.map(MlsMessageOut::from).as_ref(),
            )
        })
    }

    /// Stages a commit that refreshes our own leaf keys (post-compromise security).
    pub fn self_update(&self) -> Result<CommitOutput, CoreError> {
        self.stage_commit(|mls, provider, signer| {
            ensure_active(mls)?;
            let bundle = mls
                .self_update(provider, signer, LeafNodeParameters::default())
                .map_err(|e| match e {
                    SelfUpdateError::GroupStateError(s) => error::from_state_error(&s),
                    other => CoreError::validation(other),
                })?;
            bundle_output(bundle)
        })
    }

    /// Proposes our own removal; another member must commit it.
    pub fn leave(&self) -> Result<Vec<u8>, CoreError> {
        self.mutate(|mls, provider, signer| {
            ensure_active(mls)?;
            let out = mls.leave_group(provider, signer).map_err(|e| match e {
                LeaveGroupError::GroupStateError(s) => error::from_state_error(&s),
                other => CoreError::validation(other),
            })?;
            message::serialize(&out)
        })
    }

    /// The group context extensions with the custom ones replaced by `custom`;
    /// their types are added to the required capabilities (RFC 9420 §11.1).
    fn with_custom_extensions(
        mls: &MlsGroup,
        custom: &[(u16, Vec<u8>)],
    ) -> Result<Extensions<GroupContext>, CoreError> {
        let mut list: Vec<Extension> = mls
            .extensions()
            .iter()
            .filter(|e| {
                !matches!(
                    e,
                    Extension::Unknown(..) | Extension::RequiredCapabilities(_)
                )
            })
            .cloned()
            .collect();
        let custom = custom_extensions(custom)?;
        let types: Vec<u16> = custom
            .iter()
            .map(|e| u16::from(e.extension_type()))
            .collect();
        let current = mls.extensions().required_capabilities().cloned();
        if let Some(required) = require_extension_types(current, &types) {
            list.push(Extension::RequiredCapabilities(required));
        }
        list.extend(custom);
        Extensions::from_vec(list).map_err(CoreError::validation)
    }

    /// Stages a commit that sets the group's custom context extensions.
    pub fn update_custom_extensions(
        &self,
        custom: &[(u16, Vec<u8>)],
    ) -> Result<CommitOutput, CoreError> {
        self.stage_commit(|mls, provider, signer| {
            ensure_active(mls)?;
            let extensions = Self::with_custom_extensions(mls, custom)?;
            let bundle = mls
                .commit_builder()
                .propose_group_context_extensions(extensions)
                .map_err(CoreError::validation)?
                .load_psks(provider.storage())
                .map_err(CoreError::validation)?
                .build(provider.rand(), provider.crypto(), signer, |_| true)
                .map_err(CoreError::validation)?
                .stage_commit(provider)
                .map_err(CoreError::validation)?;
            bundle_output(bundle)
        })
    }

    /// Sends a proposal; returns the message and the proposal reference.
    pub fn propose(
        &self,
        proposal: NewProposal,
        mode: ProposalMode,
    ) -> Result<(Vec<u8>, Vec<u8>), CoreError> {
        let kp = match &proposal {
            NewProposal::Add(bytes) => Some(message::validate_key_package(
                &self.client.crypto,
                bytes,
                &self.client.settings.input_limits,
            )?),
            _ => None,
        };
        self.mutate(|mls, provider, signer| {
            ensure_active(mls)?;
            let ref_or_value = match mode {
                ProposalMode::ByReference => ProposalOrRefType::Reference,
                ProposalMode::ByValue => ProposalOrRefType::Proposal,
            };
            let propose = match proposal {
                NewProposal::Add(_) => {
                    Propose::Add(kp.ok_or_else(|| CoreError::internal("key package missing"))?)
                }
                NewProposal::Remove(index) => {
                    if mls.member(LeafNodeIndex::new(index)).is_none() {
                        return Err(CoreError::UnknownMember { index });
                    }
                    Propose::Remove(index)
                }
                NewProposal::SelfUpdate => {
                    if mode == ProposalMode::ByValue {
                        return Err(CoreError::validation(
                            "an update proposal can only be sent by reference",
                        ));
                    }
                    Propose::Update(LeafNodeParameters::default())
                }
                NewProposal::ExternalPsk(psk_id) => {
                    let key = psk_key(&Psk::External(openmls::schedule::ExternalPsk::new(
                        psk_id.clone(),
                    )))?;
                    if provider.overlay().get(&key)?.is_none() {
                        return Err(CoreError::validation(
                            "no external PSK with this id is stored; call store_external_psk first",
                        ));
                    }
                    let id = PreSharedKeyId::new(
                        mls.ciphersuite(),
                        provider.rand(),
                        Psk::External(openmls::schedule::ExternalPsk::new(psk_id)),
                    )
                    .map_err(CoreError::internal)?;
                    Propose::PreSharedKey(id)
                }
                NewProposal::GroupContextExtensions(custom) => {
                    Propose::GroupContextExtensions(Self::with_custom_extensions(mls, &custom)?)
                }
                NewProposal::Custom {
                    proposal_type,
                    payload,
                } => Propose::Custom(CustomProposal::new(proposal_type, payload)),
            };
            let (out, proposal_ref) = mls
                .propose(provider, signer, propose, ref_or_value)
                .map_err(|e| match e {
                    ProposalError::GroupStateError(s) => error::from_state_error(&s),
                    other => CoreError::validation(other),
                })?;
            Ok((message::serialize(&out)?, proposal_ref.as_slice().to_vec()))
        })
    }

    /// Stages a commit of every pending proposal.
    pub fn commit_pending_proposals(&self) -> Result<CommitOutput, CoreError> {
        self.stage_commit(|mls, provider, signer| {
            ensure_active(mls)?;
            let (commit, welcome, info) = mls
                .commit_to_pending_proposals(provider, signer)
                .map_err(|e| match e {
                    CommitToPendingProposalsError::GroupStateError(s) => {
                        error::from_state_error(&s)
                    }
                    other => CoreError::validation(other),
                })?;
            output(
                &commit,
                welcome.as_ref(),
                info.map(MlsMessageOut::from).as_ref(),
            )
        })
    }

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
            provider.overlay().delete(pending_out_key(&self.id));
            mls.merge_pending_commit(provider).map_err(|e| match e {
                MergePendingCommitError::MlsGroupStateError(s) => error::from_state_error(&s),
                other => CoreError::validation(other),
            })
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
            provider.overlay().delete(pending_out_key(&self.id));
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

    /// Processes an incoming group message.
    pub fn process_message(self: &Arc<Self>, bytes: &[u8]) -> Result<Received, CoreError> {
        let protocol: ProtocolMessage =
            match message::parse(bytes, &self.client.settings.input_limits)?.extract() {
                MlsMessageBodyIn::PublicMessage(m) => m.into(),
                MlsMessageBodyIn::PrivateMessage(m) => m.into(),
                _ => {
                    return Err(CoreError::malformed(
                        "not a group message (PublicMessage or PrivateMessage)",
                    ))
                }
            };
        not_in_callback()?;
        let mut slot = lock(&self.slot);
        let generation = slot.generation;
        let mls = self.ensure_loaded(&mut slot)?;
        if protocol.group_id().as_slice() != self.id.as_slice() {
            return Err(CoreError::WrongGroup);
        }
        // OpenMLS cannot decrypt its own PrivateMessage, so the echo of our
        // pending commit is recognised by its bytes, in either framing.
        if let Some(new_epoch) = mls.pending_commit().map(|c| c.epoch().as_u64()) {
            let provider = self.client.provider();
            let stored = provider
                .overlay()
                .get_value::<StoredCommitOutput>(&pending_out_key(&self.id));
            if finish(&provider, stored)?.is_some_and(|out| out.commit.0 == bytes) {
                return Ok(Received::OwnCommit { new_epoch });
            }
        }
        let epochs = (protocol.epoch().as_u64(), mls.epoch().as_u64());
        // OpenMLS reports an application message of an epoch it no longer keeps
        // as "too distant in the past", like a too-old generation: tell them apart.
        let forgotten = epochs.0 < epochs.1
            && max_past_epochs(mls).is_some_and(|kept| epochs.1 - epochs.0 > kept);
        if epochs.0 > epochs.1
            || forgotten
            || (protocol.is_handshake_message() && epochs.0 != epochs.1)
        {
            return Err(CoreError::WrongEpoch {
                message_epoch: epochs.0,
                group_epoch: epochs.1,
            });
        }
        let provider = self.client.provider();
        let processed = match catch_unwind(AssertUnwindSafe(|| {
            mls.process_message(&provider, protocol)
        })) {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                slot.mls = None;
                return finish(&provider, Err(error::from_process_error(&e, epochs)));
            }
            Err(_) => {
                slot.mls = None;
                return Err(panic_error());
            }
        };
        // The credential the message was verified with, not the leaf's current
        // holder: a late message's leaf may since have been emptied or reused.
        let sender = sender_info(mls, processed.sender(), Some(processed.credential()));
        let aad = processed.aad().to_vec();
        let epoch = processed.epoch().as_u64();
        let outcome = match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Ok(Received::Application {
                sender,
                plaintext: app.into_bytes(),
                aad,
                epoch,
            }),
            ProcessedMessageContent::ProposalMessage(qp)
            | ProcessedMessageContent::ExternalJoinProposalMessage(qp) => {
                let info = proposal_info(mls, &qp);
                let known = mls
                    .pending_proposals()
                    .any(|p| p.proposal_reference_ref() == qp.proposal_reference_ref());
                if known {
                    // A re-delivered plaintext proposal (ciphertext ones fail earlier).
                    Err(CoreError::DuplicateMessage)
                } else {
                    mls.store_pending_proposal(provider.storage(), *qp)
                        .map_err(|e| e.0)
                        .map(|_| Received::Proposal(info))
                }
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let summary = commit_summary(mls, &staged, sender);
                let allowed = self.check_external_commit(provider.overlay(), &summary);
                match allowed.and_then(|_| codec::encode_value(&*staged)) {
                    Ok(staged_bytes) => {
                        // The group in memory has consumed ratchet secrets that are
                        // not stored yet: hand it to the staged commit and reload.
                        let live = slot.mls.take().map(|m| (m, *staged));
                        return Ok(Received::Commit(Arc::new(IncomingCommit {
                            group: self.clone(),
                            generation,
                            summary,
                            pending: Mutex::new(Some(PendingMerge {
                                live,
                                staged_bytes,
                                writes: provider.overlay().batch(),
                            })),
                        })));
                    }
                    Err(e) => Err(e),
                }
            }
            ProcessedMessageContent::OwnPrivateMessage
            | ProcessedMessageContent::OwnPendingCommit => Ok(Received::OwnMessage),
            #[allow(unreachable_patterns)]
            _ => Err(CoreError::validation("unsupported message content")),
        };
        let wrote = !provider.overlay().is_empty();
        match finish(&provider, outcome).and_then(|v| provider.overlay().flush().map(|_| v)) {
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

    /// RFC 9420 §12.4.3.2 leaves two checks of an external commit to the
    /// application, and OpenMLS does neither: whether the group takes external
    /// commits at all, and whether a Remove in it targets the joiner's own
    /// earlier leaf (same identity). Without the second, anyone holding a
    /// GroupInfo could remove any member. With basic credentials an identity
    /// is whatever the joiner writes in its credential: an app must still
    /// check `committer_leaf` (identity and signature key) against what it
    /// knows of that identity before merging.
    fn check_external_commit(
        &self,
        overlay: &Overlay,
        summary: &CommitSummary,
    ) -> Result<(), CoreError> {
        if summary.sender != SenderInfo::NewMemberCommit {
            return Ok(());
        }
        let refuse = |reason: String| Err(CoreError::ExternalCommitRefused { reason });
        if overlay.get_value::<bool>(&external_commits_key(&self.id))? == Some(false) {
            return refuse("this group does not accept external commits".into());
        }
        let Some(joiner) = &summary.committer_leaf else {
            return refuse("an external commit without a path".into());
        };
        // RFC 9420 §12.4.3.2: only ExternalInit, at most one Remove and PSKs,
        // all by value (OpenMLS lets references and custom proposals through).
        let mut removes = 0;
        for p in &summary.proposals {
            if p.proposal_ref.is_some() {
                return refuse("an external commit may not include proposals by reference".into());
            }
            match &p.kind {
                ProposalKind::ExternalInit | ProposalKind::PreSharedKey { .. } => {}
                ProposalKind::Remove { index, identity } => {
                    removes += 1;
                    if removes > 1 {
                        return refuse("an external commit may remove at most one member".into());
                    }
                    if identity.as_ref() != Some(&joiner.identity) {
                        return refuse(format!(
                            "the joiner removes member {index}, whose identity is not the joiner's"
                        ));
                    }
                }
                other => {
                    return refuse(format!(
                        "an external commit may not carry a {} proposal",
                        proposal_kind_name(other)
                    ))
                }
            }
        }
        Ok(())
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
    pub fn pending_commit(&self) -> Result<Option<CommitSummary>, CoreError> {
        self.read(|mls| {
            mls.pending_commit().map(|staged| {
                let me = SenderInfo::Member {
                    index: mls.own_leaf_index().u32(),
                    identity: self.client.identity.clone(),
                };
                commit_summary(mls, staged, me)
            })
        })
    }

    /// The messages of our staged commit, exactly as its operation returned
    /// them; none without a staged commit.
    pub fn pending_commit_output(&self) -> Result<Option<CommitOutput>, CoreError> {
        not_in_callback()?;
        let mut slot = lock(&self.slot);
        if self.ensure_loaded(&mut slot)?.pending_commit().is_none() {
            return Ok(None);
        }
        let provider = self.client.provider();
        let out = provider
            .overlay()
            .get_value::<StoredCommitOutput>(&pending_out_key(&self.id));
        finish(&provider, out).map(|o| o.map(CommitOutput::from))
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
        provider.overlay().delete(pending_out_key(&self.id));
        provider.overlay().delete(external_commits_key(&self.id));
        let outcome = self.client.unindex_group(provider.overlay(), &self.id);
        match finish(&provider, outcome).and_then(|_| provider.overlay().flush()) {
            Ok(()) => {
                slot.mls = None;
                slot.deleted = true;
                slot.generation += 1;
                Ok(())
            }
            Err(e) => {
                slot.mls = None;
                Err(e)
            }
        }
    }
}

struct PendingMerge {
    /// The processed group and commit, if nothing reloaded them since.
    live: Option<(MlsGroup, StagedCommit)>,
    /// The staged commit, to rebuild it after a failed merge (it holds the
    /// next epoch's secrets and private keys: wiped when dropped).
    staged_bytes: Value,
    /// The writes processing made (ratchet state), applied only with the merge.
    writes: Vec<Write>,
}

/// An incoming commit, processed but not applied: nothing is written until `merge`.
pub struct IncomingCommit {
    group: Arc<GroupHandle>,
    generation: u64,
    summary: CommitSummary,
    pending: Mutex<Option<PendingMerge>>,
}

impl IncomingCommit {
    /// What the commit does.
    pub fn summary(&self) -> &CommitSummary {
        &self.summary
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
            if epoch == self.summary.new_epoch {
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
            provider.overlay().delete(pending_out_key(&group.id));
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
        match finish(&provider, outcome).and_then(|m| provider.overlay().flush().map(|_| m)) {
            Ok(mls) => {
                slot.mls = Some(mls);
                slot.generation += 1;
                *pending = None;
                Ok(())
            }
            Err(e) => {
                slot.mls = None;
                Err(e)
            }
        }
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

/// How many past epochs' message secrets the group keeps. OpenMLS has no
/// public getter; the join config's serde form carries it as a number
/// (`usize::MAX` for "keep all").
fn max_past_epochs(mls: &MlsGroup) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Kept {
        past_epoch_deletion_policy: u64,
    }
    let bytes = codec::encode(mls.configuration()).ok()?;
    codec::decode::<Kept>(b"join config", &bytes)
        .ok()
        .map(|k| k.past_epoch_deletion_policy)
}

fn output(
    commit: &MlsMessageOut,
    welcome: Option<&MlsMessageOut>,
    info: Option<&MlsMessageOut>,
) -> Result<CommitOutput, CoreError> {
    Ok(CommitOutput {
        commit: message::serialize(commit)?,
        welcome: welcome.map(message::serialize).transpose()?,
        group_info: info.map(message::serialize).transpose()?,
    })
}

fn bundle_output(bundle: CommitMessageBundle) -> Result<CommitOutput, CoreError> {
    let (commit, welcome, info) = bundle.into_messages();
    output(&commit, welcome.as_ref(), info.as_ref())
}

/// Who sent it; a member's identity comes from `verified` (the credential its
/// signature was checked against) when given, else from the current tree.
fn sender_info(mls: &MlsGroup, sender: &Sender, verified: Option<&Credential>) -> SenderInfo {
    match sender {
        Sender::Member(index) => SenderInfo::Member {
            index: index.u32(),
            identity: match verified {
                Some(credential) => credential_identity(credential),
                None => mls
                    .member(*index)
                    .map(credential_identity)
                    .unwrap_or_default(),
            },
        },
        // The index has no public getter; its serde form is the bare number.
        Sender::External(index) => SenderInfo::External {
            index: codec::encode(index)
                .and_then(|b| codec::decode::<u32>(b"sender index", &b))
                .unwrap_or(u32::MAX),
        },
        Sender::NewMemberProposal => SenderInfo::NewMemberProposal,
        Sender::NewMemberCommit => SenderInfo::NewMemberCommit,
    }
}

fn proposal_kind(mls: &MlsGroup, proposal: &Proposal) -> ProposalKind {
    match proposal {
        Proposal::Add(add) => {
            let leaf = add.key_package().leaf_node();
            ProposalKind::Add {
                identity: credential_identity(leaf.credential()),
                signature_key: leaf.signature_key().as_slice().to_vec(),
            }
        }
        Proposal::Update(_) => ProposalKind::Update,
        Proposal::Remove(remove) => ProposalKind::Remove {
            index: remove.removed().u32(),
            identity: mls.member(remove.removed()).map(credential_identity),
        },
        Proposal::PreSharedKey(psk) => ProposalKind::PreSharedKey {
            psk_id: external_psk_id(psk).unwrap_or_default(),
        },
        Proposal::GroupContextExtensions(gce) => ProposalKind::GroupContextExtensions {
            custom_extensions: custom_of(gce.extensions()),
        },
        Proposal::Custom(custom) => ProposalKind::Custom {
            proposal_type: custom.proposal_type(),
            payload: custom.payload().to_vec(),
        },
        Proposal::ExternalInit(_) => ProposalKind::ExternalInit,
        Proposal::ReInit(_) => ProposalKind::ReInit,
        Proposal::SelfRemove => ProposalKind::SelfRemove,
        #[allow(unreachable_patterns)]
        _ => ProposalKind::ReInit,
    }
}

fn custom_of(extensions: &Extensions<GroupContext>) -> Vec<(u16, Vec<u8>)> {
    extensions
        .iter()
        .filter_map(|e| match e {
            Extension::Unknown(t, data) => Some((*t, data.0.clone())),
            _ => None,
        })
        .collect()
}

/// A pending (queued) proposal: it always has a reference.
fn proposal_info(mls: &MlsGroup, qp: &QueuedProposal) -> ProposalInfo {
    ProposalInfo {
        kind: proposal_kind(mls, qp.proposal()),
        sender: sender_info(mls, qp.sender(), None),
        proposal_ref: Some(qp.proposal_reference_ref().as_slice().to_vec()),
    }
}

/// A proposal inside a commit: by-reference ones keep their reference.
fn committed_proposal_info(mls: &MlsGroup, qp: &QueuedProposal) -> ProposalInfo {
    let mut info = proposal_info(mls, qp);
    if qp.proposal_or_ref_type() == ProposalOrRefType::Proposal {
        info.proposal_ref = None;
    }
    info
}

fn commit_summary(mls: &MlsGroup, staged: &StagedCommit, sender: SenderInfo) -> CommitSummary {
    let new_custom = staged
        .queued_proposals()
        .any(|qp| matches!(qp.proposal(), Proposal::GroupContextExtensions(_)))
        .then(|| custom_of(staged.group_context().extensions()));
    CommitSummary {
        committer_leaf: committer_leaf(mls, staged, &sender),
        sender,
        new_epoch: staged.epoch().as_u64(),
        proposals: staged
            .queued_proposals()
            .map(|qp| committed_proposal_info(mls, qp))
            .collect(),
        has_path: staged.update_path_leaf_node().is_some(),
        self_removed: staged.self_removed(),
        new_custom_extensions: new_custom,
    }
}

/// The external PSK id of a PSK proposal. The proposal has no public getter;
/// its TLS encoding is exactly that of the `PreSharedKeyId` it holds.
fn external_psk_id(proposal: &PreSharedKeyProposal) -> Option<Vec<u8>> {
    use openmls::prelude::tls_codec::{DeserializeBytes, Serialize as _};
    let bytes = proposal.tls_serialize_detached().ok()?;
    match PreSharedKeyId::tls_deserialize_exact_bytes(&bytes)
        .ok()?
        .psk()
    {
        Psk::External(ext) => Some(ext.psk_id().to_vec()),
        _ => None,
    }
}

/// The committer's leaf after a commit with a path. An external joiner takes
/// the leftmost leaf that is free once the commit's removals are applied
/// (RFC 9420 §7.7, §12.4.3.2).
fn committer_leaf(mls: &MlsGroup, staged: &StagedCommit, sender: &SenderInfo) -> Option<LeafInfo> {
    let leaf = staged.update_path_leaf_node()?;
    let index = match sender {
        SenderInfo::Member { index, .. } => *index,
        SenderInfo::NewMemberCommit => {
            let removed: Vec<u32> = staged
                .queued_proposals()
                .filter_map(|qp| match qp.proposal() {
                    Proposal::Remove(r) => Some(r.removed().u32()),
                    _ => None,
                })
                .collect();
            let occupied: std::collections::HashSet<u32> = mls
                .members()
                .map(|m| m.index.u32())
                .filter(|i| !removed.contains(i))
                .collect();
            (0..=u32::MAX).find(|i| !occupied.contains(i))?
        }
        _ => return None,
    };
    Some(LeafInfo {
        index,
        identity: credential_identity(leaf.credential()),
        signature_key: leaf.signature_key().as_slice().to_vec(),
    })
}

fn proposal_kind_name(kind: &ProposalKind) -> &'static str {
    match kind {
        ProposalKind::Add { .. } => "add",
        ProposalKind::Update => "update",
        ProposalKind::Remove { .. } => "remove",
        ProposalKind::PreSharedKey { .. } => "pre-shared key",
        ProposalKind::GroupContextExtensions { .. } => "group context extensions",
        ProposalKind::Custom { .. } => "custom",
        ProposalKind::ExternalInit => "external init",
        ProposalKind::ReInit => "reinit",
        ProposalKind::SelfRemove => "self remove",
    }
}
