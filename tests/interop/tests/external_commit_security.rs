//! RFC 9420 §12.4.3.2: an external commit may remove only the joiner's own
//! earlier leaf. OpenMLS leaves that check to the application; MLSKit makes
//! it. The hostile commit is built with mls-rs and an identity provider that
//! allows any removal (mls-rs's default provider refuses to build one).

mod common;

use common::{assert_agree, deliver, exchange, pair, KitMember, Member, RsMember};
use mls_rs::crypto::SignatureSecretKey;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::identity::{CredentialType, SigningIdentity};
use mls_rs::time::MlsTime;
use mls_rs::{CipherSuiteProvider, CryptoProvider, ExtensionList, IdentityProvider, MlsMessage};
use mls_rs_core::identity::MemberValidationContext;
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use mlskit::{MlsError, ReceivedMessage, Sender};

/// Basic credentials, and every removal by external commit allowed: what an
/// attacker's MLS stack does.
#[derive(Clone, Debug, Default)]
struct AnySuccessor;

impl IdentityProvider for AnySuccessor {
    type Error = <BasicIdentityProvider as IdentityProvider>::Error;

    fn validate_member(
        &self,
        identity: &SigningIdentity,
        time: Option<MlsTime>,
        context: MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        BasicIdentityProvider.validate_member(identity, time, context)
    }

    fn validate_external_sender(
        &self,
        identity: &SigningIdentity,
        time: Option<MlsTime>,
        extensions: Option<&ExtensionList>,
    ) -> Result<(), Self::Error> {
        BasicIdentityProvider.validate_external_sender(identity, time, extensions)
    }

    fn identity(
        &self,
        identity: &SigningIdentity,
        extensions: &ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        BasicIdentityProvider.identity(identity, extensions)
    }

    fn valid_successor(
        &self,
        _predecessor: &SigningIdentity,
        _successor: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        BasicIdentityProvider.supported_types()
    }
}

/// An mls-rs client for `identity` (a new signature key) with `provider`,
/// supporting the custom proposal types `custom`.
fn outsider<P: IdentityProvider + Clone + 'static>(
    provider: P,
    identity: &str,
    custom: &[u16],
) -> mls_rs::Client<impl mls_rs::client_builder::MlsConfig> {
    let suite = mls_rs::CipherSuite::CURVE25519_AES128;
    let crypto = RustCryptoProvider::default();
    let (secret, public): (SignatureSecretKey, _) = crypto
        .cipher_suite_provider(suite)
        .expect("ciphersuite")
        .signature_key_generate()
        .expect("signature key");
    let credential = BasicCredential::new(identity.as_bytes().to_vec()).into_credential();
    mls_rs::Client::builder()
        .crypto_provider(crypto)
        .identity_provider(provider)
        .custom_proposal_types(custom.iter().map(|t| (*t).into()))
        .signing_identity(SigningIdentity::new(credential, public), secret, suite)
        .build()
}

/// An external commit by `identity` from `group_info` that removes leaf
/// `remove`, built by mls-rs with `provider`.
fn external_commit_removing<P: IdentityProvider + Clone + 'static>(
    provider: P,
    identity: &str,
    group_info: &[u8],
    remove: u32,
) -> Result<Vec<u8>, mls_rs::error::MlsError> {
    let (_, commit) = outsider(provider, identity, &[])
        .external_commit_builder()?
        .with_removal(remove)
        .build(MlsMessage::from_bytes(group_info)?)?;
    commit.to_bytes()
}

#[test]
fn outsiders_external_commit_removing_a_member_is_refused_and_changes_nothing() {
    let alice = KitMember::new("alice");
    let bob = RsMember::new("bob");
    pair(&alice, &bob);
    let bob_index = alice.index_of("bob");
    let group_info = alice.group_info(true);

    // mls-rs with its default identity provider will not build it...
    assert!(
        external_commit_removing(BasicIdentityProvider, "eve", &group_info, bob_index).is_err(),
        "mls-rs's default provider refuses to let eve remove bob"
    );
    // ...an attacker's stack will.
    let hostile = external_commit_removing(AnySuccessor, "eve", &group_info, bob_index)
        .expect("eve's external commit");
    let epoch = alice.epoch();
    let authenticator = alice.epoch_authenticator();
    match alice.process(&hostile) {
        Err(MlsError::ExternalCommitRefused { reason }) => {
            assert!(reason.contains("identity"), "{reason}")
        }
        Ok(_) => panic!("alice accepted eve's external commit that removes bob"),
        Err(e) => panic!("alice: unexpected {e:?}"),
    }
    // Nothing was written: a fresh client on alice's storage sees the old epoch.
    assert_eq!(alice.epoch(), epoch);
    assert_eq!(alice.epoch_authenticator(), authenticator);
    assert_agree("after the refused external commit", &[&alice, &bob]);
    exchange("after the refused external commit", &[&alice, &bob]);
    let commit = bob.update();
    deliver("bob updates", &commit, &bob, &[&alice]);
    assert_agree("after bob's update", &[&alice, &bob]);
}

#[test]
fn rejoin_under_the_same_identity_may_remove_the_old_leaf() {
    let alice = KitMember::new("alice");
    let bob = KitMember::new("bob");
    pair(&alice, &bob);
    let old_leaf = alice.index_of("bob");
    // Bob lost his state and rejoins from the GroupInfo; his new client
    // replaces his old leaf (mls-rs's default provider allows a same-identity
    // successor).
    let resync = external_commit_removing(
        BasicIdentityProvider,
        "bob",
        &alice.group_info(true),
        old_leaf,
    )
    .expect("bob's resync commit");
    let ReceivedMessage::Commit { commit } = alice.process(&resync).expect("alice takes it") else {
        panic!("expected a commit");
    };
    let info = commit.info();
    assert_eq!(info.sender, Sender::NewMemberCommit);
    let joiner = info.committer_leaf.clone().expect("the joiner's leaf");
    assert_eq!(joiner.identity, b"bob".to_vec());
    assert_eq!(info.removes.len(), 1);
    assert_eq!(info.removes[0].index, old_leaf);
    assert_eq!(info.removes[0].identity.as_deref(), Some(&b"bob"[..]));
    commit.merge().expect("merge the resync");
    // Alice's app closes its store (the staged commit holds it) before the
    // next step opens it again.
    drop(commit);
    let roster = alice.roster();
    assert_eq!(
        roster,
        vec![(0, "alice".to_string()), (joiner.index, "bob".to_string())],
        "bob's old leaf is gone, his new one is there"
    );
}

/// RFC 9420 §12.4.3.2: an external commit carries only ExternalInit, at most
/// one Remove and PSK proposals. mls-rs builds one with a custom proposal
/// (of a type every member supports, so only that rule can refuse it).
#[test]
fn external_commit_with_a_custom_proposal_is_refused_and_changes_nothing() {
    const CUSTOM: u16 = 0xF0A1;
    let options = mlskit::ClientOptions {
        custom_proposal_types: vec![CUSTOM],
        ..Default::default()
    };
    let alice = mlskit::Client::new(mlskit::memory_storage(), b"alice".to_vec(), Some(options))
        .expect("alice");
    let group = alice.create_group(None).expect("group");
    let group_info = group.export_group_info(true).expect("group info");

    let eve = outsider(BasicIdentityProvider, "eve", &[CUSTOM]);
    let (_, commit) = eve
        .external_commit_builder()
        .expect("builder")
        .with_custom_proposal(mls_rs::group::proposal::CustomProposal::new(
            CUSTOM.into(),
            b"eve was here".to_vec(),
        ))
        .build(MlsMessage::from_bytes(&group_info).expect("group info"))
        .expect("eve's external commit");
    let hostile = commit.to_bytes().expect("bytes");

    let (epoch, authenticator) = (group.epoch().unwrap(), group.epoch_authenticator().unwrap());
    match group.process_message(hostile) {
        Err(MlsError::ExternalCommitRefused { reason }) => {
            assert!(reason.contains("custom"), "{reason}")
        }
        Ok(_) => panic!("alice accepted an external commit with a custom proposal"),
        Err(e) => panic!("alice: unexpected {e:?}"),
    }
    assert_eq!(group.epoch().unwrap(), epoch);
    assert_eq!(group.epoch_authenticator().unwrap(), authenticator);
    assert!(group.pending_proposals().unwrap().is_empty());
}
