//! Incoming messages, with the checks RFC 9420 leaves to the application.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use openmls::prelude::*;

use crate::core::context::{finish, lock};
use crate::core::error::{self, CoreError};
use crate::core::group::describe::{commit_info, proposal_info, sender};
use crate::core::group::merge::{IncomingCommit, PendingMerge};
use crate::core::group::{commit_or_reload, panic_error, GroupHandle};
use crate::core::message;
use crate::core::records;
use crate::core::storage::codec;
use crate::core::storage::overlay::{not_in_callback, Overlay};
use crate::core::types::{CommitInfo, ProposalContent, ProposalInfo, Sender};

/// What `process_message` found.
pub enum Received {
    Application {
        sender: Sender,
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

impl GroupHandle {
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
            let stored = records::pending_commit(provider.overlay(), &self.id);
            if finish(&provider, stored)?.is_some_and(|out| out.commit == bytes) {
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
        let from = sender(mls, processed.sender(), Some(processed.credential()));
        let aad = processed.aad().to_vec();
        let epoch = processed.epoch().as_u64();
        let outcome = match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Ok(Received::Application {
                sender: from,
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
                let info = commit_info(mls, &staged, from);
                let allowed = self.check_external_commit(provider.overlay(), &info);
                match allowed.and_then(|_| codec::encode_value(&*staged)) {
                    Ok(staged_bytes) => {
                        // The group in memory has consumed ratchet secrets that are
                        // not stored yet: hand it to the staged commit and reload.
                        let live = slot.mls.take().map(|m| (m, *staged));
                        return Ok(Received::Commit(Arc::new(IncomingCommit {
                            group: self.clone(),
                            generation,
                            info,
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
        commit_or_reload(&mut slot, &provider, outcome)
    }

    /// RFC 9420 §12.4.3.2 leaves two checks of an external commit to the
    /// application, and OpenMLS does neither: whether the group takes external
    /// commits at all, and whether a Remove in it targets the joiner's own
    /// earlier leaf (same identity). Without the second, anyone holding a
    /// GroupInfo could remove any member. With basic credentials an identity
    /// is whatever the joiner writes in its credential: an app must still
    /// check `committer_leaf` (identity and signature key) against what it
    /// knows of that identity before merging.
    fn check_external_commit(&self, overlay: &Overlay, info: &CommitInfo) -> Result<(), CoreError> {
        if info.sender != Sender::NewMemberCommit {
            return Ok(());
        }
        let refuse = |reason: String| Err(CoreError::ExternalCommitRefused { reason });
        if !records::allows_external_commits(overlay, &self.id)? {
            return refuse("this group does not accept external commits".into());
        }
        let Some(joiner) = &info.committer_leaf else {
            return refuse("an external commit without a path".into());
        };
        // RFC 9420 §12.4.3.2: only ExternalInit, at most one Remove and PSKs,
        // all by value (OpenMLS lets references and custom proposals through).
        let mut removes = 0;
        for p in &info.proposals {
            if p.proposal_ref.is_some() {
                return refuse("an external commit may not include proposals by reference".into());
            }
            match &p.content {
                ProposalContent::ExternalInit | ProposalContent::PreSharedKey { .. } => {}
                ProposalContent::Remove { index, identity } => {
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
                        other.name()
                    ))
                }
            }
        }
        Ok(())
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
