//! The behaviour every [`AuthKeyStore`] backend must show. Backends call [`run_all`] from
//! their tests with a function that makes a fresh, empty store.
// Test code: a failed expectation is a panic with a message.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use super::{AuthKeyError, AuthKeyRecord, AuthKeyStore, KeyLifetime, ResolvedKey};

/// Makes a fresh, empty store.
pub type Factory<'a> = &'a dyn Fn() -> Box<dyn AuthKeyStore>;

/// A record with recognisable contents.
pub fn record(auth_key_id: i64, lifetime: KeyLifetime) -> AuthKeyRecord {
    let mut key = [0u8; super::AUTH_KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = (i as u8) ^ (auth_key_id as u8);
    }
    AuthKeyRecord {
        auth_key_id,
        key,
        lifetime,
        created_at: 1_000,
        dc: Some(2),
        user_id: None,
    }
}

fn temp(expires_at: i64) -> KeyLifetime {
    KeyLifetime::Temporary { expires_at }
}

/// Runs every check.
pub fn run_all(factory: Factory<'_>) {
    insert_get_and_collisions(factory);
    binding_and_resolution(factory);
    rebinding_rules(factory);
    expiry_and_sweep(factory);
    removal_drops_bindings(factory);
    users(factory);
    unsigned_keys_sweep(factory);
}

/// Permanent keys nobody signed in with go once old enough, unless in use; signed-in keys,
/// young keys and temporary keys stay; a removed key's binding goes with it.
pub fn unsigned_keys_sweep(factory: Factory<'_>) {
    let store = factory();
    let mut old = record(1, KeyLifetime::Permanent);
    old.created_at = 100;
    store.insert(old).unwrap();
    let mut busy = record(2, KeyLifetime::Permanent);
    busy.created_at = 100;
    store.insert(busy).unwrap();
    let mut signed = record(3, KeyLifetime::Permanent);
    signed.created_at = 100;
    store.insert(signed).unwrap();
    store.set_user(3, Some(77)).unwrap();
    let mut young = record(4, KeyLifetime::Permanent);
    young.created_at = 5_000;
    store.insert(young).unwrap();
    let mut temporary = record(5, temp(90_000));
    temporary.created_at = 100;
    store.insert(temporary).unwrap();
    store.bind_temp(5, 1, 90_000, 200).unwrap();

    let in_use = |id: i64| id == 2;
    assert_eq!(store.remove_unsigned(1_000, &in_use).unwrap(), 1);
    assert!(!store.contains(1).unwrap(), "old, unsigned, unused: gone");
    for id in [2, 3, 4, 5] {
        assert!(store.contains(id).unwrap(), "key {id} stays");
    }
    assert!(
        matches!(
            store.resolve(5, 300),
            Err(AuthKeyError::Unbound(5) | AuthKeyError::Expired(5))
        ),
        "the binding to the removed key went with it"
    );
    assert_eq!(
        store.remove_unsigned(1_000, &in_use).unwrap(),
        0,
        "nothing twice"
    );
    assert_eq!(
        store.remove_unsigned(10_000, &|_| false).unwrap(),
        2,
        "busy and young, later"
    );
}

/// Keys round-trip; a taken id is refused and the original stays.
pub fn insert_get_and_collisions(factory: Factory<'_>) {
    let store = factory();
    assert!(!store.contains(1).unwrap());
    store.insert(record(1, KeyLifetime::Permanent)).unwrap();
    assert!(store.contains(1).unwrap());
    assert_eq!(
        store.get(1).unwrap(),
        Some(record(1, KeyLifetime::Permanent))
    );
    let mut other = record(1, temp(5_000));
    other.key = [9; super::AUTH_KEY_LEN];
    assert_eq!(store.insert(other), Err(AuthKeyError::AlreadyExists(1)));
    assert_eq!(
        store.get(1).unwrap(),
        Some(record(1, KeyLifetime::Permanent))
    );
    assert_eq!(store.get(2).unwrap(), None);
}

/// A temporary key stands for its permanent key only once bound, and not after expiry.
pub fn binding_and_resolution(factory: Factory<'_>) {
    let store = factory();
    store.insert(record(10, KeyLifetime::Permanent)).unwrap();
    store.insert(record(20, temp(5_000))).unwrap();
    assert_eq!(
        store.resolve(10, 1_000).unwrap(),
        ResolvedKey {
            auth_key_id: 10,
            perm_auth_key_id: 10,
            user_id: None
        }
    );
    assert_eq!(store.resolve(20, 1_000), Err(AuthKeyError::Unbound(20)));
    store.bind_temp(20, 10, 4_000, 1_000).unwrap();
    assert_eq!(store.resolve(20, 1_000).unwrap().perm_auth_key_id, 10);
    // The binding's own expiry, then the key's.
    assert_eq!(store.resolve(20, 4_000), Err(AuthKeyError::Expired(20)));
    assert_eq!(store.resolve(20, 5_000), Err(AuthKeyError::Expired(20)));
    assert_eq!(store.resolve(99, 1_000), Err(AuthKeyError::NotFound(99)));
    // Wrong kinds and unknown keys.
    assert_eq!(
        store.bind_temp(10, 10, 4_000, 1_000),
        Err(AuthKeyError::NotTemporary(10))
    );
    store.insert(record(21, temp(5_000))).unwrap();
    assert_eq!(
        store.bind_temp(21, 20, 4_000, 1_000),
        Err(AuthKeyError::NotPermanent(20))
    );
    assert_eq!(
        store.bind_temp(21, 77, 4_000, 1_000),
        Err(AuthKeyError::NotFound(77))
    );
    assert_eq!(
        store.bind_temp(78, 10, 4_000, 1_000),
        Err(AuthKeyError::NotFound(78))
    );
    // An expired temporary key cannot be bound.
    assert_eq!(
        store.bind_temp(21, 10, 6_000, 5_000),
        Err(AuthKeyError::Expired(21))
    );
}

/// One temporary key per permanent key; a temporary key cannot move to another permanent key.
pub fn rebinding_rules(factory: Factory<'_>) {
    let store = factory();
    store.insert(record(1, KeyLifetime::Permanent)).unwrap();
    store.insert(record(2, KeyLifetime::Permanent)).unwrap();
    store.insert(record(11, temp(9_000))).unwrap();
    store.insert(record(12, temp(9_000))).unwrap();
    store.bind_temp(11, 1, 8_000, 1_000).unwrap();
    assert_eq!(
        store.bind_temp(11, 2, 8_000, 1_000),
        Err(AuthKeyError::AlreadyBound(11))
    );
    // Rebinding the same pair is fine (a client retrying).
    store.bind_temp(11, 1, 8_000, 1_000).unwrap();
    // A new temporary key for permanent key 1 replaces 11.
    store.bind_temp(12, 1, 8_000, 1_000).unwrap();
    assert_eq!(store.resolve(12, 1_000).unwrap().perm_auth_key_id, 1);
    assert_eq!(store.resolve(11, 1_000), Err(AuthKeyError::Unbound(11)));
    // 11 is free again and may go to permanent key 2.
    store.bind_temp(11, 2, 8_000, 1_000).unwrap();
    assert_eq!(store.resolve(11, 1_000).unwrap().perm_auth_key_id, 2);
    // A binding never outlives its temporary key.
    store.insert(record(13, temp(3_000))).unwrap();
    store.bind_temp(13, 2, 10_000, 1_000).unwrap();
    assert_eq!(store.resolve(13, 3_000), Err(AuthKeyError::Expired(13)));
}

/// The sweep removes expired temporary keys and nothing else.
pub fn expiry_and_sweep(factory: Factory<'_>) {
    let store = factory();
    store.insert(record(1, KeyLifetime::Permanent)).unwrap();
    store.insert(record(2, temp(2_000))).unwrap();
    store.insert(record(3, temp(3_000))).unwrap();
    store.bind_temp(2, 1, 2_000, 1_000).unwrap();
    assert_eq!(store.remove_expired(1_999).unwrap(), 0);
    assert_eq!(store.remove_expired(2_000).unwrap(), 1);
    assert!(!store.contains(2).unwrap());
    assert!(store.contains(3).unwrap());
    assert!(store.contains(1).unwrap());
    // Permanent key 1 is free to take a new temporary key.
    store.bind_temp(3, 1, 2_500, 1_000).unwrap();
    assert_eq!(store.remove_expired(10_000).unwrap(), 1);
    assert_eq!(store.resolve(1, 10_000).unwrap().perm_auth_key_id, 1);
}

/// Removing either side of a binding removes the binding.
pub fn removal_drops_bindings(factory: Factory<'_>) {
    let store = factory();
    store.insert(record(1, KeyLifetime::Permanent)).unwrap();
    store.insert(record(2, temp(9_000))).unwrap();
    store.bind_temp(2, 1, 8_000, 1_000).unwrap();
    assert!(store.remove(1).unwrap());
    assert!(!store.remove(1).unwrap());
    assert_eq!(store.resolve(2, 1_000), Err(AuthKeyError::Unbound(2)));
    store.insert(record(1, KeyLifetime::Permanent)).unwrap();
    store.bind_temp(2, 1, 8_000, 1_000).unwrap();
    assert!(store.remove(2).unwrap());
    store.insert(record(3, temp(9_000))).unwrap();
    store.bind_temp(3, 1, 8_000, 1_000).unwrap();
    assert_eq!(store.resolve(3, 1_000).unwrap().perm_auth_key_id, 1);
}

/// The signed-in user is kept on the permanent key and seen through a bound temporary key.
pub fn users(factory: Factory<'_>) {
    let store = factory();
    store.insert(record(1, KeyLifetime::Permanent)).unwrap();
    store.insert(record(2, temp(9_000))).unwrap();
    store.set_user(1, Some(42)).unwrap();
    assert_eq!(
        store.set_user(2, Some(42)),
        Err(AuthKeyError::NotPermanent(2))
    );
    assert_eq!(store.set_user(3, Some(42)), Err(AuthKeyError::NotFound(3)));
    store.bind_temp(2, 1, 8_000, 1_000).unwrap();
    assert_eq!(store.resolve(2, 1_000).unwrap().user_id, Some(42));
    store.set_user(1, None).unwrap();
    assert_eq!(store.resolve(1, 1_000).unwrap().user_id, None);
}
