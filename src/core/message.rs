//! Wire parsing: the one place outside bytes become OpenMLS types.

use openmls::prelude::tls_codec::{DeserializeBytes, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;

use crate::core::error::CoreError;
use crate::core::limits::{InputLimits, Shape};

/// Kind of an MLS message on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    PublicMessage,
    PrivateMessage,
    Welcome,
    GroupInfo,
    KeyPackage,
}

/// Content type of a group message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentKind {
    Application,
    Proposal,
    Commit,
}

/// What a Delivery Service needs to route a message, read without any keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    pub kind: MessageKind,
    pub group_id: Option<Vec<u8>>,
    pub epoch: Option<u64>,
    pub content_type: Option<ContentKind>,
    pub ciphersuite: Option<u16>,
}

/// Facts of a validated key package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPackageFacts {
    pub identity: Vec<u8>,
    pub signature_key: Vec<u8>,
    pub ciphersuite: u16,
    pub not_before: u64,
    pub not_after: u64,
    pub last_resort: bool,
    pub hash_ref: Vec<u8>,
}

/// Parses bytes as one complete MLS message, within `limits`.
pub fn parse(bytes: &[u8], limits: &InputLimits) -> Result<MlsMessageIn, CoreError> {
    limits.check(bytes, Shape::Message)?;
    decode_guarded(|| MlsMessageIn::tls_deserialize_exact_bytes(bytes))
}

/// Runs a decoder on hostile bytes. tls_codec has debug assertions that fire on
/// some truncated inputs; a decoder panic is malformed input, not a crash.
pub fn decode_guarded<T, E: std::fmt::Display>(
    decode: impl FnOnce() -> Result<T, E>,
) -> Result<T, CoreError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(result) => result.map_err(CoreError::malformed),
        Err(_) => Err(CoreError::malformed(
            "the decoder rejected inconsistent lengths",
        )),
    }
}

/// Serializes an outgoing message.
pub fn serialize(message: &MlsMessageOut) -> Result<Vec<u8>, CoreError> {
    message
        .tls_serialize_detached()
        .map_err(CoreError::internal)
}

/// Parses a ratchet tree exported by `export_ratchet_tree`, within `limits`.
pub fn parse_ratchet_tree(bytes: &[u8], limits: &InputLimits) -> Result<RatchetTreeIn, CoreError> {
    limits.check(bytes, Shape::RatchetTree)?;
    decode_guarded(|| RatchetTreeIn::tls_deserialize_exact_bytes(bytes))
}

/// Routing facts of any MLS message (default input limits).
pub fn inspect(bytes: &[u8]) -> Result<MessageInfo, CoreError> {
    let message = parse(bytes, &InputLimits::default())?;
    let info = match message.extract() {
        MlsMessageBodyIn::PublicMessage(m) => {
            let pm = ProtocolMessage::from(m);
            group_info_of(MessageKind::PublicMessage, &pm)
        }
        MlsMessageBodyIn::PrivateMessage(m) => {
            let pm = ProtocolMessage::from(m);
            group_info_of(MessageKind::PrivateMessage, &pm)
        }
        MlsMessageBodyIn::Welcome(w) => MessageInfo {
            kind: MessageKind::Welcome,
            group_id: None,
            epoch: None,
            content_type: None,
            ciphersuite: Some(u16::from(w.ciphersuite())),
        },
        MlsMessageBodyIn::GroupInfo(gi) => MessageInfo {
            kind: MessageKind::GroupInfo,
            group_id: Some(gi.group_id().as_slice().to_vec()),
            epoch: Some(gi.epoch().as_u64()),
            content_type: None,
            ciphersuite: Some(u16::from(gi.ciphersuite())),
        },
        MlsMessageBodyIn::KeyPackage(kp) => MessageInfo {
            kind: MessageKind::KeyPackage,
            group_id: None,
            epoch: None,
            content_type: None,
            ciphersuite: kp_ciphersuite(&kp),
        },
        #[allow(unreachable_patterns)]
        _ => return Err(CoreError::malformed("unsupported message type")),
    };
    Ok(info)
}

fn group_info_of(kind: MessageKind, pm: &ProtocolMessage) -> MessageInfo {
    let content_type = match pm.content_type() {
        ContentType::Application => ContentKind::Application,
        ContentType::Proposal => ContentKind::Proposal,
        ContentType::Commit => ContentKind::Commit,
    };
    MessageInfo {
        kind,
        group_id: Some(pm.group_id().as_slice().to_vec()),
        epoch: Some(pm.epoch().as_u64()),
        content_type: Some(content_type),
        ciphersuite: None,
    }
}

/// Longest lifetime range (`not_after - not_before`) we accept in a key package.
///
/// RFC 9420 §7.2 leaves the maximum to the application ("Applications MUST
/// define a maximum total lifetime that is acceptable for a LeafNode"). Real
/// peers issue long ones: mls-rs 365 days, OpenMLS 12 weeks plus a 1 h
/// clock-skew margin. Two years accepts every default we know of and still
/// refuses key packages that claim to be valid forever.
pub const MAX_KEY_PACKAGE_LIFETIME_RANGE_SECS: u64 = 2 * 365 * 24 * 60 * 60;

/// Parses and fully validates a key package: signature, keys, and its
/// lifetime against the current time (RFC 9420 §10.1).
/// Accepts it bare or wrapped in an `MlsMessage`.
pub fn validate_key_package(
    crypto: &RustCrypto,
    bytes: &[u8],
    limits: &InputLimits,
) -> Result<KeyPackage, CoreError> {
    let invalid = |reason: String| CoreError::InvalidKeyPackage { reason };
    limits.check(bytes, Shape::KeyPackage)?;
    let wrapped = decode_guarded(|| MlsMessageIn::tls_deserialize_exact_bytes(bytes));
    let kp_in = match wrapped.map(|m| m.extract()) {
        Ok(MlsMessageBodyIn::KeyPackage(kp)) => kp,
        Ok(_) => return Err(invalid("the message is not a key package".into())),
        Err(_) => decode_guarded(|| KeyPackageIn::tls_deserialize_exact_bytes(bytes))?,
    };
    let kp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kp_in.validate(crypto, ProtocolVersion::Mls10)
    }))
    .map_err(|_| invalid("validation aborted on inconsistent data".into()))?
    .map_err(|e| invalid(e.to_string()))?;
    let lifetime = kp.life_time();
    if lifetime.not_after().saturating_sub(lifetime.not_before())
        > MAX_KEY_PACKAGE_LIFETIME_RANGE_SECS
    {
        return Err(invalid(format!(
            "lifetime range is longer than {} days",
            MAX_KEY_PACKAGE_LIFETIME_RANGE_SECS / 86_400
        )));
    }
    Ok(kp)
}

/// Validates a key package (bare or in an MLS message) under the default
/// input limits and returns its facts.
pub fn inspect_key_package(bytes: &[u8]) -> Result<KeyPackageFacts, CoreError> {
    let crypto = RustCrypto::default();
    let kp = validate_key_package(&crypto, bytes, &InputLimits::default())?;
    key_package_facts(&crypto, &kp)
}

/// Facts of a validated key package, for apps and Delivery Services.
pub fn key_package_facts(
    crypto: &RustCrypto,
    kp: &KeyPackage,
) -> Result<KeyPackageFacts, CoreError> {
    let leaf = kp.leaf_node();
    Ok(KeyPackageFacts {
        identity: credential_identity(leaf.credential()),
        signature_key: leaf.signature_key().as_slice().to_vec(),
        ciphersuite: u16::from(kp.ciphersuite()),
        not_before: kp.life_time().not_before(),
        not_after: kp.life_time().not_after(),
        last_resort: kp.last_resort(),
        hash_ref: kp
            .hash_ref(crypto)
            .map_err(CoreError::internal)?
            .as_slice()
            .to_vec(),
    })
}

/// The identity inside a credential (basic credentials), or its raw content.
pub fn credential_identity(credential: &Credential) -> Vec<u8> {
    match BasicCredential::try_from(credential.clone()) {
        Ok(basic) => basic.identity().to_vec(),
        Err(_) => credential.serialized_content().to_vec(),
    }
}

fn kp_ciphersuite(kp: &KeyPackageIn) -> Option<u16> {
    // KeyPackageIn has no getter before validation; its TLS form starts with
    // the protocol version (u16) and then the ciphersuite (u16).
    let bytes = kp.tls_serialize_detached().ok()?;
    Some(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]))
}
