//! Unauthenticated input must not make MLSKit allocate much more than its own
//! size. A counting allocator measures the peak heap growth of every function
//! that takes outside bytes, fed with the shapes that amplify most (blank tree
//! nodes, empty extensions) at the default 4 MiB input limit, and with honest
//! messages of a 400-member group.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mlskit::{memory_storage, Client, Group, MlsError};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Measurements must not overlap (the counters are process-wide).
static SERIAL: Mutex<()> = Mutex::new(());

/// The default input limit (`ClientOptions.max_input_bytes`).
const LIMIT: usize = 4 * 1024 * 1024;

/// Peak heap growth while `f` runs on its own copy of `input` (the copy,
/// made before, is not counted).
fn peak_growth<T>(input: &[u8], f: impl FnOnce(Vec<u8>) -> T) -> (usize, T) {
    let copy = input.to_vec();
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f(copy);
    (PEAK.load(Ordering::Relaxed).saturating_sub(base), out)
}

/// The largest growth allowed: 4 bytes per input byte at the input limit.
fn assert_bounded(what: &str, input: usize, growth: usize) {
    println!(
        "{what}: {input} bytes in, peak +{growth} bytes (x{:.2})",
        growth as f64 / input as f64
    );
    assert!(
        growth <= 4 * LIMIT,
        "{what}: {input} bytes grew the heap by {growth} bytes"
    );
}

/// A TLS variable-length vector (RFC 9420 §2.1.2).
fn vector(body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut out = match n {
        0..=0x3f => vec![n as u8],
        0x40..=0x3fff => (0x4000 | n as u16).to_be_bytes().to_vec(),
        _ => (0x8000_0000 | n as u32).to_be_bytes().to_vec(),
    };
    out.extend_from_slice(body);
    out
}

fn extension(extension_type: u16, data: &[u8]) -> Vec<u8> {
    let mut out = extension_type.to_be_bytes().to_vec();
    out.extend(vector(data));
    out
}

/// A ratchet tree of `n` blank nodes: 1 byte each on the wire.
fn blank_tree(n: usize) -> Vec<u8> {
    vector(&vec![0u8; n])
}

/// An `MLSMessage` GroupInfo whose ratchet-tree extension holds `tree`.
fn group_info_with_tree(tree: &[u8]) -> Vec<u8> {
    let mut gi = vec![0, 1, 0, 4]; // version, wire format group_info
    gi.extend([0, 1, 0, 1]); // group context: version, ciphersuite 0x0001
    gi.extend(vector(b"group"));
    gi.extend([0; 8]); // epoch
    gi.extend(vector(&[7; 32])); // tree hash
    gi.extend(vector(&[7; 32])); // confirmed transcript hash
    gi.extend(vector(&[])); // group context extensions
    gi.extend(vector(&extension(2, tree)));
    gi.extend(vector(&[7; 32])); // confirmation tag
    gi.extend([0; 4]); // signer
    gi.extend(vector(&[7; 64])); // signature
    gi
}

/// A PublicMessage proposal replacing the group context extensions with `n`
/// empty custom extensions (3 bytes each on the wire).
fn proposal_with_extensions(group_id: &[u8], epoch: u64, n: usize) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 1]; // version, wire format public_message
    m.extend(vector(group_id));
    m.extend(epoch.to_be_bytes());
    m.extend([1, 0, 0, 0, 1]); // sender: member 1
    m.extend(vector(&[])); // authenticated data
    m.push(2); // content type proposal
    m.extend([0, 7]); // group_context_extensions
    let list: Vec<u8> = (0..n).flat_map(|_| extension(0xff00, &[])).collect();
    m.extend(vector(&list));
    m.extend(vector(&[7; 64])); // signature
    m.extend(vector(&[7; 32])); // membership tag
    m
}

/// A minimal well-formed Welcome (nothing to decrypt in it).
fn empty_welcome() -> Vec<u8> {
    let mut w = vec![0, 1, 0, 3, 0, 1];
    w.extend(vector(&[]));
    w.extend(vector(&[]));
    w
}

fn client(name: &str) -> Arc<Client> {
    Client::new(memory_storage(), name.as_bytes().to_vec(), None).unwrap()
}

/// A group of `n` members seen by its creator.
fn group_of(n: usize) -> (Arc<Client>, Arc<Group>, Vec<u8>) {
    let creator = client("member-0");
    let group = creator.create_group(None).unwrap();
    let kps = (1..n)
        .map(|i| {
            client(&format!("member-{i}"))
                .create_key_packages(1, None)
                .unwrap()
                .remove(0)
        })
        .collect();
    let bundle = group.add_members(kps).unwrap();
    group.merge_pending_commit().unwrap();
    (creator, group, bundle.commit)
}

fn is_malformed<T>(r: &Result<T, MlsError>) -> bool {
    matches!(r, Err(MlsError::MalformedInput { .. }))
}

#[test]
fn hostile_shapes_at_the_input_limit_are_refused_before_they_are_decoded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, group, _) = group_of(2);
    let outsider = client("outsider");
    let tree = blank_tree(LIMIT - 400);
    let gi = group_info_with_tree(&tree);
    assert!(gi.len() <= LIMIT);

    let (growth, r) = peak_growth(&gi, mlskit::parse_message);
    assert!(is_malformed(&r), "{r:?}");
    assert_bounded(
        "parse_message(GroupInfo, 4 M blank nodes)",
        gi.len(),
        growth,
    );

    let (growth, r) = peak_growth(&gi, |bytes| {
        outsider.join_by_external_commit(bytes, None, None)
    });
    assert!(is_malformed(&r));
    assert_bounded("join_by_external_commit(same)", gi.len(), growth);

    let (growth, r) = peak_growth(&gi, |bytes| group.process_message(bytes));
    assert!(is_malformed(&r));
    assert_bounded("process_message(same)", gi.len(), growth);

    let (growth, r) = peak_growth(&tree, |bytes| {
        outsider.inspect_welcome(empty_welcome(), Some(bytes))
    });
    assert!(is_malformed(&r));
    assert_bounded(
        "inspect_welcome(ratchet tree of 4 M blanks)",
        tree.len(),
        growth,
    );

    // A key package whose extensions hold the same tree.
    let mut kp = vec![0, 1, 0, 5, 0, 1, 0, 1];
    kp.extend(vector(&[7; 32])); // init key
    kp.extend(vector(&[7; 32])); // leaf: encryption key
    kp.extend(vector(&[7; 32])); // signature key
    kp.extend([0, 1]);
    kp.extend(vector(b"eve")); // basic credential
    for _ in 0..5 {
        kp.extend(vector(&[])); // capabilities
    }
    kp.push(1);
    kp.extend([0; 16]); // lifetime
    kp.extend(vector(&[])); // leaf extensions
    kp.extend(vector(&[7; 64])); // leaf signature
    kp.extend(vector(&extension(2, &blank_tree(LIMIT - 600))));
    kp.extend(vector(&[7; 64]));
    let (growth, r) = peak_growth(&kp, mlskit::validate_key_package);
    assert!(is_malformed(&r), "{r:?}");
    assert_bounded(
        "validate_key_package(extension with 4 M blanks)",
        kp.len(),
        growth,
    );
    let (growth, r) = peak_growth(&kp, |bytes| group.add_members(vec![bytes]));
    assert!(is_malformed(&r));
    assert_bounded("add_members(same)", kp.len(), growth);

    // 1.4 M empty extensions in a proposal from "a member".
    let p = proposal_with_extensions(&group.id(), group.epoch().unwrap(), LIMIT / 3 - 100);
    let (growth, r) = peak_growth(&p, |bytes| group.process_message(bytes));
    assert!(is_malformed(&r), "{:?}", r.err());
    assert_bounded(
        "process_message(proposal, 1.4 M extensions)",
        p.len(),
        growth,
    );

    // Over the limit: refused by length alone.
    let big = group_info_with_tree(&blank_tree(LIMIT + 1));
    let (growth, r) = peak_growth(&big, mlskit::parse_message);
    assert!(is_malformed(&r));
    assert!(
        growth < 64 * 1024,
        "refusing by length allocates nothing large"
    );
}

#[test]
fn the_most_items_the_budget_allows_stay_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Just inside the item budget: decoded by OpenMLS, which then refuses
    // the tree or the signature. The growth stays well under the bound.
    let max_items = LIMIT / 32;
    let gi = group_info_with_tree(&blank_tree(max_items - 1));
    let (growth, r) = peak_growth(&gi, mlskit::parse_message);
    assert!(r.is_ok(), "{r:?}");
    assert_bounded(
        "parse_message(GroupInfo, budget - 1 blank nodes)",
        gi.len(),
        growth,
    );
    let outsider = client("outsider");
    let (growth, r) = peak_growth(&gi, |bytes| {
        outsider.join_by_external_commit(bytes, None, None)
    });
    assert!(r.is_err());
    assert_bounded("join_by_external_commit(same)", gi.len(), growth);
}

#[test]
fn honest_messages_of_a_large_group_pass_and_stay_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (creator, group, _) = group_of(400);
    let gi = group.export_group_info(true).unwrap();
    let tree = group.export_ratchet_tree().unwrap();
    let (growth, r) = peak_growth(&gi, mlskit::parse_message);
    assert!(r.is_ok());
    assert_bounded("parse_message(GroupInfo of 400 members)", gi.len(), growth);
    let joiner = client("joiner");
    let (growth, r) = peak_growth(&gi, |bytes| {
        joiner.join_by_external_commit(bytes, None, None)
    });
    let joined = r.unwrap();
    assert_bounded("join_by_external_commit(400 members)", gi.len(), growth);
    let (growth, r) = peak_growth(&joined.commit, |bytes| group.process_message(bytes));
    assert!(r.is_ok(), "{:?}", r.err());
    assert_bounded(
        "process_message(external commit, 400 members)",
        joined.commit.len(),
        growth,
    );
    let other = client("other");
    let bare = group.export_group_info(false).unwrap();
    let (growth, r) = peak_growth(&tree, |bytes| {
        other.join_by_external_commit(bare.clone(), Some(bytes), None)
    });
    assert!(r.is_ok());
    assert_bounded(
        "join_by_external_commit(tree out of band)",
        tree.len(),
        growth,
    );
    drop(creator);
}

/// A tree inside a leaf's extensions inside a tree..., 8,000 levels deep
/// (about 220 KB): refused at the first nested tree, on a small stack.
#[test]
fn nested_trees_are_refused_without_recursing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut tree = vector(&[]);
    for _ in 0..8_000 {
        let mut leaf = vec![1, 1]; // present, leaf node
        leaf.extend(vector(&[])); // encryption key
        leaf.extend(vector(&[])); // signature key
        leaf.extend([0, 1]);
        leaf.extend(vector(&[])); // credential
        for _ in 0..5 {
            leaf.extend(vector(&[])); // capabilities
        }
        leaf.push(2); // source: update
        leaf.extend(vector(&extension(2, &tree))); // extensions: a tree
        leaf.extend(vector(&[])); // signature
        tree = vector(&leaf);
    }
    let gi = group_info_with_tree(&tree);
    let small_stack = std::thread::Builder::new().stack_size(256 * 1024);
    let r = small_stack
        .spawn(move || mlskit::parse_message(gi))
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(is_malformed(&r), "{:?}", r.err());
}

/// A bare key package whose ciphersuite (0x0002) reads like the wire format
/// of a PrivateMessage, with 1.4 M empty extensions: both readings are
/// walked, and it is refused before decoding.
#[test]
fn a_bare_key_package_that_looks_like_another_message_is_still_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut kp = vec![0, 1, 0, 2]; // version, ciphersuite 0x0002
    kp.extend(vector(&[7; 65])); // init key
    kp.extend(vector(&[7; 65])); // leaf: encryption key
    kp.extend(vector(&[7; 65])); // signature key
    kp.extend([0, 1]);
    kp.extend(vector(b"eve"));
    for _ in 0..5 {
        kp.extend(vector(&[]));
    }
    kp.push(1);
    kp.extend([0; 16]);
    kp.extend(vector(&[])); // leaf extensions
    kp.extend(vector(&[7; 64]));
    let list: Vec<u8> = (0..(LIMIT / 3 - 200))
        .flat_map(|_| extension(0xff00, &[]))
        .collect();
    kp.extend(vector(&list));
    kp.extend(vector(&[7; 64]));
    assert!(kp.len() <= LIMIT);
    let (growth, r) = peak_growth(&kp, mlskit::validate_key_package);
    assert!(is_malformed(&r), "{:?}", r.err());
    assert_bounded(
        "validate_key_package(bare, 0x0002, 1.4 M extensions)",
        kp.len(),
        growth,
    );
}

/// As many minimal leaves as the item budget allows: bounded.
#[test]
fn a_tree_of_minimal_leaves_within_the_budget_stays_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut leaf = vec![1, 1];
    leaf.extend(vector(&[]));
    leaf.extend(vector(&[]));
    leaf.extend([0, 1]);
    leaf.extend(vector(&[]));
    for _ in 0..5 {
        leaf.extend(vector(&[]));
    }
    leaf.push(2);
    leaf.extend(vector(&[]));
    leaf.extend(vector(&[]));
    let leaves = LIMIT / 32 / 9 - 10; // each leaf: 1 node + 8 for the leaf
    let tree = vector(&leaf.repeat(leaves));
    let gi = group_info_with_tree(&tree);
    let (growth, r) = peak_growth(&gi, mlskit::parse_message);
    assert!(r.is_ok(), "{:?}", r.err());
    assert_bounded(
        "parse_message(GroupInfo, budget of minimal leaves)",
        gi.len(),
        growth,
    );
}
