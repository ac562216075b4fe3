//! One damaged record must not brick a group for good: `delete_group`
//! removes every record of the group by key, whether its values decode or
//! not, and the group can then be joined again.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::core::storage::codec::{self, in_namespace, is_record, Namespace};
use mlskit::{Client, MlsError, StorageBackend, StorageWrite};

const GROUP_ID: &[u8] = b"doomed-group-Zx81";

/// Which record is damaged.
#[derive(Clone, Copy, Debug)]
enum Damaged {
    Tree,
    Context,
    MessageSecrets,
    Chunk,
    GroupIndex,
}

impl Damaged {
    fn matches(self, key: &[u8]) -> bool {
        match self {
            Damaged::Tree => is_record(key, Namespace::Mls, "tree"),
            Damaged::Context => is_record(key, Namespace::Mls, "group_context"),
            Damaged::MessageSecrets => is_record(key, Namespace::Mls, "message_secrets"),
            Damaged::Chunk => in_namespace(key, Namespace::Chunk),
            Damaged::GroupIndex => key == codec::key(Namespace::Sdk, "groups", b"").as_slice(),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn open(store: &Arc<MapStore>, name: &str) -> Arc<Client> {
    let backend: Arc<dyn StorageBackend> = store.clone();
    Client::new(backend, name.as_bytes().to_vec(), Some(options())).unwrap()
}

/// Alice (on `store`) joins bob's group of `members`; then one record of
/// alice's is cut in half, she deletes the group and joins it again.
fn damaged_record_is_deleted_and_the_group_rejoined(damaged: Damaged, members: usize) {
    let store = MapStore::new();
    let bob = client_on(&FaultyStore::map(), "bob");
    let group = bob
        .create_group(Some(mlskit::GroupOptions {
            group_id: Some(GROUP_ID.to_vec()),
            ..Default::default()
        }))
        .unwrap();
    let others: Vec<Vec<u8>> = (2..members)
        .map(|i| {
            client_on(&FaultyStore::map(), &format!("m{i}"))
                .create_key_packages(1, None)
                .unwrap()
                .remove(0)
        })
        .collect();
    let mut kps = vec![open(&store, "alice")
        .create_key_packages(1, None)
        .unwrap()
        .remove(0)];
    kps.extend(others);
    let add = group.add_members(kps).unwrap();
    group.merge_pending_commit().unwrap();
    let ga = open(&store, "alice")
        .join_group(add.welcome.unwrap(), None, None)
        .unwrap();
    // Past epochs kept for late messages grow the message-secrets record
    // (at 60 members past the size where it is stored in chunks).
    for _ in 0..4 {
        let update = group.self_update().unwrap();
        group.merge_pending_commit().unwrap();
        process_and_merge(&ga, &update.commit);
    }
    let alice_index = ga.own_index().unwrap();
    drop(ga);

    let (key, value) = store
        .snapshot()
        .into_iter()
        .find(|(k, _)| damaged.matches(k))
        .unwrap_or_else(|| panic!("{damaged:?}: no such record"));
    store
        .commit(vec![StorageWrite::Put {
            key,
            value: value[..value.len() / 2].to_vec(),
        }])
        .unwrap();

    let alice = open(&store, "alice");
    let broken = match damaged {
        Damaged::GroupIndex => alice.group_ids().err(),
        _ => alice.group(GROUP_ID.to_vec()).err(),
    };
    assert!(
        matches!(broken, Some(MlsError::StorageCorrupt { .. })),
        "{damaged:?}: the damage is seen: {broken:?}"
    );
    alice
        .delete_group(GROUP_ID.to_vec())
        .unwrap_or_else(|e| panic!("{damaged:?}: delete_group: {e:?}"));
    assert_eq!(alice.group_ids().unwrap(), Vec::<Vec<u8>>::new());
    let left: Vec<String> = store
        .snapshot()
        .keys()
        .filter(|k| contains(k, GROUP_ID) || in_namespace(k, Namespace::Chunk))
        .map(|k| codec::describe_key(k))
        .collect();
    assert!(
        left.is_empty(),
        "{damaged:?}: records left behind: {left:?}"
    );

    // Rejoining works, by Welcome and (after another delete) by external
    // commit, once bob removed the leaf of alice's lost state.
    group.remove_members(vec![alice_index]).unwrap();
    group.merge_pending_commit().unwrap();
    let add = group
        .add_members(vec![alice.create_key_packages(1, None).unwrap().remove(0)])
        .unwrap();
    group.merge_pending_commit().unwrap();
    let rejoined = alice.join_group(add.welcome.unwrap(), None, None).unwrap();
    assert_eq!(rejoined.epoch().unwrap(), group.epoch().unwrap());
    let index = rejoined.own_index().unwrap();
    drop(rejoined);
    alice.delete_group(GROUP_ID.to_vec()).unwrap();
    group.remove_members(vec![index]).unwrap();
    group.merge_pending_commit().unwrap();
    let joined = alice
        .join_by_external_commit(group.export_group_info(true).unwrap(), None, None)
        .unwrap();
    process_and_merge(&group, &joined.commit);
    assert_eq!(alice.group_ids().unwrap(), vec![GROUP_ID.to_vec()]);
}

#[test]
fn damaged_tree_record() {
    damaged_record_is_deleted_and_the_group_rejoined(Damaged::Tree, 2);
}

#[test]
fn damaged_context_record() {
    damaged_record_is_deleted_and_the_group_rejoined(Damaged::Context, 2);
}

#[test]
fn damaged_message_secrets_record() {
    damaged_record_is_deleted_and_the_group_rejoined(Damaged::MessageSecrets, 2);
}

#[test]
fn damaged_chunk_of_the_message_secrets() {
    // 60 members: the message-secrets record is stored in chunks.
    damaged_record_is_deleted_and_the_group_rejoined(Damaged::Chunk, 60);
}

#[test]
fn damaged_header_of_chunked_message_secrets() {
    damaged_record_is_deleted_and_the_group_rejoined(Damaged::MessageSecrets, 60);
}

#[test]
fn damaged_group_index() {
    damaged_record_is_deleted_and_the_group_rejoined(Damaged::GroupIndex, 2);
}
