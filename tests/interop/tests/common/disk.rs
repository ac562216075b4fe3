//! Persistent state for mls-rs members: one shared map (the member's "disk")
//! behind mls-rs's group-state and key-package storage traits. Every step
//! builds a fresh mls-rs client over it, so nothing survives in memory.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use mls_rs::mls_rs_codec::{self, MlsDecode, MlsEncode};
use mls_rs_core::group::{EpochRecord, GroupState, GroupStateStorage};
use mls_rs_core::key_package::{KeyPackageData, KeyPackageStorage};
use zeroize::Zeroizing;

/// Past epochs kept per group (what mls-rs's in-memory storage keeps by default).
pub const KEPT_EPOCHS: usize = 3;

/// The key of a stored value: what it is and whose.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// The group's current state (snapshot), by group id.
    State(Vec<u8>),
    /// A past epoch's secrets, by group id and epoch.
    Epoch(Vec<u8>, u64),
    /// A key package's private keys, by key package reference.
    KeyPackage(Vec<u8>),
}

/// One mls-rs member's disk. Clones share the same map.
#[derive(Clone, Default)]
pub struct RsDisk(Arc<Mutex<BTreeMap<Slot, Vec<u8>>>>);

impl RsDisk {
    fn map(&self) -> MutexGuard<'_, BTreeMap<Slot, Vec<u8>>> {
        self.0.lock().unwrap()
    }

    /// Stored epochs of a group, oldest first.
    fn epochs(map: &BTreeMap<Slot, Vec<u8>>, group_id: &[u8]) -> Vec<u64> {
        map.keys()
            .filter_map(|k| match k {
                Slot::Epoch(g, e) if g == group_id => Some(*e),
                _ => None,
            })
            .collect()
    }
}

impl GroupStateStorage for RsDisk {
    type Error = Infallible;

    fn state(&self, group_id: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self
            .map()
            .get(&Slot::State(group_id.to_vec()))
            .map(|v| Zeroizing::new(v.clone())))
    }

    fn epoch(
        &self,
        group_id: &[u8],
        epoch_id: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self
            .map()
            .get(&Slot::Epoch(group_id.to_vec(), epoch_id))
            .map(|v| Zeroizing::new(v.clone())))
    }

    fn write(
        &mut self,
        state: GroupState,
        epoch_inserts: Vec<EpochRecord>,
        epoch_updates: Vec<EpochRecord>,
    ) -> Result<(), Self::Error> {
        let mut map = self.map();
        let id = state.id.clone();
        map.insert(Slot::State(id.clone()), state.data.to_vec());
        for e in epoch_inserts {
            map.insert(Slot::Epoch(id.clone(), e.id), e.data.to_vec());
        }
        for e in epoch_updates {
            if let Some(stored) = map.get_mut(&Slot::Epoch(id.clone(), e.id)) {
                *stored = e.data.to_vec();
            }
        }
        let epochs = Self::epochs(&map, &id);
        for old in &epochs[..epochs.len().saturating_sub(KEPT_EPOCHS)] {
            map.remove(&Slot::Epoch(id.clone(), *old));
        }
        Ok(())
    }

    fn max_epoch_id(&self, group_id: &[u8]) -> Result<Option<u64>, Self::Error> {
        Ok(Self::epochs(&self.map(), group_id).last().copied())
    }
}

impl KeyPackageStorage for RsDisk {
    type Error = mls_rs_codec::Error;

    fn delete(&mut self, id: &[u8]) -> Result<(), Self::Error> {
        self.map().remove(&Slot::KeyPackage(id.to_vec()));
        Ok(())
    }

    fn insert(&mut self, id: Vec<u8>, pkg: KeyPackageData) -> Result<(), Self::Error> {
        let bytes = pkg.mls_encode_to_vec()?;
        self.map().insert(Slot::KeyPackage(id), bytes);
        Ok(())
    }

    fn get(&self, id: &[u8]) -> Result<Option<KeyPackageData>, Self::Error> {
        self.map()
            .get(&Slot::KeyPackage(id.to_vec()))
            .map(|bytes| KeyPackageData::mls_decode(&mut bytes.as_slice()))
            .transpose()
    }
}
