//! The public error types and the one mapping point from core errors.

use crate::core::CoreError;

/// Every failure an MLSKit call can report. Variants carry the facts an app
/// needs to act; messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum MlsError {
    /// Bytes that are not a well-formed MLS structure (truncated, wrong type, garbage).
    #[error("malformed input: {reason}")]
    MalformedInput { reason: String },
    /// A key package failed validation (signature, lifetime, keys, ciphersuite).
    #[error("invalid key package: {reason}")]
    InvalidKeyPackage { reason: String },
    /// The ciphersuite is not one of 0x0001, 0x0002, 0x0003.
    #[error("unsupported ciphersuite 0x{id:04x}")]
    UnsupportedCiphersuite { id: u16 },
    /// The message belongs to another group.
    #[error("the message belongs to another group")]
    WrongGroup,
    /// The message is for another epoch: from the future, or older than the kept past epochs.
    #[error("message epoch {message_epoch} does not fit group epoch {group_epoch}")]
    WrongEpoch {
        message_epoch: u64,
        group_epoch: u64,
    },
    /// The message's key is gone: it was already processed (a re-delivery), or it
    /// arrived later than the out-of-order tolerance allows. Nothing changed.
    #[error("the message was already processed")]
    DuplicateMessage,
    /// The input is well-formed but MLS rules reject it (bad signature, bad proposal, ...).
    #[error("validation failed: {reason}")]
    ValidationFailed { reason: String },
    /// No member sits at this leaf index.
    #[error("no member at leaf index {index}")]
    UnknownMember { index: u32 },
    /// No group with this id is stored.
    #[error("no such group")]
    UnknownGroup,
    /// A group with this id is already stored.
    #[error("a group with this id already exists")]
    GroupExists,
    /// We were removed from the group; it can only be read or deleted.
    #[error("we are no longer a member of this group")]
    GroupInactive,
    /// A commit of ours is pending: merge or clear it first.
    #[error("a commit is pending; merge or clear it first")]
    PendingCommit,
    /// No commit of ours is pending.
    #[error("no commit is pending")]
    NoPendingCommit,
    /// Proposals are pending: commit or clear them before sending application messages.
    #[error("proposals are pending; commit or clear them first")]
    PendingProposals,
    /// No key package of ours matches this Welcome (used, pruned, or never ours).
    /// Join by external commit instead.
    #[error("no key package of ours matches this Welcome")]
    NoMatchingKeyPackage,
    /// The Welcome or GroupInfo does not carry the ratchet tree and none was
    /// passed: fetch the tree out of band (`export_ratchet_tree` of a member)
    /// and call again with it. Nothing changed.
    #[error("the ratchet tree is neither in the message nor passed separately")]
    MissingRatchetTree,
    /// An external commit that this group does not take: the group refuses
    /// external commits (`allow_external_commits = false`), or the joiner
    /// removes a member whose identity is not its own (RFC 9420 §12.4.3.2:
    /// only a rejoin under the same identity may remove the old leaf).
    /// Nothing was written; drop the message.
    #[error("external commit refused: {reason}")]
    ExternalCommitRefused { reason: String },
    /// The group changed since this commit was processed, or it was already
    /// merged or discarded: process the message again.
    #[error("the group changed since this commit was staged; process the message again")]
    StagedCommitOutdated,
    /// The storage already holds a client with a different identity.
    #[error("the storage holds a different identity")]
    IdentityMismatch,
    /// A stored value failed to decode or, under `encrypted_storage`, to
    /// authenticate (tampered, swapped, or another key); `key` names the record kind.
    #[error("stored value for {key} is corrupt: {reason}")]
    StorageCorrupt { key: String, reason: String },
    /// Another live store has this SQLite file open (another `SqliteStorage`
    /// in this process, or another process such as an app extension). Drop
    /// the other store first (hand-over: the app closes its client and
    /// storage before the extension opens them), or wait and retry.
    #[error("the store at {path} is open elsewhere")]
    StorageInUse { path: String },
    /// Another `Client` was opened on this store since this one (in this
    /// process or another, such as an app extension): this client refuses to
    /// write so that two clients never send with the same keys. Nothing was
    /// written. Drop this client; open a new one when the store is yours
    /// again (opening takes the store over).
    #[error("another client took this store over")]
    StorageTakenOver,
    /// The storage backend failed; `reason` is the backend's own message.
    #[error("storage backend failed: {reason}")]
    StorageBackend { reason: String },
    /// A storage callback called back into MLSKit; storage callbacks must not
    /// call the SDK (the call is refused instead of deadlocking). Nothing changed.
    #[error("a storage callback called back into MLSKit; storage callbacks must not call the SDK")]
    ReentrantCall,
    /// A bug in MLSKit or OpenMLS; please report it.
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl From<CoreError> for MlsError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::MalformedInput { reason } => MlsError::MalformedInput { reason },
            CoreError::InvalidKeyPackage { reason } => MlsError::InvalidKeyPackage { reason },
            CoreError::UnsupportedCiphersuite { id } => MlsError::UnsupportedCiphersuite { id },
            CoreError::WrongGroup => MlsError::WrongGroup,
            CoreError::WrongEpoch {
                message_epoch,
                group_epoch,
            } => MlsError::WrongEpoch {
                message_epoch,
                group_epoch,
            },
            CoreError::DuplicateMessage => MlsError::DuplicateMessage,
            CoreError::ValidationFailed { reason } => MlsError::ValidationFailed { reason },
            CoreError::UnknownMember { index } => MlsError::UnknownMember { index },
            CoreError::UnknownGroup => MlsError::UnknownGroup,
            CoreError::GroupExists => MlsError::GroupExists,
            CoreError::GroupInactive => MlsError::GroupInactive,
            CoreError::PendingCommit => MlsError::PendingCommit,
            CoreError::NoPendingCommit => MlsError::NoPendingCommit,
            CoreError::PendingProposals => MlsError::PendingProposals,
            CoreError::NoMatchingKeyPackage => MlsError::NoMatchingKeyPackage,
            CoreError::MissingRatchetTree => MlsError::MissingRatchetTree,
            CoreError::ExternalCommitRefused { reason } => {
                MlsError::ExternalCommitRefused { reason }
            }
            CoreError::StagedCommitOutdated => MlsError::StagedCommitOutdated,
            CoreError::IdentityMismatch => MlsError::IdentityMismatch,
            CoreError::StorageCorrupt { key, reason } => MlsError::StorageCorrupt { key, reason },
            CoreError::StorageBackend { reason } => MlsError::StorageBackend { reason },
            CoreError::StorageTakenOver => MlsError::StorageTakenOver,
            CoreError::ReentrantCall => MlsError::ReentrantCall,
            CoreError::Internal { reason } => MlsError::Internal { reason },
        }
    }
}

/// The error a storage backend reports to MLSKit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum StorageError {
    /// The backend could not complete the call; `reason` reaches the app unchanged.
    #[error("{reason}")]
    Backend { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for StorageError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        StorageError::Backend { reason: e.reason }
    }
}
