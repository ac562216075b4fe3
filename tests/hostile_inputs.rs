//! Hostile inputs: every function taking bytes gets empty input, truncations,
//! bit flips, splices and messages of the wrong kind or group. Each must return
//! a typed error, never panic, and change no state.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use common::*;
use mlskit::{Client, GroupOptions, MlsError, ProposalMode, ReceivedMessage};

/// Every hostile variant of `msg`: empty, truncations, bit flips, splices with `others`.
fn mutations(msg: &[u8], others: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("empty".to_string(), Vec::new())];
    let len = msg.len();
    // Every truncation for short messages; all of the first and last 64 and
    // a stride in between for long ones.
    let stride = if len <= 2048 { 1 } else { len / 1024 };
    for k in 0..len {
        if k < 64 || k + 64 >= len || k % stride == 0 {
            out.push((format!("truncated to {k}"), msg[..k].to_vec()));
        }
    }
    let mut extended = msg.to_vec();
    extended.push(0);
    out.push(("one trailing byte".to_string(), extended));
    let flip_stride = (len / 160).max(1);
    for pos in 0..len {
        if pos < 48 || pos % flip_stride == 0 || pos + 8 >= len {
            let mut m = msg.to_vec();
            m[pos] ^= 1 << (pos % 8);
            out.push((format!("bit {} of byte {pos} flipped", pos % 8), m));
        }
    }
    for (n, other) in others.iter().enumerate() {
        if *other == msg {
            continue;
        }
        for cut in [len / 4, len / 2, 3 * len / 4] {
            let mut m = msg[..cut].to_vec();
            m.extend_from_slice(&other[other.len().min(cut)..]);
            out.push((format!("splice {n} at {cut}"), m));
            let mut m = other[..other.len().min(cut)].to_vec();
            m.extend_from_slice(&msg[cut..]);
            out.push((format!("reverse splice {n} at {cut}"), m));
        }
    }
    out
}

/// Collects violations instead of stopping at the first one.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn assert_none(&self) {
        // Group by "function: KIND", show a count and the first three inputs.
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &self.0 {
            let (head, tail) = f
                .split_once(" on ")
                .or_else(|| f.split_once(" after "))
                .unwrap_or((f, ""));
            let head = head.split(": ACCEPTED").next().unwrap_or(head);
            let kind = if f.contains("ACCEPTED") {
                format!("{head}: ACCEPTED")
            } else {
                head.to_string()
            };
            let example = if f.contains("ACCEPTED") {
                f.split(": ACCEPTED ").nth(1).unwrap_or("").to_string()
            } else {
                tail.to_string()
            };
            groups.entry(kind).or_default().push(example);
        }
        let report: Vec<String> = groups
            .iter()
            .map(|(k, v)| format!("{k} x{} (e.g. {})", v.len(), v[..v.len().min(3)].join("; ")))
            .collect();
        assert!(
            self.0.is_empty(),
            "{} violations:\n{}",
            self.0.len(),
            report.join("\n")
        );
    }
}

fn acceptable(e: &MlsError) -> bool {
    !matches!(
        e,
        MlsError::Internal { .. }
            | MlsError::StorageBackend { .. }
            | MlsError::StorageCorrupt { .. }
    )
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` catching panics, without printing (or capturing backtraces of)
/// the panics it expects.
fn catch<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r
}

/// What must be unchanged after a rejected input.
struct Guard<'a> {
    store: &'a FaultyStore,
    client: &'a Client,
    group: Option<&'a mlskit::Group>,
}

#[derive(PartialEq, Debug)]
struct GuardState {
    snapshot: BTreeMap<Vec<u8>, Vec<u8>>,
    commits: usize,
    group_ids: Vec<Vec<u8>>,
    key_packages: usize,
    group: Option<Observed>,
}

impl Guard<'_> {
    fn state(&self) -> GuardState {
        GuardState {
            snapshot: self.store.snapshot(),
            commits: self.store.commits(),
            group_ids: self.client.group_ids().unwrap(),
            key_packages: self.client.key_packages().unwrap().len(),
            group: self.group.map(Observed::of),
        }
    }

    /// Runs `op` on every input: it must fail with a typed error, not panic,
    /// and leave the state unchanged.
    fn reject_all<T>(
        &self,
        findings: &mut Findings,
        what: &str,
        inputs: &[(String, Vec<u8>)],
        op: impl Fn(Vec<u8>) -> Result<T, MlsError>,
    ) {
        let before = self.state();
        for (label, input) in inputs {
            match catch(|| op(input.clone())) {
                Err(_) => findings.0.push(format!("{what}: PANIC on {label}")),
                Ok(Ok(_)) => findings.0.push(format!("{what}: ACCEPTED {label}")),
                Ok(Err(e)) if !acceptable(&e) => findings
                    .0
                    .push(format!("{what}: untyped error on {label}: {e:?}")),
                Ok(Err(_)) => {}
            }
            let after = self.state();
            if after != before {
                findings
                    .0
                    .push(format!("{what}: STATE CHANGED after {label}"));
                return;
            }
        }
    }
}

/// Only checks for panics (for functions that may legitimately accept a mutant).
fn no_panic<T>(
    findings: &mut Findings,
    what: &str,
    inputs: &[(String, Vec<u8>)],
    must_fail: impl Fn(&str) -> bool,
    op: impl Fn(Vec<u8>) -> Result<T, MlsError>,
) {
    for (label, input) in inputs {
        match catch(|| op(input.clone())) {
            Err(_) => findings.0.push(format!("{what}: PANIC on {label}")),
            Ok(Ok(_)) if must_fail(label) => findings.0.push(format!("{what}: ACCEPTED {label}")),
            Ok(Err(e)) if !acceptable(&e) => findings
                .0
                .push(format!("{what}: untyped error on {label}: {e:?}")),
            _ => {}
        }
    }
}

struct World {
    ms: Vec<Member>,
    app: Vec<u8>,
    proposal: Vec<u8>,
    commit: Vec<u8>,
    /// Welcome with the tree in-band, for client `d`.
    welcome: Vec<u8>,
    /// Welcome without the tree, for client `d`, and its tree.
    welcome_oob: Vec<u8>,
    tree_oob: Vec<u8>,
    group_info: Vec<u8>,
    group_info_no_tree: Vec<u8>,
    tree: Vec<u8>,
    key_package: Vec<u8>,
    other_group_app: Vec<u8>,
    other_group_commit: Vec<u8>,
    d: (Arc<FaultyStore>, Arc<Client>),
    e: (Arc<FaultyStore>, Arc<Client>),
}

fn world() -> World {
    let ms = build_group(3, |_| FaultyStore::map());
    let d_store = FaultyStore::map();
    let d = client_on(&d_store, "d");
    let e_store = FaultyStore::map();
    let e = client_on(&e_store, "e");
    let f = client_on(&FaultyStore::map(), "f");
    let key_package = f.create_key_packages(1, None).unwrap().remove(0);

    let m0 = &ms[0];
    // Another group with the tree in-band, and one without.
    let g3 = m0.client.create_group(None).unwrap();
    let kp_d = d.create_key_packages(2, None).unwrap();
    let b = g3.add_members(vec![kp_d[0].clone()]).unwrap();
    g3.merge_pending_commit().unwrap();
    let welcome = b.welcome.unwrap();
    let other_group_app = g3.encrypt(b"other".to_vec(), vec![]).unwrap();
    let other_group_commit = g3.self_update().unwrap().commit;
    g3.clear_pending_commit().unwrap();
    let g2 = m0
        .client
        .create_group(Some(GroupOptions {
            join: mlskit::JoinOptions {
                use_ratchet_tree_extension: false,
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
    let b = g2.add_members(vec![kp_d[1].clone()]).unwrap();
    g2.merge_pending_commit().unwrap();
    let welcome_oob = b.welcome.unwrap();
    let tree_oob = g2.export_ratchet_tree().unwrap();

    let group_info = m0.group.export_group_info(true).unwrap();
    let group_info_no_tree = m0.group.export_group_info(false).unwrap();
    let tree = m0.group.export_ratchet_tree().unwrap();

    let app = m0
        .group
        .encrypt(b"hello".to_vec(), b"aad".to_vec())
        .unwrap();
    let proposal = m0
        .group
        .propose_custom(CUSTOM_PROPOSAL, b"p".to_vec(), ProposalMode::ByReference)
        .unwrap()
        .message;
    m0.group.clear_pending_proposals().unwrap();
    let commit = m0.group.self_update().unwrap().commit;
    World {
        ms,
        app,
        proposal,
        commit,
        welcome,
        welcome_oob,
        tree_oob,
        group_info,
        group_info_no_tree,
        tree,
        key_package,
        other_group_app,
        other_group_commit,
        d: (d_store, d),
        e: (e_store, e),
    }
}

impl World {
    fn all_real(&self) -> Vec<(String, Vec<u8>)> {
        [
            ("application", &self.app),
            ("proposal", &self.proposal),
            ("commit", &self.commit),
            ("welcome", &self.welcome),
            ("welcome_oob", &self.welcome_oob),
            ("group_info", &self.group_info),
            ("group_info_no_tree", &self.group_info_no_tree),
            ("key_package", &self.key_package),
            ("ratchet tree", &self.tree),
        ]
        .iter()
        .map(|(n, m)| (format!("real {n}"), m.to_vec()))
        .collect()
    }

    fn others(&self) -> Vec<&[u8]> {
        vec![&self.app, &self.commit, &self.welcome, &self.key_package]
    }

    /// Everything hostile for a function expecting `real` (real messages of
    /// other kinds excluded by `skip`).
    fn hostile(&self, real: &[u8], skip: &[&str]) -> Vec<(String, Vec<u8>)> {
        let mut v = mutations(real, &self.others());
        v.extend(
            self.all_real()
                .into_iter()
                .filter(|(n, _)| !skip.iter().any(|s| n == &format!("real {s}"))),
        );
        v
    }
}

#[test]
fn process_message_rejects_hostile_input() {
    let w = world();
    let m1 = &w.ms[1];
    let guard = Guard {
        store: &m1.store,
        client: &m1.client,
        group: Some(&m1.group),
    };
    let mut f = Findings::default();
    for (name, real) in [
        ("application", &w.app),
        ("proposal", &w.proposal),
        ("commit", &w.commit),
    ] {
        let inputs = w.hostile(real, &["application", "proposal", "commit"]);
        guard.reject_all(&mut f, &format!("process_message({name})"), &inputs, |m| {
            // A commit is only staged; it must not be merged here.
            m1.group.process_message(m).map(|r| {
                if let ReceivedMessage::Commit { commit } = r {
                    commit.discard()
                }
            })
        });
    }
    // Messages from another group.
    for m in [&w.other_group_app, &w.other_group_commit] {
        let r = m1.group.process_message(m.clone());
        assert!(matches!(r, Err(MlsError::WrongGroup)), "{:?}", r.err());
    }

    // The real messages still work afterwards.
    match m1.group.process_message(w.app.clone()).unwrap() {
        ReceivedMessage::Application { message } => assert_eq!(message.plaintext, b"hello"),
        _ => panic!("expected application"),
    }
    process_proposal(&m1.group, &w.proposal);
    process_and_merge(&m1.group, &w.commit);
    w.ms[0].group.merge_pending_commit().unwrap();
    assert_agree(&[&w.ms[0], &w.ms[1]]);
    f.assert_none();
}

#[test]
fn welcome_functions_reject_hostile_input() {
    let w = world();
    let (store, d) = &w.d;
    let guard = Guard {
        store,
        client: d,
        group: None,
    };
    let mut f = Findings::default();
    let inputs = w.hostile(&w.welcome, &["welcome", "welcome_oob"]);
    guard.reject_all(&mut f, "inspect_welcome", &inputs, |m| {
        d.inspect_welcome(m, None)
    });
    guard.reject_all(&mut f, "join_group", &inputs, |m| {
        d.join_group(m, None, None)
    });

    // Out-of-band tree: hostile trees with the real Welcome, hostile Welcomes with the real tree.
    let trees = w.hostile(&w.tree_oob, &["ratchet tree"]);
    guard.reject_all(&mut f, "inspect_welcome(tree)", &trees, |t| {
        d.inspect_welcome(w.welcome_oob.clone(), Some(t))
    });
    guard.reject_all(&mut f, "join_group(tree)", &trees, |t| {
        d.join_group(w.welcome_oob.clone(), Some(t), None)
    });
    let welcomes = w.hostile(&w.welcome_oob, &["welcome", "welcome_oob"]);
    guard.reject_all(&mut f, "join_group(oob welcome)", &welcomes, |m| {
        d.join_group(m, Some(w.tree_oob.clone()), None)
    });
    // Without the tree it needs.
    guard.reject_all(
        &mut f,
        "join_group(no tree)",
        &[("welcome without tree".into(), w.welcome_oob.clone())],
        |m| d.join_group(m, None, None),
    );
    // A Welcome for somebody else.
    let (_, e) = &w.e;
    assert!(matches!(
        e.join_group(w.welcome.clone(), None, None),
        Err(MlsError::NoMatchingKeyPackage)
    ));

    // The real ones still work.
    let info = d
        .inspect_welcome(w.welcome_oob.clone(), Some(w.tree_oob.clone()))
        .unwrap();
    let g = d.join_group(w.welcome.clone(), None, None).unwrap();
    let g2 = d
        .join_group(w.welcome_oob.clone(), Some(w.tree_oob.clone()), None)
        .unwrap();
    assert_eq!(g2.id(), info.group_id);
    assert_eq!(g.members().unwrap().len(), 2);
    f.assert_none();
}

#[test]
fn external_commit_rejects_hostile_input() {
    let w = world();
    let (store, e) = &w.e;
    let guard = Guard {
        store,
        client: e,
        group: None,
    };
    let mut f = Findings::default();
    let inputs = w.hostile(&w.group_info, &["group_info", "group_info_no_tree"]);
    guard.reject_all(&mut f, "join_by_external_commit", &inputs, |m| {
        e.join_by_external_commit(m, None, None)
    });
    let trees = w.hostile(&w.tree, &["ratchet tree"]);
    guard.reject_all(&mut f, "join_by_external_commit(tree)", &trees, |t| {
        e.join_by_external_commit(w.group_info_no_tree.clone(), Some(t), None)
    });
    guard.reject_all(
        &mut f,
        "join_by_external_commit(no tree)",
        &[(
            "group info without tree".into(),
            w.group_info_no_tree.clone(),
        )],
        |m| e.join_by_external_commit(m, None, None),
    );

    let ej = e
        .join_by_external_commit(w.group_info_no_tree.clone(), Some(w.tree.clone()), None)
        .unwrap();
    for m in &w.ms[1..] {
        process_and_merge(&m.group, &ej.commit);
    }
    assert_eq!(ej.group.members().unwrap().len(), 4);
    f.assert_none();
}

#[test]
fn key_package_functions_reject_hostile_input() {
    let w = world();
    let m2 = &w.ms[2];
    let guard = Guard {
        store: &m2.store,
        client: &m2.client,
        group: Some(&m2.group),
    };
    let mut f = Findings::default();
    let inputs = w.hostile(&w.key_package, &["key_package"]);
    guard.reject_all(
        &mut f,
        "validate_key_package",
        &inputs,
        mlskit::validate_key_package,
    );
    guard.reject_all(&mut f, "add_members", &inputs, |k| {
        m2.group.add_members(vec![k])
    });
    let few: Vec<_> = inputs.iter().step_by(7).cloned().collect();
    guard.reject_all(&mut f, "add_members(real + hostile)", &few, |k| {
        m2.group.add_members(vec![w.key_package.clone(), k])
    });
    guard.reject_all(&mut f, "propose_add(ref)", &inputs, |k| {
        m2.group.propose_add(k, ProposalMode::ByReference)
    });
    guard.reject_all(&mut f, "propose_add(value)", &inputs, |k| {
        m2.group.propose_add(k, ProposalMode::ByValue)
    });
    guard.reject_all(
        &mut f,
        "add_members(none)",
        &[("no key packages".into(), vec![])],
        |_| m2.group.add_members(vec![]),
    );

    assert!(mlskit::validate_key_package(w.key_package.clone()).is_ok());
    m2.group.add_members(vec![w.key_package.clone()]).unwrap();
    m2.group.clear_pending_commit().unwrap();
    f.assert_none();
}

#[test]
fn parse_message_never_panics() {
    let w = world();
    let mut f = Findings::default();
    for (name, real) in w.all_real() {
        let inputs = mutations(&real, &w.others());
        // Structure-breaking mutants must be rejected; a flipped bit may still parse.
        no_panic(
            &mut f,
            &format!("parse_message({name})"),
            &inputs,
            |label| {
                (label == "empty" || label.starts_with("truncated") || label == "one trailing byte")
                    && name != "real ratchet tree"
            },
            mlskit::parse_message,
        );
    }
    let info = mlskit::parse_message(w.app.clone()).unwrap();
    assert_eq!(info.kind, mlskit::MessageKind::PrivateMessage);
    f.assert_none();
}

/// Minimal reproductions of the panics found above.
#[test]
fn truncated_key_package_is_a_typed_error() {
    let kp = client_on(&FaultyStore::map(), "k")
        .create_key_packages(1, None)
        .unwrap()
        .remove(0);
    let r = catch(|| mlskit::validate_key_package(kp[..6].to_vec()));
    assert!(
        matches!(r, Ok(Err(MlsError::MalformedInput { .. }))),
        "validate_key_package(first 6 bytes) panicked or was not MalformedInput"
    );
}

#[test]
fn truncated_ratchet_tree_is_a_typed_error() {
    let a = client_on(&FaultyStore::map(), "a");
    let g = a.create_group(None).unwrap();
    let tree = g.export_ratchet_tree().unwrap();
    let gi = g.export_group_info(false).unwrap();
    let e = client_on(&FaultyStore::map(), "e");
    let r = catch(|| e.join_by_external_commit(gi.clone(), Some(tree[..5].to_vec()), None));
    assert!(
        matches!(r, Ok(Err(MlsError::MalformedInput { .. }))),
        "join_by_external_commit(tree[..5]) panicked or was not MalformedInput"
    );
}
