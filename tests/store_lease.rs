//! Two live clients on one host store (an app and its notification extension):
//! the one opened last owns the store, the other writes nothing and says so.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::{Client, MlsError, ReceivedMessage, StorageBackend};

/// Alice (on her own store) and Bob (on `bob_store`) in one group.
fn pair(bob_store: &Arc<MapStore>) -> (Arc<mlskit::Group>, Arc<Client>, Arc<mlskit::Group>) {
    let alice = Client::new(MapStore::new(), b"alice".to_vec(), Some(options())).unwrap();
    let bob_backend: Arc<dyn StorageBackend> = bob_store.clone();
    let bob = Client::new(bob_backend, b"bob".to_vec(), Some(options())).unwrap();
    let group = alice.create_group(None).unwrap();
    let kp = bob.create_key_packages(1, None).unwrap().remove(0);
    let bundle = group.add_members(vec![kp]).unwrap();
    group.merge_pending_commit().unwrap();
    let bob_group = bob.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    (group, bob, bob_group)
}

fn read_by(group: &mlskit::Group, message: Vec<u8>) -> Vec<u8> {
    match group.process_message(message).unwrap() {
        ReceivedMessage::Application { message } => message.plaintext,
        _ => panic!("expected an application message"),
    }
}

#[test]
fn the_client_opened_last_owns_the_store_and_the_earlier_one_writes_nothing() {
    let bob_store = MapStore::new();
    let (alice, app, app_group) = pair(&bob_store);
    let id = app_group.id();

    // The extension opens the same store while the app's client lives.
    let backend: Arc<dyn StorageBackend> = bob_store.clone();
    let extension = Client::new(backend, b"bob".to_vec(), Some(options())).unwrap();
    let ext_group = extension.group(id.clone()).unwrap();
    let from_alice = alice.encrypt(b"ping".to_vec(), vec![]).unwrap();
    assert_eq!(read_by(&ext_group, from_alice), b"ping");
    let reply = ext_group
        .encrypt(b"from the extension".to_vec(), vec![])
        .unwrap();

    // The app's client refuses every write and leaves the store as it was.
    let before = bob_store.snapshot();
    for (what, result) in [
        (
            "encrypt",
            app_group.encrypt(b"stale".to_vec(), vec![]).map(drop),
        ),
        ("update", app_group.self_update().map(drop)),
        ("key packages", app.create_key_packages(1, None).map(drop)),
        ("create group", app.create_group(None).map(drop)),
        ("delete group", app.delete_group(id.clone())),
    ] {
        assert!(
            matches!(result, Err(MlsError::StorageTakenOver)),
            "{what}: {result:?}"
        );
    }
    assert_eq!(bob_store.snapshot(), before, "a taken-over client wrote");

    // Alice reads the extension; nothing was sent twice under one key.
    assert_eq!(read_by(&alice, reply), b"from the extension");

    // Hand-back: the app opens a new client, which takes the store back.
    drop((app_group, app));
    let backend: Arc<dyn StorageBackend> = bob_store.clone();
    let app = Client::new(backend, b"bob".to_vec(), Some(options())).unwrap();
    let app_group = app.group(id).unwrap();
    assert!(matches!(
        ext_group.encrypt(b"late".to_vec(), vec![]),
        Err(MlsError::StorageTakenOver)
    ));
    for i in 0..3 {
        let text = format!("app again {i}").into_bytes();
        let sent = app_group.encrypt(text.clone(), vec![]).unwrap();
        assert_eq!(read_by(&alice, sent), text);
    }
    let from_alice = alice.encrypt(b"pong".to_vec(), vec![]).unwrap();
    assert_eq!(read_by(&app_group, from_alice), b"pong");
}

#[test]
fn a_taken_over_sqlite_store_object_shared_by_two_clients_is_detected_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.db").display().to_string();
    let store = mlskit::sqlite_storage(path).unwrap();
    let first = Client::new(store.clone(), b"bob".to_vec(), None).unwrap();
    let second = Client::new(store, b"bob".to_vec(), None).unwrap();
    assert!(matches!(
        first.create_key_packages(1, None),
        Err(MlsError::StorageTakenOver)
    ));
    assert_eq!(second.create_key_packages(1, None).unwrap().len(), 1);
    assert_eq!(first.key_packages().unwrap().len(), 1, "reads still work");
}
