//! The core error type: rich enough that the FFI mapping is a plain `match`.

use openmls::framing::errors::{MessageDecryptionError, SecretTreeError};
use openmls::prelude::*;

/// Everything that can go wrong in the core, in terms an app can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("malformed input: {reason}")]
    MalformedInput { reason: String },
    #[error("invalid key package: {reason}")]
    InvalidKeyPackage { reason: String },
    #[error("unsupported ciphersuite 0x{id:04x}")]
    UnsupportedCiphersuite { id: u16 },
    #[error("the message belongs to another group")]
    WrongGroup,
    #[error("message epoch {message_epoch} does not fit group epoch {group_epoch}")]
    WrongEpoch {
        message_epoch: u64,
        group_epoch: u64,
    },
    #[error("the message was already processed")]
    DuplicateMessage,
    #[error("validation failed: {reason}")]
    ValidationFailed { reason: String },
    #[error("no member at leaf index {index}")]
    UnknownMember { index: u32 },
    #[error("no such group")]
    UnknownGroup,
    #[error("a group with this id already exists")]
    GroupExists,
    #[error("we are no longer a member of this group")]
    GroupInactive,
    #[error("a commit is pending; merge or clear it first")]
    PendingCommit,
    #[error("no commit is pending")]
    NoPendingCommit,
    #[error("proposals are pending; commit or clear them first")]
    PendingProposals,
    #[error("no key package of ours matches this Welcome")]
    NoMatchingKeyPackage,
    #[error("the ratchet tree is neither in the message nor passed separately")]
    MissingRatchetTree,
    #[error("external commit refused: {reason}")]
    ExternalCommitRefused { reason: String },
    #[error("the group changed since this commit was staged; process the message again")]
    StagedCommitOutdated,
    #[error("the storage holds a different identity")]
    IdentityMismatch,
    #[error("stored value for {key} is corrupt: {reason}")]
    StorageCorrupt { key: String, reason: String },
    #[error("storage backend failed: {reason}")]
    StorageBackend { reason: String },
    #[error("another client took this store over")]
    StorageTakenOver,
    /// A storage callback called back into MLSKit; storage callbacks must not call the SDK.
    #[error("a storage callback called back into MLSKit; storage callbacks must not call the SDK")]
    ReentrantCall,
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl CoreError {
    /// Builds `MalformedInput` from any displayable cause.
    pub fn malformed(reason: impl std::fmt::Display) -> Self {
        CoreError::MalformedInput {
            reason: reason.to_string(),
        }
    }

    /// Builds `ValidationFailed` from any displayable cause.
    pub fn validation(reason: impl std::fmt::Display) -> Self {
        CoreError::ValidationFailed {
            reason: reason.to_string(),
        }
    }

    /// Builds `Internal` from any displayable cause.
    pub fn internal(reason: impl std::fmt::Display) -> Self {
        CoreError::Internal {
            reason: reason.to_string(),
        }
    }
}

/// Logs a failed operation (nothing was written; cached state is dropped).
/// Error texts never hold key material or plaintext.
pub fn log_failure(e: &CoreError) {
    match e {
        CoreError::StorageCorrupt { .. } | CoreError::Internal { .. } => {
            log::error!("operation failed, nothing written: {e}")
        }
        CoreError::StorageBackend { .. } | CoreError::StorageTakenOver => {
            log::warn!("operation failed in storage, nothing written, state reloaded: {e}")
        }
        // Hostile or broken input is normal traffic for a client: info, so a
        // flood of junk does not flood the app's warnings.
        CoreError::ExternalCommitRefused { .. }
        | CoreError::ValidationFailed { .. }
        | CoreError::MalformedInput { .. } => log::info!("input refused: {e}"),
        _ => log::debug!("operation failed: {e}"),
    }
}

/// Maps an OpenMLS group-state error.
pub fn from_state_error(e: &MlsGroupStateError) -> CoreError {
    match e {
        MlsGroupStateError::UseAfterEviction => CoreError::GroupInactive,
        MlsGroupStateError::PendingProposal => CoreError::PendingProposals,
        MlsGroupStateError::PendingCommit => CoreError::PendingCommit,
        MlsGroupStateError::NoPendingCommit => CoreError::NoPendingCommit,
        MlsGroupStateError::PendingProposalNotFound => CoreError::validation(e),
        MlsGroupStateError::LibraryError(_) => CoreError::internal(e),
    }
}

/// An OpenMLS operation error that can wrap a group-state error.
pub(crate) trait OperationError: std::fmt::Display {
    fn state_error(&self) -> Option<&MlsGroupStateError>;
}

macro_rules! operation_errors {
    ($($error:ident $(<$storage:ident>)? :: $variant:ident),* $(,)?) => {$(
        impl$(<$storage>)? OperationError for $error$(<$storage>)?
        where
            Self: std::fmt::Display,
        {
            fn state_error(&self) -> Option<&MlsGroupStateError> {
                match self {
                    $error::$variant(s) => Some(s),
                    _ => None,
                }
            }
        }
    )*};
}

operation_errors!(
    CreateMessageError::GroupStateError,
    AddMembersError<E>::GroupStateError,
    RemoveMembersError<E>::GroupStateError,
    SelfUpdateError<E>::GroupStateError,
    LeaveGroupError<E>::GroupStateError,
    ProposalError<E>::GroupStateError,
    CommitToPendingProposalsError<E>::GroupStateError,
    MergePendingCommitError<E>::MlsGroupStateError,
);

/// Maps an OpenMLS operation error: a group-state error to its own kind
/// (`from_state_error`), anything else to `ValidationFailed`.
pub(crate) fn from_operation_error(e: impl OperationError) -> CoreError {
    match e.state_error() {
        Some(state) => from_state_error(state),
        None => CoreError::validation(e),
    }
}

/// Maps a validation error of an incoming message; `epochs` is (message, group).
pub fn from_validation_error(e: &ValidationError, epochs: (u64, u64)) -> CoreError {
    match e {
        ValidationError::WrongGroupId => CoreError::WrongGroup,
        ValidationError::WrongEpoch | ValidationError::NoPastEpochData => CoreError::WrongEpoch {
            message_epoch: epochs.0,
            group_epoch: epochs.1,
        },
        ValidationError::UnknownMember => CoreError::validation(e),
        ValidationError::UnableToDecrypt(MessageDecryptionError::SecretTreeError(
            SecretTreeError::SecretReuseError | SecretTreeError::TooDistantInThePast,
        )) => CoreError::DuplicateMessage,
        ValidationError::UnableToDecrypt(_) => CoreError::validation(e),
        ValidationError::LibraryError(_) => CoreError::internal(e),
        _ => CoreError::validation(e),
    }
}

/// Maps an error of OpenMLS's `process_message`.
pub fn from_process_error<S: std::fmt::Debug + std::fmt::Display>(
    e: &ProcessMessageError<S>,
    epochs: (u64, u64),
) -> CoreError {
    match e {
        ProcessMessageError::ValidationError(v) => from_validation_error(v, epochs),
        ProcessMessageError::GroupStateError(s) => from_state_error(s),
        ProcessMessageError::LibraryError(_) => CoreError::internal(e),
        ProcessMessageError::StorageError(s) => CoreError::StorageBackend {
            reason: s.to_string(),
        },
        ProcessMessageError::InvalidCommit(StageCommitError::MissingProposal) => {
            CoreError::validation(
                "the commit references a proposal we never received; process the proposal first",
            )
        }
        _ => CoreError::validation(e),
    }
}

/// Maps an error of joining by Welcome.
pub fn from_welcome_error<S: std::fmt::Debug + std::fmt::Display>(
    e: &WelcomeError<S>,
) -> CoreError {
    match e {
        WelcomeError::NoMatchingKeyPackage
        | WelcomeError::NoMatchingEncryptionKey
        | WelcomeError::PrivateInitKeyNotFound => CoreError::NoMatchingKeyPackage,
        WelcomeError::UnsupportedCiphersuite(cs) => {
            CoreError::UnsupportedCiphersuite { id: u16::from(*cs) }
        }
        WelcomeError::GroupAlreadyExists => CoreError::GroupExists,
        WelcomeError::MissingRatchetTree => CoreError::MissingRatchetTree,
        WelcomeError::LibraryError(_) => CoreError::internal(e),
        WelcomeError::StorageError(s) => CoreError::StorageBackend {
            reason: s.to_string(),
        },
        WelcomeError::MalformedWelcomeMessage | WelcomeError::NotAWelcomeMessage => {
            CoreError::malformed(e)
        }
        _ => CoreError::validation(e),
    }
}
