//! Concurrency stress: many threads on many groups, several threads on one
//! group, over storage that is slow and fails at a seeded rate. A watchdog
//! fails the test on a deadlock. Checked afterwards: every successful encrypt
//! was decrypted exactly once by each peer, every successful SDK write is
//! exactly one backend commit (none lost, none duplicated), the epochs match
//! the number of commits made, and a reload from storage equals the state in
//! memory (epoch, members, epoch authenticator).
//!
//! `MLSKIT_STRESS_OPS` scales the work (default 40 per thread).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::rng::{env_u64, Rng};
use common::watchdog::watchdog;
use common::{MapStore, Next, OneShot, INJECTED};
use mlskit::{
    Client, Group, MlsError, ReceivedMessage, StorageBackend, StorageError, StorageWrite,
};

/// A store that sleeps on every call and fails a seeded share of commits.
struct Flaky {
    inner: Arc<MapStore>,
    rng: Mutex<Rng>,
    fail_percent: AtomicU64,
    max_sleep_us: u64,
    ok_commits: AtomicU64,
    failed_commits: AtomicU64,
}

impl Flaky {
    fn new(seed: u64, max_sleep_us: u64) -> Arc<Self> {
        Arc::new(Self {
            inner: MapStore::new(),
            rng: Mutex::new(Rng::new(seed)),
            fail_percent: AtomicU64::new(0),
            max_sleep_us,
            ok_commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
        })
    }

    fn nap(&self) -> bool {
        let (sleep, fail) = {
            let mut rng = self.rng.lock().unwrap();
            let sleep = rng.next_u64() % (self.max_sleep_us + 1);
            (sleep, rng.chance(self.fail_percent.load(Ordering::SeqCst)))
        };
        thread::sleep(Duration::from_micros(sleep));
        fail
    }
}

impl StorageBackend for Flaky {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.nap();
        self.inner.read(key)
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        if self.nap() {
            self.failed_commits.fetch_add(1, Ordering::SeqCst);
            return Err(StorageError::Backend {
                reason: INJECTED.to_string(),
            });
        }
        self.inner.commit(writes)?;
        self.ok_commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn injected(e: &MlsError) -> bool {
    common::is_storage_backend_injected(e)
}

/// Calls `f` until it succeeds; only injected storage failures may happen.
/// Returns the value and how many attempts failed.
fn retry<T>(what: &str, mut f: impl FnMut() -> Result<T, MlsError>) -> (T, u64) {
    let mut failed = 0;
    loop {
        match f() {
            Ok(v) => return (v, failed),
            Err(e) if injected(&e) => failed += 1,
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

struct Peer {
    store: Arc<Flaky>,
    client: Arc<Client>,
    /// Successful SDK calls that must each have made exactly one backend commit.
    writes: AtomicU64,
}

impl Peer {
    fn new(name: &str, seed: u64, max_sleep_us: u64) -> Self {
        let store = Flaky::new(seed, max_sleep_us);
        let backend: Arc<dyn StorageBackend> = store.clone();
        let client = Client::new(backend, name.as_bytes().to_vec(), None).unwrap();
        // Opening a new client writes its identity, keys and lease once.
        assert_eq!(store.ok_commits.load(Ordering::SeqCst), 1);
        Self {
            store,
            client,
            writes: AtomicU64::new(1),
        }
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    fn set_failures(&self, percent: u64) {
        self.store.fail_percent.store(percent, Ordering::SeqCst);
    }

    /// Writes accounted so far must equal the backend's successful commits.
    fn assert_accounted(&self, name: &str) {
        assert_eq!(
            self.store.ok_commits.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
            "{name}: backend commits != successful SDK writes (a write was lost or duplicated)"
        );
    }
}

/// Builds one group with every peer in it (failures must be off).
fn group_of(peers: &[Arc<Peer>], id: Vec<u8>, tolerance: u32) -> Vec<Arc<Group>> {
    let creator = &peers[0];
    let g = creator
        .client
        .create_group(Some(mlskit::GroupOptions {
            group_id: Some(id),
            join: mlskit::JoinOptions {
                out_of_order_tolerance: tolerance,
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
    creator.wrote();
    let mut groups = vec![g.clone()];
    for p in &peers[1..] {
        let kp = p.client.create_key_packages(1, None).unwrap().remove(0);
        p.wrote();
        let bundle = g.add_members(vec![kp]).unwrap();
        g.merge_pending_commit().unwrap();
        creator.wrote();
        creator.wrote();
        for other in &groups[1..] {
            match other.process_message(bundle.commit.clone()).unwrap() {
                ReceivedMessage::Commit { commit } => commit.merge().unwrap(),
                _ => panic!("expected a commit"),
            }
        }
        for q in &peers[1..] {
            if Arc::ptr_eq(q, p) {
                break;
            }
            q.wrote();
        }
        let joined = p
            .client
            .join_group(
                bundle.welcome.unwrap(),
                None,
                Some(mlskit::JoinOptions {
                    out_of_order_tolerance: tolerance,
                    ..Default::default()
                }),
            )
            .unwrap();
        p.wrote();
        groups.push(joined);
    }
    groups
}

/// Processes `msg` until it succeeds; returns what it was and failed attempts.
fn deliver(peer: &Peer, group: &Group, msg: &[u8]) -> (Option<Vec<u8>>, u64) {
    let (received, mut failed) = retry("process", || group.process_message(msg.to_vec()));
    match received {
        ReceivedMessage::Application { message } => {
            peer.wrote();
            (Some(message.plaintext), failed)
        }
        ReceivedMessage::Commit { commit } => {
            let ((), f) = retry("merge", || commit.merge());
            failed += f;
            peer.wrote();
            (None, failed)
        }
        _ => panic!("unexpected message kind"),
    }
}

/// Reload from storage (a new client over the same store) equals memory.
fn assert_reload_equals(peer: &Peer, name: &str, group: &Group) {
    let backend: Arc<dyn StorageBackend> = peer.store.clone();
    // Opening takes the store over (one commit of the lease record); the
    // test's own client writes nothing after this.
    let fresh = Client::new(backend, name.as_bytes().to_vec(), None).unwrap();
    peer.wrote();
    let reloaded = fresh.group(group.id()).unwrap();
    assert_eq!(
        reloaded.epoch().unwrap(),
        group.epoch().unwrap(),
        "{name} epoch"
    );
    assert_eq!(
        reloaded.members().unwrap(),
        group.members().unwrap(),
        "{name} members"
    );
    assert_eq!(
        reloaded.epoch_authenticator().unwrap(),
        group.epoch_authenticator().unwrap(),
        "{name} authenticator"
    );
}

#[test]
fn many_threads_on_many_groups_with_slow_flaky_storage() {
    let ops = env_u64("MLSKIT_STRESS_OPS", 40);
    let seed = env_u64("MLSKIT_STRESS_SEED", 7);
    let started = Instant::now();
    let report = watchdog(Duration::from_secs(240), move || {
        const GROUPS: usize = 8;
        let names = ["alice", "bob", "carol"];
        let peers: Vec<Arc<Peer>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Arc::new(Peer::new(n, seed + i as u64, 200)))
            .collect();
        let groups: Vec<Vec<Arc<Group>>> = (0..GROUPS)
            .map(|g| {
                // Rotate the creator so every client creates some groups.
                let order: Vec<Arc<Peer>> = (0..3).map(|i| peers[(g + i) % 3].clone()).collect();
                let hs = group_of(&order, format!("stress-{g}").into_bytes(), 5);
                // Back to peer order: groups[g][peer].
                let mut by_peer: Vec<Option<Arc<Group>>> = vec![None; 3];
                for (i, h) in hs.into_iter().enumerate() {
                    by_peer[(g + i) % 3] = Some(h);
                }
                by_peer.into_iter().map(Option::unwrap).collect()
            })
            .collect();
        for p in &peers {
            p.assert_accounted("setup");
            p.set_failures(7);
        }
        let start_epochs: Vec<u64> = groups.iter().map(|g| g[0].epoch().unwrap()).collect();
        let threads: Vec<_> = (0..GROUPS)
            .map(|g| {
                let peers = peers.clone();
                let hs = groups[g].clone();
                thread::spawn(move || {
                    let mut rng = Rng::new(seed ^ ((g as u64 + 1) * 7919));
                    let (mut msgs, mut commits, mut failures, mut attempts) =
                        (0u64, 0u64, 0u64, 0u64);
                    for op in 0..ops {
                        let s = rng.below(3);
                        attempts += 1;
                        if rng.chance(80) {
                            let text = format!("group {g} op {op} from {s}").into_bytes();
                            match hs[s].encrypt(text.clone(), Vec::new()) {
                                Err(e) if injected(&e) => {
                                    // Nothing to deliver: the failed encrypt left no trace.
                                    failures += 1;
                                    continue;
                                }
                                Err(e) => panic!("encrypt: {e:?}"),
                                Ok(ct) => {
                                    peers[s].wrote();
                                    msgs += 1;
                                    for r in (0..3).filter(|r| *r != s) {
                                        let (plain, f) = deliver(&peers[r], &hs[r], &ct);
                                        failures += f;
                                        assert_eq!(plain.as_deref(), Some(text.as_slice()));
                                        if rng.chance(25) {
                                            // Exactly once: a second delivery is refused.
                                            assert_eq!(
                                                hs[r].process_message(ct.clone()).err(),
                                                Some(MlsError::DuplicateMessage)
                                            );
                                        }
                                    }
                                }
                            }
                        } else {
                            let bundle = match hs[s].self_update() {
                                Err(e) if injected(&e) => {
                                    failures += 1;
                                    assert!(hs[s].pending_commit().unwrap().is_none());
                                    continue;
                                }
                                Err(e) => panic!("self_update: {e:?}"),
                                Ok(b) => b,
                            };
                            peers[s].wrote();
                            let ((), f) = retry("merge own", || hs[s].merge_pending_commit());
                            failures += f;
                            peers[s].wrote();
                            for r in (0..3).filter(|r| *r != s) {
                                let (_, f) = deliver(&peers[r], &hs[r], &bundle.commit);
                                failures += f;
                            }
                            commits += 1;
                        }
                    }
                    (msgs, commits, failures, attempts)
                })
            })
            .collect();
        let mut total = (0u64, 0u64, 0u64, 0u64);
        let mut commits_per_group = Vec::new();
        for t in threads {
            let (m, c, f, a) = t.join().unwrap();
            total = (total.0 + m, total.1 + c, total.2 + f, total.3 + a);
            commits_per_group.push(c);
        }
        for p in &peers {
            p.set_failures(0);
        }
        for (g, hs) in groups.iter().enumerate() {
            for (i, h) in hs.iter().enumerate() {
                assert_eq!(h.epoch().unwrap(), start_epochs[g] + commits_per_group[g]);
                assert_eq!(
                    h.epoch_authenticator().unwrap(),
                    hs[0].epoch_authenticator().unwrap()
                );
                assert_reload_equals(&peers[i], names[i], h);
            }
        }
        for (i, p) in peers.iter().enumerate() {
            p.assert_accounted(names[i]);
        }
        let failed_commits: u64 = peers
            .iter()
            .map(|p| p.store.failed_commits.load(Ordering::SeqCst))
            .sum();
        assert!(failed_commits > 0, "no failures were injected");
        (GROUPS, total, failed_commits)
    });
    let (threads, (msgs, commits, failures, attempts), failed_commits) = report;
    println!(
        "concurrency/many groups: {threads} threads x {} ops ({attempts} operations: {msgs} messages \
         each decrypted by 2 peers, {commits} commits; {failures} injected failures retried, \
         {failed_commits} backend commits refused) in {:.1}s",
        attempts / threads as u64,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn several_threads_on_one_group_with_slow_flaky_storage() {
    let ops = env_u64("MLSKIT_STRESS_OPS", 40);
    let seed = env_u64("MLSKIT_STRESS_SEED", 7);
    let started = Instant::now();
    let report = watchdog(Duration::from_secs(240), move || {
        const SENDERS: usize = 3;
        let names = ["alice", "bob", "carol"];
        let peers: Vec<Arc<Peer>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Arc::new(Peer::new(n, seed * 31 + i as u64, 300)))
            .collect();
        // A wide out-of-order window: sender threads publish in any order.
        let hs = group_of(&peers, b"one group".to_vec(), 100);
        for p in &peers {
            p.assert_accounted("setup");
            p.set_failures(7);
        }
        let start_epoch = hs[0].epoch().unwrap();
        // The Delivery Service: one ordered log.
        let log: Arc<Mutex<Vec<LogEntry>>> = Arc::default();
        let next_id = Arc::new(AtomicU64::new(0));
        let producing = Arc::new(AtomicUsize::new(SENDERS + 1));
        let done = Arc::new(AtomicBool::new(false));
        let sent: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
        let refused = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for t in 0..SENDERS {
            let (h, p, log, next_id, producing, sent, refused) = (
                hs[0].clone(),
                peers[0].clone(),
                log.clone(),
                next_id.clone(),
                producing.clone(),
                sent.clone(),
                refused.clone(),
            );
            threads.push(thread::spawn(move || {
                for _ in 0..ops {
                    let id = next_id.fetch_add(1, Ordering::SeqCst);
                    let text = format!("message {id} from thread {t}").into_bytes();
                    match h.encrypt(text.clone(), Vec::new()) {
                        Ok(ct) => {
                            p.wrote();
                            sent.lock().unwrap().insert(id, text);
                            log.lock().unwrap().push((Some(id), ct));
                        }
                        // The committer thread has a commit in flight, or storage failed.
                        Err(MlsError::PendingCommit) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if injected(&e) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("encrypt: {e:?}"),
                    }
                }
                producing.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        let commits = Arc::new(AtomicU64::new(0));
        {
            let (h, p, log, producing, commits) = (
                hs[0].clone(),
                peers[0].clone(),
                log.clone(),
                producing.clone(),
                commits.clone(),
            );
            threads.push(thread::spawn(move || {
                for _ in 0..(ops / 8).max(2) {
                    thread::sleep(Duration::from_millis(15));
                    let (bundle, _) = retry("self_update", || h.self_update());
                    p.wrote();
                    log.lock().unwrap().push((None, bundle.commit));
                    retry("merge own", || h.merge_pending_commit());
                    p.wrote();
                    commits.fetch_add(1, Ordering::SeqCst);
                }
                producing.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        // Receivers: one consumer each, in DS order.
        let received: Arc<Mutex<HashMap<(usize, u64), u32>>> = Arc::default();
        let mut consumers = Vec::new();
        for r in 1..3 {
            let (h, p, log, producing, sent, received) = (
                hs[r].clone(),
                peers[r].clone(),
                log.clone(),
                producing.clone(),
                sent.clone(),
                received.clone(),
            );
            consumers.push(thread::spawn(move || {
                let mut rng = Rng::new(seed + r as u64);
                let mut at = 0;
                loop {
                    let item = log.lock().unwrap().get(at).cloned();
                    let Some((id, msg)) = item else {
                        if producing.load(Ordering::SeqCst) == 0 && log.lock().unwrap().len() == at
                        {
                            break;
                        }
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    at += 1;
                    let (plain, _) = deliver(&p, &h, &msg);
                    if let Some(id) = id {
                        assert_eq!(plain.as_ref(), sent.lock().unwrap().get(&id));
                        *received.lock().unwrap().entry((r, id)).or_default() += 1;
                        if rng.chance(25) {
                            assert_eq!(
                                h.process_message(msg.clone()).err(),
                                Some(MlsError::DuplicateMessage)
                            );
                        }
                    }
                }
            }));
        }
        // Readers on every handle while all this happens.
        let reads = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for h in &hs {
            let (h, done, reads) = (h.clone(), done.clone(), reads.clone());
            readers.push(thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let e = h.epoch().unwrap();
                    assert!(e >= start_epoch);
                    assert_eq!(h.members().unwrap().len(), 3);
                    h.export_secret("stress".into(), Vec::new(), 32).unwrap();
                    let _ = h.pending_commit().unwrap();
                    reads.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(2));
                }
            }));
        }
        for t in threads.into_iter().chain(consumers) {
            t.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for t in readers {
            t.join().unwrap();
        }
        for p in &peers {
            p.set_failures(0);
        }
        let sent = sent.lock().unwrap();
        let received = received.lock().unwrap();
        for id in sent.keys() {
            for r in 1..3 {
                assert_eq!(
                    received.get(&(r, *id)),
                    Some(&1),
                    "message {id} at peer {r}"
                );
            }
        }
        assert_eq!(
            received.len(),
            sent.len() * 2,
            "a refused encrypt was delivered"
        );
        let commits = commits.load(Ordering::SeqCst);
        for (i, h) in hs.iter().enumerate() {
            assert_eq!(h.epoch().unwrap(), start_epoch + commits);
            assert_eq!(
                h.epoch_authenticator().unwrap(),
                hs[0].epoch_authenticator().unwrap()
            );
            assert_reload_equals(&peers[i], names[i], h);
            peers[i].assert_accounted(names[i]);
        }
        let threads = SENDERS + 1 + 2 + 3;
        (
            threads,
            sent.len() as u64,
            refused.load(Ordering::SeqCst),
            commits,
            reads.load(Ordering::SeqCst),
        )
    });
    let (threads, msgs, refused, commits, reads) = report;
    println!(
        "concurrency/one group: {threads} threads on one group ({SENDERS_DOC}): {msgs} messages \
         each decrypted exactly once by 2 peers, {refused} encrypts refused (pending commit or \
         injected failure) and never delivered, {commits} commits, {reads} read rounds in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// A DS log entry: the message id for application messages, and the bytes.
type LogEntry = (Option<u64>, Vec<u8>);

const SENDERS_DOC: &str = "3 senders, 1 committer, 2 receivers, 3 readers";

/// A slow host commit for group A must not hold up an encrypt on group B.
#[test]
fn slow_commit_of_one_group_does_not_delay_another_group() {
    let store = OneShot::new();
    let client = Client::new(store.backend(), b"alice".to_vec(), None).unwrap();
    let bob = Client::new(MapStore::new(), b"bob".to_vec(), None).unwrap();
    // Two groups with a second member each, so encrypt writes message secrets.
    let groups: Vec<Arc<Group>> = (0..2)
        .map(|_| {
            let g = client.create_group(None).unwrap();
            g.add_members(bob.create_key_packages(1, None).unwrap())
                .unwrap();
            g.merge_pending_commit().unwrap();
            g
        })
        .collect();
    store.arm(Next::SleepBefore(Duration::from_secs(3)));
    let slow = {
        let a = groups[0].clone();
        thread::spawn(move || a.encrypt(b"slow".to_vec(), vec![]).unwrap())
    };
    thread::sleep(Duration::from_millis(200)); // A is inside its commit now
    let started = Instant::now();
    groups[1].encrypt(b"fast".to_vec(), vec![]).unwrap();
    let waited = started.elapsed();
    slow.join().unwrap();
    assert!(
        waited < Duration::from_millis(1500),
        "group B waited {waited:?} for group A's commit"
    );
}
