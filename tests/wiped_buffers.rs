//! The SDK's own copies of stored values are wiped: an allocator that looks
//! into every block freed while a value holding a marker travels through the
//! storage layers (write overlay, read cache, chunks, encryption at rest,
//! memory store) must never see the marker.
//!
//! One test in this binary: the allocator's switch is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mlskit::core::storage::cache::CachedBackend;
use mlskit::core::storage::chunked::ChunkedBackend;
use mlskit::core::storage::codec::{self, Namespace};
use mlskit::core::storage::encrypted::EncryptedBackend;
use mlskit::core::storage::memory::MemoryBackend;
use mlskit::core::storage::overlay::Overlay;
use mlskit::core::storage::{Backend, Value};

/// Stands for a private key (no other allocation holds these bytes). Every
/// byte is at least 24, so its CBOR array form is 0x18 before each byte.
const MARKER: [u8; 24] = *b"\x8e\x93wiped-marker\x97\xfe\x91\x2a\xc4\x5d\x66\xab\xcd\xef";

static ARMED: AtomicBool = AtomicBool::new(false);
/// Freed blocks that still held the marker (raw, or as a CBOR array).
static FOUND: AtomicUsize = AtomicUsize::new(0);
/// Sizes of the first blocks found, for the failure message.
static SIZES: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

/// The marker as serde writes a `Vec<u8>` into CBOR: an array of integers.
fn cbor_array_form() -> [u8; 48] {
    let mut out = [0x18u8; 48];
    for (i, b) in MARKER.iter().enumerate() {
        out[2 * i + 1] = *b;
    }
    out
}

fn holds(block: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && block.windows(needle.len()).any(|w| w == needle)
}

struct Inspecting;

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            // SAFETY: the block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds(block, &MARKER) || holds(block, &cbor_array_form()) {
                let n = FOUND.fetch_add(1, Ordering::SeqCst);
                if let Some(slot) = SIZES.get(n) {
                    slot.store(layout.size(), Ordering::SeqCst);
                }
                if std::env::var_os("WIPED_ABORT").is_some() {
                    std::process::abort();
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// Blocks freed with the marker inside while `f` runs.
fn freed_with_marker(f: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

/// A value of `len` bytes with the marker at its start, middle and end.
fn secret_value(len: usize) -> Value {
    let mut v = vec![0x55u8; len];
    v[..MARKER.len()].copy_from_slice(&MARKER);
    let mid = len / 2;
    v[mid..mid + MARKER.len()].copy_from_slice(&MARKER);
    v[len - MARKER.len()..].copy_from_slice(&MARKER);
    Value::new(v)
}

#[test]
fn no_freed_block_of_the_storage_layers_holds_a_secret() {
    // The detector works: a plain vector freed with the marker is seen.
    assert_eq!(
        freed_with_marker(|| drop(std::hint::black_box(MARKER.to_vec()))),
        1
    );

    let small_key = codec::key(Namespace::Mls, "epoch_key_pairs@1", b"g");
    let large_key = codec::key(Namespace::Mls, "message_secrets@1", b"g");
    let typed_key = codec::key(Namespace::Mls, "psk@1", b"p");
    let (small, large) = (secret_value(600), secret_value(100 * 1024));
    let (small_copy, large_copy) = (small.to_vec(), large.to_vec());

    let found = freed_with_marker(|| {
        let store = Arc::new(MemoryBackend::new());
        let encrypted: Arc<dyn Backend> =
            Arc::new(EncryptedBackend::open(store.clone(), &[7; 32]).unwrap());
        let layers: Arc<dyn Backend> =
            Arc::new(CachedBackend::new(Arc::new(ChunkedBackend::new(encrypted))));
        // Write through the overlay, as every SDK operation does.
        let overlay = Overlay::new(layers.clone());
        overlay.put(small_key.clone(), small);
        overlay.put(large_key.clone(), large);
        let psk = Value::new(MARKER.to_vec());
        overlay.put_value(typed_key.clone(), &*psk).unwrap();
        drop(psk);
        assert!(overlay.get(&small_key).unwrap().is_some());
        overlay.flush().unwrap();
        drop(overlay);
        // Read back (cached, chunked and sealed paths), twice.
        for _ in 0..2 {
            let reader = Overlay::new(layers.clone());
            assert_eq!(*reader.get(&small_key).unwrap().unwrap(), small_copy);
            assert_eq!(*reader.get(&large_key).unwrap().unwrap(), large_copy);
            let psk: Vec<u8> = reader.get_value(&typed_key).unwrap().unwrap();
            assert_eq!(psk, MARKER);
            // The decoded copy is the test's own: wipe it like OpenMLS's
            // own types would have to.
            let mut psk = psk;
            psk.fill(0);
            layers.invalidate();
        }
        // Rewrite the large record with one chunk changed, then delete all.
        let overlay = Overlay::new(layers.clone());
        let mut changed = secret_value(100 * 1024);
        changed[50_000] ^= 1;
        overlay.put(large_key.clone(), changed);
        overlay.flush().unwrap();
        let overlay = Overlay::new(layers.clone());
        for key in [&small_key, &large_key, &typed_key] {
            overlay.delete(key.clone());
        }
        overlay.flush().unwrap();
        drop(overlay);
        drop(layers);
        drop(store);
    });
    let (mut small_copy, mut large_copy) = (small_copy, large_copy);
    small_copy.fill(0);
    large_copy.fill(0);
    let sizes: Vec<usize> = SIZES.iter().map(|s| s.load(Ordering::SeqCst)).collect();
    assert_eq!(
        found, 0,
        "freed blocks still held the secret (sizes of the first: {sizes:?}; \
         WIPED_ABORT=1 under a debugger shows where)"
    );
}
