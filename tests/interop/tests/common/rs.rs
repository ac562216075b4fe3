//! An AWS mls-rs member over its own [`RsDisk`].

use std::cell::RefCell;
use std::time::Duration;

use mls_rs::client_builder::{
    BaseConfig, WithCryptoProvider, WithGroupStateStorage, WithIdentityProvider,
    WithKeyPackageRepo, WithMlsRules,
};
use mls_rs::crypto::{SignaturePublicKey, SignatureSecretKey};
use mls_rs::error::MlsError;
use mls_rs::group::{CommitEffect, ExportedTree, ReceivedMessage};
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::identity::SigningIdentity;
use mls_rs::mls_rules::DefaultMlsRules;
use mls_rs::{CipherSuite, CipherSuiteProvider, CryptoProvider, ExtensionList, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;

use super::disk::RsDisk;
use super::{Commit, Member, Received, EXPORTER_CONTEXT, EXPORTER_LABEL, EXPORTER_LENGTH};

/// The ciphersuite of every test (0x0001).
pub const CIPHER_SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

type RsConfig = WithIdentityProvider<
    BasicIdentityProvider,
    WithCryptoProvider<
        RustCryptoProvider,
        WithMlsRules<
            DefaultMlsRules,
            WithKeyPackageRepo<RsDisk, WithGroupStateStorage<RsDisk, BaseConfig>>,
        >,
    >,
>;
pub type RsClient = mls_rs::Client<RsConfig>;
pub type RsGroup = mls_rs::Group<RsConfig>;

/// An mls-rs member. Each step builds a new client over the member's disk
/// and loads the group (`Client::load_group`); every operation ends with
/// `Group::write_to_storage`, encryption and decryption included.
pub struct RsMember {
    identity: String,
    disk: RsDisk,
    secret_key: SignatureSecretKey,
    public_key: SignaturePublicKey,
    group_id: RefCell<Option<Vec<u8>>>,
    rules: DefaultMlsRules,
    key_package_lifetime: Option<Duration>,
}

impl RsMember {
    /// A member with mls-rs's default configuration.
    pub fn new(identity: &str) -> Self {
        let (secret_key, public_key) = RustCryptoProvider::default()
            .cipher_suite_provider(CIPHER_SUITE)
            .expect("ciphersuite 0x0001")
            .signature_key_generate()
            .expect("signature key");
        Self {
            identity: identity.to_string(),
            disk: RsDisk::default(),
            secret_key,
            public_key,
            group_id: RefCell::new(None),
            rules: DefaultMlsRules::default(),
            key_package_lifetime: None,
        }
    }

    /// Commit and encryption options in place of mls-rs's defaults.
    pub fn with_rules(mut self, rules: DefaultMlsRules) -> Self {
        self.rules = rules;
        self
    }

    /// Lifetime of this member's key packages (and of the leaf it creates a group with).
    pub fn with_key_package_lifetime(mut self, lifetime: Duration) -> Self {
        self.key_package_lifetime = Some(lifetime);
        self
    }

    fn fail(&self, op: &str, e: MlsError) -> ! {
        panic!("{}: {op}: {e:?}", self.name())
    }

    /// A new client over the member's disk.
    pub fn client(&self) -> RsClient {
        let credential = BasicCredential::new(self.identity.as_bytes().to_vec()).into_credential();
        let identity = SigningIdentity::new(credential, self.public_key.clone());
        let mut builder = mls_rs::Client::builder()
            .group_state_storage(self.disk.clone())
            .key_package_repo(self.disk.clone())
            .mls_rules(self.rules.clone())
            .crypto_provider(RustCryptoProvider::default())
            .identity_provider(BasicIdentityProvider)
            .signing_identity(identity, self.secret_key.clone(), CIPHER_SUITE);
        if let Some(lifetime) = self.key_package_lifetime {
            builder = builder.key_package_lifetime(lifetime);
        }
        builder.build()
    }

    /// The group id; panics before the member is in a group.
    pub fn group_id(&self) -> Vec<u8> {
        self.group_id
            .borrow()
            .clone()
            .unwrap_or_else(|| panic!("{}: not in a group", self.name()))
    }

    /// Loads the group, runs `op`, and writes the group back if `op` succeeded.
    pub fn try_with_group<T>(
        &self,
        op: impl FnOnce(&mut RsGroup) -> Result<T, MlsError>,
    ) -> Result<T, MlsError> {
        let client = self.client();
        let mut group = client.load_group(&self.group_id())?;
        let out = op(&mut group)?;
        group.write_to_storage()?;
        Ok(out)
    }

    fn with_group<T>(&self, step: &str, op: impl FnOnce(&mut RsGroup) -> Result<T, MlsError>) -> T {
        self.try_with_group(op)
            .unwrap_or_else(|e| self.fail(step, e))
    }

    /// Joins from a Welcome, returning mls-rs's error.
    pub fn try_join(&self, welcome: &[u8], tree: Option<&[u8]>) -> Result<(), MlsError> {
        let welcome = MlsMessage::from_bytes(welcome)?;
        let tree = tree.map(ExportedTree::from_bytes).transpose()?;
        let (mut group, _) = self.client().join_group(tree, &welcome, None)?;
        group.write_to_storage()?;
        *self.group_id.borrow_mut() = Some(group.group_id().to_vec());
        Ok(())
    }

    /// Stages a commit adding these key packages, returning mls-rs's error.
    pub fn try_add(&self, key_packages: &[Vec<u8>]) -> Result<Commit, MlsError> {
        self.try_with_group(|g| {
            let mut builder = g.commit_builder();
            for kp in key_packages {
                builder = builder.add_member(MlsMessage::from_bytes(kp)?)?;
            }
            commit_of(builder.build()?)
        })
    }

    /// Processes a message and returns mls-rs's own description of it.
    pub fn process(&self, message: &[u8]) -> Result<ReceivedMessage, MlsError> {
        self.try_with_group(|g| g.process_incoming_message(MlsMessage::from_bytes(message)?))
    }

    /// Whether a commit of ours is staged.
    pub fn has_pending_commit(&self) -> bool {
        self.with_group("pending commit", |g| Ok(g.has_pending_commit()))
    }
}

fn commit_of(output: mls_rs::group::CommitOutput) -> Result<Commit, MlsError> {
    Ok(Commit {
        commit: output.commit_message.to_bytes()?,
        welcome: output
            .welcome_messages
            .first()
            .map(MlsMessage::to_bytes)
            .transpose()?,
    })
}

impl Member for RsMember {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn name(&self) -> String {
        format!("{} (mls-rs)", self.identity)
    }

    fn key_package(&self) -> Vec<u8> {
        self.client()
            .generate_key_package_message(ExtensionList::new(), ExtensionList::new(), None)
            .and_then(|kp| kp.to_bytes())
            .unwrap_or_else(|e| self.fail("generate key package", e))
    }

    fn create_group(&self) {
        let client = self.client();
        let mut group = client
            .create_group(ExtensionList::new(), ExtensionList::new(), None)
            .unwrap_or_else(|e| self.fail("create group", e));
        group
            .write_to_storage()
            .unwrap_or_else(|e| self.fail("store new group", e));
        *self.group_id.borrow_mut() = Some(group.group_id().to_vec());
    }

    fn join(&self, welcome: &[u8], tree: Option<&[u8]>) {
        self.try_join(welcome, tree)
            .unwrap_or_else(|e| self.fail("join from Welcome", e))
    }

    fn join_external(&self, group_info: &[u8], tree: Option<&[u8]>) -> Vec<u8> {
        let joined = (|| {
            let mut builder = self.client().external_commit_builder()?;
            if let Some(tree) = tree {
                builder = builder.with_tree_data(ExportedTree::from_bytes(tree)?.into_owned());
            }
            let (mut group, commit) = builder.build(MlsMessage::from_bytes(group_info)?)?;
            group.write_to_storage()?;
            Ok::<_, MlsError>((group.group_id().to_vec(), commit.to_bytes()?))
        })();
        let (group_id, commit) = joined.unwrap_or_else(|e| self.fail("join by external commit", e));
        *self.group_id.borrow_mut() = Some(group_id);
        commit
    }

    fn epoch(&self) -> u64 {
        self.with_group("epoch", |g| Ok(g.current_epoch()))
    }

    fn roster(&self) -> Vec<(u32, String)> {
        let mut roster: Vec<(u32, String)> = self.with_group("roster", |g| {
            Ok(g.roster()
                .members_iter()
                .map(|m| {
                    let id = m
                        .signing_identity
                        .credential
                        .as_basic()
                        .map(|b| String::from_utf8_lossy(b.identifier()).into_owned())
                        .unwrap_or_default();
                    (m.index, id)
                })
                .collect())
        });
        roster.sort();
        roster
    }

    fn exporter_secret(&self) -> Vec<u8> {
        self.with_group("export secret", |g| {
            g.export_secret(EXPORTER_LABEL.as_bytes(), EXPORTER_CONTEXT, EXPORTER_LENGTH)
                .map(|s| s.as_bytes().to_vec())
        })
    }

    fn epoch_authenticator(&self) -> Vec<u8> {
        self.with_group("epoch authenticator", |g| {
            g.epoch_authenticator().map(|s| s.as_bytes().to_vec())
        })
    }

    fn group_info(&self, with_tree: bool) -> Vec<u8> {
        self.with_group("GroupInfo", |g| {
            g.group_info_message_allowing_ext_commit(with_tree)?
                .to_bytes()
        })
    }

    fn ratchet_tree(&self) -> Vec<u8> {
        self.with_group("export tree", |g| g.export_tree().to_bytes())
    }

    fn add(&self, key_packages: &[Vec<u8>]) -> Commit {
        self.try_add(key_packages)
            .unwrap_or_else(|e| self.fail("add members", e))
    }

    fn update(&self) -> Commit {
        // A commit without proposals always carries a path.
        self.with_group("self update", |g| commit_of(g.commit_builder().build()?))
    }

    fn remove(&self, identity: &str) -> Commit {
        let index = self.index_of(identity);
        self.with_group("remove member", |g| {
            commit_of(g.commit_builder().remove_member(index)?.build()?)
        })
    }

    fn commit_pending(&self) -> Commit {
        self.with_group("commit pending proposals", |g| {
            commit_of(g.commit_builder().build()?)
        })
    }

    fn merge_own(&self) {
        self.with_group("apply pending commit", |g| {
            g.apply_pending_commit().map(|_| ())
        })
    }

    fn propose_add(&self, key_package: &[u8]) -> Vec<u8> {
        self.with_group("propose add", |g| {
            g.propose_add(MlsMessage::from_bytes(key_package)?, Vec::new())?
                .to_bytes()
        })
    }

    fn propose_update(&self) -> Vec<u8> {
        self.with_group("propose update", |g| {
            g.propose_update(Vec::new())?.to_bytes()
        })
    }

    fn propose_remove(&self, identity: &str) -> Vec<u8> {
        let index = self.index_of(identity);
        self.with_group("propose remove", |g| {
            g.propose_remove(index, Vec::new())?.to_bytes()
        })
    }

    fn send(&self, text: &[u8]) -> Vec<u8> {
        self.with_group("encrypt", |g| {
            g.encrypt_application_message(text, Vec::new())?.to_bytes()
        })
    }

    fn receive(&self, message: &[u8]) -> Received {
        let received = self.with_group("process message", |g| {
            g.process_incoming_message(MlsMessage::from_bytes(message)?)
        });
        match received {
            ReceivedMessage::ApplicationMessage(m) => Received::Application(m.data().to_vec()),
            ReceivedMessage::Proposal(_) => Received::Proposal,
            ReceivedMessage::Commit(c) => match c.effect {
                CommitEffect::NewEpoch(e) => Received::Commit {
                    new_epoch: e.epoch,
                    removed_us: false,
                },
                CommitEffect::Removed { new_epoch, .. } => Received::Commit {
                    new_epoch: new_epoch.epoch,
                    removed_us: true,
                },
                other => panic!("{}: unexpected commit effect {other:?}", self.name()),
            },
            other => panic!("{}: unexpected message {other:?}", self.name()),
        }
    }
}
