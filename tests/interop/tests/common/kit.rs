//! An MLSKit member, through the API apps use, over its own SQLite file.

use std::cell::RefCell;
use std::sync::Arc;

use mlskit::{
    Client, CommitBundle, Group, GroupOptions, JoinOptions, KeyPackageOptions, MlsError,
    ProposalMode, ReceivedMessage,
};

use super::{Commit, Member, Received, EXPORTER_CONTEXT, EXPORTER_LABEL, EXPORTER_LENGTH};

/// An MLSKit member. Each step opens a new `Client` on the same SQLite file
/// and the group by id, as an app does after a restart.
pub struct KitMember {
    identity: String,
    dir: tempfile::TempDir,
    group_id: RefCell<Option<Vec<u8>>>,
    group_options: GroupOptions,
    join_options: JoinOptions,
    key_package_options: KeyPackageOptions,
}

impl KitMember {
    /// A member with MLSKit's default options.
    pub fn new(identity: &str) -> Self {
        Self {
            identity: identity.to_string(),
            dir: tempfile::tempdir().expect("temp dir"),
            group_id: RefCell::new(None),
            group_options: GroupOptions::default(),
            join_options: JoinOptions::default(),
            key_package_options: KeyPackageOptions::default(),
        }
    }

    /// Options for the group this member creates.
    pub fn with_group_options(mut self, options: GroupOptions) -> Self {
        self.group_options = options;
        self
    }

    /// Options for the groups this member joins.
    pub fn with_join_options(mut self, options: JoinOptions) -> Self {
        self.join_options = options;
        self
    }

    /// Lifetime of the key packages this member creates.
    pub fn with_key_package_lifetime(mut self, seconds: u64) -> Self {
        self.key_package_options.lifetime_seconds = Some(seconds);
        self
    }

    fn fail(&self, op: &str, e: MlsError) -> ! {
        panic!("{}: {op}: {e:?}", self.name())
    }

    /// Opens the client from its storage.
    pub fn client(&self) -> Arc<Client> {
        let path = self.dir.path().join("mlskit.sqlite");
        let storage = mlskit::sqlite_storage(path.to_string_lossy().into_owned())
            .unwrap_or_else(|e| self.fail("open storage", e));
        Client::new(storage, self.identity.as_bytes().to_vec(), None)
            .unwrap_or_else(|e| self.fail("open client", e))
    }

    /// The group id; panics before the member is in a group.
    pub fn group_id(&self) -> Vec<u8> {
        self.group_id
            .borrow()
            .clone()
            .unwrap_or_else(|| panic!("{}: not in a group", self.name()))
    }

    /// Opens the client and the group from storage.
    pub fn group(&self) -> Arc<Group> {
        self.client()
            .group(self.group_id())
            .unwrap_or_else(|e| self.fail("open group", e))
    }

    /// Runs `op` on the freshly opened group; panics naming the step on error.
    fn with_group<T>(&self, step: &str, op: impl FnOnce(&Group) -> Result<T, MlsError>) -> T {
        op(&self.group()).unwrap_or_else(|e| self.fail(step, e))
    }

    /// Joins from a Welcome, returning MLSKit's error.
    pub fn try_join(&self, welcome: &[u8], tree: Option<&[u8]>) -> Result<(), MlsError> {
        let group = self.client().join_group(
            welcome.to_vec(),
            tree.map(<[u8]>::to_vec),
            Some(self.join_options.clone()),
        )?;
        *self.group_id.borrow_mut() = Some(group.id());
        Ok(())
    }

    /// Joins by external commit, returning MLSKit's error.
    pub fn try_join_external(
        &self,
        group_info: &[u8],
        tree: Option<&[u8]>,
    ) -> Result<Vec<u8>, MlsError> {
        let joined = self.client().join_by_external_commit(
            group_info.to_vec(),
            tree.map(<[u8]>::to_vec),
            Some(self.join_options.clone()),
        )?;
        *self.group_id.borrow_mut() = Some(joined.group.id());
        Ok(joined.commit)
    }

    /// Stages a commit adding these key packages, returning MLSKit's error.
    pub fn try_add(&self, key_packages: &[Vec<u8>]) -> Result<Commit, MlsError> {
        self.group()
            .add_members(key_packages.to_vec())
            .map(commit_of)
    }

    /// Processes a message without interpreting the result.
    pub fn process(&self, message: &[u8]) -> Result<ReceivedMessage, MlsError> {
        self.group().process_message(message.to_vec())
    }
}

fn commit_of(bundle: CommitBundle) -> Commit {
    Commit {
        commit: bundle.commit,
        welcome: bundle.welcome,
    }
}

impl Member for KitMember {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn name(&self) -> String {
        format!("{} (MLSKit)", self.identity)
    }

    fn key_package(&self) -> Vec<u8> {
        self.client()
            .create_key_packages(1, Some(self.key_package_options.clone()))
            .unwrap_or_else(|e| self.fail("create key package", e))
            .remove(0)
    }

    fn create_group(&self) {
        let group = self
            .client()
            .create_group(Some(self.group_options.clone()))
            .unwrap_or_else(|e| self.fail("create group", e));
        *self.group_id.borrow_mut() = Some(group.id());
    }

    fn join(&self, welcome: &[u8], tree: Option<&[u8]>) {
        self.try_join(welcome, tree)
            .unwrap_or_else(|e| self.fail("join from Welcome", e))
    }

    fn join_external(&self, group_info: &[u8], tree: Option<&[u8]>) -> Vec<u8> {
        self.try_join_external(group_info, tree)
            .unwrap_or_else(|e| self.fail("join by external commit", e))
    }

    fn epoch(&self) -> u64 {
        self.with_group("epoch", |g| g.epoch())
    }

    fn roster(&self) -> Vec<(u32, String)> {
        let mut roster: Vec<(u32, String)> = self
            .with_group("members", |g| g.members())
            .into_iter()
            .map(|m| (m.index, String::from_utf8_lossy(&m.identity).into_owned()))
            .collect();
        roster.sort();
        roster
    }

    fn exporter_secret(&self) -> Vec<u8> {
        self.with_group("export secret", |g| {
            g.export_secret(
                EXPORTER_LABEL.to_string(),
                EXPORTER_CONTEXT.to_vec(),
                EXPORTER_LENGTH as u32,
            )
        })
    }

    fn epoch_authenticator(&self) -> Vec<u8> {
        self.with_group("epoch authenticator", |g| g.epoch_authenticator())
    }

    fn group_info(&self, with_tree: bool) -> Vec<u8> {
        self.with_group("export GroupInfo", |g| g.export_group_info(with_tree))
    }

    fn ratchet_tree(&self) -> Vec<u8> {
        self.with_group("export ratchet tree", |g| g.export_ratchet_tree())
    }

    fn add(&self, key_packages: &[Vec<u8>]) -> Commit {
        self.try_add(key_packages)
            .unwrap_or_else(|e| self.fail("add members", e))
    }

    fn update(&self) -> Commit {
        commit_of(self.with_group("self update", |g| g.self_update()))
    }

    fn remove(&self, identity: &str) -> Commit {
        let index = self.index_of(identity);
        commit_of(self.with_group("remove member", |g| g.remove_members(vec![index])))
    }

    fn commit_pending(&self) -> Commit {
        commit_of(self.with_group("commit pending proposals", |g| g.commit_pending_proposals()))
    }

    fn merge_own(&self) {
        self.with_group("merge own commit", |g| g.merge_pending_commit())
    }

    fn propose_add(&self, key_package: &[u8]) -> Vec<u8> {
        self.with_group("propose add", |g| {
            g.propose_add(key_package.to_vec(), ProposalMode::ByReference)
        })
        .message
    }

    fn propose_update(&self) -> Vec<u8> {
        self.with_group("propose update", |g| g.propose_self_update())
            .message
    }

    fn propose_remove(&self, identity: &str) -> Vec<u8> {
        let index = self.index_of(identity);
        self.with_group("propose remove", |g| {
            g.propose_remove(index, ProposalMode::ByReference)
        })
        .message
    }

    fn send(&self, text: &[u8]) -> Vec<u8> {
        self.with_group("encrypt", |g| g.encrypt(text.to_vec(), Vec::new()))
    }

    fn receive(&self, message: &[u8]) -> Received {
        match self
            .process(message)
            .unwrap_or_else(|e| self.fail("process message", e))
        {
            ReceivedMessage::Application { message } => Received::Application(message.plaintext),
            ReceivedMessage::Proposal { .. } => Received::Proposal,
            ReceivedMessage::Commit { commit } => {
                let info = commit.info();
                commit
                    .merge()
                    .unwrap_or_else(|e| self.fail("merge commit", e));
                Received::Commit {
                    new_epoch: info.new_epoch,
                    removed_us: info.removes_us,
                }
            }
            // Own echoes are not part of the generic flow (see echo.rs).
            _ => panic!("{}: unexpected kind of message", self.name()),
        }
    }
}
