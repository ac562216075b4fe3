//! Plain data crossing the FFI: records and enums, with conversions from core.

use crate::core::config::{self, WireFormat};
use crate::core::limits::InputLimits;
use crate::core::message::{
    ContentKind, MessageInfo as CoreMessageInfo, MessageKind as CoreMessageKind,
};
use crate::core::types as core;
use crate::core::CoreError;
use crate::ffi::error::MlsError;

/// The MLS ciphersuites MLSKit supports (RFC 9420 §17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Ciphersuite {
    /// 0x0001 MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the default.
    X25519Aes128gcmEd25519,
    /// 0x0002 MLS_128_DHKEMP256_AES128GCM_SHA256_P256.
    P256Aes128gcmP256,
    /// 0x0003 MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519.
    X25519Chacha20poly1305Ed25519,
}

impl Ciphersuite {
    pub(crate) fn id(self) -> u16 {
        match self {
            Ciphersuite::X25519Aes128gcmEd25519 => 0x0001,
            Ciphersuite::P256Aes128gcmP256 => 0x0002,
            Ciphersuite::X25519Chacha20poly1305Ed25519 => 0x0003,
        }
    }

    pub(crate) fn from_id(id: u16) -> Result<Self, CoreError> {
        match id {
            0x0001 => Ok(Ciphersuite::X25519Aes128gcmEd25519),
            0x0002 => Ok(Ciphersuite::P256Aes128gcmP256),
            0x0003 => Ok(Ciphersuite::X25519Chacha20poly1305Ed25519),
            id => Err(CoreError::UnsupportedCiphersuite { id }),
        }
    }
}

/// The numeric RFC 9420 code of a ciphersuite (e.g. 1 for the default).
#[uniffi::export]
pub fn ciphersuite_code(ciphersuite: Ciphersuite) -> u16 {
    ciphersuite.id()
}

/// How handshake messages (proposals, commits) are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum WireFormatPolicy {
    /// Send encrypted; accept encrypted and plaintext (the default, interoperable).
    MixedCiphertext,
    /// Send plaintext so a Delivery Service can follow the group; accept both.
    MixedPlaintext,
    /// Send and accept only encrypted handshakes.
    PureCiphertext,
    /// Send and accept only plaintext handshakes.
    PurePlaintext,
}

impl From<WireFormatPolicy> for WireFormat {
    fn from(p: WireFormatPolicy) -> Self {
        match p {
            WireFormatPolicy::MixedCiphertext => WireFormat::MixedCiphertext,
            WireFormatPolicy::MixedPlaintext => WireFormat::MixedPlaintext,
            WireFormatPolicy::PureCiphertext => WireFormat::PureCiphertext,
            WireFormatPolicy::PurePlaintext => WireFormat::PurePlaintext,
        }
    }
}

/// Client-wide settings.
// The FFI form of `crate::core::config::ClientOptions`, converted below.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ClientOptions {
    /// Custom group context extension types this client supports (advertised in its key packages).
    #[uniffi(default)]
    pub custom_extension_types: Vec<u16>,
    /// Custom proposal types this client supports (advertised in its key packages).
    #[uniffi(default)]
    pub custom_proposal_types: Vec<u16>,
    /// Largest message, Welcome, GroupInfo, key package or ratchet tree this
    /// client decodes, in bytes (at least 65,536); 4 MiB when absent. It also
    /// bounds how many tree nodes, proposals and extensions one input may
    /// hold (one per 32 bytes of the limit, a leaf node counting as 8),
    /// checked before decoding: 4 MiB admits trees of about 14,000 members.
    #[uniffi(default = None)]
    pub max_input_bytes: Option<u64>,
}

impl TryFrom<ClientOptions> for config::ClientOptions {
    type Error = CoreError;

    fn try_from(o: ClientOptions) -> Result<Self, CoreError> {
        Ok(Self {
            custom_extension_types: o.custom_extension_types,
            custom_proposal_types: o.custom_proposal_types,
            input_limits: match o.max_input_bytes {
                Some(n) => InputLimits::new(usize::try_from(n).unwrap_or(usize::MAX))?,
                None => InputLimits::default(),
            },
        })
    }
}

/// How to create key packages.
// The FFI form of `crate::core::types::KeyPackageOptions`, converted below.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct KeyPackageOptions {
    /// Ciphersuite; the default is 0x0001.
    #[uniffi(default = None)]
    pub ciphersuite: Option<Ciphersuite>,
    /// Validity in seconds from now: 12 weeks by default, at most 365 days.
    #[uniffi(default = None)]
    pub lifetime_seconds: Option<u64>,
    /// A last-resort key package is not consumed by a Welcome (RFC 9420 §16.8).
    #[uniffi(default = false)]
    pub last_resort: bool,
}

/// How this client runs a group it joins.
// The FFI form of `crate::core::config::JoinOptions`, converted below.
#[derive(Debug, Clone, uniffi::Record)]
pub struct JoinOptions {
    /// Handshake framing; the default sends encrypted and accepts both.
    #[uniffi(default = None)]
    pub wire_format_policy: Option<WireFormatPolicy>,
    /// Pad encrypted messages to a multiple of this many bytes (0: no padding).
    #[uniffi(default = 0)]
    pub padding_size: u32,
    /// Past epochs whose keys are kept so late application messages still decrypt.
    #[uniffi(default = 3)]
    pub max_past_epochs: u32,
    /// Out-of-order window per sender: a message up to `out_of_order_tolerance - 1`
    /// generations older than the newest one received from that sender still decrypts.
    #[uniffi(default = 5)]
    pub out_of_order_tolerance: u32,
    /// How far ahead of the expected generation a message may be.
    #[uniffi(default = 1000)]
    pub maximum_forward_distance: u32,
    /// Put the ratchet tree into Welcomes and GroupInfos (interoperable default).
    #[uniffi(default = true)]
    pub use_ratchet_tree_extension: bool,
    /// Take external commits (joins from a GroupInfo) into this group. With
    /// false every external commit is refused with `ExternalCommitRefused`.
    #[uniffi(default = true)]
    pub allow_external_commits: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        let d = config::JoinOptions::default();
        Self {
            wire_format_policy: None,
            padding_size: d.padding_size,
            max_past_epochs: d.max_past_epochs,
            out_of_order_tolerance: d.out_of_order_tolerance,
            maximum_forward_distance: d.maximum_forward_distance,
            use_ratchet_tree_extension: d.use_ratchet_tree_extension,
            allow_external_commits: d.allow_external_commits,
        }
    }
}

impl From<JoinOptions> for config::JoinOptions {
    fn from(o: JoinOptions) -> Self {
        Self {
            wire_format: o
                .wire_format_policy
                .map(WireFormat::from)
                .unwrap_or_default(),
            padding_size: o.padding_size,
            max_past_epochs: o.max_past_epochs,
            out_of_order_tolerance: o.out_of_order_tolerance,
            maximum_forward_distance: o.maximum_forward_distance,
            use_ratchet_tree_extension: o.use_ratchet_tree_extension,
            allow_external_commits: o.allow_external_commits,
        }
    }
}

/// A non-member allowed to send proposals (RFC 9420 §12.1.8.1).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ExternalSender {
    /// The sender's signature public key.
    pub signature_key: Vec<u8>,
    /// The identity in the sender's basic credential.
    pub identity: Vec<u8>,
}

/// A custom group context extension (type codes 0x000b and up).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupExtension {
    /// The extension type code.
    pub extension_type: u16,
    /// The extension's bytes.
    pub data: Vec<u8>,
}

pub(crate) fn ext_pairs(list: Vec<GroupExtension>) -> Vec<(u16, Vec<u8>)> {
    list.into_iter()
        .map(|e| (e.extension_type, e.data))
        .collect()
}

pub(crate) fn ext_records(list: Vec<(u16, Vec<u8>)>) -> Vec<GroupExtension> {
    list.into_iter()
        .map(|(extension_type, data)| GroupExtension {
            extension_type,
            data,
        })
        .collect()
}

/// Everything about a new group; every field has a default.
// The FFI form of `crate::core::config::GroupOptions`, converted below.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct GroupOptions {
    /// The group id; random if absent.
    #[uniffi(default = None)]
    pub group_id: Option<Vec<u8>>,
    /// Ciphersuite; the default is 0x0001.
    #[uniffi(default = None)]
    pub ciphersuite: Option<Ciphersuite>,
    /// How this client runs the group: the same options a member passes when
    /// it joins (framing, padding, kept epochs, ratchet windows, external commits).
    #[uniffi(default)]
    pub join: JoinOptions,
    /// Extension types every member must support.
    #[uniffi(default)]
    pub required_extension_types: Vec<u16>,
    /// Proposal types every member must support.
    #[uniffi(default)]
    pub required_proposal_types: Vec<u16>,
    /// Credential types every member must support.
    #[uniffi(default)]
    pub required_credential_types: Vec<u16>,
    /// Non-members allowed to send proposals.
    #[uniffi(default)]
    pub external_senders: Vec<ExternalSender>,
    /// Custom group context extensions.
    #[uniffi(default)]
    pub custom_extensions: Vec<GroupExtension>,
}

impl From<GroupOptions> for config::GroupOptions {
    fn from(o: GroupOptions) -> Self {
        Self {
            join: o.join.into(),
            group_id: o.group_id,
            ciphersuite: o.ciphersuite.map(Ciphersuite::id),
            required_extension_types: o.required_extension_types,
            required_proposal_types: o.required_proposal_types,
            required_credential_types: o.required_credential_types,
            external_senders: o
                .external_senders
                .into_iter()
                .map(|s| config::ExternalSenderSpec {
                    signature_key: s.signature_key,
                    identity: s.identity,
                })
                .collect(),
            custom_extensions: ext_pairs(o.custom_extensions),
        }
    }
}

/// A group member.
// The FFI form of `crate::core::types::Member`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Member {
    /// The member's leaf index (stable while it stays in the group).
    pub index: u32,
    /// The identity in the member's basic credential.
    pub identity: Vec<u8>,
    /// The member's signature public key.
    pub signature_key: Vec<u8>,
}

impl From<core::Member> for Member {
    fn from(m: core::Member) -> Self {
        Self {
            index: m.index,
            identity: m.identity,
            signature_key: m.signature_key,
        }
    }
}

/// The messages an own commit produces. Send `commit` to the group, then call
/// `merge_pending_commit()` once the Delivery Service accepted it (or
/// `clear_pending_commit()` if it refused); send `welcome` to new members.
// The FFI form of `crate::core::types::CommitBundle`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CommitBundle {
    /// The commit message for the current members.
    pub commit: Vec<u8>,
    /// The Welcome for added members, if any were added.
    pub welcome: Option<Vec<u8>>,
    /// A GroupInfo of the new epoch, for external joiners and Delivery Services.
    pub group_info: Option<Vec<u8>>,
}

impl From<core::CommitBundle> for CommitBundle {
    fn from(b: core::CommitBundle) -> Self {
        Self {
            commit: b.commit,
            welcome: b.welcome,
            group_info: b.group_info,
        }
    }
}

/// A proposal message and the reference a commit will use for it.
// The FFI form of `crate::core::types::ProposalBundle`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProposalBundle {
    /// The proposal message to send to the group.
    pub message: Vec<u8>,
    /// The proposal reference (RFC 9420 §5.2).
    pub proposal_ref: Vec<u8>,
}

impl From<core::ProposalBundle> for ProposalBundle {
    fn from(b: core::ProposalBundle) -> Self {
        Self {
            message: b.message,
            proposal_ref: b.proposal_ref,
        }
    }
}

impl From<ProposalMode> for core::ProposalMode {
    fn from(m: ProposalMode) -> Self {
        match m {
            ProposalMode::ByReference => Self::ByReference,
            ProposalMode::ByValue => Self::ByValue,
        }
    }
}

/// Whether a commit includes a proposal by reference or carries it by value.
// The FFI form of `crate::core::types::ProposalMode`, converted below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ProposalMode {
    /// Sent as its own message and committed by reference (any member may commit it).
    ByReference,
    /// Sent as its own message and also valid to commit inline by value.
    ByValue,
}

/// Who sent a message.
// The FFI form of `crate::core::types::Sender`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Sender {
    /// A member, at this leaf index.
    Member { index: u32, identity: Vec<u8> },
    /// An external sender listed in the group's extension.
    External { index: u32 },
    /// A non-member proposing to add itself.
    NewMemberProposal,
    /// A non-member joining by external commit.
    NewMemberCommit,
}

impl From<core::Sender> for Sender {
    fn from(s: core::Sender) -> Self {
        match s {
            core::Sender::Member { index, identity } => Sender::Member { index, identity },
            core::Sender::External { index } => Sender::External { index },
            core::Sender::NewMemberProposal => Sender::NewMemberProposal,
            core::Sender::NewMemberCommit => Sender::NewMemberCommit,
        }
    }
}

/// What a proposal asks for.
// The FFI form of `crate::core::types::ProposalContent`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ProposalContent {
    /// Add the member of this key package.
    Add {
        identity: Vec<u8>,
        signature_key: Vec<u8>,
    },
    /// The sender updates its own leaf.
    Update,
    /// Remove the member at `index` (`identity` if it is still known).
    Remove {
        index: u32,
        identity: Option<Vec<u8>>,
    },
    /// Inject an external pre-shared key into the next epoch.
    PreSharedKey { psk_id: Vec<u8> },
    /// Replace the group context extensions; the custom ones are listed.
    GroupContextExtensions {
        custom_extensions: Vec<GroupExtension>,
    },
    /// An application-defined proposal.
    Custom {
        proposal_type: u16,
        payload: Vec<u8>,
    },
    /// Part of an external commit.
    ExternalInit,
    /// Re-initialize the group.
    ReInit,
    /// The sender removes itself.
    SelfRemove,
}

/// A proposal with its sender and reference.
// The FFI form of `crate::core::types::ProposalInfo`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProposalInfo {
    /// What it proposes.
    pub content: ProposalContent,
    /// Who proposed it.
    pub sender: Sender,
    /// Its proposal reference; none for a proposal a commit carries by value.
    pub proposal_ref: Option<Vec<u8>>,
}

impl From<core::ProposalContent> for ProposalContent {
    fn from(c: core::ProposalContent) -> Self {
        use core::ProposalContent as C;
        match c {
            C::Add {
                identity,
                signature_key,
            } => Self::Add {
                identity,
                signature_key,
            },
            C::Update => Self::Update,
            C::Remove { index, identity } => Self::Remove { index, identity },
            C::PreSharedKey { psk_id } => Self::PreSharedKey { psk_id },
            C::GroupContextExtensions { custom_extensions } => Self::GroupContextExtensions {
                custom_extensions: ext_records(custom_extensions),
            },
            C::Custom {
                proposal_type,
                payload,
            } => Self::Custom {
                proposal_type,
                payload,
            },
            C::ExternalInit => Self::ExternalInit,
            C::ReInit => Self::ReInit,
            C::SelfRemove => Self::SelfRemove,
        }
    }
}

impl From<core::ProposalInfo> for ProposalInfo {
    fn from(p: core::ProposalInfo) -> Self {
        Self {
            content: p.content.into(),
            sender: p.sender.into(),
            proposal_ref: p.proposal_ref,
        }
    }
}

/// A member a commit adds.
// The FFI form of `crate::core::types::AddedMember`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AddedMember {
    /// The identity in the new member's credential.
    pub identity: Vec<u8>,
    /// The new member's signature public key.
    pub signature_key: Vec<u8>,
}

/// A member a commit removes.
// The FFI form of `crate::core::types::RemovedMember`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RemovedMember {
    /// The removed leaf index.
    pub index: u32,
    /// The removed member's identity, if known.
    pub identity: Option<Vec<u8>>,
}

/// An application-defined proposal carried by a commit.
// The FFI form of `crate::core::types::CustomProposal`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CustomProposal {
    /// The proposal type code.
    pub proposal_type: u16,
    /// The proposal's bytes.
    pub payload: Vec<u8>,
}

/// Everything a commit does, to check before merging it.
// The FFI form of `crate::core::types::CommitInfo`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CommitInfo {
    /// Who committed. A member's identity is the one its signature was
    /// verified with; an external joiner is `NewMemberCommit`.
    pub sender: Sender,
    /// The committer's leaf as the commit leaves it (leaf index, identity,
    /// signature key), for every commit with a path; none without one. For an
    /// external commit this is the joiner.
    pub committer_leaf: Option<Member>,
    /// The epoch the group enters when the commit is merged.
    pub new_epoch: u64,
    /// Members added.
    pub adds: Vec<AddedMember>,
    /// Members removed.
    pub removes: Vec<RemovedMember>,
    /// Leaf indices of members whose Update proposals are committed.
    pub updates: Vec<u32>,
    /// External PSK ids injected.
    pub psk_ids: Vec<Vec<u8>>,
    /// Custom proposals committed.
    pub custom_proposals: Vec<CustomProposal>,
    /// The custom group context extensions after the commit, if it changes extensions.
    pub new_custom_extensions: Option<Vec<GroupExtension>>,
    /// Whether the commit carries a path (the committer refreshes its keys).
    pub has_path: bool,
    /// Whether this commit removes us.
    pub removes_us: bool,
    /// Every committed proposal, in order.
    pub proposals: Vec<ProposalInfo>,
}

impl From<core::CommitInfo> for CommitInfo {
    fn from(c: core::CommitInfo) -> Self {
        Self {
            sender: c.sender.into(),
            committer_leaf: c.committer_leaf.map(Member::from),
            new_epoch: c.new_epoch,
            adds: c.adds.into_iter().map(AddedMember::from).collect(),
            removes: c.removes.into_iter().map(RemovedMember::from).collect(),
            updates: c.updates,
            psk_ids: c.psk_ids,
            custom_proposals: c
                .custom_proposals
                .into_iter()
                .map(CustomProposal::from)
                .collect(),
            new_custom_extensions: c.new_custom_extensions.map(ext_records),
            has_path: c.has_path,
            removes_us: c.removes_us,
            proposals: c.proposals.into_iter().map(ProposalInfo::from).collect(),
        }
    }
}

impl From<core::AddedMember> for AddedMember {
    fn from(m: core::AddedMember) -> Self {
        Self {
            identity: m.identity,
            signature_key: m.signature_key,
        }
    }
}

impl From<core::RemovedMember> for RemovedMember {
    fn from(m: core::RemovedMember) -> Self {
        Self {
            index: m.index,
            identity: m.identity,
        }
    }
}

impl From<core::CustomProposal> for CustomProposal {
    fn from(p: core::CustomProposal) -> Self {
        Self {
            proposal_type: p.proposal_type,
            payload: p.payload,
        }
    }
}

/// A decrypted application message. Its text forms (Rust `Debug`/`Display`,
/// Kotlin `toString`, Swift `description`, Python `str`/`repr`) print the
/// plaintext's length, never the plaintext.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct ApplicationMessage {
    /// Who sent it.
    pub sender: Sender,
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The sender's authenticated additional data.
    pub aad: Vec<u8>,
    /// The epoch it was sent in.
    pub epoch: u64,
}

impl std::fmt::Display for ApplicationMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::fmt::Debug for ApplicationMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationMessage")
            .field("sender", &self.sender)
            .field(
                "plaintext",
                &format_args!("<{} bytes>", self.plaintext.len()),
            )
            .field("aad", &self.aad)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// The kind of an MLS message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MessageKind {
    /// A signed, unencrypted group message.
    PublicMessage,
    /// An encrypted group message.
    PrivateMessage,
    /// An invitation for new members.
    Welcome,
    /// A signed description of a group, for external joins.
    GroupInfo,
    /// A key package.
    KeyPackage,
}

/// The content type of a group message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ContentType {
    /// Application data.
    Application,
    /// A proposal.
    Proposal,
    /// A commit.
    Commit,
}

/// What a Delivery Service can read from a message without any keys.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MessageInfo {
    /// The message kind.
    pub kind: MessageKind,
    /// The group id (group messages and GroupInfo).
    pub group_id: Option<Vec<u8>>,
    /// The epoch (group messages and GroupInfo).
    pub epoch: Option<u64>,
    /// The content type (group messages).
    pub content_type: Option<ContentType>,
    /// The ciphersuite code (Welcome, GroupInfo, KeyPackage), even if unsupported.
    pub ciphersuite_code: Option<u16>,
}

impl From<CoreMessageInfo> for MessageInfo {
    fn from(m: CoreMessageInfo) -> Self {
        Self {
            kind: match m.kind {
                CoreMessageKind::PublicMessage => MessageKind::PublicMessage,
                CoreMessageKind::PrivateMessage => MessageKind::PrivateMessage,
                CoreMessageKind::Welcome => MessageKind::Welcome,
                CoreMessageKind::GroupInfo => MessageKind::GroupInfo,
                CoreMessageKind::KeyPackage => MessageKind::KeyPackage,
            },
            group_id: m.group_id,
            epoch: m.epoch,
            content_type: m.content_type.map(|c| match c {
                ContentKind::Application => ContentType::Application,
                ContentKind::Proposal => ContentType::Proposal,
                ContentKind::Commit => ContentType::Commit,
            }),
            ciphersuite_code: m.ciphersuite,
        }
    }
}

/// Facts of a validated key package.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct KeyPackageInfo {
    /// The identity in its credential.
    pub identity: Vec<u8>,
    /// Its signature public key.
    pub signature_key: Vec<u8>,
    /// Its ciphersuite.
    pub ciphersuite: Ciphersuite,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: u64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: u64,
    /// Whether it is a last-resort key package.
    pub last_resort: bool,
    /// Its hash reference (RFC 9420 §5.2).
    pub hash_ref: Vec<u8>,
}

/// One of our own key packages whose private keys we hold.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OwnKeyPackage {
    /// Its hash reference; pass it to `delete_key_package`.
    pub hash_ref: Vec<u8>,
    /// Its ciphersuite.
    pub ciphersuite: Ciphersuite,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: u64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: u64,
    /// Whether it is a last-resort key package.
    pub last_resort: bool,
    /// The serialized key package, as returned by `create_key_packages`.
    pub key_package: Vec<u8>,
}

/// What a Welcome would give us, read without joining.
// The FFI form of `crate::core::types::WelcomeInfo`, converted below.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WelcomeInfo {
    /// The group id.
    pub group_id: Vec<u8>,
    /// The epoch we would join at.
    pub epoch: u64,
    /// The group's ciphersuite.
    pub ciphersuite: Ciphersuite,
    /// Leaf index of the member who added us.
    pub sender_index: u32,
    /// Our leaf index in the group.
    pub own_index: u32,
    /// The members we would join.
    pub members: Vec<Member>,
    /// External PSKs the Welcome needs (store them before joining).
    pub external_psk_ids: Vec<Vec<u8>>,
}

impl From<KeyPackageOptions> for core::KeyPackageOptions {
    fn from(o: KeyPackageOptions) -> Self {
        Self {
            ciphersuite: o.ciphersuite.map(Ciphersuite::id),
            lifetime_seconds: o.lifetime_seconds,
            last_resort: o.last_resort,
        }
    }
}

impl TryFrom<crate::core::client::KeyPackageRecord> for OwnKeyPackage {
    type Error = MlsError;

    fn try_from(r: crate::core::client::KeyPackageRecord) -> Result<Self, MlsError> {
        Ok(Self {
            hash_ref: r.hash_ref,
            ciphersuite: Ciphersuite::from_id(r.ciphersuite)?,
            not_before: r.not_before,
            not_after: r.not_after,
            last_resort: r.last_resort,
            key_package: r.key_package,
        })
    }
}

impl TryFrom<core::WelcomeInfo> for WelcomeInfo {
    type Error = MlsError;

    fn try_from(w: core::WelcomeInfo) -> Result<Self, MlsError> {
        Ok(Self {
            group_id: w.group_id,
            epoch: w.epoch,
            ciphersuite: Ciphersuite::from_id(w.ciphersuite)?,
            sender_index: w.sender_index,
            own_index: w.own_index,
            members: w.members.into_iter().map(Member::from).collect(),
            external_psk_ids: w.external_psk_ids,
        })
    }
}

impl TryFrom<crate::core::message::KeyPackageFacts> for KeyPackageInfo {
    type Error = MlsError;

    fn try_from(f: crate::core::message::KeyPackageFacts) -> Result<Self, MlsError> {
        Ok(Self {
            identity: f.identity,
            signature_key: f.signature_key,
            ciphersuite: Ciphersuite::from_id(f.ciphersuite)?,
            not_before: f.not_before,
            not_after: f.not_after,
            last_resort: f.last_resort,
            hash_ref: f.hash_ref,
        })
    }
}
