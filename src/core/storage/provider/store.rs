//! `StorageProvider` for the overlay: every OpenMLS record is one key
//! (`mls_key(label, key)`), lists are one record of CBOR items.

use openmls_traits::storage::{traits, StorageProvider, CURRENT_VERSION};

use super::{label, mls_key, StorageFault, R};
use crate::core::error::CoreError;
use crate::core::storage::codec;
use crate::core::storage::overlay::Overlay;

macro_rules! group_record {
    ($write:ident, $read:ident, $delete:ident, $label:expr, $ty:ident) => {
        fn $write<GroupId: traits::GroupId<CURRENT_VERSION>, $ty: traits::$ty<CURRENT_VERSION>>(
            &self,
            group_id: &GroupId,
            value: &$ty,
        ) -> R<()> {
            self.write_one($label, group_id, value)
        }

        fn $read<GroupId: traits::GroupId<CURRENT_VERSION>, $ty: traits::$ty<CURRENT_VERSION>>(
            &self,
            group_id: &GroupId,
        ) -> R<Option<$ty>> {
            self.read_one($label, group_id)
        }

        fn $delete<GroupId: traits::GroupId<CURRENT_VERSION>>(&self, group_id: &GroupId) -> R<()> {
            self.delete_one($label, group_id)
        }
    };
}

impl StorageProvider<CURRENT_VERSION> for Overlay {
    type Error = StorageFault;

    group_record!(
        write_mls_join_config,
        mls_group_join_config,
        delete_group_config,
        label::JOIN_CONFIG,
        MlsGroupJoinConfig
    );
    group_record!(write_tree, tree, delete_tree, label::TREE, TreeSync);
    group_record!(
        write_interim_transcript_hash,
        interim_transcript_hash,
        delete_interim_transcript_hash,
        label::INTERIM_TRANSCRIPT_HASH,
        InterimTranscriptHash
    );
    group_record!(
        write_context,
        group_context,
        delete_context,
        label::CONTEXT,
        GroupContext
    );
    group_record!(
        write_confirmation_tag,
        confirmation_tag,
        delete_confirmation_tag,
        label::CONFIRMATION_TAG,
        ConfirmationTag
    );
    group_record!(
        write_message_secrets,
        message_secrets,
        delete_message_secrets,
        label::MESSAGE_SECRETS,
        MessageSecrets
    );
    group_record!(
        write_resumption_psk_store,
        resumption_psk_store,
        delete_all_resumption_psk_secrets,
        label::RESUMPTION_PSK_STORE,
        ResumptionPskStore
    );
    group_record!(
        write_own_leaf_index,
        own_leaf_index,
        delete_own_leaf_index,
        label::OWN_LEAF_INDEX,
        LeafNodeIndex
    );
    group_record!(
        write_group_epoch_secrets,
        group_epoch_secrets,
        delete_group_epoch_secrets,
        label::EPOCH_SECRETS,
        GroupEpochSecrets
    );

    // `write_group_state` and `group_state` list their generics in the other order.
    fn write_group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_state: &GroupState,
    ) -> R<()> {
        self.write_one(label::GROUP_STATE, group_id, group_state)
    }

    fn group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> R<Option<GroupState>> {
        self.read_one(label::GROUP_STATE, group_id)
    }

    fn delete_group_state<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> R<()> {
        self.delete_one(label::GROUP_STATE, group_id)
    }

    fn append_own_leaf_node<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        leaf_node: &LeafNode,
    ) -> R<()> {
        let key = mls_key(label::OWN_LEAF_NODES, group_id)?;
        let mut list = self.read_list_raw(&key)?;
        list.push(codec::encode(leaf_node).map_err(StorageFault)?);
        self.write_entity(key, &list)
    }

    fn own_leaf_nodes<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> R<Vec<LeafNode>> {
        let key = mls_key(label::OWN_LEAF_NODES, group_id)?;
        self.read_list(&key)
    }

    fn delete_own_leaf_nodes<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> R<()> {
        self.delete_one(label::OWN_LEAF_NODES, group_id)
    }

    fn queue_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
        proposal: &QueuedProposal,
    ) -> R<()> {
        self.write_entity(
            mls_key(label::PROPOSAL, &(group_id, proposal_ref))?,
            proposal,
        )?;
        let refs_key = mls_key(label::PROPOSAL_REFS, group_id)?;
        let mut refs = self.read_list_raw(&refs_key)?;
        let encoded = codec::encode(proposal_ref).map_err(StorageFault)?;
        if !refs.contains(&encoded) {
            refs.push(encoded);
        }
        self.write_entity(refs_key, &refs)
    }

    fn queued_proposal_refs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> R<Vec<ProposalRef>> {
        self.read_list(&mls_key(label::PROPOSAL_REFS, group_id)?)
    }

    fn queued_proposals<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> R<Vec<(ProposalRef, QueuedProposal)>> {
        let refs: Vec<ProposalRef> = self.queued_proposal_refs(group_id)?;
        let mut out = Vec::with_capacity(refs.len());
        for proposal_ref in refs {
            let key = mls_key(label::PROPOSAL, &(group_id, &proposal_ref))?;
            match self.read_entity(&key)? {
                Some(proposal) => out.push((proposal_ref, proposal)),
                None => {
                    return Err(StorageFault(self.record(CoreError::StorageCorrupt {
                        key: codec::describe_key(&key),
                        reason: "a queued proposal listed in the index is missing".into(),
                    })))
                }
            }
        }
        Ok(out)
    }

    fn remove_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
    ) -> R<()> {
        let refs_key = mls_key(label::PROPOSAL_REFS, group_id)?;
        let encoded = codec::encode(proposal_ref).map_err(StorageFault)?;
        let mut refs = self.read_list_raw(&refs_key)?;
        refs.retain(|r| r != &encoded);
        if refs.is_empty() {
            self.delete(refs_key);
        } else {
            self.write_entity(refs_key, &refs)?;
        }
        self.delete(mls_key(label::PROPOSAL, &(group_id, proposal_ref))?);
        Ok(())
    }

    fn clear_proposal_queue<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> R<()> {
        let refs: Vec<ProposalRef> = self.queued_proposal_refs(group_id)?;
        for proposal_ref in &refs {
            self.delete(mls_key(label::PROPOSAL, &(group_id, proposal_ref))?);
        }
        self.delete_one(label::PROPOSAL_REFS, group_id)
    }

    fn write_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
        signature_key_pair: &SignatureKeyPair,
    ) -> R<()> {
        self.write_one(label::SIGNATURE_KEY_PAIR, public_key, signature_key_pair)
    }

    fn signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> R<Option<SignatureKeyPair>> {
        self.read_one(label::SIGNATURE_KEY_PAIR, public_key)
    }

    fn delete_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> R<()> {
        self.delete_one(label::SIGNATURE_KEY_PAIR, public_key)
    }

    fn write_encryption_key_pair<
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
        key_pair: &HpkeKeyPair,
    ) -> R<()> {
        self.write_one(label::ENCRYPTION_KEY_PAIR, public_key, key_pair)
    }

    fn encryption_key_pair<
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
    ) -> R<Option<HpkeKeyPair>> {
        self.read_one(label::ENCRYPTION_KEY_PAIR, public_key)
    }

    fn delete_encryption_key_pair<EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        public_key: &EncryptionKey,
    ) -> R<()> {
        self.delete_one(label::ENCRYPTION_KEY_PAIR, public_key)
    }

    fn write_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
        key_pairs: &[HpkeKeyPair],
    ) -> R<()> {
        let key = mls_key(label::EPOCH_KEY_PAIRS, &(group_id, epoch, leaf_index))?;
        self.write_entity(key, key_pairs)
    }

    fn encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> R<Vec<HpkeKeyPair>> {
        let key = mls_key(label::EPOCH_KEY_PAIRS, &(group_id, epoch, leaf_index))?;
        Ok(self
            .get_value(&key)
            .map_err(StorageFault)?
            .unwrap_or_default())
    }

    fn delete_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> R<()> {
        let key = mls_key(label::EPOCH_KEY_PAIRS, &(group_id, epoch, leaf_index))?;
        self.delete(key);
        Ok(())
    }

    fn write_key_package<
        HashReference: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &HashReference,
        key_package: &KeyPackage,
    ) -> R<()> {
        self.write_one(label::KEY_PACKAGE, hash_ref, key_package)
    }

    fn key_package<
        KeyPackageRef: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> R<Option<KeyPackage>> {
        self.read_one(label::KEY_PACKAGE, hash_ref)
    }

    fn delete_key_package<KeyPackageRef: traits::HashReference<CURRENT_VERSION>>(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> R<()> {
        self.delete_one(label::KEY_PACKAGE, hash_ref)
    }

    fn write_psk<
        PskId: traits::PskId<CURRENT_VERSION>,
        PskBundle: traits::PskBundle<CURRENT_VERSION>,
    >(
        &self,
        psk_id: &PskId,
        psk: &PskBundle,
    ) -> R<()> {
        self.write_one(label::PSK, psk_id, psk)
    }

    fn psk<PskBundle: traits::PskBundle<CURRENT_VERSION>, PskId: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskId,
    ) -> R<Option<PskBundle>> {
        self.read_one(label::PSK, psk_id)
    }

    fn delete_psk<PskKey: traits::PskId<CURRENT_VERSION>>(&self, psk_id: &PskKey) -> R<()> {
        self.delete_one(label::PSK, psk_id)
    }
}
