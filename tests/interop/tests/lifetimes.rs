//! Key-package lifetimes: mls-rs's 365-day key packages, expired key
//! packages, and groups whose never-updated leaves have outlived their
//! key packages.

mod common;

use std::time::Duration;

use common::{
    assert_agree, deliver, deliver_external, exchange, pair, sleep_past_lifetime, KitMember,
    Member, RsMember,
};
use mlskit::MlsError;

const DAY: u64 = 24 * 60 * 60;
/// Short lifetime (seconds) for key packages that must expire during a test.
const SHORT: u64 = 3;

#[test]
fn mlskit_accepts_mls_rs_key_package_with_365_day_lifetime() {
    let alice = KitMember::new("alice");
    let bob = RsMember::new("bob");
    let kp = bob.key_package();

    let info = mlskit::validate_key_package(kp.clone()).expect("validate mls-rs key package");
    assert_eq!(info.identity, b"bob");
    assert_eq!(
        info.not_after - info.not_before,
        365 * DAY,
        "mls-rs default"
    );

    alice.create_group();
    let commit = alice.add(&[kp]);
    deliver("alice adds bob", &commit, &alice, &[]);
    bob.join(commit.welcome(), None);
    assert_agree("bob joined", &[&alice, &bob]);
    exchange("bob joined", &[&alice, &bob]);
}

#[test]
fn mlskit_key_package_may_live_365_days_and_mls_rs_accepts_it() {
    let alice = RsMember::new("alice");
    let bob = KitMember::new("bob").with_key_package_lifetime(365 * DAY);
    let kp = bob.key_package();
    let info = mlskit::validate_key_package(kp.clone()).expect("validate own key package");
    assert!(info.not_after >= info.not_before + 365 * DAY);

    alice.create_group();
    let commit = alice.add(&[kp]);
    deliver("alice adds bob", &commit, &alice, &[]);
    bob.join(commit.welcome(), None);
    assert_agree("bob joined", &[&alice, &bob]);
}

#[test]
fn mlskit_refuses_to_create_key_package_living_longer_than_365_days() {
    let bob = KitMember::new("bob");
    let options = mlskit::KeyPackageOptions {
        lifetime_seconds: Some(366 * DAY),
        ..Default::default()
    };
    let result = bob.client().create_key_packages(1, Some(options));
    assert!(result.is_err(), "366 days must be refused");
}

#[test]
fn mlskit_refuses_mls_rs_key_package_with_range_over_two_years() {
    let bob = RsMember::new("bob").with_key_package_lifetime(Duration::from_secs(3 * 365 * DAY));
    let err = mlskit::validate_key_package(bob.key_package()).unwrap_err();
    assert!(
        matches!(err, MlsError::InvalidKeyPackage { .. }),
        "a three-year range: {err:?}"
    );
}

#[test]
fn expired_mls_rs_key_package_is_refused_by_mlskit() {
    let alice = KitMember::new("alice");
    let bob = RsMember::new("bob").with_key_package_lifetime(Duration::from_secs(SHORT));
    alice.create_group();
    let kp = bob.key_package();
    sleep_past_lifetime(SHORT);

    let err = mlskit::validate_key_package(kp.clone()).unwrap_err();
    assert!(matches!(err, MlsError::InvalidKeyPackage { .. }), "{err:?}");
    let err = alice.try_add(&[kp]).map(|_| ()).unwrap_err();
    assert!(matches!(err, MlsError::InvalidKeyPackage { .. }), "{err:?}");
    assert_eq!(alice.epoch(), 0, "nothing committed");
    assert!(alice.group().pending_commit().unwrap().is_none());
}

#[test]
fn expired_mlskit_key_package_is_refused_by_mls_rs() {
    let alice = RsMember::new("alice");
    let bob = KitMember::new("bob").with_key_package_lifetime(SHORT);
    alice.create_group();
    let kp = bob.key_package();
    sleep_past_lifetime(SHORT);

    let err = alice.try_add(&[kp]).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, mls_rs::error::MlsError::InvalidLifetime { .. }),
        "{err:?}"
    );
    assert!(!alice.has_pending_commit());
}

/// `stale` joined with a short-lived key package and never committed since;
/// once that lifetime has passed, `committer` still adds an MLSKit and an
/// mls-rs member by Welcome, and both kinds still join by external commit.
fn expired_leaf_still_admits_new_members(committer: &dyn Member, stale: &dyn Member) {
    pair(committer, stale);
    sleep_past_lifetime(SHORT);
    let mut members: Vec<&dyn Member> = vec![committer, stale];

    let carol = KitMember::new("carol");
    let dave = RsMember::new("dave");
    for joiner in [&carol as &dyn Member, &dave] {
        let step = format!("{} adds {}", committer.name(), joiner.name());
        let commit = committer.add(&[joiner.key_package()]);
        deliver(&step, &commit, committer, &members[1..]);
        joiner.join(commit.welcome(), None);
        members.push(joiner);
        assert_agree(&step, &members);
    }

    let erin = KitMember::new("erin");
    let frank = RsMember::new("frank");
    for joiner in [&erin as &dyn Member, &frank] {
        let step = format!("{} joins by external commit", joiner.name());
        let commit = joiner.join_external(&committer.group_info(true), None);
        deliver_external(&step, &commit, joiner, &members);
        members.push(joiner);
        assert_agree(&step, &members);
    }
    exchange("with the stale leaf", &members);
}

#[test]
fn group_with_expired_mlskit_leaf_admits_new_members() {
    expired_leaf_still_admits_new_members(
        &RsMember::new("alice"),
        &KitMember::new("bob").with_key_package_lifetime(SHORT),
    );
}

#[test]
fn group_with_expired_mls_rs_leaf_admits_new_members() {
    expired_leaf_still_admits_new_members(
        &KitMember::new("alice"),
        &RsMember::new("bob").with_key_package_lifetime(Duration::from_secs(SHORT)),
    );
}
