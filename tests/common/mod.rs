//! Shared fixtures for the integration tests: in-test storage backends and
//! helpers that build groups and deliver messages.
#![allow(dead_code)]

pub mod rng;
pub mod watchdog;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mlskit::{
    Client, ClientOptions, CommitBundle, Group, MlsError, ReceivedMessage, StorageBackend,
    StorageError, StorageWrite,
};

pub const INJECTED: &str = "disk full (injected)";

/// A map store whose `commit` is atomic (applied to a copy, then swapped in).
#[derive(Default)]
pub struct MapStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MapStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A copy of everything stored.
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.map.lock().unwrap().clone()
    }
}

impl StorageBackend for MapStore {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.lock().unwrap().get(&key).cloned())
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let mut map = self.map.lock().unwrap();
        let mut next = map.clone();
        for w in writes {
            match w {
                StorageWrite::Put { key, value } => {
                    next.insert(key, value);
                }
                StorageWrite::Delete { key } => {
                    next.remove(&key);
                }
            }
        }
        *map = next;
        Ok(())
    }
}

/// What a [`OneShot`] store does to its next commit once armed.
#[derive(Clone, Copy, Debug)]
pub enum Next {
    /// A slow host transaction: sleep, then apply.
    SleepBefore(std::time::Duration),
    /// Apply, then sleep before returning (the batch is in; the caller waits).
    SleepAfter(std::time::Duration),
    /// Apply, then report a failure (a timeout after the write landed).
    FailAfterApplying,
}

/// A map store that does one [`Next`] thing to the next commit once armed.
pub struct OneShot {
    inner: Arc<MapStore>,
    next: Mutex<Option<Next>>,
}

impl OneShot {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MapStore::new(),
            next: Mutex::new(None),
        })
    }

    pub fn arm(&self, next: Next) {
        *self.next.lock().unwrap() = Some(next);
    }

    pub fn backend(self: &Arc<Self>) -> Arc<dyn StorageBackend> {
        self.clone()
    }
}

impl StorageBackend for OneShot {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.read(key)
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let next = self.next.lock().unwrap().take();
        if let Some(Next::SleepBefore(d)) = next {
            std::thread::sleep(d);
        }
        self.inner.commit(writes)?;
        match next {
            Some(Next::SleepAfter(d)) => std::thread::sleep(d),
            Some(Next::FailAfterApplying) => {
                return Err(StorageError::Backend {
                    reason: "timeout after the write (injected)".into(),
                })
            }
            _ => {}
        }
        Ok(())
    }
}

/// Wraps any backend: counts calls, fails the next commit when armed, and can
/// return garbage for reads. Tracks every key ever written so that it can take
/// a snapshot of any inner backend (MapStore or SQLite).
pub struct FaultyStore {
    inner: Arc<dyn StorageBackend>,
    armed: AtomicBool,
    garbage: AtomicBool,
    commits: AtomicUsize,
    failed_commits: AtomicUsize,
    reads: AtomicUsize,
    keys: Mutex<BTreeSet<Vec<u8>>>,
}

impl FaultyStore {
    pub fn over(inner: Arc<dyn StorageBackend>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            armed: AtomicBool::new(false),
            garbage: AtomicBool::new(false),
            commits: AtomicUsize::new(0),
            failed_commits: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            keys: Mutex::new(BTreeSet::new()),
        })
    }

    pub fn map() -> Arc<Self> {
        Self::over(MapStore::new())
    }

    /// Over a fresh SQLite file inside `dir`.
    pub fn sqlite(dir: &tempfile::TempDir, name: &str) -> Arc<Self> {
        let path = dir.path().join(name);
        Self::over(mlskit::sqlite_storage(path.to_string_lossy().into_owned()).unwrap())
    }

    pub fn as_backend(self: &Arc<Self>) -> Arc<dyn StorageBackend> {
        self.clone()
    }

    /// The next commit fails with `INJECTED`.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Every read of a present key returns garbage bytes.
    pub fn set_garbage(&self, on: bool) {
        self.garbage.store(on, Ordering::SeqCst);
    }

    /// Commit calls (successful and failed).
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    pub fn failed_commits(&self) -> usize {
        self.failed_commits.load(Ordering::SeqCst)
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Every present key and its value, read from the inner store.
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let keys = self.keys.lock().unwrap().clone();
        keys.into_iter()
            .filter_map(|k| self.inner.read(k.clone()).unwrap().map(|v| (k, v)))
            .collect()
    }
}

impl StorageBackend for FaultyStore {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let value = self.inner.read(key)?;
        if self.garbage.load(Ordering::SeqCst) {
            return Ok(value.map(|v| {
                let mut g = vec![0xff, 0x00, 0xfe, 0x13, 0x37];
                g.extend(v.iter().take(3).map(|b| b ^ 0x5a));
                g
            }));
        }
        Ok(value)
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        {
            let mut keys = self.keys.lock().unwrap();
            for w in &writes {
                match w {
                    StorageWrite::Put { key, .. } | StorageWrite::Delete { key } => {
                        keys.insert(key.clone());
                    }
                }
            }
        }
        if self.armed.swap(false, Ordering::SeqCst) {
            self.failed_commits.fetch_add(1, Ordering::SeqCst);
            return Err(StorageError::Backend {
                reason: INJECTED.to_string(),
            });
        }
        self.inner.commit(writes)
    }
}

/// The values every language's tests share, defined once.
const SHARED: &str = include_str!("constants.txt");

/// The value of the line `NAME = 0xHEX` in `tests/common/constants.txt`,
/// read at compile time.
const fn shared_constant(name: &str) -> u16 {
    let (text, name) = (SHARED.as_bytes(), name.as_bytes());
    let mut line = 0;
    while line < text.len() {
        let mut n = 0;
        while n < name.len() && line + n < text.len() && text[line + n] == name[n] {
            n += 1;
        }
        let mut at = line + n;
        if n == name.len() && at < text.len() && text[at] == b' ' {
            while text[at] == b' ' || text[at] == b'=' {
                at += 1;
            }
            assert!(text[at] == b'0' && text[at + 1] == b'x', "expected 0x");
            at += 2;
            let mut value: u16 = 0;
            while at < text.len() && text[at] != b'\n' {
                let d = text[at];
                let digit = match d {
                    b'0'..=b'9' => d - b'0',
                    b'a'..=b'f' => d - b'a' + 10,
                    b'A'..=b'F' => d - b'A' + 10,
                    _ => panic!("not a hex digit"),
                };
                value = value * 16 + digit as u16;
                at += 1;
            }
            return value;
        }
        while line < text.len() && text[line] != b'\n' {
            line += 1;
        }
        line += 1;
    }
    panic!("no such constant in tests/common/constants.txt")
}

/// Client options shared by every member (custom proposal and extension types).
pub const CUSTOM_PROPOSAL: u16 = shared_constant("CUSTOM_PROPOSAL_TYPE");
pub const CUSTOM_EXTENSION: u16 = shared_constant("CUSTOM_EXTENSION_TYPE");

pub fn options() -> ClientOptions {
    ClientOptions {
        custom_extension_types: vec![CUSTOM_EXTENSION],
        custom_proposal_types: vec![CUSTOM_PROPOSAL],
        ..Default::default()
    }
}

/// One member: its store, client and group handle.
pub struct Member {
    pub name: String,
    pub store: Arc<FaultyStore>,
    pub client: Arc<Client>,
    pub group: Arc<Group>,
}

impl Member {
    /// What must not change after a failed operation.
    pub fn observe(&self) -> Observed {
        Observed::of(&self.group)
    }
}

/// The observable state of a group.
#[derive(Debug, PartialEq)]
pub struct Observed {
    pub epoch: u64,
    pub members: Vec<mlskit::Member>,
    pub pending_proposals: Vec<mlskit::ProposalInfo>,
    pub pending_commit: Option<mlskit::CommitInfo>,
    pub authenticator: Vec<u8>,
}

impl Observed {
    pub fn of(group: &Group) -> Self {
        Self {
            epoch: group.epoch().unwrap(),
            members: group.members().unwrap(),
            pending_proposals: group.pending_proposals().unwrap(),
            pending_commit: group.pending_commit().unwrap(),
            authenticator: group.epoch_authenticator().unwrap(),
        }
    }
}

pub fn client_on(store: &Arc<FaultyStore>, name: &str) -> Arc<Client> {
    Client::new(
        store.as_backend(),
        name.as_bytes().to_vec(),
        Some(options()),
    )
    .unwrap()
}

/// Builds `n` members (named m0..) in one group created by m0, each on a store
/// made by `make_store(i)`.
pub fn build_group(n: usize, make_store: impl Fn(usize) -> Arc<FaultyStore>) -> Vec<Member> {
    let creator_store = make_store(0);
    let creator = client_on(&creator_store, "m0");
    let group = creator
        .create_group(Some(mlskit::GroupOptions {
            group_id: Some(b"test group".to_vec()),
            required_extension_types: vec![CUSTOM_EXTENSION],
            required_proposal_types: vec![CUSTOM_PROPOSAL],
            ..Default::default()
        }))
        .unwrap();
    let mut members = vec![Member {
        name: "m0".into(),
        store: creator_store,
        client: creator,
        group,
    }];
    for i in 1..n {
        let store = make_store(i);
        let name = format!("m{i}");
        let client = client_on(&store, &name);
        let kp = client.create_key_packages(1, None).unwrap().remove(0);
        let bundle = members[0].group.add_members(vec![kp]).unwrap();
        members[0].group.merge_pending_commit().unwrap();
        for m in &members[1..] {
            process_and_merge(&m.group, &bundle.commit);
        }
        let group = client
            .join_group(bundle.welcome.clone().unwrap(), None, None)
            .unwrap();
        members.push(Member {
            name,
            store,
            client,
            group,
        });
    }
    members
}

/// Processes a commit and merges it; panics if it is anything else.
pub fn process_and_merge(group: &Group, commit: &[u8]) {
    match group.process_message(commit.to_vec()).unwrap() {
        ReceivedMessage::Commit { commit } => commit.merge().unwrap(),
        _ => panic!("expected a commit"),
    }
}

/// Processes a proposal; panics if it is anything else.
pub fn process_proposal(group: &Group, message: &[u8]) -> mlskit::ProposalInfo {
    match group.process_message(message.to_vec()).unwrap() {
        ReceivedMessage::Proposal { proposal } => proposal,
        _ => panic!("expected a proposal"),
    }
}

/// Delivers our commit: merge it locally, process and merge it everywhere else.
pub fn commit_to_all(members: &[Member], sender: usize, bundle: &CommitBundle) {
    members[sender].group.merge_pending_commit().unwrap();
    for (i, m) in members.iter().enumerate() {
        if i != sender && m.group.is_active().unwrap() {
            process_and_merge(&m.group, &bundle.commit);
        }
    }
}

/// Sends an application message from `sender` and checks every other member reads it.
pub fn check_messaging(members: &[&Member], sender: usize) {
    let text = format!("hello from {}", members[sender].name).into_bytes();
    let ct = members[sender]
        .group
        .encrypt(text.clone(), b"aad".to_vec())
        .unwrap();
    for (i, m) in members.iter().enumerate() {
        if i == sender {
            continue;
        }
        match m.group.process_message(ct.clone()).unwrap() {
            ReceivedMessage::Application { message } => {
                assert_eq!(message.plaintext, text);
                assert_eq!(message.aad, b"aad".to_vec());
            }
            _ => panic!("expected an application message"),
        }
    }
}

/// All members agree on the epoch and its authenticator.
pub fn assert_agree(members: &[&Member]) {
    let e = members[0].group.epoch().unwrap();
    let a = members[0].group.epoch_authenticator().unwrap();
    for m in members {
        assert_eq!(m.group.epoch().unwrap(), e, "{} epoch", m.name);
        assert_eq!(m.group.epoch_authenticator().unwrap(), a, "{} auth", m.name);
    }
}

pub fn is_storage_backend_injected(e: &MlsError) -> bool {
    matches!(e, MlsError::StorageBackend { reason } if reason.contains(INJECTED))
}

/// Names the step of a long scenario that is running: when a step fails, the
/// test output says which one (`<scenario>: failed in step '<name>'`).
pub struct Step {
    scenario: String,
    name: std::cell::Cell<&'static str>,
}

impl Step {
    pub fn new(scenario: String) -> Self {
        Self {
            scenario,
            name: std::cell::Cell::new("setup"),
        }
    }

    /// Starts the step `name`.
    pub fn next(&self, name: &'static str) {
        self.name.set(name);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}: failed in step '{}'", self.scenario, self.name.get());
        }
    }
}
