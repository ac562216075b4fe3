//! Own commits: each is staged (not merged) and stored with its messages, so
//! the very same commit can be sent again after a restart.

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

use crate::core::config::{custom_extensions, require_extension_types};
use crate::core::error::{from_operation_error, CoreError};
use crate::core::group::{ensure_active, GroupHandle};
use crate::core::message;
use crate::core::records;
use crate::core::storage::provider::Provider;
use crate::core::types::CommitBundle;

impl GroupHandle {
    /// Validates the key packages to add.
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
    /// same commit again (`pending_commit_bundle`).
    fn stage_commit(
        &self,
        op: impl FnOnce(&mut MlsGroup, &Provider, &SignatureKeyPair) -> Result<CommitBundle, CoreError>,
    ) -> Result<CommitBundle, CoreError> {
        self.mutate(|mls, provider, signer| {
            ensure_active(mls)?;
            let out = op(mls, provider, signer)?;
            records::put_pending_commit(provider.overlay(), &self.id, &out)?;
            Ok(out)
        })
    }

    /// Stages a commit adding members; merge it once the Delivery Service accepts it.
    pub fn add_members(&self, key_packages: &[Vec<u8>]) -> Result<CommitBundle, CoreError> {
        let kps = self.key_packages(key_packages)?;
        self.stage_commit(|mls, provider, signer| {
            let (commit, welcome, info) = mls
                .add_members(provider, signer, &kps)
                .map_err(from_operation_error)?;
            bundle(
                &commit,
                Some(&welcome),
                info.map(MlsMessageOut::from).as_ref(),
            )
        })
    }

    /// Stages a commit removing the members at these leaf indices.
    pub fn remove_members(&self, indices: &[u32]) -> Result<CommitBundle, CoreError> {
        if indices.is_empty() {
            return Err(CoreError::validation("no members given"));
        }
        self.stage_commit(|mls, provider, signer| {
            for index in indices {
                if mls.member(LeafNodeIndex::new(*index)).is_none() {
                    return Err(CoreError::UnknownMember { index: *index });
                }
            }
            let leaves: Vec<LeafNodeIndex> =
                indices.iter().map(|i| LeafNodeIndex::new(*i)).collect();
            let (commit, welcome, info) = mls
                .remove_members(provider, signer, &leaves)
                .map_err(from_operation_error)?;
            bundle(
                &commit,
                welcome.as_ref(),
                info.map(MlsMessageOut::from).as_ref(),
            )
        })
    }

    /// Stages a commit that refreshes our own leaf keys (post-compromise security).
    pub fn self_update(&self) -> Result<CommitBundle, CoreError> {
        self.stage_commit(|mls, provider, signer| {
            let messages = mls
                .self_update(provider, signer, LeafNodeParameters::default())
                .map_err(from_operation_error)?;
            message_bundle(messages)
        })
    }

    /// Stages a commit that sets the group's custom context extensions.
    pub fn update_custom_extensions(
        &self,
        custom: &[(u16, Vec<u8>)],
    ) -> Result<CommitBundle, CoreError> {
        self.stage_commit(|mls, provider, signer| {
            let extensions = with_custom_extensions(mls, custom)?;
            let messages = mls
                .commit_builder()
                .propose_group_context_extensions(extensions)
                .map_err(CoreError::validation)?
                .load_psks(provider.storage())
                .map_err(CoreError::validation)?
                .build(provider.rand(), provider.crypto(), signer, |_| true)
                .map_err(CoreError::validation)?
                .stage_commit(provider)
                .map_err(CoreError::validation)?;
            message_bundle(messages)
        })
    }

    /// Stages a commit of every pending proposal.
    pub fn commit_pending_proposals(&self) -> Result<CommitBundle, CoreError> {
        self.stage_commit(|mls, provider, signer| {
            let (commit, welcome, info) = mls
                .commit_to_pending_proposals(provider, signer)
                .map_err(from_operation_error)?;
            bundle(
                &commit,
                welcome.as_ref(),
                info.map(MlsMessageOut::from).as_ref(),
            )
        })
    }
}

/// The group context extensions with the custom ones replaced by `custom`;
/// their types are added to the required capabilities (RFC 9420 §11.1).
pub(super) fn with_custom_extensions(
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

fn bundle(
    commit: &MlsMessageOut,
    welcome: Option<&MlsMessageOut>,
    info: Option<&MlsMessageOut>,
) -> Result<CommitBundle, CoreError> {
    Ok(CommitBundle {
        commit: message::serialize(commit)?,
        welcome: welcome.map(message::serialize).transpose()?,
        group_info: info.map(message::serialize).transpose()?,
    })
}

fn message_bundle(messages: CommitMessageBundle) -> Result<CommitBundle, CoreError> {
    let (commit, welcome, info) = messages.into_messages();
    bundle(&commit, welcome.as_ref(), info.as_ref())
}
