//! An in-memory backend: a map behind a lock, batches applied under one lock.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Backend, BackendError, Value, Write};

/// Keeps everything in process memory; lost when the process ends.
#[derive(Default)]
pub struct MemoryBackend {
    values: RwLock<HashMap<Vec<u8>, Value>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored entries.
    pub fn len(&self) -> usize {
        self.values.read().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every entry, for tests and diagnostics.
    pub fn snapshot(&self) -> HashMap<Vec<u8>, Vec<u8>> {
        self.values
            .read()
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect())
            .unwrap_or_default()
    }
}

impl Backend for MemoryBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        let values = self
            .values
            .read()
            .map_err(|_| BackendError::new("memory store lock poisoned"))?;
        Ok(values.get(key).cloned())
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        let mut values = self
            .values
            .write()
            .map_err(|_| BackendError::new("memory store lock poisoned"))?;
        for write in batch {
            match write {
                Write::Put { key, value } => {
                    values.insert(key, value);
                }
                Write::Delete { key } => {
                    values.remove(&key);
                }
            }
        }
        Ok(())
    }
}
