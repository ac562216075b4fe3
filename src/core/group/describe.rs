//! OpenMLS types turned into `core::types`: who sent what, what a proposal
//! asks for, what a commit does.

use std::collections::HashSet;

use openmls::prelude::{
    Credential, Extension, Extensions, GroupContext, MlsGroup, PreSharedKeyProposal, Proposal,
    ProposalOrRefType, QueuedProposal, Sender as MlsSender, StagedCommit,
};
use openmls::schedule::{PreSharedKeyId, Psk};

use crate::core::message::credential_identity;
use crate::core::storage::codec;
use crate::core::types::{
    AddedMember, CommitInfo, CustomProposal, Member, ProposalContent, ProposalInfo, RemovedMember,
    Sender,
};

/// A member of the roster.
pub(crate) fn member(m: openmls::prelude::Member) -> Member {
    Member {
        index: m.index.u32(),
        identity: credential_identity(&m.credential),
        signature_key: m.signature_key,
    }
}

/// Who sent it; a member's identity comes from `verified` (the credential its
/// signature was checked against) when given, else from the current tree.
pub(super) fn sender(mls: &MlsGroup, sender: &MlsSender, verified: Option<&Credential>) -> Sender {
    match sender {
        MlsSender::Member(index) => Sender::Member {
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
        MlsSender::External(index) => Sender::External {
            index: codec::encode(index)
                .and_then(|b| codec::decode::<u32>(b"sender index", &b))
                .unwrap_or(u32::MAX),
        },
        MlsSender::NewMemberProposal => Sender::NewMemberProposal,
        MlsSender::NewMemberCommit => Sender::NewMemberCommit,
    }
}

fn proposal_content(mls: &MlsGroup, proposal: &Proposal) -> ProposalContent {
    match proposal {
        Proposal::Add(add) => {
            let leaf = add.key_package().leaf_node();
            ProposalContent::Add {
                identity: credential_identity(leaf.credential()),
                signature_key: leaf.signature_key().as_slice().to_vec(),
            }
        }
        Proposal::Update(_) => ProposalContent::Update,
        Proposal::Remove(remove) => ProposalContent::Remove {
            index: remove.removed().u32(),
            identity: mls.member(remove.removed()).map(credential_identity),
        },
        Proposal::PreSharedKey(psk) => ProposalContent::PreSharedKey {
            psk_id: external_psk_id(psk).unwrap_or_default(),
        },
        Proposal::GroupContextExtensions(gce) => ProposalContent::GroupContextExtensions {
            custom_extensions: custom_of(gce.extensions()),
        },
        Proposal::Custom(custom) => ProposalContent::Custom {
            proposal_type: custom.proposal_type(),
            payload: custom.payload().to_vec(),
        },
        Proposal::ExternalInit(_) => ProposalContent::ExternalInit,
        Proposal::ReInit(_) => ProposalContent::ReInit,
        Proposal::SelfRemove => ProposalContent::SelfRemove,
        #[allow(unreachable_patterns)]
        _ => ProposalContent::ReInit,
    }
}

/// The custom (unknown to OpenMLS) extensions, as (type, data).
pub(super) fn custom_of(extensions: &Extensions<GroupContext>) -> Vec<(u16, Vec<u8>)> {
    extensions
        .iter()
        .filter_map(|e| match e {
            Extension::Unknown(t, data) => Some((*t, data.0.clone())),
            _ => None,
        })
        .collect()
}

/// A pending (queued) proposal: it always has a reference.
pub(super) fn proposal_info(mls: &MlsGroup, qp: &QueuedProposal) -> ProposalInfo {
    ProposalInfo {
        content: proposal_content(mls, qp.proposal()),
        sender: sender(mls, qp.sender(), None),
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

/// Everything `staged` does, with its proposals also sorted by kind.
pub(super) fn commit_info(mls: &MlsGroup, staged: &StagedCommit, from: Sender) -> CommitInfo {
    let new_custom_extensions = staged
        .queued_proposals()
        .any(|qp| matches!(qp.proposal(), Proposal::GroupContextExtensions(_)))
        .then(|| custom_of(staged.group_context().extensions()));
    let proposals: Vec<ProposalInfo> = staged
        .queued_proposals()
        .map(|qp| committed_proposal_info(mls, qp))
        .collect();
    let mut info = CommitInfo {
        committer_leaf: committer_leaf(mls, staged, &from),
        sender: from,
        new_epoch: staged.epoch().as_u64(),
        adds: Vec::new(),
        removes: Vec::new(),
        updates: Vec::new(),
        psk_ids: Vec::new(),
        custom_proposals: Vec::new(),
        new_custom_extensions,
        has_path: staged.update_path_leaf_node().is_some(),
        removes_us: staged.self_removed(),
        proposals: Vec::new(),
    };
    for p in &proposals {
        match &p.content {
            ProposalContent::Add {
                identity,
                signature_key,
            } => info.adds.push(AddedMember {
                identity: identity.clone(),
                signature_key: signature_key.clone(),
            }),
            ProposalContent::Remove { index, identity } => info.removes.push(RemovedMember {
                index: *index,
                identity: identity.clone(),
            }),
            ProposalContent::Update => {
                if let Sender::Member { index, .. } = p.sender {
                    info.updates.push(index)
                }
            }
            ProposalContent::PreSharedKey { psk_id } => info.psk_ids.push(psk_id.clone()),
            ProposalContent::Custom {
                proposal_type,
                payload,
            } => info.custom_proposals.push(CustomProposal {
                proposal_type: *proposal_type,
                payload: payload.clone(),
            }),
            _ => {}
        }
    }
    info.proposals = proposals;
    info
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
fn committer_leaf(mls: &MlsGroup, staged: &StagedCommit, from: &Sender) -> Option<Member> {
    let leaf = staged.update_path_leaf_node()?;
    let index = match from {
        Sender::Member { index, .. } => *index,
        Sender::NewMemberCommit => {
            let removed: Vec<u32> = staged
                .queued_proposals()
                .filter_map(|qp| match qp.proposal() {
                    Proposal::Remove(r) => Some(r.removed().u32()),
                    _ => None,
                })
                .collect();
            let occupied: HashSet<u32> = mls
                .members()
                .map(|m| m.index.u32())
                .filter(|i| !removed.contains(i))
                .collect();
            (0..=u32::MAX).find(|i| !occupied.contains(i))?
        }
        _ => return None,
    };
    Some(Member {
        index,
        identity: credential_identity(leaf.credential()),
        signature_key: leaf.signature_key().as_slice().to_vec(),
    })
}
