//! Re-entrancy: a storage callback that calls back into MLSKit gets
//! `ReentrantCall` at once instead of deadlocking on a lock its own thread
//! holds; the outer operation then completes (callback ignores the error) or
//! fails cleanly (callback reports it), and nothing is half-written.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::watchdog::watchdog;
use common::MapStore;
use mlskit::{
    Client, Group, MlsError, ReceivedMessage, StorageBackend, StorageError, StorageWrite,
};

type Hook = Arc<dyn Fn() -> Result<(), StorageError> + Send + Sync>;

/// A map store that runs a hook inside `read` and/or `commit`, and records
/// what the SDK calls made from inside the hook returned.
#[derive(Default)]
struct Hooked {
    inner: MapStore,
    on_read: Mutex<Option<Hook>>,
    on_commit: Mutex<Option<Hook>>,
    seen: Mutex<Vec<(Result<(), MlsError>, Duration)>>,
}

impl Hooked {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn set_commit(&self, hook: Option<Hook>) {
        *self.on_commit.lock().unwrap() = hook;
    }

    fn set_read(&self, hook: Option<Hook>) {
        *self.on_read.lock().unwrap() = hook;
    }

    /// Records the outcome of an SDK call made from the callback.
    fn record<T>(&self, call: impl FnOnce() -> Result<T, MlsError>) -> Result<(), MlsError> {
        let t = Instant::now();
        let r = call().map(|_| ());
        self.seen.lock().unwrap().push((r.clone(), t.elapsed()));
        r
    }

    /// Every recorded inner call failed with `ReentrantCall`, quickly; returns how many.
    fn assert_all_refused(&self) -> usize {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        assert!(!seen.is_empty(), "the hook never ran");
        for (r, took) in &seen {
            assert_eq!(r, &Err(MlsError::ReentrantCall));
            assert!(*took < Duration::from_secs(1), "refusal took {took:?}");
        }
        seen.len()
    }
}

impl StorageBackend for Hooked {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        let hook = self.on_read.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook()?;
        }
        self.inner.read(key)
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let hook = self.on_commit.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook()?;
        }
        self.inner.commit(writes)
    }
}

struct Pair {
    store: Arc<Hooked>,
    alice: Arc<Client>,
    ga: Arc<Group>,
    gb: Arc<Group>,
}

fn pair() -> Pair {
    let store = Hooked::new();
    let backend: Arc<dyn StorageBackend> = store.clone();
    let alice = Client::new(backend, b"alice".to_vec(), None).unwrap();
    let bob = Client::new(mlskit::memory_storage(), b"bob".to_vec(), None).unwrap();
    let ga = alice.create_group(None).unwrap();
    let kp = bob.create_key_packages(1, None).unwrap().remove(0);
    let bundle = ga.add_members(vec![kp]).unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = bob.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    Pair {
        store,
        alice,
        ga,
        gb,
    }
}

fn talk(p: &Pair) {
    let ct = p.ga.encrypt(b"still fine".to_vec(), Vec::new()).unwrap();
    match p.gb.process_message(ct).unwrap() {
        ReceivedMessage::Application { message } => assert_eq!(message.plaintext, b"still fine"),
        _ => panic!("expected an application message"),
    }
    let ct = p.gb.encrypt(b"back".to_vec(), Vec::new()).unwrap();
    assert!(matches!(
        p.ga.process_message(ct).unwrap(),
        ReceivedMessage::Application { .. }
    ));
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn commit_callback_calling_group_ids_is_refused_and_the_outer_call_completes() {
    watchdog(LIMIT, || {
        let p = pair();
        let (store, client) = (p.store.clone(), p.alice.clone());
        p.store.set_commit(Some(Arc::new(move || {
            // Ignore the refusal and go on committing.
            let _ = store.record(|| client.group_ids());
            Ok(())
        })));
        let before = p.ga.epoch().unwrap();
        let ct = p.ga.encrypt(b"hello".to_vec(), Vec::new()).unwrap();
        let bundle = p.ga.self_update().unwrap();
        p.ga.merge_pending_commit().unwrap();
        assert_eq!(p.store.assert_all_refused(), 3);
        assert_eq!(p.ga.epoch().unwrap(), before + 1);
        assert!(matches!(
            p.gb.process_message(ct).unwrap(),
            ReceivedMessage::Application { .. }
        ));
        match p.gb.process_message(bundle.commit).unwrap() {
            ReceivedMessage::Commit { commit } => commit.merge().unwrap(),
            _ => panic!("expected a commit"),
        }
        p.store.set_commit(None);
        assert_eq!(p.alice.group_ids().unwrap(), vec![p.ga.id()]);
        talk(&p);
    });
}

#[test]
fn commit_callback_calling_the_same_group_is_refused_not_deadlocked() {
    watchdog(LIMIT, || {
        let p = pair();
        let (store, group) = (p.store.clone(), p.ga.clone());
        p.store.set_commit(Some(Arc::new(move || {
            // Each of these would wait for the group lock the caller holds.
            let _ = store.record(|| group.encrypt(b"inner".to_vec(), Vec::new()));
            let _ = store.record(|| group.epoch());
            let _ = store.record(|| group.self_update());
            Ok(())
        })));
        p.ga.encrypt(b"outer".to_vec(), Vec::new()).unwrap();
        assert_eq!(p.store.assert_all_refused(), 3);
        p.store.set_commit(None);
        talk(&p);
    });
}

#[test]
fn callback_that_reports_the_refusal_fails_the_outer_call_cleanly() {
    watchdog(LIMIT, || {
        let p = pair();
        let (store, client) = (p.store.clone(), p.alice.clone());
        p.store.set_commit(Some(Arc::new(move || {
            store
                .record(|| client.create_key_packages(1, None))
                .map_err(|e| StorageError::Backend {
                    reason: format!("callback failed: {e}"),
                })
        })));
        let before = p.store.inner.snapshot();
        let epoch = p.ga.epoch().unwrap();
        let err = p.ga.self_update().unwrap_err();
        assert!(
            matches!(&err, MlsError::StorageBackend { reason } if reason.contains("must not call the SDK")),
            "{err:?}"
        );
        assert_eq!(p.store.assert_all_refused(), 1);
        assert!(
            p.store.inner.snapshot() == before,
            "a refused batch was written"
        );
        assert_eq!(p.ga.epoch().unwrap(), epoch);
        assert!(p.ga.pending_commit().unwrap().is_none());
        p.store.set_commit(None);
        talk(&p);
    });
}

#[test]
fn read_callback_calling_the_client_is_refused() {
    watchdog(LIMIT, || {
        let p = pair();
        let id = p.ga.id();
        // A fresh client must load the group from storage: `group()` reads
        // while holding the client's group registry lock.
        let backend: Arc<dyn StorageBackend> = p.store.clone();
        let fresh = Client::new(backend, b"alice".to_vec(), None).unwrap();
        let (store, client, gid) = (p.store.clone(), fresh.clone(), id.clone());
        p.store.set_read(Some(Arc::new(move || {
            let _ = store.record(|| client.group(gid.clone()));
            let _ = store.record(|| client.key_packages());
            Ok(())
        })));
        let g = fresh.group(id).unwrap();
        p.store.assert_all_refused();
        p.store.set_read(None);
        assert_eq!(
            g.epoch_authenticator().unwrap(),
            p.ga.epoch_authenticator().unwrap()
        );
    });
}

#[test]
fn callback_during_merge_cannot_merge_or_discard_the_same_commit() {
    watchdog(LIMIT, || {
        let p = pair();
        let bundle = p.gb.self_update().unwrap();
        p.gb.merge_pending_commit().unwrap();
        let staged = match p.ga.process_message(bundle.commit).unwrap() {
            ReceivedMessage::Commit { commit } => commit,
            _ => panic!("expected a commit"),
        };
        let (store, inner) = (p.store.clone(), staged.clone());
        p.store.set_commit(Some(Arc::new(move || {
            let _ = store.record(|| inner.merge());
            // `discard` cannot report the refusal: it must return without
            // touching the commit the outer merge is applying.
            inner.discard();
            Ok(())
        })));
        staged.merge().unwrap();
        assert_eq!(p.store.assert_all_refused(), 1);
        p.store.set_commit(None);
        assert_eq!(p.ga.epoch().unwrap(), p.gb.epoch().unwrap());
        talk(&p);
    });
}

#[test]
fn an_sdk_call_after_a_callback_returned_is_not_refused() {
    // The guard is per thread and ends with the call: a panic inside a
    // callback (caught by the SDK and reported as a storage failure) does not
    // leave the thread marked as "inside a callback".
    watchdog(LIMIT, || {
        let p = pair();
        p.store
            .set_commit(Some(Arc::new(|| panic!("callback panicked"))));
        let ga = p.ga.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ga.encrypt(b"boom".to_vec(), Vec::new())
        }));
        match outcome {
            Ok(Err(mlskit::MlsError::StorageBackend { reason })) => {
                assert!(reason.contains("panicked"), "{reason}")
            }
            other => panic!("expected a StorageBackend error, got {other:?}"),
        }
        p.store.set_commit(None);
        assert!(p.alice.group_ids().is_ok());
        talk(&p);
    });
}
