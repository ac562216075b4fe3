//! Large OpenMLS records stored in chunks, so that a small change to a large
//! record writes only the chunks that changed.
//!
//! OpenMLS writes its message-secrets record (the secret tree of the current
//! epoch and of the past epochs kept for late messages) back whole after every
//! encrypt and decrypt: about 80 KB at 100 members and 770 KB at 1,000, of
//! which a message changes a few KB at the end. This layer stores such a
//! record, when above [`CHUNKED_ABOVE`] bytes, as a small header under its own
//! key plus fixed-size chunks under keys of their own; a write puts only the
//! chunks whose hash differs from the header it replaces, and deletes the
//! chunks it no longer needs, all in the same atomic batch.
//!
//! Header: [`MAGIC`] (0xFF: a CBOR "break", which no CBOR value starts with, so
//! plain values written before this layer existed still read as they are),
//! a format byte, the value's length (u64 BE) and one 16-byte XXH3-128 hash
//! per chunk. A chunk that is missing or does not match its hash makes the
//! record read back as its header, which does not decode: `StorageCorrupt`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::codec::{self, Namespace};
use super::provider::label;
use super::{extend_wiped, Backend, BackendError, Value, Write};

/// OpenMLS records larger than this are stored in chunks.
pub const CHUNKED_ABOVE: usize = 32 * 1024;
/// Size of every chunk but the last.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks deleted with a record whose header is damaged (64 MiB of record).
const MAX_CHUNKS_OF_A_BROKEN_HEADER: usize = 4096;
/// First byte of a chunked record's header.
pub const MAGIC: u8 = 0xFF;
const HEADER_FORMAT: u8 = 1;
const HASH_BYTES: usize = 16;
const HEADER_FIXED: usize = 2 + 8;
/// Headers remembered at most (one or two per loaded group).
const MAX_HEADERS: usize = 4096;

type Hash = [u8; HASH_BYTES];

/// XXH3-128 of a chunk: tells a changed chunk from an unchanged one, and a
/// chunk damaged in the store from an intact one. Not a defence against a
/// store that forges data on purpose: `encrypted_storage` authenticates.
fn hash(chunk: &[u8]) -> Hash {
    xxhash_rust::xxh3::xxh3_128(chunk).to_be_bytes()
}

/// Whether records under `key` may be stored in chunks: only the
/// message-secrets records, which OpenMLS rewrites on every message. Knowing
/// it from the key alone keeps writes of every other record free of reads.
fn chunkable(key: &[u8]) -> bool {
    codec::is_record(key, Namespace::Mls, label::MESSAGE_SECRETS)
}

/// The key of chunk `index` of the record under `key`.
fn chunk_key(key: &[u8], index: usize) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(key.len() + 8);
    encoded.extend_from_slice(key);
    encoded.extend_from_slice(&(index as u64).to_be_bytes());
    codec::key(Namespace::Chunk, "chunk", &encoded)
}

/// The parsed header of a chunked record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    len: u64,
    hashes: Vec<Hash>,
}

impl Header {
    fn of(value: &[u8]) -> Self {
        Self {
            len: value.len() as u64,
            hashes: value.chunks(CHUNK_BYTES).map(hash).collect(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED + self.hashes.len() * HASH_BYTES);
        out.push(MAGIC);
        out.push(HEADER_FORMAT);
        out.extend_from_slice(&self.len.to_be_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// `None` for a plain value; `Some(None)` for a header that is broken.
    fn parse(stored: &[u8]) -> Option<Option<Self>> {
        if stored.first() != Some(&MAGIC) {
            return None;
        }
        let parsed = (|| {
            if stored.get(1) != Some(&HEADER_FORMAT) {
                return None;
            }
            let len = u64::from_be_bytes(stored.get(2..HEADER_FIXED)?.try_into().ok()?);
            let rest = &stored[HEADER_FIXED..];
            if !rest.len().is_multiple_of(HASH_BYTES) {
                return None;
            }
            let hashes = rest
                .chunks_exact(HASH_BYTES)
                .map(Hash::try_from)
                .collect::<Result<Vec<Hash>, _>>()
                .ok()?;
            let expected = usize::try_from(len).ok()?.div_ceil(CHUNK_BYTES);
            (hashes.len() == expected).then_some(Self { len, hashes })
        })();
        Some(parsed)
    }
}

/// What this layer knows about a key's stored form: `None` = plain or absent.
type Known = Option<Header>;

/// A backend that stores large OpenMLS records in chunks (see the module docs).
pub struct ChunkedBackend {
    inner: Arc<dyn Backend>,
    /// Headers of the records this client read or wrote, by record key.
    known: Mutex<HashMap<Vec<u8>, Known>>,
    /// Reads of a chunked record (header, then chunks) never interleave with a
    /// commit of that record, so that they see one version of it. The locks
    /// are per record key: a commit locks only the records it writes, so a
    /// slow host commit of one group never holds up another group.
    records: RecordLocks,
}

/// Reader/writer locks on record keys, made on first use and dropped when
/// free. A commit takes all its keys at once (so two commits never deadlock).
#[derive(Default)]
struct RecordLocks {
    /// Per locked key: how many readers hold it, or `None` for a writer.
    held: Mutex<HashMap<Vec<u8>, Option<usize>>>,
    freed: Condvar,
}

impl RecordLocks {
    fn held(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Option<usize>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shares `key` with other readers until the guard drops.
    fn read(&self, key: &[u8]) -> RecordGuard<'_> {
        let mut held = self.held();
        loop {
            match held.get_mut(key) {
                None => {
                    held.insert(key.to_vec(), Some(1));
                    break;
                }
                Some(Some(readers)) => {
                    *readers += 1;
                    break;
                }
                Some(None) => held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner()),
            }
        }
        RecordGuard {
            locks: self,
            keys: vec![key.to_vec()],
        }
    }

    /// Holds every key of `keys` alone until the guard drops.
    fn write(&self, keys: Vec<Vec<u8>>) -> RecordGuard<'_> {
        let mut held = self.held();
        while keys.iter().any(|k| held.contains_key(k)) {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        for key in &keys {
            held.insert(key.clone(), None);
        }
        RecordGuard { locks: self, keys }
    }
}

/// Releases its keys when dropped.
struct RecordGuard<'a> {
    locks: &'a RecordLocks,
    keys: Vec<Vec<u8>>,
}

impl Drop for RecordGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held();
        for key in &self.keys {
            if let Some(Some(readers)) = held.get_mut(key) {
                if *readers > 1 {
                    *readers -= 1;
                    continue;
                }
            }
            held.remove(key);
        }
        drop(held);
        self.locks.freed.notify_all();
    }
}

impl ChunkedBackend {
    /// Stores large records of `inner` in chunks.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            known: Mutex::new(HashMap::new()),
            records: RecordLocks::default(),
        }
    }

    fn known(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Known>> {
        // A plain map updated in single steps: sound after a panic.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, key: &[u8], header: Known) {
        let mut known = self.known();
        if known.len() >= MAX_HEADERS {
            known.clear();
        }
        known.insert(key.to_vec(), header);
    }

    /// The stored form of `key` before the batch being built: from what this
    /// layer knows, else from a read of the store.
    fn stored_form(&self, key: &[u8]) -> Result<Known, BackendError> {
        if let Some(known) = self.known().get(key) {
            return Ok(known.clone());
        }
        Ok(self
            .inner
            .read(key)?
            .and_then(|stored| Header::parse(&stored).flatten()))
    }

    /// Whether the stored value under `key` is a header that does not parse.
    fn has_broken_header(&self, key: &[u8]) -> Result<bool, BackendError> {
        Ok(self
            .inner
            .read(key)?
            .is_some_and(|stored| matches!(Header::parse(&stored), Some(None))))
    }

    fn read_chunks(&self, key: &[u8], header: &Header) -> Result<Option<Value>, BackendError> {
        // No capacity from the header: a broken one may claim any length.
        let mut value = Value::default();
        for (index, expected) in header.hashes.iter().enumerate() {
            match self.inner.read(&chunk_key(key, index))? {
                Some(chunk) if hash(&chunk) == *expected => extend_wiped(&mut value, &chunk),
                _ => return Ok(None),
            }
        }
        Ok((value.len() as u64 == header.len).then_some(value))
    }
}

impl Backend for ChunkedBackend {
    fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
        if !chunkable(key) {
            return self.inner.read(key);
        }
        let _view = self.records.read(key);
        let Some(stored) = self.inner.read(key)? else {
            self.remember(key, None);
            return Ok(None);
        };
        match Header::parse(&stored) {
            None => {
                self.remember(key, None);
                Ok(Some(stored))
            }
            Some(Some(header)) => match self.read_chunks(key, &header)? {
                Some(value) => {
                    self.remember(key, Some(header));
                    Ok(Some(value))
                }
                // A chunk is missing or altered: hand up the header, which the
                // codec rejects as corrupt (with the record's name).
                None => Ok(Some(stored)),
            },
            Some(None) => Ok(Some(stored)),
        }
    }

    fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
        // The chunkable records written, locked together.
        let mut touched: Vec<Vec<u8>> = batch
            .iter()
            .filter(|w| chunkable(w.key()))
            .map(|w| w.key().to_vec())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let _exclusive = self.records.write(touched);
        // The form of every touched record as this batch leaves it.
        let mut after: HashMap<Vec<u8>, Known> = HashMap::new();
        let mut out = Vec::with_capacity(batch.len());
        for write in batch {
            if !chunkable(write.key()) {
                out.push(write);
                continue;
            }
            let key = write.key().to_vec();
            let before = match after.get(&key) {
                Some(known) => known.clone(),
                None => self.stored_form(&key)?,
            };
            let old_hashes = before.map(|h| h.hashes).unwrap_or_default();
            let new = match write {
                Write::Put { key, value } if value.len() > CHUNKED_ABOVE => {
                    let header = Header::of(&value);
                    for (index, chunk) in value.chunks(CHUNK_BYTES).enumerate() {
                        if old_hashes.get(index) != Some(&header.hashes[index]) {
                            out.push(Write::put(chunk_key(&key, index), chunk.to_vec()));
                        }
                    }
                    for index in header.hashes.len()..old_hashes.len() {
                        out.push(Write::Delete {
                            key: chunk_key(&key, index),
                        });
                    }
                    out.push(Write::put(key, header.encode()));
                    Some(header)
                }
                plain => {
                    // A damaged header no longer says how many chunks there
                    // are: deleting its record deletes every chunk it can have.
                    let deleting = matches!(plain, Write::Delete { .. });
                    let chunks =
                        if deleting && old_hashes.is_empty() && self.has_broken_header(&key)? {
                            MAX_CHUNKS_OF_A_BROKEN_HEADER
                        } else {
                            old_hashes.len()
                        };
                    for index in 0..chunks {
                        out.push(Write::Delete {
                            key: chunk_key(&key, index),
                        });
                    }
                    out.push(plain);
                    None
                }
            };
            after.insert(key, new);
        }
        match self.inner.commit(out) {
            Ok(()) => {
                for (key, header) in after {
                    self.remember(&key, header);
                }
                Ok(())
            }
            Err(e) => {
                self.known().clear();
                Err(e)
            }
        }
    }

    fn invalidate(&self) {
        self.known().clear();
        self.inner.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::storage::CountingBackend as Counting;
    use std::sync::atomic::Ordering;

    /// A counting memory store and the chunk layer over it.
    fn layered() -> (Arc<Counting>, ChunkedBackend) {
        let base = Arc::new(Counting::default());
        let layer = ChunkedBackend::new(base.clone());
        (base, layer)
    }

    /// The key of a message-secrets record (the only records chunked).
    fn k(name: &str) -> Vec<u8> {
        codec::key(Namespace::Mls, "message_secrets@1", name.as_bytes())
    }

    fn put(key: &[u8], value: &[u8]) -> Write {
        Write::Put {
            key: key.to_vec(),
            value: value.to_vec().into(),
        }
    }

    /// A value of `len` bytes that differs from `pattern(len, s)` for another s.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Commits a record of `chunks` whole chunks, its bytes set by `seed`.
    fn write(layer: &ChunkedBackend, key: &[u8], chunks: usize, seed: u8) {
        layer
            .commit(vec![put(key, &pattern(chunks * CHUNK_BYTES, seed))])
            .unwrap();
    }

    /// Number of keys stored in the backend below.
    fn stored_keys(base: &Counting) -> usize {
        base.inner.len()
    }

    /// A memory store whose commits of `slow` wait until `release` is sent.
    struct Gate {
        inner: crate::core::storage::memory::MemoryBackend,
        slow: Vec<u8>,
        entered: std::sync::mpsc::SyncSender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Backend for Gate {
        fn read(&self, key: &[u8]) -> Result<Option<Value>, BackendError> {
            self.inner.read(key)
        }

        fn commit(&self, batch: Vec<Write>) -> Result<(), BackendError> {
            if batch.iter().any(|w| w.key() == self.slow.as_slice()) {
                self.entered.send(()).unwrap();
                self.release.lock().unwrap().recv().unwrap();
            }
            self.inner.commit(batch)
        }
    }

    #[test]
    fn a_commit_stuck_in_the_host_holds_up_no_other_record() {
        let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
        let (release, release_rx) = std::sync::mpsc::channel();
        let slow = k("slow group");
        let layer = Arc::new(ChunkedBackend::new(Arc::new(Gate {
            inner: Default::default(),
            slow: slow.clone(),
            entered: entered_tx,
            release: Mutex::new(release_rx),
        })));
        let others: Vec<Vec<u8>> = (0..200).map(|i| k(&format!("group {i}"))).collect();
        for key in &others {
            write(&layer, key, 2, 1);
        }
        let stuck = {
            let layer = layer.clone();
            let slow = slow.clone();
            std::thread::spawn(move || write(&layer, &slow, 2, 2))
        };
        entered.recv().unwrap();
        // With locks shared between keys (say, 64 stripes), one of 200 other
        // records would share the stuck commit's lock and wait for it.
        let (done_tx, done) = std::sync::mpsc::channel();
        {
            let layer = layer.clone();
            let others = others.clone();
            std::thread::spawn(move || {
                for key in &others {
                    assert!(layer.read(key).unwrap().is_some());
                    write(&layer, key, 2, 3);
                }
                done_tx.send(()).unwrap();
            });
        }
        let finished = done.recv_timeout(std::time::Duration::from_secs(10));
        release.send(()).unwrap();
        stuck.join().unwrap();
        assert!(
            finished.is_ok(),
            "another record waited for the stuck commit"
        );
        assert!(layer.read(&slow).unwrap().is_some());
    }

    #[test]
    fn a_large_record_round_trips_and_a_small_change_writes_one_chunk() {
        let (base, layer) = layered();
        let key = k("secrets");
        let mut value = pattern(10 * CHUNK_BYTES + 100, 1);
        layer.commit(vec![put(&key, &value)]).unwrap();
        // Header + 11 chunks.
        assert_eq!(stored_keys(&base), 12);
        assert_eq!(
            layer.read(&key).unwrap().map(|v| v.to_vec()),
            Some(value.clone())
        );

        // Change a byte in chunk 4 only: that chunk and the header are written.
        value[4 * CHUNK_BYTES + 7] ^= 0xAA;
        let written = base.bytes.load(Ordering::SeqCst);
        layer.commit(vec![put(&key, &value)]).unwrap();
        let delta = base.bytes.load(Ordering::SeqCst) - written;
        assert_eq!(delta, CHUNK_BYTES + HEADER_FIXED + 11 * HASH_BYTES);
        assert_eq!(
            layer.read(&key).unwrap().map(|v| v.to_vec()),
            Some(value.clone())
        );
        // A fresh layer (a restart) reads the same value back.
        assert_eq!(
            ChunkedBackend::new(base.clone())
                .read(&key)
                .unwrap()
                .map(|v| v.to_vec()),
            Some(value)
        );
    }

    #[test]
    fn shrinking_growing_and_deleting_leave_no_stray_chunks() {
        let (base, layer) = layered();
        let key = k("g1");
        write(&layer, &key, 5, 2);
        assert_eq!(stored_keys(&base), 6);
        write(&layer, &key, 3, 3);
        assert_eq!(stored_keys(&base), 4);
        // Below the threshold: a plain value again, chunks gone.
        layer.commit(vec![put(&key, b"small")]).unwrap();
        assert_eq!(stored_keys(&base), 1);
        assert_eq!(
            layer.read(&key).unwrap().map(|v| v.to_vec()),
            Some(b"small".to_vec())
        );
        write(&layer, &key, 4, 4);
        layer
            .commit(vec![Write::Delete { key: key.clone() }])
            .unwrap();
        assert_eq!(stored_keys(&base), 0);
        assert_eq!(layer.read(&key).unwrap().map(|v| v.to_vec()), None);
    }

    #[test]
    fn a_fresh_layer_cleans_up_chunks_of_a_record_it_never_read() {
        let base = Arc::new(Counting::default());
        let key = k("secrets");
        write(&ChunkedBackend::new(base.clone()), &key, 6, 5);
        ChunkedBackend::new(base.clone())
            .commit(vec![Write::Delete { key }])
            .unwrap();
        assert_eq!(stored_keys(&base), 0);
    }

    #[test]
    fn other_records_and_small_records_are_stored_as_they_are_without_reads() {
        let (base, layer) = layered();
        let sdk = codec::key(Namespace::Sdk, "message_secrets@1", b"");
        let tree = codec::key(Namespace::Mls, "tree@1", b"g");
        let big = pattern(4 * CHUNK_BYTES, 6);
        layer
            .commit(vec![
                put(&sdk, &big),
                put(&tree, &big),
                put(&k("small"), b"v"),
            ])
            .unwrap();
        assert_eq!(
            base.inner.read(&sdk).unwrap().map(|v| v.to_vec()),
            Some(big.clone())
        );
        assert_eq!(
            base.inner.read(&tree).unwrap().map(|v| v.to_vec()),
            Some(big)
        );
        assert_eq!(
            base.inner.read(&k("small")).unwrap().map(|v| v.to_vec()),
            Some(b"v".to_vec())
        );
        assert_eq!(stored_keys(&base), 3);
        // Only the message-secrets key was looked up (its form was unknown).
        assert_eq!(base.reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_missing_or_altered_chunk_reads_as_the_undecodable_header() {
        let base = Arc::new(Counting::default());
        let key = k("secrets");
        let value = pattern(3 * CHUNK_BYTES, 7);
        ChunkedBackend::new(base.clone())
            .commit(vec![put(&key, &value)])
            .unwrap();
        base.inner
            .commit(vec![put(&chunk_key(&key, 1), b"tampered")])
            .unwrap();
        let read = ChunkedBackend::new(base.clone())
            .read(&key)
            .unwrap()
            .unwrap();
        assert_eq!(read[0], MAGIC);
        assert!(codec::decode::<Vec<u8>>(&key, &read).is_err());

        base.inner
            .commit(vec![Write::Delete {
                key: chunk_key(&key, 1),
            }])
            .unwrap();
        let read = ChunkedBackend::new(base.clone())
            .read(&key)
            .unwrap()
            .unwrap();
        assert_eq!(read[0], MAGIC);
    }

    #[test]
    fn a_failed_commit_changes_nothing_and_forgets_the_headers() {
        let (base, layer) = layered();
        let key = k("secrets");
        let v1 = pattern(4 * CHUNK_BYTES, 8);
        layer.commit(vec![put(&key, &v1)]).unwrap();
        base.refuse.store(true, Ordering::SeqCst);
        assert!(layer
            .commit(vec![put(&key, &pattern(4 * CHUNK_BYTES, 9))])
            .is_err());
        base.refuse.store(false, Ordering::SeqCst);
        assert!(layer.known().is_empty());
        assert_eq!(layer.read(&key).unwrap().map(|v| v.to_vec()), Some(v1));
    }

    #[test]
    fn a_loaded_record_is_rewritten_without_reads() {
        let (base, layer) = layered();
        let key = k("secrets");
        write(&layer, &key, 4, 10);
        let reads = base.reads.load(Ordering::SeqCst);
        for seed in 11..15 {
            write(&layer, &key, 4, seed);
        }
        assert_eq!(base.reads.load(Ordering::SeqCst), reads);
    }

    #[test]
    fn broken_headers_are_recognised() {
        assert_eq!(Header::parse(b"\xa1plain"), None);
        assert_eq!(Header::parse(&[MAGIC]), Some(None));
        assert_eq!(
            Header::parse(&[MAGIC, 9, 0, 0, 0, 0, 0, 0, 0, 0]),
            Some(None)
        );
        let mut h = Header::of(&pattern(2 * CHUNK_BYTES + 1, 1)).encode();
        assert!(matches!(Header::parse(&h), Some(Some(_))));
        h.pop();
        assert_eq!(Header::parse(&h), Some(None));
        // The length must match the number of hashes.
        let mut h = Header::of(&pattern(2 * CHUNK_BYTES + 1, 1)).encode();
        h[8] ^= 0x40;
        assert_eq!(Header::parse(&h), Some(None));
    }
}
