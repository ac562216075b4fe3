//! Kill -9: a child process runs a long seeded random sequence of MLS
//! operations on three groups (four clients, one SQLite file each) and the
//! parent SIGKILLs it at random moments. After every kill the parent copies the
//! state, reopens every database, catches every member up from the Delivery
//! Service log and checks that no group is corrupt or forked and that every
//! member still encrypts to and decrypts from its peers.
//!
//! The child logs each outgoing message to the DS log atomically (temp file +
//! rename) BEFORE it merges its own commit, exactly like an app that sends
//! before merging. On restart every member resolves its pending commit against
//! the log (in the log: merge it; not in the log: send the very messages stored
//! with it, `Group::pending_commit_bundle`, and merge if the DS takes them),
//! processes what it missed, and unfinished proposal rounds are committed.
//!
//! `MLSKIT_KILLS` sets the number of kills (default 40; 200 for the full run),
//! `MLSKIT_KILL9_SEED` the seed. The seed fixes every operation sequence and
//! the kill schedule; where exactly a kill lands also depends on timing.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rng::{env_u64, Rng};
use mlskit::{Client, Group, MlsError, ReceivedMessage};
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "MLSKIT_KILL9_CHILD_DIR";
const SEED_ENV: &str = "MLSKIT_KILL9_CHILD_SEED";
const READY: &str = "KILL9-READY";
const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const GROUPS: usize = 3;

/// Group `g` always holds these three; they are never removed.
fn base(g: usize) -> [usize; 3] {
    [g % 4, (g + 1) % 4, (g + 2) % 4]
}

/// The member that is added and removed over and over.
fn floater(g: usize) -> usize {
    (g + 3) % 4
}

fn gid(g: usize) -> Vec<u8> {
    format!("kill9-group-{g}").into_bytes()
}

#[derive(Serialize, Deserialize, Clone, Debug)]
enum Kind {
    App {
        plaintext: Vec<u8>,
    },
    Proposal {
        proposal_ref: Vec<u8>,
    },
    Commit {
        welcome: Option<Vec<u8>>,
        added: Option<usize>,
        removed: Option<usize>,
    },
}

/// One message the Delivery Service accepted.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Rec {
    group: usize,
    /// The epoch the message was sent in.
    epoch: u64,
    sender: usize,
    kind: Kind,
    message: Vec<u8>,
}

/// The Delivery Service: an append-only log, one file per message, each
/// written atomically. It accepts one commit per epoch.
struct Ds {
    dir: PathBuf,
    recs: Vec<Rec>,
}

impl Ds {
    fn open(dir: &Path) -> Self {
        let dir = dir.join("ds");
        fs::create_dir_all(&dir).unwrap();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut recs = Vec::new();
        for name in names {
            if name.ends_with(".tmp") {
                // A write the kill interrupted: it was never accepted.
                fs::remove_file(dir.join(&name)).unwrap();
                continue;
            }
            assert_eq!(name, format!("{:08}.rec", recs.len()), "DS log has a gap");
            let bytes = fs::read(dir.join(&name)).unwrap();
            let rec: Rec = ciborium::from_reader(bytes.as_slice()).unwrap();
            recs.push(rec);
        }
        let ds = Self { dir, recs };
        for g in 0..GROUPS {
            // Commits of a group are for consecutive epochs.
            let epochs: Vec<u64> = ds
                .recs
                .iter()
                .filter(|r| r.group == g && matches!(r.kind, Kind::Commit { .. }))
                .map(|r| r.epoch)
                .collect();
            assert!(epochs.iter().enumerate().all(|(i, e)| *e == i as u64));
        }
        ds
    }

    fn head_epoch(&self, g: usize) -> u64 {
        self.recs
            .iter()
            .filter(|r| r.group == g && matches!(r.kind, Kind::Commit { .. }))
            .count() as u64
    }

    /// Accepts `rec` (false for a commit that lost the race for its epoch).
    fn append(&mut self, rec: Rec) -> bool {
        if matches!(rec.kind, Kind::Commit { .. }) && rec.epoch != self.head_epoch(rec.group) {
            return false;
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&rec, &mut bytes).unwrap();
        let name = format!("{:08}.rec", self.recs.len());
        let tmp = self.dir.join(format!("{name}.tmp"));
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, self.dir.join(name)).unwrap();
        self.recs.push(rec);
        true
    }

    /// Proposals sent in the current epoch, not committed yet: (sender, ref).
    fn open_proposals(&self, g: usize) -> Vec<(usize, Vec<u8>)> {
        let head = self.head_epoch(g);
        self.recs
            .iter()
            .filter(|r| r.group == g && r.epoch == head)
            .filter_map(|r| match &r.kind {
                Kind::Proposal { proposal_ref } => Some((r.sender, proposal_ref.clone())),
                _ => None,
            })
            .collect()
    }

    /// The record of the Welcome that added `c` last, unless a later commit removed it.
    fn last_add(&self, g: usize, c: usize) -> Option<usize> {
        let mut last = None;
        for (k, r) in self.recs.iter().enumerate() {
            if r.group != g {
                continue;
            }
            if let Kind::Commit { added, removed, .. } = &r.kind {
                if *added == Some(c) {
                    last = Some(k);
                }
                if *removed == Some(c) {
                    last = None;
                }
            }
        }
        last
    }

    /// Who the group holds according to the log.
    fn roster(&self, g: usize) -> Vec<usize> {
        let mut r: Vec<usize> = base(g).to_vec();
        if self.last_add(g, floater(g)).is_some() {
            r.push(floater(g));
        }
        r.sort();
        r
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    app: u64,
    commits: u64,
    proposals: u64,
    adds: u64,
    removes: u64,
    decrypted: u64,
    duplicates_skipped: u64,
    pending_merged: u64,
    pending_cleared: u64,
    pending_resent: u64,
    rounds_finished: u64,
}

struct World {
    clients: Vec<Arc<Client>>,
    ds: Ds,
    handles: HashMap<(usize, usize), Arc<Group>>,
    /// Next DS record each member looks at (in memory: after a restart it is 0).
    cursor: HashMap<(usize, usize), usize>,
    stats: Stats,
    /// The child waits this long around each send, like a network round trip
    /// (it widens the "staged, not sent" and "sent, not merged" windows).
    latency: Duration,
}

impl World {
    fn open(dir: &Path) -> Self {
        let clients = NAMES
            .iter()
            .map(|n| {
                let path = dir.join(format!("{n}.sqlite"));
                let store = mlskit::sqlite_storage(path.to_string_lossy().into_owned()).unwrap();
                Client::new(store, n.as_bytes().to_vec(), None).unwrap()
            })
            .collect();
        Self {
            clients,
            ds: Ds::open(dir),
            handles: HashMap::new(),
            cursor: HashMap::new(),
            stats: Stats::default(),
            latency: Duration::ZERO,
        }
    }

    fn handle(&mut self, c: usize, g: usize) -> Option<Arc<Group>> {
        if let Some(h) = self.handles.get(&(c, g)) {
            return Some(h.clone());
        }
        match self.clients[c].group(gid(g)) {
            Ok(h) => {
                self.handles.insert((c, g), h.clone());
                Some(h)
            }
            Err(MlsError::UnknownGroup) => None,
            Err(e) => panic!("{} cannot load group {g}: {e:?}", NAMES[c]),
        }
    }

    fn drop_group(&mut self, c: usize, g: usize) {
        self.handles.remove(&(c, g));
        self.clients[c].delete_group(gid(g)).unwrap();
    }

    /// Catches `c` up on group `g` from the DS log.
    fn sync(&mut self, c: usize, g: usize) {
        let start = self.cursor.get(&(c, g)).copied().unwrap_or(0);
        let last_add = self.ds.last_add(g, c);
        for k in start..self.ds.recs.len() {
            let rec = self.ds.recs[k].clone();
            if rec.group != g {
                continue;
            }
            let mut h = self.handle(c, g);
            if let Some(group) = &h {
                if !group.is_active().unwrap() {
                    self.drop_group(c, g);
                    h = None;
                }
            }
            let Some(h) = h else {
                if Some(k) == last_add {
                    let Kind::Commit { welcome, .. } = &rec.kind else {
                        unreachable!()
                    };
                    let joined = self.clients[c]
                        .join_group(welcome.clone().unwrap(), None, None)
                        .unwrap();
                    assert_eq!(joined.epoch().unwrap(), rec.epoch + 1);
                    self.handles.insert((c, g), joined);
                }
                continue;
            };
            let e = h.epoch().unwrap();
            if rec.epoch < e {
                continue;
            }
            assert_eq!(
                rec.epoch, e,
                "{} in group {g} is at epoch {e} but record {k} is for epoch {}",
                NAMES[c], rec.epoch
            );
            match &rec.kind {
                Kind::App { plaintext } => {
                    if rec.sender == c {
                        continue;
                    }
                    match h.process_message(rec.message.clone()) {
                        Ok(ReceivedMessage::Application { message }) => {
                            assert_eq!(&message.plaintext, plaintext);
                            self.stats.decrypted += 1;
                        }
                        Err(MlsError::DuplicateMessage) => self.stats.duplicates_skipped += 1,
                        Err(e) => panic!("{} app record {k}: {e:?}", NAMES[c]),
                        Ok(_) => panic!("{} app record {k}: not an application message", NAMES[c]),
                    }
                }
                Kind::Proposal { .. } => {
                    if rec.sender == c {
                        continue;
                    }
                    match h.process_message(rec.message.clone()) {
                        Ok(ReceivedMessage::Proposal { .. }) => {}
                        Err(MlsError::DuplicateMessage) => self.stats.duplicates_skipped += 1,
                        Err(e) => panic!("{} proposal record {k}: {e:?}", NAMES[c]),
                        Ok(_) => panic!("{} proposal record {k}: not a proposal", NAMES[c]),
                    }
                }
                Kind::Commit { .. } => {
                    let pending = h.pending_commit().unwrap();
                    if rec.sender == c {
                        // The DS has our commit: the kill came before the merge.
                        assert!(
                            pending.is_some(),
                            "{} sent the commit of epoch {e} but has no pending commit",
                            NAMES[c]
                        );
                        h.merge_pending_commit().unwrap();
                        self.stats.pending_merged += 1;
                    } else {
                        if pending.is_some() {
                            // Ours lost the race (or was never sent).
                            h.clear_pending_commit().unwrap();
                            self.stats.pending_cleared += 1;
                        }
                        match h.process_message(rec.message.clone()).unwrap() {
                            ReceivedMessage::Commit { commit } => commit.merge().unwrap(),
                            _ => panic!("{} commit record {k}: not a commit", NAMES[c]),
                        }
                    }
                    assert_eq!(h.epoch().unwrap(), e + 1);
                }
            }
        }
        self.cursor.insert((c, g), self.ds.recs.len());
    }

    /// Cleans up what a kill left behind once `c` is up to date.
    fn settle(&mut self, c: usize, g: usize) {
        self.sync(c, g);
        let Some(h) = self.handle(c, g) else { return };
        if !h.is_active().unwrap() {
            self.drop_group(c, g);
            return;
        }
        if h.pending_commit().unwrap().is_some() {
            // Never reached the DS (the DS has no commit for our epoch); a
            // restart re-sends it first (`resend_pending`), this is mid-run.
            h.clear_pending_commit().unwrap();
            self.stats.pending_cleared += 1;
        }
        let logged: Vec<Vec<u8>> = self
            .ds
            .open_proposals(g)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let stray = h
            .pending_proposals()
            .unwrap()
            .iter()
            .any(|p| !logged.contains(p.proposal_ref.as_ref().unwrap()));
        if stray {
            // Our own proposal, created but never sent.
            h.clear_pending_proposals().unwrap();
        }
    }

    fn send_commit(
        &mut self,
        c: usize,
        g: usize,
        bundle: mlskit::CommitBundle,
        added: Option<usize>,
        removed: Option<usize>,
    ) -> bool {
        let h = self.handle(c, g).unwrap();
        let epoch = h.epoch().unwrap();
        std::thread::sleep(self.latency);
        let accepted = self.ds.append(Rec {
            group: g,
            epoch,
            sender: c,
            kind: Kind::Commit {
                welcome: bundle.welcome,
                added,
                removed,
            },
            message: bundle.commit,
        });
        std::thread::sleep(self.latency);
        if accepted {
            h.merge_pending_commit().unwrap();
            self.stats.commits += 1;
        } else {
            h.clear_pending_commit().unwrap();
            self.stats.pending_cleared += 1;
        }
        accepted
    }

    /// Commits proposals sent in the current epoch that no commit took yet.
    fn finish_round(&mut self, g: usize) {
        let open = self.ds.open_proposals(g);
        if open.is_empty() {
            return;
        }
        let proposers: Vec<usize> = open.iter().map(|(s, _)| *s).collect();
        let committer = base(g)
            .into_iter()
            .find(|m| !proposers.contains(m))
            .unwrap();
        self.settle(committer, g);
        let h = self.handle(committer, g).unwrap();
        let f = floater(g);
        let removed = h
            .pending_proposals()
            .unwrap()
            .iter()
            .any(|p| {
                matches!(&p.content, mlskit::ProposalContent::Remove { identity: Some(id), .. }
                    if id == NAMES[f].as_bytes())
            })
            .then_some(f);
        let bundle = h.commit_pending_proposals().unwrap();
        if self.send_commit(committer, g, bundle, None, removed) && removed.is_some() {
            self.stats.removes += 1;
        }
        self.stats.rounds_finished += 1;
    }

    /// After a restart: `c` staged a commit for the current epoch that never
    /// reached the DS. Send the messages stored with it (not a new commit: had
    /// the first one reached the DS, a second would fork the group).
    fn resend_pending(&mut self, c: usize, g: usize) {
        self.sync(c, g);
        let Some(h) = self.handle(c, g) else { return };
        if !h.is_active().unwrap() {
            return;
        }
        let Some(info) = h.pending_commit().unwrap() else {
            return;
        };
        let bundle = h
            .pending_commit_bundle()
            .unwrap()
            .unwrap_or_else(|| panic!("{}: a staged commit without its messages", NAMES[c]));
        let f = floater(g);
        let is_floater = |id: &[u8]| id == NAMES[f].as_bytes();
        let added = info.adds.iter().any(|a| is_floater(&a.identity));
        let removed = info
            .removes
            .iter()
            .any(|r| r.identity.as_deref().is_some_and(is_floater));
        if self.send_commit(c, g, bundle, added.then_some(f), removed.then_some(f)) {
            self.stats.pending_resent += 1;
            self.stats.adds += u64::from(added);
            self.stats.removes += u64::from(removed);
        }
    }

    /// What a restarted app does: every member catches up and re-sends its
    /// unsent commit, then cleans up, and unfinished proposal rounds are committed.
    fn recover(&mut self) {
        for g in 0..GROUPS {
            for c in 0..NAMES.len() {
                self.resend_pending(c, g);
            }
            for c in 0..NAMES.len() {
                self.settle(c, g);
            }
            self.finish_round(g);
            for c in 0..NAMES.len() {
                self.settle(c, g);
            }
        }
    }

    fn index_of(&mut self, from: usize, g: usize, who: usize) -> u32 {
        let h = self.handle(from, g).unwrap();
        h.members()
            .unwrap()
            .into_iter()
            .find(|m| m.identity == NAMES[who].as_bytes())
            .unwrap()
            .index
    }

    fn add_floater(&mut self, adder: usize, g: usize) {
        let f = floater(g);
        self.settle(f, g);
        self.settle(adder, g);
        let kp = self.clients[f]
            .create_key_packages(1, None)
            .unwrap()
            .remove(0);
        let h = self.handle(adder, g).unwrap();
        let bundle = h.add_members(vec![kp]).unwrap();
        if self.send_commit(adder, g, bundle, Some(f), None) {
            self.stats.adds += 1;
        }
        self.sync(f, g);
    }

    /// One random operation.
    fn step(&mut self, rng: &mut Rng, seq: u64) {
        let g = rng.below(GROUPS);
        let roster = self.ds.roster(g);
        match rng.below(100) {
            0..=39 => {
                let c = rng.pick(&roster);
                self.settle(c, g);
                let h = self.handle(c, g).unwrap();
                let epoch = h.epoch().unwrap();
                let plaintext = format!("#{seq} from {} in {g}", NAMES[c]).into_bytes();
                let message = h.encrypt(plaintext.clone(), Vec::new()).unwrap();
                self.ds.append(Rec {
                    group: g,
                    epoch,
                    sender: c,
                    kind: Kind::App { plaintext },
                    message,
                });
                self.stats.app += 1;
                let reader = rng.pick(&roster);
                self.sync(reader, g);
            }
            40..=59 => {
                let c = rng.pick(&roster);
                self.settle(c, g);
                let bundle = self.handle(c, g).unwrap().self_update().unwrap();
                self.send_commit(c, g, bundle, None, None);
            }
            60..=74 => {
                let p = rng.pick(&roster);
                let others: Vec<usize> = base(g).into_iter().filter(|m| *m != p).collect();
                let committer = rng.pick(&others);
                self.settle(p, g);
                self.settle(committer, g);
                let h = self.handle(p, g).unwrap();
                let epoch = h.epoch().unwrap();
                let bundle = h.propose_self_update().unwrap();
                self.ds.append(Rec {
                    group: g,
                    epoch,
                    sender: p,
                    kind: Kind::Proposal {
                        proposal_ref: bundle.proposal_ref,
                    },
                    message: bundle.message,
                });
                self.stats.proposals += 1;
                self.sync(committer, g);
                let bundle = self
                    .handle(committer, g)
                    .unwrap()
                    .commit_pending_proposals()
                    .unwrap();
                self.send_commit(committer, g, bundle, None, None);
            }
            75..=89 => {
                let c = rng.pick(&base(g));
                let f = floater(g);
                if roster.contains(&f) {
                    self.settle(c, g);
                    let index = self.index_of(c, g, f);
                    let h = self.handle(c, g).unwrap();
                    let bundle = if rng.chance(50) {
                        h.remove_members(vec![index]).unwrap()
                    } else {
                        let epoch = h.epoch().unwrap();
                        let p = h
                            .propose_remove(index, mlskit::ProposalMode::ByReference)
                            .unwrap();
                        self.ds.append(Rec {
                            group: g,
                            epoch,
                            sender: c,
                            kind: Kind::Proposal {
                                proposal_ref: p.proposal_ref,
                            },
                            message: p.message,
                        });
                        self.stats.proposals += 1;
                        h.commit_pending_proposals().unwrap()
                    };
                    if self.send_commit(c, g, bundle, None, Some(f)) {
                        self.stats.removes += 1;
                    }
                    self.settle(f, g);
                } else {
                    self.add_floater(c, g);
                }
            }
            _ => {
                let c = rng.below(NAMES.len());
                self.settle(c, g);
            }
        }
    }

    /// The consistency check: every group loads, its members agree with the
    /// log and with each other, and every member talks to every other.
    fn check(&mut self) {
        for g in 0..GROUPS {
            let roster = self.ds.roster(g);
            let head = self.ds.head_epoch(g);
            let mut auth: Option<Vec<u8>> = None;
            for (c, name) in NAMES.iter().enumerate() {
                let h = self.handle(c, g);
                if !roster.contains(&c) {
                    assert!(h.is_none(), "{} still holds group {g}", name);
                    continue;
                }
                let h = h.unwrap_or_else(|| panic!("{} lost group {g}", name));
                assert!(h.is_active().unwrap());
                assert_eq!(h.epoch().unwrap(), head, "{} epoch in group {g}", name);
                assert!(h.pending_commit().unwrap().is_none());
                assert!(h.pending_proposals().unwrap().is_empty());
                let a = h.epoch_authenticator().unwrap();
                match &auth {
                    None => auth = Some(a),
                    Some(x) => assert_eq!(x, &a, "group {g} forked at {}", name),
                }
                let mut ids: Vec<Vec<u8>> = h
                    .members()
                    .unwrap()
                    .into_iter()
                    .map(|m| m.identity)
                    .collect();
                ids.sort();
                let mut want: Vec<Vec<u8>> = roster
                    .iter()
                    .map(|m| NAMES[*m].as_bytes().to_vec())
                    .collect();
                want.sort();
                assert_eq!(ids, want, "{} roster of group {g}", name);
            }
            for s in &roster {
                let text = format!("check from {} in {g}", NAMES[*s]).into_bytes();
                let ct = self
                    .handle(*s, g)
                    .unwrap()
                    .encrypt(text.clone(), Vec::new())
                    .unwrap();
                for r in &roster {
                    if r == s {
                        continue;
                    }
                    match self.handle(*r, g).unwrap().process_message(ct.clone()) {
                        Ok(ReceivedMessage::Application { message }) => {
                            assert_eq!(message.plaintext, text)
                        }
                        Err(e) => panic!("{} cannot read {}: {e:?}", NAMES[*r], NAMES[*s]),
                        Ok(_) => panic!("not an application message"),
                    }
                }
            }
        }
    }
}

/// Builds the three groups (no kills during setup).
fn setup(dir: &Path) {
    let mut w = World::open(dir);
    for g in 0..GROUPS {
        let [creator, b1, b2] = base(g);
        w.clients[creator]
            .create_group(Some(mlskit::GroupOptions {
                group_id: Some(gid(g)),
                ..Default::default()
            }))
            .unwrap();
        for m in [b1, b2] {
            w.settle(creator, g);
            let kp = w.clients[m].create_key_packages(1, None).unwrap().remove(0);
            let bundle = w.handle(creator, g).unwrap().add_members(vec![kp]).unwrap();
            assert!(w.send_commit(creator, g, bundle, Some(m), None));
            for c in 0..NAMES.len() {
                w.sync(c, g);
            }
        }
    }
    w.check();
}

fn copy_state(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("ds")).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() || name.ends_with("-shm") {
            // Shared-memory files of older (WAL) stores are rebuilt by SQLite;
            // a hot rollback journal is copied, SQLite rolls it back.
            continue;
        }
        fs::copy(entry.path(), to.join(&name)).unwrap();
    }
    for entry in fs::read_dir(from.join("ds")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join("ds").join(entry.file_name())).unwrap();
    }
}

/// The recovery paths a kill can leave behind, each made on purpose: a commit
/// staged but never sent, a commit sent but never merged, a proposal sent but
/// never committed, and a proposal created but never sent.
#[test]
fn kill9_recovery_paths_made_on_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let epoch0;
    {
        let mut w = World::open(dir);
        // Group 0: alice staged a commit and "died" before sending it.
        let h = w.handle(base(0)[0], 0).unwrap();
        epoch0 = h.epoch().unwrap();
        h.self_update().unwrap();
        // Group 0: bob created a proposal and "died" before sending it.
        w.handle(base(0)[1], 0)
            .unwrap()
            .propose_self_update()
            .unwrap();
        // Group 1: its creator sent a commit and "died" before merging it.
        let c = base(1)[0];
        let h = w.handle(c, 1).unwrap();
        let epoch = h.epoch().unwrap();
        let bundle = h.self_update().unwrap();
        assert!(w.ds.append(Rec {
            group: 1,
            epoch,
            sender: c,
            kind: Kind::Commit {
                welcome: None,
                added: None,
                removed: None,
            },
            message: bundle.commit,
        }));
        // Group 2: a proposal was sent, nobody committed it yet.
        let p = base(2)[1];
        let h = w.handle(p, 2).unwrap();
        let epoch = h.epoch().unwrap();
        let bundle = h.propose_self_update().unwrap();
        w.ds.append(Rec {
            group: 2,
            epoch,
            sender: p,
            kind: Kind::Proposal {
                proposal_ref: bundle.proposal_ref,
            },
            message: bundle.message,
        });
    }
    let mut w = World::open(dir);
    w.recover();
    assert_eq!(w.stats.pending_resent, 1);
    assert_eq!(w.stats.pending_cleared, 0);
    assert_eq!(w.stats.pending_merged, 1);
    assert_eq!(w.stats.rounds_finished, 1);
    w.check();
    // Alice's stored commit, sent after the restart, is the DS's commit of that epoch.
    assert_eq!(w.ds.head_epoch(0), epoch0 + 1);
    assert_eq!(w.ds.head_epoch(1), 3);
    assert_eq!(w.ds.head_epoch(2), 3);
}

/// The child: recovers, says it is ready, then runs operations until killed.
/// It does nothing unless the parent test started it.
#[test]
fn kill9_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let seed = env_u64(SEED_ENV, 0);
    let mut w = World::open(Path::new(&dir));
    w.recover();
    w.latency = Duration::from_millis(10);
    println!("{READY}");
    let mut rng = Rng::new(seed);
    for seq in 0..1_000_000u64 {
        w.step(&mut rng, seq);
    }
}

#[test]
fn kill9_random_sigkills_leave_every_group_consistent() {
    let kills = env_u64("MLSKIT_KILLS", 40);
    let seed = env_u64("MLSKIT_KILL9_SEED", 0x6b69_6c6c);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // The checks run on copies; durability does not matter there, so use RAM if we can.
    let scratch = tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let state = tmp.path().join("state");
    fs::create_dir_all(&state).unwrap();
    setup(&state);
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(seed);
    let mut total = Stats::default();
    let mut groups_checked = 0u64;
    let mut early_kills = 0u64;
    let mut check_time = Duration::ZERO;
    for run in 0..kills {
        let err_path = tmp.path().join("child.err");
        let mut child = Command::new(&exe)
            .args(["--exact", "kill9_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &state)
            .env(
                SEED_ENV,
                (seed ^ (run + 1).wrapping_mul(0x9e37_79b9)).to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(fs::File::create(&err_path).unwrap()))
            .spawn()
            .unwrap();
        let child_failed = |why: String| -> ! {
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            panic!("run {run}: {why}\n--- child stderr ---\n{err}");
        };
        if rng.chance(20) {
            // Kill during start-up and recovery.
            early_kills += 1;
            std::thread::sleep(Duration::from_millis(rng.below(60) as u64));
        } else {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                if out.read_line(&mut line).unwrap() == 0 {
                    let status = child.wait().unwrap();
                    child_failed(format!("child ended before it was ready: {status}"));
                }
                if line.contains(READY) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5 + rng.below(500) as u64));
        }
        if let Some(status) = child.try_wait().unwrap() {
            child_failed(format!("child ended on its own: {status}"));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        {
            use std::os::unix::process::ExitStatusExt;
            if status.signal() != Some(9) {
                child_failed(format!("child was not killed by SIGKILL: {status}"));
            }
        }
        // Check a copy, so that the next child recovers from the raw state.
        let check_started = Instant::now();
        let check_dir = scratch.path().join(format!("check-{run}"));
        copy_state(&state, &check_dir);
        let mut w = World::open(&check_dir);
        w.recover();
        w.check();
        groups_checked += GROUPS as u64;
        total.pending_merged += w.stats.pending_merged;
        total.pending_cleared += w.stats.pending_cleared;
        total.pending_resent += w.stats.pending_resent;
        total.rounds_finished += w.stats.rounds_finished;
        drop(w);
        fs::remove_dir_all(&check_dir).unwrap();
        check_time += check_started.elapsed();
    }
    // The state the last child left also recovers and checks out.
    let mut w = World::open(&state);
    w.recover();
    w.check();
    groups_checked += GROUPS as u64;
    let ds = &w.ds;
    let count = |f: &dyn Fn(&Kind) -> bool| ds.recs.iter().filter(|r| f(&r.kind)).count();
    let apps = count(&|k| matches!(k, Kind::App { .. }));
    let proposals = count(&|k| matches!(k, Kind::Proposal { .. }));
    let commits = count(&|k| matches!(k, Kind::Commit { .. }));
    let adds = count(&|k| matches!(k, Kind::Commit { added: Some(_), .. }));
    let removes = count(&|k| {
        matches!(
            k,
            Kind::Commit {
                removed: Some(_),
                ..
            }
        )
    });
    println!(
        "kill9: seed {seed:#x}: {kills} SIGKILLs survived ({early_kills} during start-up/recovery), \
         {} operations completed by the children (DS accepted {apps} application messages, \
         {proposals} proposals, {commits} commits incl. {adds} adds and {removes} removes), \
         {groups_checked} group checks passed (0 corrupt, 0 forked); after kills the checker \
         merged {}, re-sent {} and cleared {} pending commits and finished {} proposal \
         rounds; {:.1}s ({:.1}s checking)",
        apps + proposals + commits,
        total.pending_merged,
        total.pending_resent,
        total.pending_cleared,
        total.rounds_finished,
        started.elapsed().as_secs_f64(),
        check_time.as_secs_f64()
    );
    assert!(
        commits as u64 > kills,
        "too little progress: {commits} commits in {kills} runs"
    );
}
