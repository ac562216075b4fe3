//! The plain data the core returns: what an app sees of groups, members,
//! proposals and commits. The FFI layer has a record of the same name for
//! each (`src/ffi/types.rs`) and only converts.

use serde::{Deserialize, Serialize};

use crate::core::storage::codec;

/// A group member (or a leaf as a commit leaves it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub index: u32,
    pub identity: Vec<u8>,
    pub signature_key: Vec<u8>,
}

/// The messages an own commit produces; stored with the staged commit until
/// it is merged or cleared (byte strings in CBOR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitBundle {
    #[serde(with = "codec::as_bytes")]
    pub commit: Vec<u8>,
    #[serde(with = "codec::as_opt_bytes")]
    pub welcome: Option<Vec<u8>>,
    #[serde(with = "codec::as_opt_bytes")]
    pub group_info: Option<Vec<u8>>,
}

/// A proposal message and the reference a commit will use for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalBundle {
    pub message: Vec<u8>,
    pub proposal_ref: Vec<u8>,
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

/// Who sent a message or proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    Member { index: u32, identity: Vec<u8> },
    External { index: u32 },
    NewMemberProposal,
    NewMemberCommit,
}

/// What a proposal asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalContent {
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

impl ProposalContent {
    /// The proposal type in words, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "add",
            Self::Update => "update",
            Self::Remove { .. } => "remove",
            Self::PreSharedKey { .. } => "pre-shared key",
            Self::GroupContextExtensions { .. } => "group context extensions",
            Self::Custom { .. } => "custom",
            Self::ExternalInit => "external init",
            Self::ReInit => "reinit",
            Self::SelfRemove => "self remove",
        }
    }
}

/// A proposal with its sender and reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalInfo {
    pub content: ProposalContent,
    pub sender: Sender,
    /// `None` for a proposal a commit carries by value (it has no reference
    /// that all members agree on).
    pub proposal_ref: Option<Vec<u8>>,
}

/// A member a commit adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedMember {
    pub identity: Vec<u8>,
    pub signature_key: Vec<u8>,
}

/// A member a commit removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedMember {
    pub index: u32,
    pub identity: Option<Vec<u8>>,
}

/// An application-defined proposal carried by a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomProposal {
    pub proposal_type: u16,
    pub payload: Vec<u8>,
}

/// Everything a commit does, for the app to check before merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    pub sender: Sender,
    /// The committer's new leaf, for commits with a path (every external
    /// commit has one: then it is the joiner).
    pub committer_leaf: Option<Member>,
    pub new_epoch: u64,
    pub adds: Vec<AddedMember>,
    pub removes: Vec<RemovedMember>,
    /// Leaf indices of members whose Update proposals are committed.
    pub updates: Vec<u32>,
    pub psk_ids: Vec<Vec<u8>>,
    pub custom_proposals: Vec<CustomProposal>,
    /// Custom group context extensions after the commit, if it changes them.
    pub new_custom_extensions: Option<Vec<(u16, Vec<u8>)>>,
    pub has_path: bool,
    pub removes_us: bool,
    /// Every committed proposal, in order.
    pub proposals: Vec<ProposalInfo>,
}

/// How to make key packages.
#[derive(Clone, Debug, Default)]
pub struct KeyPackageOptions {
    pub ciphersuite: Option<u16>,
    pub lifetime_seconds: Option<u64>,
    pub last_resort: bool,
}

/// What a Welcome would give us, read without writing anything.
#[derive(Clone, Debug)]
pub struct WelcomeInfo {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub ciphersuite: u16,
    pub sender_index: u32,
    pub own_index: u32,
    pub members: Vec<Member>,
    pub external_psk_ids: Vec<Vec<u8>>,
}
