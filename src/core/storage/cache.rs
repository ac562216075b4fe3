//! A read cache in front of a client's backend, so that operations on a group
//! already in memory make no storage reads (OpenMLS reads its epoch key pairs
//! and proposal references back on every commit and merge).
//!
//! Only small OpenMLS records are kept (the large ones, such as the ratchet
//! tree, are read once when a group is loaded and live in the group from then
//! on; the SDK's own records are read rarely and always from the store). The
//! cache learns from reads and from committed batches; a failed commit clears
//! it, since the backend's state is then unknown, and so does any failed
//! operation (its cause may be a broken stored value). It assumes what the storage
//! contract already asks: one live client per store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::codec::{self, Namespace};
use super::{Backend, BackendError, Value, Write};

/// Whether a record may be cached at all.
fn cacheable(key: &[u8]) -> bool {
    codec::in_namespace(key, Namespace::Mls)
}

/// Values larger than this are never cached.
const MAX_VALUE_BYTES: usize = 16 * 1024;
/// When the cached bytes (keys + values) exceed this, the cache starts over.
const MAX_TOTAL_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct State {
    /// Key to value, `None` for a key known to be absent.
    entries: HashMap<Vec<u8>, Option<Value>>,
    bytes: usize,
    /// Bumped by every commit: a read that raced with one is not cached.
    generation: u64,
}

impl State {
    fn insert(&mut self, key: Vec<u8>, value: Option<Value>) {
        self.remove(&key);
        let size = key.len() + value.as_ref().map_or(0, |v| v.len());
        if self.bytes + size > MAX_TOTAL_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.entries.insert(key, value);
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some((key, value)) = self.entries.remove_entry(key) {
            self.bytes -= key.len() + value.map_or(0, |v| v.len());
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// A backend with a bounded cache of small values in front of it.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    state: Mutex<State>,
}

impl CachedBackend {
    /// Caches reads of `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a plain map updated in single steps: sound after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for CachedBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        if !cacheable(key) {
            return self.inner.read(key);
        }
        let generation = {
            let state = self.state();
            if let Some(value) = state.entries.get(key) {
                return Ok(value.clone());
            }
            state.generation
        };
        let value = self.inner.read(key)?;
        let small = value.as_ref().is_none_or(|v| v.len() <= MAX_VALUE_BYTES);
        let mut state = self.state();
        if small && state.generation == generation {
            state.insert(key.to_vec(), value.clone());
        }
        Ok(value)
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        // Forget every key of the batch first: a read running alongside this
        // commit sees the generation change and does not cache what it read.
        {
            let mut state = self.state();
            state.generation += 1;
            for write in &batch {
                state.remove(write.key());
            }
        }
        let learned: Vec<(Vec<u8>, Option<Value>)> = batch
            .iter()
            .filter(|w| cacheable(w.key()))
            .filter_map(|w| match w {
                Write::Put { key, value } if value.len() <= MAX_VALUE_BYTES => {
                    Some((key.clone(), Some(value.clone())))
                }
                Write::Put { .. } => None,
                Write::Delete { key } => Some((key.clone(), None)),
            })
            .collect();
        let result = self.inner.commit(batch);
        let mut state = self.state();
        state.generation += 1;
        match &result {
            Ok(()) => {
                for (key, value) in learned {
                    state.insert(key, value);
                }
            }
            Err(_) => state.clear(),
        }
        result
    }

    fn invalidate(&self) {
        {
            let mut state = self.state();
            state.generation += 1;
            state.clear();
        }
        self.inner.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::storage::CountingBackend as Counting;
    use std::sync::atomic::Ordering;

    /// An OpenMLS record's key (the only ones cached).
    fn k(name: &str) -> Vec<u8> {
        codec::key(Namespace::Mls, "test@1", name.as_bytes())
    }

    fn put(key: &[u8], value: &[u8]) -> Write {
        Write::Put {
            key: k(std::str::from_utf8(key).unwrap()),
            value: value.to_vec().into(),
        }
    }

    #[test]
    fn reads_and_commits_fill_the_cache() {
        let base = Arc::new(Counting::default());
        base.inner.commit(vec![put(b"a", b"1")]).unwrap();
        let cache = CachedBackend::new(base.clone());
        assert_eq!(
            cache.read(&k("a")).unwrap().map(|v| v.to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(
            cache.read(&k("a")).unwrap().map(|v| v.to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(cache.read(&k("absent")).unwrap().map(|v| v.to_vec()), None);
        assert_eq!(cache.read(&k("absent")).unwrap().map(|v| v.to_vec()), None);
        assert_eq!(base.reads.load(Ordering::SeqCst), 2);

        cache
            .commit(vec![
                put(b"a", b"2"),
                put(b"b", b"3"),
                Write::Delete { key: k("absent") },
            ])
            .unwrap();
        assert_eq!(
            cache.read(&k("a")).unwrap().map(|v| v.to_vec()),
            Some(b"2".to_vec())
        );
        assert_eq!(
            cache.read(&k("b")).unwrap().map(|v| v.to_vec()),
            Some(b"3".to_vec())
        );
        assert_eq!(cache.read(&k("absent")).unwrap().map(|v| v.to_vec()), None);
        assert_eq!(base.reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_commit_forgets_everything() {
        let base = Arc::new(Counting::default());
        let cache = CachedBackend::new(base.clone());
        cache.commit(vec![put(b"a", b"1")]).unwrap();
        base.refuse.store(true, Ordering::SeqCst);
        assert!(cache.commit(vec![put(b"a", b"2")]).is_err());
        assert_eq!(
            cache.read(&k("a")).unwrap().map(|v| v.to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(base.reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn sdk_records_are_always_read_from_the_store() {
        let base = Arc::new(Counting::default());
        let cache = CachedBackend::new(base.clone());
        let key = codec::key(Namespace::Sdk, "groups", b"");
        cache
            .commit(vec![Write::Put {
                key: key.clone(),
                value: b"1".to_vec().into(),
            }])
            .unwrap();
        cache.read(&key).unwrap().map(|v| v.to_vec());
        cache.read(&key).unwrap().map(|v| v.to_vec());
        assert_eq!(base.reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn large_values_are_read_through_and_the_total_is_bounded() {
        let base = Arc::new(Counting::default());
        let big = vec![7u8; MAX_VALUE_BYTES + 1];
        base.inner.commit(vec![put(b"big", &big)]).unwrap();
        let cache = CachedBackend::new(base.clone());
        cache.read(&k("big")).unwrap().map(|v| v.to_vec());
        cache.read(&k("big")).unwrap().map(|v| v.to_vec());
        assert_eq!(base.reads.load(Ordering::SeqCst), 2);

        let value = vec![1u8; MAX_VALUE_BYTES];
        for i in 0..(2 * MAX_TOTAL_BYTES / MAX_VALUE_BYTES) {
            cache
                .commit(vec![put(format!("k{i}").as_bytes(), &value)])
                .unwrap();
            assert!(cache.state().bytes <= MAX_TOTAL_BYTES);
        }
    }
}
