//! Errors (Display and Debug, MlsError and CoreError) and the Debug output of
//! storage writes never contain plaintext or key material, whatever failed.

use std::sync::{Arc, Mutex};

use mlskit::core::storage::encrypted::EncryptedBackend;
use mlskit::core::storage::memory::MemoryBackend;
use mlskit::core::storage::{Backend, Write};
use mlskit::core::CoreError;
use mlskit::{
    encrypted_storage, memory_storage, Client, GroupOptions, MlsError, ReceivedMessage,
    StorageBackend, StorageError, StorageWrite,
};

const PLAINTEXT: &[u8] = b"PLAINTEXT-Xk9q-never-in-an-error-message";
const PSK_SECRET: &[u8] = b"PSK-SECRET-Fh2u-key-material-32b";
const STORAGE_KEY: [u8; 32] = *b"STORAGE-KEY-Nb7y-32-bytes-long!!";

/// Every way the secret could show up in text.
fn forms(secret: &[u8]) -> Vec<String> {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let dec = format!("{secret:?}");
    let inner = dec
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    vec![
        String::from_utf8_lossy(secret).into_owned(),
        hex.clone(),
        hex.to_uppercase(),
        inner,
    ]
}

fn assert_clean(what: &str, text: &str, secrets: &[&[u8]]) {
    for s in secrets {
        // A 12-byte window is enough to recognise the secret.
        for form in forms(&s[..12]) {
            assert!(
                !text.contains(&form),
                "{what} contains secret bytes ({form:?}): {text}"
            );
        }
    }
}

/// Records every committed write; can return garbage for every read.
struct Recorder {
    inner: Arc<dyn StorageBackend>,
    writes: Mutex<Vec<StorageWrite>>,
    garbage: Mutex<Option<Vec<u8>>>,
    fail: Mutex<bool>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: memory_storage(),
            writes: Mutex::new(Vec::new()),
            garbage: Mutex::new(None),
            fail: Mutex::new(false),
        })
    }
}

impl StorageBackend for Recorder {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(g) = self.garbage.lock().unwrap().clone() {
            return Ok(Some(g));
        }
        self.inner.read(key)
    }
    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        if *self.fail.lock().unwrap() {
            return Err(StorageError::Backend {
                reason: "disk full".into(),
            });
        }
        self.writes.lock().unwrap().extend(writes.iter().cloned());
        self.inner.commit(writes)
    }
}

fn errors_on_every_path() -> Vec<MlsError> {
    let mut errors = Vec::new();
    let mut push = |r: Result<(), MlsError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    let ra = Recorder::new();
    let a = Client::new(ra.clone(), b"alice".to_vec(), None).unwrap();
    let b = Client::new(memory_storage(), b"bob".to_vec(), None).unwrap();
    a.store_external_psk(b"psk".to_vec(), PSK_SECRET.to_vec())
        .unwrap();
    let ga = a
        .create_group(Some(GroupOptions {
            group_id: Some(b"g".to_vec()),
            ..Default::default()
        }))
        .unwrap();
    let kp = b.create_key_packages(1, None).unwrap().remove(0);
    let add = ga.add_members(vec![kp.clone()]).unwrap();
    ga.merge_pending_commit().unwrap();
    let welcome = add.welcome.unwrap();
    let gb = b.join_group(welcome.clone(), None, None).unwrap();
    let ct = ga.encrypt(PLAINTEXT.to_vec(), PLAINTEXT.to_vec()).unwrap();
    match gb.process_message(ct.clone()).unwrap() {
        ReceivedMessage::Application { message } => assert_eq!(message.plaintext, PLAINTEXT),
        _ => panic!(),
    }
    // Duplicate, tampered, truncated, to the wrong group, own message.
    push(gb.process_message(ct.clone()).map(|_| ()));
    for i in [ct.len() - 1, ct.len() / 2, 20] {
        let mut t = ct.clone();
        t[i] ^= 0x40;
        push(gb.process_message(t).map(|_| ()));
    }
    push(gb.process_message(ct[..ct.len() - 5].to_vec()).map(|_| ()));
    push(mlskit::parse_message(ct[..ct.len() / 2].to_vec()).map(|_| ()));
    let other = b.create_group(None).unwrap();
    push(other.process_message(ct.clone()).map(|_| ()));
    // Welcome, key package, group info: truncated and tampered.
    push(b.join_group(welcome.clone(), None, None).map(|_| ()));
    push(
        b.join_group(welcome[..welcome.len() - 9].to_vec(), None, None)
            .map(|_| ()),
    );
    push(b.inspect_welcome(welcome[..40].to_vec(), None).map(|_| ()));
    push(mlskit::validate_key_package(kp[..kp.len() - 3].to_vec()).map(|_| ()));
    let mut bad_kp = kp.clone();
    let n = bad_kp.len();
    bad_kp[n - 10] ^= 1;
    push(mlskit::validate_key_package(bad_kp).map(|_| ()));
    let gi = ga.export_group_info(true).unwrap();
    push(
        b.join_by_external_commit(gi[..gi.len() - 7].to_vec(), None, None)
            .map(|_| ()),
    );
    // State errors.
    ga.propose_self_update().unwrap();
    push(ga.encrypt(PLAINTEXT.to_vec(), vec![]).map(|_| ()));
    push(ga.merge_pending_commit());
    push(ga.remove_members(vec![9]).map(|_| ()));
    push(a.group(PLAINTEXT.to_vec()).map(|_| ()));
    push(
        a.create_group(Some(GroupOptions {
            group_id: Some(b"g".to_vec()),
            ..Default::default()
        }))
        .map(|_| ()),
    );
    // Storage: failing commits, garbage reads, wrong identity.
    *ra.fail.lock().unwrap() = true;
    push(ga.self_update().map(|_| ()));
    push(a.store_external_psk(b"psk2".to_vec(), PSK_SECRET.to_vec()));
    *ra.fail.lock().unwrap() = false;
    push(Client::new(ra.clone(), b"mallory".to_vec(), None).map(|_| ()));
    *ra.garbage.lock().unwrap() = Some(vec![0xff, 0x13, 0x37]);
    push(Client::new(ra.clone(), b"alice".to_vec(), None).map(|_| ()));
    *ra.garbage.lock().unwrap() = Some(PSK_SECRET.to_vec());
    push(Client::new(ra.clone(), b"alice".to_vec(), None).map(|_| ()));
    *ra.garbage.lock().unwrap() = None;
    // Encrypted storage: wrong key, bad length, tampered value.
    let inner = memory_storage();
    let enc = encrypted_storage(inner.clone(), STORAGE_KEY.to_vec()).unwrap();
    Client::new(enc, b"carol".to_vec(), None).unwrap();
    push(encrypted_storage(inner.clone(), vec![0; 32]).map(|_| ()));
    push(encrypted_storage(inner, STORAGE_KEY[..31].to_vec()).map(|_| ()));
    errors
}

#[test]
fn errors_never_contain_plaintext_or_keys() {
    let errors = errors_on_every_path();
    assert!(errors.len() >= 20, "only {} errors", errors.len());
    let kinds: std::collections::BTreeSet<String> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(kinds.len() >= 10, "too few kinds of errors: {kinds:?}");
    for e in &errors {
        let secrets: &[&[u8]] = &[PLAINTEXT, PSK_SECRET, &STORAGE_KEY];
        assert_clean("MlsError Display", &e.to_string(), secrets);
        assert_clean("MlsError Debug", &format!("{e:?}"), secrets);
    }
}

#[test]
fn core_errors_and_writes_never_print_values() {
    // CoreError from the encrypted backend and from decoding.
    let inner = Arc::new(MemoryBackend::new());
    EncryptedBackend::open(inner.clone(), &STORAGE_KEY).unwrap();
    let err =
        EncryptedBackend::open(inner.clone(), b"PSK-SECRET-Fh2u-key-material-32b").unwrap_err();
    let key = mlskit::core::storage::codec::key(
        mlskit::core::storage::codec::Namespace::Sdk,
        "identity",
        PLAINTEXT,
    );
    // Stored bytes that hold the secret as a CBOR byte string and as text.
    let mut as_bytes = vec![0x58, PSK_SECRET.len() as u8];
    as_bytes.extend_from_slice(PSK_SECRET);
    let mut as_text = vec![0x78, PSK_SECRET.len() as u8];
    as_text.extend_from_slice(PSK_SECRET);
    let decode = |v: &[u8]| -> CoreError {
        mlskit::core::storage::codec::decode::<u64>(&key, v).unwrap_err()
    };
    for e in [err, decode(&as_bytes), decode(&as_text), decode(PSK_SECRET)] {
        let secrets: &[&[u8]] = &[PLAINTEXT, PSK_SECRET, &STORAGE_KEY];
        assert_clean("CoreError Display", &e.to_string(), secrets);
        assert_clean("CoreError Debug", &format!("{e:?}"), secrets);
        let ffi: MlsError = e.into();
        assert_clean("MlsError Debug", &format!("{ffi:?}"), secrets);
    }
    // The core Write hides keys and values.
    let w = Write::put(PLAINTEXT.to_vec(), PSK_SECRET.to_vec());
    assert_clean("Write Debug", &format!("{w:?}"), &[PLAINTEXT, PSK_SECRET]);
    let enc = EncryptedBackend::open(inner.clone(), &STORAGE_KEY).unwrap();
    enc.commit(vec![w]).unwrap();
    assert_clean(
        "EncryptedBackend Debug",
        &format!("{enc:?}"),
        &[&STORAGE_KEY],
    );
}

/// What a host backend receives: with `encrypted_storage` its writes carry only
/// ciphertext, so even a host that logs `StorageWrite` with `{:?}` logs no secret.
#[test]
fn encrypted_storage_writes_print_no_secrets() {
    let rec = Recorder::new();
    let enc = encrypted_storage(rec.clone(), STORAGE_KEY.to_vec()).unwrap();
    let a = Client::new(enc, b"alice".to_vec(), None).unwrap();
    a.store_external_psk(PLAINTEXT.to_vec(), PSK_SECRET.to_vec())
        .unwrap();
    let writes = rec.writes.lock().unwrap();
    assert!(writes.len() > 2);
    for w in writes.iter() {
        assert_clean(
            "StorageWrite Debug",
            &format!("{w:?}"),
            &[PLAINTEXT, PSK_SECRET, &STORAGE_KEY],
        );
    }
}

/// `StorageWrite`'s `Debug` prints sizes only, never the value bytes (private
/// keys, PSKs) of a plain store.
#[test]
fn plain_storage_writes_print_no_secrets() {
    let rec = Recorder::new();
    let a = Client::new(rec.clone(), b"alice".to_vec(), None).unwrap();
    a.store_external_psk(b"psk".to_vec(), PSK_SECRET.to_vec())
        .unwrap();
    for w in rec.writes.lock().unwrap().iter() {
        assert_clean("StorageWrite Debug", &format!("{w:?}"), &[PSK_SECRET]);
    }
}

/// A decrypted message's `Debug` prints the plaintext's length, not its bytes.
#[test]
fn application_message_debug_prints_no_plaintext() {
    let alice = Client::new(memory_storage(), b"alice".to_vec(), None).unwrap();
    let bob = Client::new(memory_storage(), b"bob".to_vec(), None).unwrap();
    let ga = alice.create_group(None).unwrap();
    let bundle = ga
        .add_members(bob.create_key_packages(1, None).unwrap())
        .unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = bob.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    let ct = ga.encrypt(PLAINTEXT.to_vec(), vec![]).unwrap();
    let received = gb.process_message(ct).unwrap();
    let ReceivedMessage::Application { message } = &received else {
        panic!("expected an application message");
    };
    assert_eq!(message.plaintext, PLAINTEXT);
    let text = format!("{message:?}");
    assert!(
        text.contains(&format!("<{} bytes>", PLAINTEXT.len())),
        "{text}"
    );
    assert_clean("ApplicationMessage Debug", &text, &[PLAINTEXT]);
}
