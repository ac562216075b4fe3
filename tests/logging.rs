//! MLSKit's and OpenMLS's log lines reach the app's logger, at the level the
//! app chose, and none of them holds a secret the scenario used.
//!
//! One test in this binary: the logger is process-wide.

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use mlskit::{
    encrypted_storage, memory_storage, set_log_level, set_logger, Client, LogLevel, Logger,
    MlsError, ProposalMode, ReceivedMessage,
};

const PLAINTEXT: &[u8] = b"log-scan plaintext Qz8v";
const PSK_ID: &[u8] = b"log-scan psk id";
const PSK: [u8; 32] = [0xa7; 32];
const STORAGE_KEY: [u8; 32] = [0x3c; 32];

/// Every line the logger got, and what a call back into MLSKit returned.
#[derive(Default)]
struct Collecting {
    lines: Mutex<Vec<(LogLevel, String, String)>>,
    reentrant: OnceLock<Result<Vec<Vec<u8>>, MlsError>>,
    client: OnceLock<Arc<Client>>,
}

impl Logger for Collecting {
    fn log(&self, level: LogLevel, target: String, message: String) {
        if let Some(client) = self.client.get() {
            self.reentrant.get_or_init(|| client.group_ids());
        }
        self.lines.lock().unwrap().push((level, target, message));
    }
}

/// The forms a secret could take in a log line: raw text, lowercase hex
/// (plain and `{:x?}`), and `{:?}` of a byte slice.
fn forms(secret: &[u8]) -> Vec<String> {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let take = secret.len().min(12);
    vec![
        String::from_utf8_lossy(secret).into_owned(),
        hex[..2 * take].to_string(),
        format!("{:x?}", &secret[..take])
            .trim_end_matches(']')
            .to_string(),
        format!("{:?}", &secret[..take])
            .trim_end_matches(']')
            .to_string(),
    ]
}

#[test]
fn every_line_reaches_the_logger_and_none_holds_a_secret() {
    let logger = Arc::new(Collecting::default());
    set_logger(Some(logger.clone()), LogLevel::Trace).unwrap();

    let alice = Client::new(
        encrypted_storage(memory_storage(), STORAGE_KEY.to_vec()).unwrap(),
        b"alice".to_vec(),
        Some(options()),
    )
    .unwrap();
    let bob = Client::new(MapStore::new(), b"bob".to_vec(), Some(options())).unwrap();
    let ga = alice.create_group(None).unwrap();
    let add = ga
        .add_members(bob.create_key_packages(1, None).unwrap())
        .unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = bob.join_group(add.welcome.unwrap(), None, None).unwrap();
    for c in [&alice, &bob] {
        c.store_external_psk(PSK_ID.to_vec(), PSK.to_vec()).unwrap();
    }
    let p = ga
        .propose_external_psk(PSK_ID.to_vec(), ProposalMode::ByReference)
        .unwrap();
    process_proposal(&gb, &p.message);
    let commit = ga.commit_pending_proposals().unwrap();
    ga.merge_pending_commit().unwrap();
    process_and_merge(&gb, &commit.commit);
    let sent = ga.encrypt(PLAINTEXT.to_vec(), vec![]).unwrap();
    match gb.process_message(sent.clone()).unwrap() {
        ReceivedMessage::Application { message } => assert_eq!(message.plaintext, PLAINTEXT),
        _ => panic!("expected an application message"),
    }
    // Failures log why: a replay, a hostile message.
    assert!(gb.process_message(sent).is_err());
    let mut hostile = gb.encrypt(b"x".to_vec(), vec![]).unwrap();
    let last = hostile.len() - 1;
    hostile[last] ^= 1;
    assert!(ga.process_message(hostile).is_err());
    let exported = [
        ga.export_secret("log scan".into(), vec![], 32).unwrap(),
        gb.export_secret("log scan".into(), b"ctx".to_vec(), 32)
            .unwrap(),
    ];

    // A logger that calls back into MLSKit is refused, not deadlocked.
    logger.client.set(alice.clone()).ok();
    ga.encrypt(b"one more".to_vec(), vec![]).unwrap();
    assert!(matches!(
        logger.reentrant.get(),
        Some(Err(MlsError::ReentrantCall))
    ));

    let lines = logger.lines.lock().unwrap().clone();
    assert!(
        lines.len() > 20,
        "only {} lines at trace level",
        lines.len()
    );
    assert!(
        lines.iter().any(|(_, t, _)| t.starts_with("openmls")),
        "OpenMLS lines arrive"
    );
    assert!(
        lines.iter().any(|(l, t, m)| *l == LogLevel::Debug
            && t.starts_with("mlskit")
            && m.contains("failed")),
        "MLSKit says why a message failed"
    );
    let mut secrets: Vec<&[u8]> = vec![PLAINTEXT, &PSK, &STORAGE_KEY];
    secrets.extend(exported.iter().map(Vec::as_slice));
    for (level, target, message) in &lines {
        for secret in &secrets {
            for form in forms(secret) {
                assert!(
                    !message.contains(&form) && !target.contains(&form),
                    "a {level:?} line of {target} holds a secret ({form}): {message}"
                );
            }
        }
    }

    // The level filter holds, and `None` stops logging.
    let before = lines.len();
    set_log_level(LogLevel::Error);
    ga.encrypt(b"quiet".to_vec(), vec![]).unwrap();
    assert_eq!(logger.lines.lock().unwrap().len(), before);
    set_logger(None, LogLevel::Trace).unwrap();
    let _ = gb.process_message(b"junk".to_vec());
    assert_eq!(logger.lines.lock().unwrap().len(), before);
}
