//! Shared fixtures for the MLSKit fuzz targets.
//!
//! Every target calls only the exported `mlskit::*` API, the same functions the
//! Kotlin/Swift/Python bindings call. UniFFI turns a panic into a foreign
//! exception only at the FFI boundary, so a panic that reaches a target is a
//! bug: [`run`] aborts on it (a libFuzzer crash). Panics the SDK itself catches
//! (`catch_unwind` around OpenMLS and the decoders) are not crashes; they are
//! counted and each new location is noted once on stderr.
//!
//! The fixtures in `fixtures/` are stores of clients whose keys match the seed
//! corpus (both written by `examples/gen_corpus.rs`), so seeds are valid
//! messages for the fuzzed group and mutations start deep inside validation.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Once};

use mlskit::{MlsError, StorageBackend, StorageError, StorageWrite};

/// The fuzzed group's id.
pub const GROUP_ID: &[u8] = b"fuzz-group";

pub type Snapshot = BTreeMap<Vec<u8>, Vec<u8>>;

/// Serialises a store: `u32 count` then `u32 len || bytes` per key and value (LE).
pub fn encode_snapshot(map: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

/// Inverse of [`encode_snapshot`]; `None` on malformed input.
pub fn decode_snapshot(mut bytes: &[u8]) -> Option<Snapshot> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn len(b: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize)
    }
    let n = len(&mut bytes)?;
    let mut map = Snapshot::new();
    for _ in 0..n {
        let kl = len(&mut bytes)?;
        let k = take(&mut bytes, kl)?.to_vec();
        let vl = len(&mut bytes)?;
        let v = take(&mut bytes, vl)?.to_vec();
        map.insert(k, v);
    }
    Some(map)
}

/// A map store that can be reset to a snapshot.
#[derive(Default)]
pub struct SnapStore {
    map: Mutex<Snapshot>,
}

impl SnapStore {
    pub fn new(map: Snapshot) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(map),
        })
    }
    pub fn snapshot(&self) -> Snapshot {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn reset(&self, map: &Snapshot) {
        *self.map.lock().unwrap_or_else(|p| p.into_inner()) = map.clone();
    }
}

impl StorageBackend for SnapStore {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned())
    }
    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for w in writes {
            match w {
                StorageWrite::Put { key, value } => {
                    map.insert(key, value);
                }
                StorageWrite::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }
}

/// A store of one of the fixture clients.
pub fn fixture(name: &str) -> Snapshot {
    let bytes: &[u8] = match name {
        "bob" => include_bytes!("../fixtures/bob.state"),
        "erin" => include_bytes!("../fixtures/erin.state"),
        "frank" => include_bytes!("../fixtures/frank.state"),
        _ => &[],
    };
    match decode_snapshot(bytes) {
        Some(map) if !map.is_empty() => map,
        _ => {
            eprintln!("fixture {name} is missing or malformed: run `tests/fuzz/run.sh gen`");
            std::process::abort()
        }
    }
}

static HOOK: Once = Once::new();
static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Replaces libFuzzer's abort-on-any-panic hook with one that only notes the
/// panic, so panics caught inside the SDK are not reported as crashes.
pub fn install_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let new = SEEN
                .lock()
                .map(|mut s| s.insert(at.clone()))
                .unwrap_or(false);
            if new || std::env::var_os("FUZZ_VERBOSE_PANICS").is_some() {
                eprintln!("note: panic at {at}: {info}");
            }
        }));
    });
}

/// `MLSKIT_FUZZ_SELFTEST=caught|escape` checks the harness itself: a panic
/// caught inside (must be only a note) or one that escapes (must be a crash).
fn selftest() -> Option<&'static str> {
    static MODE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    MODE.get_or_init(|| std::env::var("MLSKIT_FUZZ_SELFTEST").ok())
        .as_deref()
}

/// Runs one input. A panic that escapes the exported API is a crash.
pub fn run(body: impl FnOnce()) {
    install_hook();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        match selftest() {
            Some("caught") => {
                let _ = catch_unwind(|| panic!("selftest: a panic caught inside"));
            }
            Some("escape") => panic!("selftest: a panic escaping the API"),
            _ => {}
        }
        body()
    }));
    if outcome.is_err() {
        eprintln!("CRASH: a panic escaped the exported MLSKit API (it would cross the FFI)");
        std::process::abort();
    }
}

/// Checks a result: success or a typed error. `Internal` is a typed error
/// too, but it means "bug": it aborts when FUZZ_STRICT_INTERNAL is set, and is
/// otherwise noted once per distinct reason.
pub fn typed<T>(result: Result<T, MlsError>) -> Option<T> {
    if std::env::var_os("FUZZ_TRACE").is_some() {
        match &result {
            Ok(_) => eprintln!("trace: ok"),
            Err(e) => eprintln!("trace: {e}"),
        }
    }
    match result {
        Ok(v) => Some(v),
        Err(MlsError::Internal { reason }) => {
            if std::env::var_os("FUZZ_STRICT_INTERNAL").is_some() {
                eprintln!("CRASH: Internal error: {reason}");
                std::process::abort();
            }
            let new = SEEN
                .lock()
                .map(|mut s| s.insert(format!("internal: {reason}")))
                .unwrap_or(false);
            if new {
                eprintln!("note: Internal error: {reason}");
            }
            None
        }
        Err(e) => {
            // Display must work and must not be empty for every variant.
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

/// Splits a fuzz input into a message and an optional ratchet tree. The first
/// byte picks the shape: even = the rest is the message; odd = a 2-byte
/// little-endian length splits the rest into message and tree.
pub fn message_and_tree(data: &[u8]) -> Option<(&[u8], Option<Vec<u8>>)> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == 0 || rest.len() < 2 {
        return Some((rest, None));
    }
    let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
    let (message, tree) = rest[2..].split_at(n);
    Some((message, Some(tree.to_vec())))
}

/// A client opened on a fresh copy of a fixture store (`name` is its identity).
pub fn fixture_client(state: &Snapshot, name: &str) -> Arc<mlskit::Client> {
    let backend: Arc<dyn StorageBackend> = SnapStore::new(state.clone());
    mlskit::Client::new(backend, name.as_bytes().to_vec(), None).expect("fixture opens")
}
