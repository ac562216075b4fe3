//! What the SQLite store leaves on disk: a deleted secret is gone from the
//! files, and a second live opener is refused.

use mlskit::{sqlite_storage, Client, MlsError};

const SECRET: &[u8] = b"PSK-SECRET-Wq5z-must-be-gone-from-disk";

/// The secret as raw bytes and as OpenMLS's serde form of a byte vector in
/// CBOR (an array of small integers: 0x18 before each byte from 24 on).
fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let cbor_array = secret
        .iter()
        .flat_map(|b| if *b < 24 { vec![*b] } else { vec![0x18, *b] })
        .collect();
    vec![secret.to_vec(), cbor_array]
}

/// Names of the files in `dir` that hold `secret` in any of its forms.
fn files_contain(dir: &std::path::Path, secret: &[u8]) -> Vec<String> {
    let needles = forms(secret);
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).ok()?;
            needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn a_deleted_psk_leaves_no_trace_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.db").to_string_lossy().into_owned();
    let client = Client::new(
        sqlite_storage(path.clone()).unwrap(),
        b"alice".to_vec(),
        None,
    )
    .unwrap();
    client
        .store_external_psk(b"psk-1".to_vec(), SECRET.to_vec())
        .unwrap();
    // Some unrelated traffic after the PSK was written.
    for i in 0..20u8 {
        client.create_key_packages(1, None).unwrap();
        client
            .store_external_psk(vec![b'x', i], vec![i; 32])
            .unwrap();
    }
    assert!(
        !files_contain(dir.path(), SECRET).is_empty(),
        "the test must see the secret while it is stored"
    );
    client.delete_external_psk(b"psk-1".to_vec()).unwrap();
    assert_eq!(
        files_contain(dir.path(), SECRET),
        Vec::<String>::new(),
        "a deleted secret was still on disk while the store is open"
    );
    drop(client);
    assert_eq!(
        files_contain(dir.path(), SECRET),
        Vec::<String>::new(),
        "a deleted secret was still on disk after closing"
    );
    // The store still works after a reopen.
    let reopened = Client::new(sqlite_storage(path).unwrap(), b"alice".to_vec(), None).unwrap();
    assert!(reopened.key_packages().unwrap().len() >= 20);
}

#[test]
fn a_second_live_client_on_one_file_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.db").to_string_lossy().into_owned();
    let app = Client::new(
        sqlite_storage(path.clone()).unwrap(),
        b"alice".to_vec(),
        None,
    )
    .unwrap();
    let group = app.create_group(None).unwrap();
    match sqlite_storage(path.clone()) {
        Err(MlsError::StorageInUse { path: p }) => assert_eq!(p, path),
        Err(e) => panic!("unexpected {e:?}"),
        Ok(_) => panic!("a second store on a live file must be refused"),
    }
    // Hand-over: the app drops its client (and so the store); the extension opens it.
    let id = group.id();
    drop(group);
    drop(app);
    let extension = Client::new(sqlite_storage(path).unwrap(), b"alice".to_vec(), None).unwrap();
    assert_eq!(extension.group(id).unwrap().epoch().unwrap(), 0);
}
