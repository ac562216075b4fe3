//! Raw OpenMLS: the floor. OpenMLS's own provider and memory storage, the same
//! group configuration as the SDK's defaults, and the serialization any app
//! needs at its network boundary (messages out as bytes, parsed back in).

use openmls::prelude::tls_codec::{DeserializeBytes, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

use crate::{Actor, Counts, Layer};

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// A provider (crypto + its own memory storage), a signer and a credential.
struct Member {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

impl Member {
    fn new(identity: &[u8]) -> Self {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(SUITE.signature_algorithm()).expect("signer");
        signer.store(provider.storage()).expect("store signer");
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Self {
            provider,
            signer,
            credential,
        }
    }

    fn key_package(&self) -> Vec<u8> {
        let bundle = KeyPackage::builder()
            .build(SUITE, &self.provider, &self.signer, self.credential.clone())
            .expect("key package");
        MlsMessageOut::from(bundle.key_package().clone())
            .tls_serialize_detached()
            .expect("serialize")
    }
}

/// The SDK's defaults: ciphertext out, both in; 3 past epochs; tree in the Welcome.
fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(3)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(5, 1000))
        .use_ratchet_tree_extension(true)
        .build()
}

fn serialize(message: &MlsMessageOut) -> Vec<u8> {
    message.tls_serialize_detached().expect("serialize")
}

fn parse(bytes: &[u8]) -> MlsMessageBodyIn {
    MlsMessageIn::tls_deserialize_exact_bytes(bytes)
        .expect("parse")
        .extract()
}

fn new_group(member: &Member) -> MlsGroup {
    MlsGroup::builder()
        .ciphersuite(SUITE)
        .with_wire_format_policy(MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(3)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(5, 1000))
        .use_ratchet_tree_extension(true)
        .build(&member.provider, &member.signer, member.credential.clone())
        .expect("create group")
}

fn validated_key_package(member: &Member, bytes: &[u8]) -> KeyPackage {
    match parse(bytes) {
        MlsMessageBodyIn::KeyPackage(kp) => kp
            .validate(member.provider.crypto(), ProtocolVersion::Mls10)
            .expect("valid key package"),
        _ => panic!("not a key package"),
    }
}

fn join(member: &Member, welcome: &[u8]) -> MlsGroup {
    let MlsMessageBodyIn::Welcome(welcome) = parse(welcome) else {
        panic!("not a Welcome")
    };
    StagedWelcome::new_from_welcome(&member.provider, &join_config(), welcome, None)
        .expect("stage welcome")
        .into_group(&member.provider)
        .expect("join")
}

fn protocol_message(bytes: &[u8]) -> ProtocolMessage {
    match parse(bytes) {
        MlsMessageBodyIn::PrivateMessage(m) => m.into(),
        MlsMessageBodyIn::PublicMessage(m) => m.into(),
        _ => panic!("not a group message"),
    }
}

#[derive(Default)]
pub struct RawOpenMls {
    a: Option<(Member, MlsGroup)>,
    b: Option<(Member, MlsGroup)>,
    joiner: Option<Member>,
    joined_index: Option<LeafNodeIndex>,
    fresh: Option<Member>,
}

impl RawOpenMls {
    pub fn new() -> Self {
        Self::default()
    }

    fn a(&mut self) -> (&Member, &mut MlsGroup) {
        let (m, g) = self.a.as_mut().expect("set up");
        (m, g)
    }

    fn b(&mut self) -> (&Member, &mut MlsGroup) {
        let (m, g) = self.b.as_mut().expect("set up");
        (m, g)
    }
}

impl Layer for RawOpenMls {
    fn setup(&mut self, size: usize) {
        let a = Member::new(b"A");
        let b = Member::new(b"B");
        let mut group = new_group(&a);
        let mut kps = vec![validated_key_package(&a, &b.key_package())];
        for i in 2..size {
            let filler = Member::new(format!("filler-{i}").as_bytes());
            kps.push(validated_key_package(&a, &filler.key_package()));
        }
        let (_, welcome, _) = group
            .add_members(&a.provider, &a.signer, &kps)
            .expect("add");
        group.merge_pending_commit(&a.provider).expect("merge");
        let b_group = join(&b, &serialize(&welcome));
        self.a = Some((a, group));
        self.b = Some((b, b_group));
    }

    fn new_joiner(&mut self) -> Vec<u8> {
        let j = Member::new(b"J");
        let kp = j.key_package();
        self.joiner = Some(j);
        kp
    }

    fn add(&mut self, key_package: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (a, group) = self.a();
        let kp = validated_key_package(a, key_package);
        let (commit, welcome, _) = group
            .add_members(&a.provider, &a.signer, &[kp])
            .expect("add");
        group.merge_pending_commit(&a.provider).expect("merge");
        (serialize(&commit), serialize(&welcome))
    }

    fn process(&mut self, commit: &[u8]) {
        let (b, group) = self.b();
        let processed = group
            .process_message(&b.provider, protocol_message(commit))
            .expect("process commit");
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => group
                .merge_staged_commit(&b.provider, *staged)
                .expect("merge"),
            _ => panic!("expected a commit"),
        }
    }

    fn join(&mut self, welcome: &[u8]) {
        let j = self.joiner.as_ref().expect("joiner");
        self.joined_index = Some(join(j, welcome).own_leaf_index());
    }

    fn remove_joiner(&mut self) -> Vec<u8> {
        let index = self.joined_index.take().expect("joined");
        let (a, group) = self.a();
        let (commit, _, _) = group
            .remove_members(&a.provider, &a.signer, &[index])
            .expect("remove");
        group.merge_pending_commit(&a.provider).expect("merge");
        serialize(&commit)
    }

    fn update(&mut self) -> Vec<u8> {
        let (a, group) = self.a();
        let bundle = group
            .self_update(&a.provider, &a.signer, LeafNodeParameters::default())
            .expect("update");
        group.merge_pending_commit(&a.provider).expect("merge");
        serialize(bundle.commit())
    }

    fn send(&mut self, payload: &[u8]) {
        let (a, group) = self.a();
        let ciphertext = serialize(
            &group
                .create_message(&a.provider, &a.signer, payload)
                .expect("encrypt"),
        );
        let (b, group) = self.b();
        let processed = group
            .process_message(&b.provider, protocol_message(&ciphertext))
            .expect("decrypt");
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => assert_eq!(m.into_bytes(), payload),
            _ => panic!("expected an application message"),
        }
    }

    fn prepare_create(&mut self) {
        self.fresh = Some(Member::new(b"C"));
    }

    fn create(&mut self) {
        new_group(self.fresh.as_ref().expect("prepared"));
    }

    fn load(&mut self) {
        let (a, group) = self.a.as_ref().expect("set up");
        let storage = a.provider.storage();
        let loaded = MlsGroup::load(storage, group.group_id())
            .expect("load")
            .expect("stored");
        let signer = SignatureKeyPair::read(
            storage,
            loaded
                .own_leaf_node()
                .expect("leaf")
                .signature_key()
                .as_slice(),
            SUITE.signature_algorithm(),
        )
        .expect("signer");
        assert_eq!(loaded.epoch(), group.epoch());
        assert_eq!(signer.public(), a.signer.public());
    }

    fn check_agreement(&self) {
        let a = &self.a.as_ref().expect("set up").1;
        let b = &self.b.as_ref().expect("set up").1;
        assert_eq!(a.epoch(), b.epoch());
        assert_eq!(
            a.epoch_authenticator().as_slice(),
            b.epoch_authenticator().as_slice()
        );
    }

    fn counts(&self, _: Actor) -> Option<Counts> {
        None
    }
}
