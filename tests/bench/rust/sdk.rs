//! MLSKit through its public Rust API, over `memory_storage()` or
//! `sqlite_storage()`, each store wrapped in a counter of storage callbacks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mlskit::{
    memory_storage, sqlite_storage, Client, Group, ReceivedMessage, StorageBackend, StorageError,
    StorageWrite,
};

use crate::{Actor, Counts, Layer};

/// Which built-in store every measured client uses.
#[derive(Clone, Copy)]
pub enum Store {
    Memory,
    Sqlite,
}

/// Forwards to a store and counts its callbacks (the same `Vec` goes through).
struct Counted {
    inner: Arc<dyn StorageBackend>,
    reads: AtomicU64,
    commits: AtomicU64,
    bytes_written: AtomicU64,
}

impl StorageBackend for Counted {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read(key)
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let bytes: usize = writes
            .iter()
            .map(|w| match w {
                StorageWrite::Put { key, value } => key.len() + value.len(),
                StorageWrite::Delete { key } => key.len(),
            })
            .sum();
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.inner.commit(writes)
    }
}

impl Counted {
    fn counts(&self) -> Counts {
        Counts {
            reads: self.reads.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }
}

/// A client and its counted store.
struct Member {
    store: Arc<Counted>,
    client: Arc<Client>,
    identity: Vec<u8>,
}

pub struct Sdk {
    store: Store,
    dir: tempfile::TempDir,
    files: usize,
    a: Option<(Member, Arc<Group>)>,
    b: Option<(Member, Arc<Group>)>,
    joiner: Option<Member>,
    joined_index: Option<u32>,
    fresh: Option<Member>,
}

impl Sdk {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            dir: tempfile::tempdir().expect("temp dir"),
            files: 0,
            a: None,
            b: None,
            joiner: None,
            joined_index: None,
            fresh: None,
        }
    }

    fn open_store(&mut self) -> Arc<Counted> {
        let inner = match self.store {
            Store::Memory => memory_storage(),
            Store::Sqlite => {
                self.files += 1;
                let path = self.dir.path().join(format!("client-{}.db", self.files));
                sqlite_storage(path.to_string_lossy().into_owned()).expect("sqlite store")
            }
        };
        Arc::new(Counted {
            inner,
            reads: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        })
    }

    fn member(&mut self, identity: &[u8]) -> Member {
        let store = self.open_store();
        let client = Client::new(store.clone(), identity.to_vec(), None).expect("client");
        Member {
            store,
            client,
            identity: identity.to_vec(),
        }
    }

    fn a(&self) -> &Arc<Group> {
        &self.a.as_ref().expect("set up").1
    }

    fn b(&self) -> &Arc<Group> {
        &self.b.as_ref().expect("set up").1
    }
}

fn merge_commit(group: &Group, commit: &[u8]) {
    match group
        .process_message(commit.to_vec())
        .expect("process commit")
    {
        ReceivedMessage::Commit { commit } => commit.merge().expect("merge"),
        _ => panic!("expected a commit"),
    }
}

impl Layer for Sdk {
    fn setup(&mut self, size: usize) {
        let a = self.member(b"A");
        let b = self.member(b"B");
        let group = a.client.create_group(None).expect("create");
        let mut kps = b.client.create_key_packages(1, None).expect("kp");
        // Fillers live in memory: they only provide key packages.
        for i in 2..size {
            let filler = Client::new(memory_storage(), format!("filler-{i}").into_bytes(), None)
                .expect("filler");
            kps.extend(filler.create_key_packages(1, None).expect("kp"));
        }
        let bundle = group.add_members(kps).expect("add");
        group.merge_pending_commit().expect("merge");
        let welcome = bundle.welcome.expect("welcome");
        let b_group = b.client.join_group(welcome, None, None).expect("join");
        self.a = Some((a, group));
        self.b = Some((b, b_group));
    }

    fn new_joiner(&mut self) -> Vec<u8> {
        let j = self.member(b"J");
        let kp = j.client.create_key_packages(1, None).expect("kp").remove(0);
        self.joiner = Some(j);
        kp
    }

    fn add(&mut self, key_package: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let a = self.a();
        let bundle = a.add_members(vec![key_package.to_vec()]).expect("add");
        a.merge_pending_commit().expect("merge");
        (bundle.commit, bundle.welcome.expect("welcome"))
    }

    fn process(&mut self, commit: &[u8]) {
        merge_commit(self.b(), commit);
    }

    fn join(&mut self, welcome: &[u8]) {
        let j = self.joiner.as_ref().expect("joiner");
        let group = j
            .client
            .join_group(welcome.to_vec(), None, None)
            .expect("join");
        self.joined_index = Some(group.own_index().expect("index"));
    }

    fn remove_joiner(&mut self) -> Vec<u8> {
        let index = self.joined_index.take().expect("joined");
        let a = self.a();
        let bundle = a.remove_members(vec![index]).expect("remove");
        a.merge_pending_commit().expect("merge");
        bundle.commit
    }

    fn update(&mut self) -> Vec<u8> {
        let a = self.a();
        let bundle = a.self_update().expect("update");
        a.merge_pending_commit().expect("merge");
        bundle.commit
    }

    fn send(&mut self, payload: &[u8]) {
        let ciphertext = self.a().encrypt(payload.to_vec(), vec![]).expect("encrypt");
        match self.b().process_message(ciphertext).expect("decrypt") {
            ReceivedMessage::Application { message } => assert_eq!(message.plaintext, payload),
            _ => panic!("expected an application message"),
        }
    }

    fn prepare_create(&mut self) {
        self.fresh = Some(self.member(b"C"));
    }

    fn create(&mut self) {
        let c = self.fresh.as_ref().expect("prepared");
        c.client.create_group(None).expect("create");
    }

    fn load(&mut self) {
        let (a, group) = self.a.as_ref().expect("set up");
        let client = Client::new(a.store.clone(), a.identity.clone(), None).expect("reopen");
        let loaded = client.group(group.id()).expect("load");
        assert_eq!(
            loaded.epoch().expect("epoch"),
            group.epoch().expect("epoch")
        );
        // The restarted client took the store over: it is A from now on.
        let (store, identity) = (a.store.clone(), a.identity.clone());
        self.a = Some((
            Member {
                store,
                client,
                identity,
            },
            loaded,
        ));
    }

    fn check_agreement(&self) {
        let (a, b) = (self.a(), self.b());
        assert_eq!(a.epoch().expect("epoch"), b.epoch().expect("epoch"));
        assert_eq!(
            a.epoch_authenticator().expect("auth"),
            b.epoch_authenticator().expect("auth")
        );
    }

    fn counts(&self, actor: Actor) -> Option<Counts> {
        let of = |m: Option<&Member>| m.map(|m| m.store.counts()).unwrap_or_default();
        let a = of(self.a.as_ref().map(|(m, _)| m));
        let b = of(self.b.as_ref().map(|(m, _)| m));
        Some(match actor {
            Actor::Creator => a,
            Actor::Member => b,
            Actor::Joiner => of(self.joiner.as_ref()),
            Actor::Fresh => of(self.fresh.as_ref()),
            Actor::Both => Counts {
                reads: a.reads + b.reads,
                commits: a.commits + b.commits,
                bytes_written: a.bytes_written + b.bytes_written,
            },
        })
    }
}
