//! Own proposals, and leaving (a proposal to remove ourselves).

use openmls::prelude::*;
use openmls::schedule::{ExternalPsk, PreSharedKeyId, Psk};

use crate::core::error::{from_operation_error, CoreError};
use crate::core::group::commit::with_custom_extensions;
use crate::core::group::{ensure_active, GroupHandle};
use crate::core::message;
use crate::core::storage::provider::psk_key;
use crate::core::types::{NewProposal, ProposalBundle, ProposalMode};

impl GroupHandle {
    /// Sends a proposal; returns the message and the proposal reference.
    pub fn propose(
        &self,
        proposal: NewProposal,
        mode: ProposalMode,
    ) -> Result<ProposalBundle, CoreError> {
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
                    let key = psk_key(&Psk::External(ExternalPsk::new(psk_id.clone())))?;
                    if provider.overlay().get(&key)?.is_none() {
                        return Err(CoreError::validation(
                            "no external PSK with this id is stored; call store_external_psk first",
                        ));
                    }
                    let id = PreSharedKeyId::new(
                        mls.ciphersuite(),
                        provider.rand(),
                        Psk::External(ExternalPsk::new(psk_id)),
                    )
                    .map_err(CoreError::internal)?;
                    Propose::PreSharedKey(id)
                }
                NewProposal::GroupContextExtensions(custom) => {
                    Propose::GroupContextExtensions(with_custom_extensions(mls, &custom)?)
                }
                NewProposal::Custom {
                    proposal_type,
                    payload,
                } => Propose::Custom(CustomProposal::new(proposal_type, payload)),
            };
            let (out, proposal_ref) = mls
                .propose(provider, signer, propose, ref_or_value)
                .map_err(from_operation_error)?;
            Ok(ProposalBundle {
                message: message::serialize(&out)?,
                proposal_ref: proposal_ref.as_slice().to_vec(),
            })
        })
    }

    /// Proposes our own removal; another member must commit it.
    pub fn leave(&self) -> Result<Vec<u8>, CoreError> {
        self.mutate(|mls, provider, signer| {
            ensure_active(mls)?;
            let out = mls
                .leave_group(provider, signer)
                .map_err(from_operation_error)?;
            message::serialize(&out)
        })
    }
}
