//! Options for clients, key packages and groups, and their OpenMLS forms.

use openmls::prelude::*;

use crate::core::error::CoreError;
use crate::core::limits::InputLimits;

/// How handshake messages are framed going out, and which framings are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WireFormat {
    /// Send encrypted handshakes; accept encrypted and plaintext ones (the default).
    #[default]
    MixedCiphertext,
    /// Send plaintext handshakes (a Delivery Service can follow the group); accept both.
    MixedPlaintext,
    /// Send and accept only encrypted handshakes.
    PureCiphertext,
    /// Send and accept only plaintext handshakes.
    PurePlaintext,
}

impl WireFormat {
    /// The OpenMLS policy.
    pub fn policy(self) -> WireFormatPolicy {
        match self {
            WireFormat::MixedCiphertext => MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY,
            WireFormat::MixedPlaintext => MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
            WireFormat::PureCiphertext => PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
            WireFormat::PurePlaintext => PURE_PLAINTEXT_WIRE_FORMAT_POLICY,
        }
    }
}

/// Runtime behaviour of a group on this client (also used when joining).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOptions {
    pub wire_format: WireFormat,
    pub padding_size: u32,
    pub max_past_epochs: u32,
    pub out_of_order_tolerance: u32,
    pub maximum_forward_distance: u32,
    pub use_ratchet_tree_extension: bool,
    /// Whether incoming external commits (joins from a GroupInfo) are taken.
    pub allow_external_commits: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self {
            wire_format: WireFormat::default(),
            padding_size: 0,
            max_past_epochs: 3,
            out_of_order_tolerance: 5,
            maximum_forward_distance: 1000,
            use_ratchet_tree_extension: true,
            allow_external_commits: true,
        }
    }
}

impl JoinOptions {
    /// The OpenMLS join config.
    pub fn join_config(&self) -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .wire_format_policy(self.wire_format.policy())
            .padding_size(self.padding_size as usize)
            .max_past_epochs(self.max_past_epochs as usize)
            .sender_ratchet_configuration(self.sender_ratchet())
            .use_ratchet_tree_extension(self.use_ratchet_tree_extension)
            .build()
    }

    fn sender_ratchet(&self) -> SenderRatchetConfiguration {
        SenderRatchetConfiguration::new(self.out_of_order_tolerance, self.maximum_forward_distance)
    }
}

/// A non-member allowed to send proposals to the group.
#[derive(Clone, Debug)]
pub struct ExternalSenderSpec {
    pub signature_key: Vec<u8>,
    pub identity: Vec<u8>,
}

/// Everything needed to create a group.
#[derive(Clone, Debug, Default)]
pub struct GroupOptions {
    pub group_id: Option<Vec<u8>>,
    pub ciphersuite: Option<u16>,
    pub join: JoinOptions,
    pub required_extension_types: Vec<u16>,
    pub required_proposal_types: Vec<u16>,
    pub required_credential_types: Vec<u16>,
    pub external_senders: Vec<ExternalSenderSpec>,
    pub custom_extensions: Vec<(u16, Vec<u8>)>,
}

/// Client-wide choices that end up in every leaf node and key package.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Custom extension types this client supports (advertised in capabilities).
    pub custom_extension_types: Vec<u16>,
    /// Custom proposal types this client supports (advertised in capabilities).
    pub custom_proposal_types: Vec<u16>,
    /// Bounds on every input this client decodes.
    pub input_limits: InputLimits,
}

impl ClientOptions {
    /// Leaf-node capabilities: `last_resort` plus our custom types.
    ///
    /// RFC 9420 §7.2: the default extension and proposal types (0x0001-0x0005
    /// and 0x0001-0x0007) are supported by every client and MUST NOT be listed;
    /// peers such as mls-rs refuse a leaf that lists them.
    pub fn capabilities(&self) -> Capabilities {
        let mut extensions = vec![ExtensionType::LastResort];
        extensions.extend(
            self.custom_extension_types
                .iter()
                .map(|t| ExtensionType::from(*t)),
        );
        let proposals: Vec<ProposalType> = self
            .custom_proposal_types
            .iter()
            .map(|t| ProposalType::from(*t))
            .collect();
        Capabilities::new(
            None,
            Some(&SUPPORTED_CIPHERSUITES),
            Some(&extensions),
            Some(&proposals),
            None,
        )
    }
}

/// The ciphersuites this SDK offers (0x0001 is the default).
pub const SUPPORTED_CIPHERSUITES: [Ciphersuite; 3] = [
    Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
    Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
];

/// Resolves a ciphersuite id, defaulting to 0x0001.
pub fn ciphersuite(id: Option<u16>) -> Result<Ciphersuite, CoreError> {
    let Some(id) = id else {
        return Ok(SUPPORTED_CIPHERSUITES[0]);
    };
    SUPPORTED_CIPHERSUITES
        .iter()
        .copied()
        .find(|cs| u16::from(*cs) == id)
        .ok_or(CoreError::UnsupportedCiphersuite { id })
}

/// Builds group context extensions from the settings.
pub fn group_context_extensions(
    settings: &GroupOptions,
) -> Result<Extensions<GroupContext>, CoreError> {
    let mut list = Vec::new();
    if !settings.required_extension_types.is_empty()
        || !settings.required_proposal_types.is_empty()
        || !settings.required_credential_types.is_empty()
    {
        let ext: Vec<ExtensionType> = settings
            .required_extension_types
            .iter()
            .map(|t| ExtensionType::from(*t))
            .collect();
        let props: Vec<ProposalType> = settings
            .required_proposal_types
            .iter()
            .map(|t| ProposalType::from(*t))
            .collect();
        let creds: Vec<CredentialType> = settings
            .required_credential_types
            .iter()
            .map(|t| CredentialType::from(*t))
            .collect();
        list.push(Extension::RequiredCapabilities(
            RequiredCapabilitiesExtension::new(&ext, &props, &creds),
        ));
    }
    if !settings.external_senders.is_empty() {
        let senders = settings
            .external_senders
            .iter()
            .map(|s| {
                ExternalSender::new(
                    SignaturePublicKey::from(s.signature_key.clone()),
                    BasicCredential::new(s.identity.clone()).into(),
                )
            })
            .collect();
        list.push(Extension::ExternalSenders(senders));
    }
    list.extend(custom_extensions(&settings.custom_extensions)?);
    Extensions::from_vec(list).map_err(CoreError::validation)
}

/// Custom (unknown to OpenMLS) extensions; standard type codes are refused.
pub fn custom_extensions(list: &[(u16, Vec<u8>)]) -> Result<Vec<Extension>, CoreError> {
    list.iter()
        .map(|(t, data)| {
            if *t < 0x000b {
                return Err(CoreError::validation(format!(
                    "extension type 0x{t:04x} is reserved by RFC 9420; use a custom type"
                )));
            }
            Ok(Extension::Unknown(*t, UnknownExtension(data.clone())))
        })
        .collect()
}

/// Adds extension types to a required-capabilities extension (creating one if needed).
pub fn require_extension_types(
    current: Option<RequiredCapabilitiesExtension>,
    types: &[u16],
) -> Option<RequiredCapabilitiesExtension> {
    if types.is_empty() {
        return current;
    }
    let (mut ext, props, creds) = match &current {
        Some(r) => (
            r.extension_types().to_vec(),
            r.proposal_types().to_vec(),
            r.credential_types().to_vec(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    for t in types {
        let t = ExtensionType::from(*t);
        if !ext.contains(&t) {
            ext.push(t);
        }
    }
    Some(RequiredCapabilitiesExtension::new(&ext, &props, &creds))
}
