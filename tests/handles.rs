//! One live handle per group and one signature key per scheme, whatever the
//! timing of concurrent calls.

mod common;

use std::time::Duration;

use common::*;
use mlskit::{Ciphersuite, Client, GroupOptions, KeyPackageOptions};

#[test]
fn a_group_loaded_while_its_creation_commits_is_the_same_handle() {
    // The window in which a committed group is not yet registered with its client.
    let store = OneShot::new();
    let client = Client::new(store.backend(), b"alice".to_vec(), Some(options())).unwrap();
    let id = b"raced group".to_vec();
    store.arm(Next::SleepAfter(Duration::from_millis(300)));
    let loader = {
        let (client, id) = (client.clone(), id.clone());
        std::thread::spawn(move || loop {
            if let Ok(group) = client.group(id.clone()) {
                return group;
            }
            std::thread::sleep(Duration::from_millis(5));
        })
    };
    let created = client
        .create_group(Some(GroupOptions {
            group_id: Some(id.clone()),
            ..Default::default()
        }))
        .unwrap();
    let loaded = loader.join().unwrap();
    // A commit through one handle is seen through the other, and by the client.
    created.self_update().unwrap();
    created.merge_pending_commit().unwrap();
    assert_eq!(
        loaded.epoch().unwrap(),
        1,
        "the loaded handle is the same group"
    );
    assert_eq!(client.group(id).unwrap().epoch().unwrap(), 1);
    assert_eq!(
        loaded.epoch_authenticator().unwrap(),
        created.epoch_authenticator().unwrap()
    );
}

#[test]
fn first_use_of_a_scheme_from_two_threads_yields_one_signature_key() {
    for round in 0..20 {
        let client = Client::new(MapStore::new(), b"alice".to_vec(), None).unwrap();
        let p256 = Some(Ciphersuite::P256Aes128gcmP256);
        let kp = {
            let client = client.clone();
            std::thread::spawn(move || {
                client
                    .create_key_packages(
                        1,
                        Some(KeyPackageOptions {
                            ciphersuite: p256,
                            ..Default::default()
                        }),
                    )
                    .unwrap()
                    .remove(0)
            })
        };
        let key = client.signature_public_key(p256).unwrap();
        let kp = kp.join().unwrap();
        assert_eq!(
            mlskit::validate_key_package(kp).unwrap().signature_key,
            key,
            "round {round}: the key package is signed by the stored key"
        );
    }
}

#[test]
fn every_supported_schemes_key_is_stored_when_the_identity_is_created() {
    let store = MapStore::new();
    let client = Client::new(store.clone(), b"alice".to_vec(), None).unwrap();
    let keys: Vec<Vec<u8>> = mlskit::supported_ciphersuites()
        .into_iter()
        .map(|cs| client.signature_public_key(Some(cs)).unwrap())
        .collect();
    drop(client);
    let reopened = Client::new(store.clone(), b"alice".to_vec(), None).unwrap();
    let before = store.snapshot();
    for (cs, key) in mlskit::supported_ciphersuites().into_iter().zip(keys) {
        assert_eq!(reopened.signature_public_key(Some(cs)).unwrap(), key);
    }
    assert_eq!(store.snapshot(), before, "asking for a key writes nothing");
}
