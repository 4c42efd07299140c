//! The behaviour every [`UserStore`] backend must show. Backends call [`run_all`] with a
//! function that makes a fresh, empty store with the default limits, and
//! [`run_all_with_limits`] with one that makes it with given limits; [`model_agrees`] over
//! [`ops`] compares a store with a small reference model, step by step.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a panic with a message"
)]

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::file::ContentId;

use super::rules::{MAX_ABOUT_CHARS, MAX_DETAIL_LEN, MAX_NAME_CHARS, MAX_TOKEN_LEN};
use super::{
    Account, Authorization, Blocked, BotCommand, BotProfile, Contact, Device, ImportContact,
    ImportOutcome, MAX_SEARCH, Presence, ProfileChange, ProfilePhoto, UserError, UserStore,
    UserStoreConfig, UsernameOwner,
};

/// Makes a fresh, empty store with the default limits.
pub type Factory<'a> = &'a dyn Fn() -> Box<dyn UserStore>;

/// Makes a fresh, empty store with these limits.
pub type LimitsFactory<'a> = &'a dyn Fn(UserStoreConfig) -> Box<dyn UserStore>;

/// Runs every check that needs only the default limits.
pub fn run_all(factory: Factory<'_>) {
    accounts_get_fresh_ids_and_checked_fields(factory);
    put_account_keeps_its_id_and_the_uniqueness_rules(factory);
    lookups_by_phone_and_username(factory);
    usernames_are_unique_regardless_of_case(factory);
    channels_share_the_username_namespace(factory);
    profile_changes_follow_the_limits(factory);
    search_matches_username_and_name_word_prefixes(factory);
    search_gives_at_most_max_search(factory);
    presence_is_recorded(factory);
    profile_photos_newest_first(factory);
    importing_contacts(factory);
    the_phone_book_becomes_contacts_on_sign_up(factory);
    the_phone_book_becomes_contacts_when_an_account_is_stored_with_the_phone(factory);
    a_small_search_gives_the_lowest_ids(factory);
    an_exact_username_comes_first(factory);
    a_deleted_account_stored_again_leaves_others_indexes_alone(factory);
    a_phone_found_is_known_a_contact_added_is_not(factory);
    adding_contacts(factory);
    deleting_contacts(factory);
    contacts_are_listed_by_user_id(factory);
    blocking_users(factory);
    authorizations_keep_their_first_hash_and_date(factory);
    push_devices(factory);
    deleting_an_account(factory);
    bots_are_accounts_with_a_profile(factory);
}

/// Runs every check of the limits of [`UserStoreConfig`].
pub fn run_all_with_limits(factory: LimitsFactory<'_>) {
    ids_start_at_the_configured_first_id(factory);
    photos_past_the_limit_drop_the_oldest(factory);
    contacts_and_phone_book_are_bounded(factory);
    blocked_users_are_bounded(factory);
    authorizations_and_devices_are_bounded(factory);
}

/// The id the default configuration gives the first account.
fn first_id() -> i64 {
    UserStoreConfig::default().first_user_id
}

/// A phone number of the test universe, digits only: `1555` then `n` on seven digits.
pub fn phone(n: u32) -> String {
    format!("1555{n:07}")
}

/// A profile photo with recognisable contents.
pub fn photo(photo_id: i64, date: i32) -> ProfilePhoto {
    ProfilePhoto {
        photo_id,
        content: ContentId([photo_id as u8; 32]),
        size: 1_000 + photo_id.unsigned_abs(),
        width: 640,
        height: 480,
        date,
    }
}

/// An import entry.
pub fn entry(client_id: i64, phone: &str, first_name: &str, last_name: &str) -> ImportContact {
    ImportContact {
        client_id,
        phone: phone.to_owned(),
        first_name: first_name.to_owned(),
        last_name: last_name.to_owned(),
    }
}

/// A contact found by phone (an import or the phone book).
fn contact(user_id: i64, first_name: &str, last_name: &str, date: i32) -> Contact {
    Contact {
        user_id,
        first_name: first_name.to_owned(),
        last_name: last_name.to_owned(),
        date,
        phone_known: true,
    }
}

/// A contact added by user id alone (`add_contact`): its phone is not known to the owner.
fn added(user_id: i64, first_name: &str, last_name: &str, date: i32) -> Contact {
    Contact {
        phone_known: false,
        ..contact(user_id, first_name, last_name, date)
    }
}

fn first_name(first_name: &str) -> ProfileChange {
    ProfileChange {
        first_name: Some(first_name.to_owned()),
        ..ProfileChange::default()
    }
}

fn create(store: &dyn UserStore, n: u32, name: &str) -> Account {
    store.create_account(&phone(n), name, "").unwrap()
}

fn ids(contacts: &[Contact]) -> Vec<i64> {
    contacts.iter().map(|c| c.user_id).collect()
}

fn search_ids(store: &dyn UserStore, query: &str, limit: usize) -> Vec<i64> {
    store
        .search(query, limit)
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect()
}

/// Accounts get ids from the configured first one up, one each; the phone is kept digits
/// only; a taken phone names its holder; a bad phone or name is refused with Telegram's
/// error, and a refused creation stores nothing and uses no id.
pub fn accounts_get_fresh_ids_and_checked_fields(factory: Factory<'_>) {
    let store = factory();
    let first = first_id();
    let ann = store
        .create_account("+1 (555) 000-0001", "Ann", "Lee")
        .unwrap();
    let expected = Account::new(first, phone(1), "Ann").with_last_name("Lee");
    assert_eq!(ann, expected, "a new account is its phone and names only");
    assert_eq!(store.account(first).unwrap(), Some(expected.clone()));
    let bob = store.create_account(&phone(2), "Bob", "").unwrap();
    assert_eq!(bob.id, first + 1, "the next id");
    assert_eq!(bob.last_name, "");

    assert_eq!(
        store.create_account("1-555-000 0001", "Eve", ""),
        Err(UserError::PhoneNumberOccupied(ann.id)),
        "the phone in another spelling is still Ann's"
    );
    for bad in ["", "12ab", "+", "phone", &"1".repeat(21)] {
        assert_eq!(
            store.create_account(bad, "Eve", ""),
            Err(UserError::PhoneNumberInvalid),
            "{bad:?}"
        );
    }
    let long_name = "n".repeat(MAX_NAME_CHARS + 1);
    for bad in ["", "   ", "a\nb", long_name.as_str()] {
        assert_eq!(
            store.create_account(&phone(3), bad, ""),
            Err(UserError::FirstNameInvalid),
            "{bad:?}"
        );
    }
    for bad in ["a\u{0}b", long_name.as_str()] {
        assert_eq!(
            store.create_account(&phone(3), "Eve", bad),
            Err(UserError::LastNameInvalid),
            "{bad:?}"
        );
    }
    // The longest names are fine, counted in characters.
    let longest = "é".repeat(MAX_NAME_CHARS);
    // Nothing of the refused calls was stored, and no id went to them.
    assert_eq!(store.by_phone(&phone(3)).unwrap(), None);
    assert_eq!(store.account(first + 2).unwrap(), None);
    assert!(search_ids(&*store, "eve", 10).is_empty());
    let eve = store.create_account(&phone(3), &longest, &longest).unwrap();
    assert_eq!(eve.id, first + 2, "refused creations use no id");
    assert_eq!(eve.first_name, longest);
    // The first account is untouched.
    assert_eq!(store.account(first).unwrap(), Some(expected));
}

/// `put_account` stores an account under its own id (moving the id counter past it, never
/// back), checks it as a change, refuses another account's phone or username, and frees the
/// phone and username it replaces.
pub fn put_account_keeps_its_id_and_the_uniqueness_rules(factory: Factory<'_>) {
    let store = factory();
    let first = first_id();
    let service = Account::new(first + 100, phone(100), "Service").with_username("Service_Bot");
    store.put_account(&service).unwrap();
    assert_eq!(store.account(service.id).unwrap(), Some(service.clone()));
    assert_eq!(store.by_phone(&phone(100)).unwrap(), Some(service.clone()));
    assert_eq!(
        store.by_username("service_bot").unwrap(),
        Some(service.clone())
    );
    let next = create(&*store, 1, "Ann");
    assert_eq!(next.id, first + 101, "the counter moved past the put id");

    // A lower id does not move the counter back.
    let official = Account::new(777_000, "42777", "Telegram");
    store.put_account(&official).unwrap();
    assert_eq!(create(&*store, 2, "Bob").id, first + 102);

    // Another account's phone or username is refused, nothing stored.
    assert_eq!(
        store.put_account(&Account::new(first + 200, phone(100), "Copy")),
        Err(UserError::PhoneNumberOccupied(service.id))
    );
    assert_eq!(
        store.put_account(
            &Account::new(first + 200, phone(200), "Copy").with_username("SERVICE_BOT")
        ),
        Err(UserError::UsernameOccupied)
    );
    assert_eq!(store.account(first + 200).unwrap(), None);
    assert_eq!(store.by_phone(&phone(200)).unwrap(), None);
    // Fields are checked as for a change.
    assert_eq!(
        store.put_account(&Account::new(first + 201, "+1 555 0000201", "Copy")),
        Err(UserError::PhoneNumberInvalid),
        "put_account takes the phone digits only"
    );
    assert_eq!(
        store.put_account(&Account::new(first + 201, phone(201), "Copy").with_username("ab")),
        Err(UserError::UsernameInvalid)
    );
    assert_eq!(
        store.put_account(&Account::new(first + 201, phone(201), " ")),
        Err(UserError::FirstNameInvalid)
    );
    assert_eq!(
        store.put_account(&Account::new(first + 201, phone(201), "Copy").with_last_name("x\u{7}")),
        Err(UserError::LastNameInvalid)
    );
    let mut chatty = Account::new(first + 201, phone(201), "Copy");
    chatty.about = "a".repeat(MAX_ABOUT_CHARS + 1);
    assert_eq!(store.put_account(&chatty), Err(UserError::AboutTooLong));
    assert_eq!(store.account(first + 201).unwrap(), None);
    assert_eq!(
        create(&*store, 3, "Cy").id,
        first + 103,
        "refused puts do not move the counter"
    );

    // Replacing an account keeps its own phone and username legal and frees the old ones.
    let moved = Account::new(service.id, phone(199), "Service").with_username("Service_Bot");
    store.put_account(&moved).unwrap();
    assert_eq!(store.by_phone(&phone(100)).unwrap(), None);
    assert_eq!(store.by_phone(&phone(199)).unwrap(), Some(moved));
    let renamed = Account::new(service.id, phone(199), "Service").with_username("Other_Bot");
    store.put_account(&renamed).unwrap();
    assert_eq!(store.by_username("service_bot").unwrap(), None);
    assert_eq!(store.by_username("other_bot").unwrap(), Some(renamed));
    assert_eq!(
        store.create_account(&phone(100), "Dee", "").unwrap().id,
        first + 104,
        "the freed phone is anyone's"
    );
    // An account without a phone (a bot) is fine and found by no phone.
    let bot = Account::new(first + 300, "", "Bot").with_username("helper_bot");
    store.put_account(&bot).unwrap();
    assert_eq!(store.by_phone("").unwrap(), None);
    assert_eq!(store.by_username("Helper_Bot").unwrap(), Some(bot));
}

/// `by_phone` takes the phone in any spelling `normalize_phone` accepts; `by_username` takes
/// the username in any case; both give `None` for what names nobody.
pub fn lookups_by_phone_and_username(factory: Factory<'_>) {
    let store = factory();
    let ann = store.create_account("+44 20 7946 0000", "Ann", "").unwrap();
    assert_eq!(ann.phone, "442079460000");
    for spelling in ["442079460000", "+44 (20) 7946-0000", "+442079460000"] {
        assert_eq!(
            store.by_phone(spelling).unwrap(),
            Some(ann.clone()),
            "{spelling:?}"
        );
    }
    for other in ["44207946000", "4420794600000", "not a phone", ""] {
        assert_eq!(store.by_phone(other).unwrap(), None, "{other:?}");
    }
    let named = store.set_username(ann.id, Some("Alice_Smith")).unwrap();
    for spelling in ["Alice_Smith", "alice_smith", "ALICE_SMITH", "aLiCe_sMiTh"] {
        let found = store.by_username(spelling).unwrap().unwrap();
        assert_eq!(found.id, ann.id, "{spelling:?}");
        assert_eq!(
            found.username.as_deref(),
            Some("Alice_Smith"),
            "the owner's spelling is kept"
        );
    }
    assert_eq!(store.by_phone("442079460000").unwrap(), Some(named));
    for other in ["alice_smit", "alice_smithy", "bad name", "", "al"] {
        assert_eq!(store.by_username(other).unwrap(), None, "{other:?}");
    }
}

/// Usernames follow Telegram's rules, one account each without regard to case; setting the
/// same spelling again is `USERNAME_NOT_MODIFIED`; removing one frees it for others.
pub fn usernames_are_unique_regardless_of_case(factory: Factory<'_>) {
    let store = factory();
    let a = create(&*store, 1, "Ann");
    let b = create(&*store, 2, "Bob");
    let named = store.set_username(a.id, Some("Alpha_One")).unwrap();
    assert_eq!(named.username.as_deref(), Some("Alpha_One"));
    assert_eq!(named.first_name, "Ann");
    assert_eq!(store.account(a.id).unwrap(), Some(named));
    assert_eq!(
        store.set_username(a.id, Some("Alpha_One")),
        Err(UserError::UsernameNotModified)
    );
    // The owner may change the case of its own username.
    let respelled = store.set_username(a.id, Some("alpha_one")).unwrap();
    assert_eq!(respelled.username.as_deref(), Some("alpha_one"));
    for taken in ["alpha_one", "ALPHA_ONE", "Alpha_One"] {
        assert_eq!(
            store.set_username(b.id, Some(taken)),
            Err(UserError::UsernameOccupied),
            "{taken:?}"
        );
    }
    let too_long = "a".repeat(33);
    for bad in [
        "abcd",
        "1abcde",
        "_abcde",
        "has space",
        "abcdé",
        too_long.as_str(),
        "",
    ] {
        assert_eq!(
            store.set_username(b.id, Some(bad)),
            Err(UserError::UsernameInvalid),
            "{bad:?}"
        );
    }
    assert_eq!(store.account(b.id).unwrap().unwrap().username, None);
    assert_eq!(
        store.set_username(b.id, None),
        Err(UserError::UsernameNotModified),
        "removing a username b does not have"
    );
    // Removal frees the name for someone else.
    let bare = store.set_username(a.id, None).unwrap();
    assert_eq!(bare.username, None);
    assert_eq!(store.by_username("alpha_one").unwrap(), None);
    let taken = store.set_username(b.id, Some("ALPHA_one")).unwrap();
    assert_eq!(
        store.by_username("alpha_one").unwrap().map(|x| x.id),
        Some(b.id)
    );
    assert_eq!(taken.username.as_deref(), Some("ALPHA_one"));
    // A change of username frees the old one.
    store.set_username(b.id, Some("bravo_two")).unwrap();
    assert_eq!(store.by_username("alpha_one").unwrap(), None);
    store.set_username(a.id, Some("Alpha_One")).unwrap();
    assert_eq!(
        store.set_username(first_id() + 50, Some("nobody_here")),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(store.by_username("nobody_here").unwrap(), None);
}

/// Channels take usernames from the same namespace as accounts: neither may take what the
/// other has (in any case); a channel's username reads back as spelled, names its owner,
/// and is freed when removed or changed.
pub fn channels_share_the_username_namespace(factory: Factory<'_>) {
    let store = factory();
    let ann = create(&*store, 1, "Ann");
    store.set_username(ann.id, Some("ann_smith")).unwrap();
    let (news, club) = (7, 8);
    assert_eq!(store.channel_username(news).unwrap(), None);
    assert_eq!(
        store.set_channel_username(news, Some("ANN_smith")),
        Err(UserError::UsernameOccupied),
        "an account's"
    );
    store
        .set_channel_username(news, Some("Daily_News"))
        .unwrap();
    assert_eq!(
        store.channel_username(news).unwrap().as_deref(),
        Some("Daily_News")
    );
    assert_eq!(
        store.username_owner("daily_news").unwrap(),
        Some(UsernameOwner::Channel(news))
    );
    assert_eq!(
        store.username_owner("Ann_Smith").unwrap(),
        Some(UsernameOwner::User(ann.id))
    );
    assert_eq!(store.username_owner("nobody_here").unwrap(), None);
    assert_eq!(
        store.by_username("daily_news").unwrap(),
        None,
        "not an account"
    );
    assert_eq!(
        store.set_username(ann.id, Some("daily_NEWS")),
        Err(UserError::UsernameOccupied),
        "a channel's"
    );
    assert_eq!(
        store.set_channel_username(club, Some("daily_news")),
        Err(UserError::UsernameOccupied),
        "another channel's"
    );
    assert_eq!(
        store.set_channel_username(news, Some("Daily_News")),
        Err(UserError::UsernameNotModified)
    );
    for bad in ["abcd", "1abcde", "has space", ""] {
        assert_eq!(
            store.set_channel_username(club, Some(bad)),
            Err(UserError::UsernameInvalid),
            "{bad:?}"
        );
    }
    assert_eq!(
        store.set_channel_username(0, Some("zero_channel")),
        Err(UserError::ChannelInvalid)
    );
    // A new name frees the old one; removal frees the new one.
    store
        .set_channel_username(news, Some("news_daily"))
        .unwrap();
    assert_eq!(store.username_owner("daily_news").unwrap(), None);
    store
        .set_channel_username(club, Some("daily_news"))
        .unwrap();
    store.set_channel_username(news, None).unwrap();
    assert_eq!(store.channel_username(news).unwrap(), None);
    assert_eq!(store.username_owner("news_daily").unwrap(), None);
    assert_eq!(
        store.set_channel_username(news, None),
        Err(UserError::UsernameNotModified)
    );
    store.set_username(ann.id, Some("news_daily")).unwrap();
    assert_eq!(
        store.username_owner("news_daily").unwrap(),
        Some(UsernameOwner::User(ann.id))
    );
}

/// `update_profile` replaces the fields given, checks each against Telegram's limits, and
/// with any refused leaves the whole account (and its search words) unchanged.
pub fn profile_changes_follow_the_limits(factory: Factory<'_>) {
    let store = factory();
    let ann = store.create_account(&phone(1), "Ann", "Lee").unwrap();
    let beth = store.update_profile(ann.id, &first_name("Beth")).unwrap();
    assert_eq!(
        (
            beth.first_name.as_str(),
            beth.last_name.as_str(),
            beth.about.as_str()
        ),
        ("Beth", "Lee", "")
    );
    assert_eq!(store.account(ann.id).unwrap(), Some(beth));
    assert!(
        search_ids(&*store, "ann", 10).is_empty(),
        "the old name is not searched"
    );
    assert_eq!(search_ids(&*store, "beth", 10), vec![ann.id]);

    let about = "é".repeat(MAX_ABOUT_CHARS);
    let full = store
        .update_profile(
            ann.id,
            &ProfileChange {
                last_name: Some(String::new()),
                about: Some(about.clone()),
                ..ProfileChange::default()
            },
        )
        .unwrap();
    assert_eq!(
        (
            full.first_name.as_str(),
            full.last_name.as_str(),
            full.about.as_str()
        ),
        ("Beth", "", about.as_str())
    );
    assert_eq!(
        store
            .update_profile(ann.id, &ProfileChange::default())
            .unwrap(),
        full,
        "an empty change changes nothing"
    );

    let refused = [
        (
            ProfileChange {
                about: Some("x".repeat(MAX_ABOUT_CHARS + 1)),
                ..ProfileChange::default()
            },
            UserError::AboutTooLong,
        ),
        (first_name(""), UserError::FirstNameInvalid),
        (
            first_name(&"z".repeat(MAX_NAME_CHARS + 1)),
            UserError::FirstNameInvalid,
        ),
        (
            ProfileChange {
                last_name: Some("y".repeat(MAX_NAME_CHARS + 1)),
                ..ProfileChange::default()
            },
            UserError::LastNameInvalid,
        ),
        (
            ProfileChange {
                first_name: Some("Zed".to_owned()),
                last_name: Some("Quill".to_owned()),
                about: Some("x".repeat(MAX_ABOUT_CHARS + 1)),
            },
            UserError::AboutTooLong,
        ),
        (
            ProfileChange {
                first_name: Some("Zed".to_owned()),
                last_name: Some("bad\nname".to_owned()),
                about: None,
            },
            UserError::LastNameInvalid,
        ),
    ];
    for (change, error) in refused {
        assert_eq!(
            store.update_profile(ann.id, &change),
            Err(error),
            "{change:?}"
        );
        assert_eq!(
            store.account(ann.id).unwrap(),
            Some(full.clone()),
            "{change:?}"
        );
    }
    assert!(search_ids(&*store, "zed", 10).is_empty());
    assert!(search_ids(&*store, "quill", 10).is_empty());
    assert_eq!(
        store.update_profile(first_id() + 9, &first_name("Ghost")),
        Err(UserError::UserIdInvalid)
    );
}

/// `search` finds live accounts by a prefix of the username or of any word of the names, in
/// any case, by id, at most `limit`.
pub fn search_matches_username_and_name_word_prefixes(factory: Factory<'_>) {
    let store = factory();
    let alice = store
        .create_account(&phone(1), "Alice Marie", "Smith")
        .unwrap();
    store.set_username(alice.id, Some("alice_s")).unwrap();
    let bob = store.create_account(&phone(2), "Bob", "Alisson").unwrap();
    let carol = store.create_account(&phone(3), "Carol", "Jones").unwrap();
    store.set_username(carol.id, Some("Al_Carol")).unwrap();
    let dan = store.create_account(&phone(4), "Dan", "").unwrap();
    store.set_username(dan.id, Some("dan_x")).unwrap();
    let alfred = store.create_account(&phone(5), "Alfred", "").unwrap();
    let eve = store.create_account(&phone(6), "Eve", "").unwrap();

    assert_eq!(
        search_ids(&*store, "al", 100),
        vec![alice.id, bob.id, carol.id, alfred.id]
    );
    assert_eq!(
        search_ids(&*store, "AL", 100),
        vec![alice.id, bob.id, carol.id, alfred.id],
        "any case"
    );
    assert_eq!(
        search_ids(&*store, "mar", 100),
        vec![alice.id],
        "a later word"
    );
    assert_eq!(
        search_ids(&*store, "smi", 100),
        vec![alice.id],
        "the last name"
    );
    assert_eq!(
        search_ids(&*store, "al_c", 100),
        vec![carol.id],
        "the username"
    );
    assert_eq!(search_ids(&*store, "alice_", 100), vec![alice.id]);
    assert_eq!(search_ids(&*store, "dan_x", 100), vec![dan.id]);
    assert!(search_ids(&*store, "lice", 100).is_empty(), "not a prefix");
    assert!(
        search_ids(&*store, "alice marie", 100).is_empty(),
        "one word at a time"
    );
    assert!(search_ids(&*store, "zz", 100).is_empty());

    let two = search_ids(&*store, "al", 2);
    assert_eq!(two.len(), 2, "the limit is kept");
    assert!(two.windows(2).all(|w| w[0] < w[1]), "by id: {two:?}");
    assert!(
        two.iter()
            .all(|id| [alice.id, bob.id, carol.id, alfred.id].contains(id))
    );
    assert!(search_ids(&*store, "al", 0).is_empty());

    let full = store.search("eve", 10).unwrap();
    assert_eq!(
        full,
        vec![store.account(eve.id).unwrap().unwrap()],
        "whole accounts"
    );

    // Deleted accounts are found by nothing.
    store.delete_account(dan.id).unwrap();
    store.delete_account(alfred.id).unwrap();
    assert!(search_ids(&*store, "dan", 100).is_empty());
    assert_eq!(
        search_ids(&*store, "al", 100),
        vec![alice.id, bob.id, carol.id]
    );
}

/// However many accounts match, `search` gives at most [`MAX_SEARCH`], live ones only.
pub fn search_gives_at_most_max_search(factory: Factory<'_>) {
    let store = factory();
    let count = u32::try_from(MAX_SEARCH).unwrap() + 5;
    let mut made = Vec::new();
    for n in 0..count {
        made.push(create(&*store, n, "Many").id);
    }
    // The first few go: the search must still fill its page from live accounts.
    for id in &made[..3] {
        store.delete_account(*id).unwrap();
    }
    let found = search_ids(&*store, "many", usize::MAX);
    assert_eq!(found.len(), MAX_SEARCH);
    assert!(found.windows(2).all(|w| w[0] < w[1]), "by id");
    assert!(
        found.iter().all(|id| made[3..].contains(id)),
        "live ones only"
    );
    assert_eq!(search_ids(&*store, "ma", 7).len(), 7);
}

/// A search with a small limit gives the first matches by id, whichever index found them
/// (usernames sort apart from ids).
pub fn a_small_search_gives_the_lowest_ids(factory: Factory<'_>) {
    let store = factory();
    let first = create(&*store, 1, "Zed");
    store.set_username(first.id, Some("alz_user")).unwrap();
    let second = create(&*store, 2, "Yan");
    store.set_username(second.id, Some("ala_user")).unwrap();
    let third = create(&*store, 3, "Alan");
    assert_eq!(search_ids(&*store, "al", 1), vec![first.id]);
    assert_eq!(search_ids(&*store, "al", 2), vec![first.id, second.id]);
    assert_eq!(
        search_ids(&*store, "AL", 3),
        vec![first.id, second.id, third.id]
    );
}

/// The account whose username is the query comes first, before lower ids that match by
/// name.
pub fn an_exact_username_comes_first(factory: Factory<'_>) {
    let store = factory();
    let mut namesakes = Vec::new();
    for n in 0..3 {
        namesakes.push(create(&*store, n, "Alice").id);
    }
    let alice = create(&*store, 9, "Someone");
    store.set_username(alice.id, Some("Alice")).unwrap();
    assert_eq!(search_ids(&*store, "alice", 1), vec![alice.id]);
    assert_eq!(
        search_ids(&*store, "ALICE", 3),
        vec![alice.id, namesakes[0], namesakes[1]]
    );
}

/// Storing a deleted account (with a phone and username that are now someone else's)
/// and then storing it live again never takes another account's index rows.
pub fn a_deleted_account_stored_again_leaves_others_indexes_alone(factory: Factory<'_>) {
    let store = factory();
    let mut ghost = Account::new(first_id() + 70, phone(70), "Ghost").with_username("ghost_user");
    ghost.deleted = true;
    store.put_account(&ghost).unwrap();
    let heir = store.create_account(&phone(70), "Heir", "").unwrap();
    store.set_username(heir.id, Some("ghost_user")).unwrap();
    // Live again, with other details: the heir keeps its phone and username.
    let revived = Account::new(ghost.id, phone(71), "Ghost");
    store.put_account(&revived).unwrap();
    assert_eq!(
        store.by_phone(&phone(70)).unwrap().map(|a| a.id),
        Some(heir.id)
    );
    assert_eq!(
        store.by_username("ghost_user").unwrap().map(|a| a.id),
        Some(heir.id)
    );
    assert_eq!(
        store.by_phone(&phone(71)).unwrap().map(|a| a.id),
        Some(ghost.id)
    );
    assert_eq!(
        store.create_account(&phone(70), "Thief", ""),
        Err(UserError::PhoneNumberOccupied(heir.id))
    );
}

/// A contact found by phone (imported, or adopted from the phone book) has its phone known
/// to the owner, and keeps it through a rename; one added by id alone does not.
pub fn a_phone_found_is_known_a_contact_added_is_not(factory: Factory<'_>) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    let found = create(&*store, 2, "Found");
    let added_by_id = create(&*store, 3, "Added");
    store
        .import_contacts(owner.id, &[entry(1, &phone(2), "F", "")], 10)
        .unwrap();
    store
        .add_contact(owner.id, added_by_id.id, "A", "", 11)
        .unwrap();
    store
        .add_contact(owner.id, found.id, "Renamed", "", 12)
        .unwrap();
    assert_eq!(
        store.contacts(owner.id).unwrap(),
        vec![
            contact(found.id, "Renamed", "", 10),
            added(added_by_id.id, "A", "", 11)
        ]
    );
    // Importing the added one's phone later makes it known.
    store
        .import_contacts(owner.id, &[entry(2, &phone(3), "A", "")], 13)
        .unwrap();
    assert!(
        store
            .contact(owner.id, added_by_id.id)
            .unwrap()
            .unwrap()
            .phone_known
    );
}

/// The last reported presence is kept on the account, nothing else changes.
pub fn presence_is_recorded(factory: Factory<'_>) {
    let store = factory();
    let ann = create(&*store, 1, "Ann");
    let ann = store.set_username(ann.id, Some("ann_online")).unwrap();
    assert_eq!(ann.presence, Presence::Unknown);
    store
        .set_presence(ann.id, Presence::Online { expires: 1_300 })
        .unwrap();
    let mut expected = ann.clone();
    expected.presence = Presence::Online { expires: 1_300 };
    assert_eq!(store.account(ann.id).unwrap(), Some(expected.clone()));
    store
        .set_presence(ann.id, Presence::Offline { was_online: 1_250 })
        .unwrap();
    expected.presence = Presence::Offline { was_online: 1_250 };
    assert_eq!(store.account(ann.id).unwrap(), Some(expected.clone()));
    assert_eq!(
        store.by_username("ann_online").unwrap(),
        Some(expected),
        "the indexes see the same account"
    );
    assert_eq!(
        store.set_presence(first_id() + 7, Presence::Online { expires: 1 }),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(store.account(first_id() + 7).unwrap(), None);
}

/// Photos list newest first, the newest is the account's photo; a photo id the user has is
/// `PHOTO_INVALID`; deleting the current one makes the newest left current.
pub fn profile_photos_newest_first(factory: Factory<'_>) {
    let store = factory();
    let ann = create(&*store, 1, "Ann");
    let bob = create(&*store, 2, "Bob");
    assert!(store.photos(ann.id).unwrap().is_empty());
    let with_one = store.add_photo(ann.id, photo(10, 100)).unwrap();
    assert_eq!(with_one.photo, Some(photo(10, 100)));
    assert_eq!(with_one.first_name, "Ann");
    store.add_photo(ann.id, photo(-20, 200)).unwrap();
    let with_three = store.add_photo(ann.id, photo(30, 300)).unwrap();
    assert_eq!(with_three.photo, Some(photo(30, 300)));
    assert_eq!(store.account(ann.id).unwrap(), Some(with_three.clone()));
    assert_eq!(
        store.photos(ann.id).unwrap(),
        vec![photo(30, 300), photo(-20, 200), photo(10, 100)]
    );

    // The same id again, even with other contents, is refused, nothing changed.
    assert_eq!(
        store.add_photo(ann.id, photo(-20, 400)),
        Err(UserError::PhotoInvalid)
    );
    assert_eq!(store.photos(ann.id).unwrap().len(), 3);
    assert_eq!(store.account(ann.id).unwrap(), Some(with_three));
    // Photo ids are per user.
    assert_eq!(
        store.add_photo(bob.id, photo(10, 150)).unwrap().photo,
        Some(photo(10, 150))
    );

    assert_eq!(store.delete_photos(ann.id, &[30, 999]).unwrap(), vec![30]);
    assert_eq!(
        store.photos(ann.id).unwrap(),
        vec![photo(-20, 200), photo(10, 100)]
    );
    assert_eq!(
        store.account(ann.id).unwrap().unwrap().photo,
        Some(photo(-20, 200)),
        "the newest left is current"
    );
    assert_eq!(store.delete_photos(ann.id, &[10]).unwrap(), vec![10]);
    assert_eq!(
        store.account(ann.id).unwrap().unwrap().photo,
        Some(photo(-20, 200)),
        "deleting an older photo keeps the current one"
    );
    assert!(store.delete_photos(ann.id, &[]).unwrap().is_empty());
    assert!(store.delete_photos(ann.id, &[10]).unwrap().is_empty());
    assert_eq!(store.delete_photos(ann.id, &[-20]).unwrap(), vec![-20]);
    assert_eq!(store.account(ann.id).unwrap().unwrap().photo, None);
    assert!(store.photos(ann.id).unwrap().is_empty());
    // A deleted id may come back; a new photo after deletions is current.
    store.add_photo(ann.id, photo(30, 500)).unwrap();
    store.add_photo(ann.id, photo(40, 600)).unwrap();
    assert_eq!(
        store.photos(ann.id).unwrap(),
        vec![photo(40, 600), photo(30, 500)]
    );
    assert_eq!(store.delete_photos(ann.id, &[40]).unwrap(), vec![40]);
    store.add_photo(ann.id, photo(50, 700)).unwrap();
    assert_eq!(
        store.photos(ann.id).unwrap(),
        vec![photo(50, 700), photo(30, 500)],
        "newest first after a deletion too"
    );
    // Bob's photos are his own.
    assert_eq!(store.photos(bob.id).unwrap(), vec![photo(10, 150)]);
    assert_eq!(
        store.add_photo(first_id() + 9, photo(1, 1)),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.delete_photos(first_id() + 9, &[1]),
        Err(UserError::UserIdInvalid)
    );
}

/// Importing makes contacts of phones with an account and phone-book entries of the others
/// (with how many users imported each), asks for a retry of what is not a phone, skips the
/// importer's own number, and renames a known contact keeping its date.
pub fn importing_contacts(factory: Factory<'_>) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    let uno = create(&*store, 2, "Uno");
    let dos = create(&*store, 3, "Dos");
    let outcome = store
        .import_contacts(
            owner.id,
            &[
                entry(11, "+1 555 000 0003", "Second", "Friend"),
                entry(12, "(1) 555-000-0002", "First", ""),
                entry(13, &phone(9), "Nine", "Book"),
                entry(14, "call me", "Bad", ""),
                entry(15, "+1 555 000 0001", "Me", "Myself"),
            ],
            100,
        )
        .unwrap();
    assert_eq!(outcome.imported, vec![(11, dos.id), (12, uno.id)]);
    assert_eq!(outcome.phone_book, vec![(13, 1)]);
    assert_eq!(outcome.retry, vec![14]);
    assert_eq!(
        store.contacts(owner.id).unwrap(),
        vec![
            contact(uno.id, "First", "", 100),
            contact(dos.id, "Second", "Friend", 100)
        ]
    );
    assert_eq!(
        store.contact(owner.id, dos.id).unwrap(),
        Some(contact(dos.id, "Second", "Friend", 100))
    );
    assert_eq!(
        store.contact(owner.id, owner.id).unwrap(),
        None,
        "own number skipped"
    );
    assert_eq!(
        store.contact(dos.id, owner.id).unwrap(),
        None,
        "one way only"
    );
    assert_eq!(store.contact_of(uno.id, 10).unwrap(), vec![owner.id]);
    assert_eq!(store.contact_of(owner.id, 10).unwrap(), Vec::<i64>::new());

    // A second importer of the same phone-book number is counted.
    let again = store
        .import_contacts(uno.id, &[entry(21, &phone(9), "N", "")], 110)
        .unwrap();
    assert_eq!(
        again,
        ImportOutcome {
            phone_book: vec![(21, 2)],
            ..ImportOutcome::default()
        }
    );
    // The same importer again is still one importer.
    let repeat = store
        .import_contacts(owner.id, &[entry(16, &phone(9), "Nine", "")], 120)
        .unwrap();
    assert_eq!(repeat.phone_book, vec![(16, 2)]);

    // Renaming a contact keeps the date it was added.
    let renamed = store
        .import_contacts(owner.id, &[entry(17, &phone(2), "Primo", "Uno")], 200)
        .unwrap();
    assert_eq!(renamed.imported, vec![(17, uno.id)]);
    assert_eq!(
        store.contact(owner.id, uno.id).unwrap(),
        Some(contact(uno.id, "Primo", "Uno", 100))
    );
    assert_eq!(store.contacts(owner.id).unwrap().len(), 2);
    assert_eq!(
        store.import_contacts(first_id() + 9, &[entry(1, &phone(2), "X", "")], 1),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.import_contacts(owner.id, &[], 300).unwrap(),
        ImportOutcome::default()
    );
}

/// When an account is created for a phone in phone books, it becomes those importers'
/// contact, with the names they gave; an entry removed before that does not.
pub fn the_phone_book_becomes_contacts_on_sign_up(factory: Factory<'_>) {
    let store = factory();
    let one = create(&*store, 1, "One");
    let two = create(&*store, 2, "Two");
    let three = create(&*store, 3, "Three");
    store
        .import_contacts(one.id, &[entry(1, "+1 555 000 0009", "Niner", "Ones")], 100)
        .unwrap();
    store
        .import_contacts(two.id, &[entry(1, &phone(9), "Nine", "")], 110)
        .unwrap();
    store
        .import_contacts(three.id, &[entry(1, &phone(9), "Nein", "")], 120)
        .unwrap();
    assert_eq!(
        store.delete_by_phones(three.id, &[phone(9)]).unwrap(),
        Vec::<i64>::new()
    );
    assert!(store.contacts(one.id).unwrap().is_empty());

    let nine = store
        .create_account("1 555 000 0009", "Real", "Name")
        .unwrap();
    assert_eq!(
        store.contacts(one.id).unwrap(),
        vec![contact(nine.id, "Niner", "Ones", 100)]
    );
    assert_eq!(
        store.contacts(two.id).unwrap(),
        vec![contact(nine.id, "Nine", "", 110)]
    );
    assert!(
        store.contacts(three.id).unwrap().is_empty(),
        "removed from the book"
    );
    assert_eq!(store.contact_of(nine.id, 10).unwrap(), vec![one.id, two.id]);
    assert!(store.contacts(nine.id).unwrap().is_empty(), "one way only");

    // The phone book entry is gone: importing again is an import of the account.
    let outcome = store
        .import_contacts(two.id, &[entry(5, &phone(9), "Nine", "Again")], 130)
        .unwrap();
    assert_eq!(outcome.imported, vec![(5, nine.id)]);
    assert!(outcome.phone_book.is_empty());
    assert_eq!(
        store.contact(two.id, nine.id).unwrap(),
        Some(contact(nine.id, "Nine", "Again", 110))
    );
    // A later account for another phone is nobody's contact.
    let ten = create(&*store, 10, "Ten");
    assert!(store.contact_of(ten.id, 10).unwrap().is_empty());
}

/// An account stored with a phone (`put_account`: an import, a phone change) is adopted by
/// the phone books that had the phone, as a created one is; the entries go, so they no
/// longer fill the book; a renamed entry keeps its first date.
pub fn the_phone_book_becomes_contacts_when_an_account_is_stored_with_the_phone(
    factory: Factory<'_>,
) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    store
        .import_contacts(owner.id, &[entry(1, &phone(8), "Eight", "")], 100)
        .unwrap();
    store
        .import_contacts(owner.id, &[entry(1, &phone(8), "Eight", "Renamed")], 200)
        .unwrap();
    let eight = Account::new(first_id() + 50, phone(8), "Real");
    store.put_account(&eight).unwrap();
    assert_eq!(
        store.contacts(owner.id).unwrap(),
        vec![contact(eight.id, "Eight", "Renamed", 100)]
    );
    // Storing it again (same phone) changes nothing more.
    store.delete_contacts(owner.id, &[eight.id]).unwrap();
    store.put_account(&eight).unwrap();
    assert!(store.contacts(owner.id).unwrap().is_empty());
}

/// `add_contact` adds or renames a live account (keeping the date); itself, unknown and
/// deleted accounts and bad names are refused, nothing stored.
pub fn adding_contacts(factory: Factory<'_>) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    let pal = create(&*store, 2, "Pal");
    let gone = create(&*store, 3, "Gone");
    store.delete_account(gone.id).unwrap();
    let unknown = first_id() + 50;
    let refused = [
        (owner.id, owner.id, "Me", "", UserError::ContactIdInvalid),
        (owner.id, unknown, "Who", "", UserError::UserIdInvalid),
        (owner.id, gone.id, "Gone", "", UserError::UserIdInvalid),
        (unknown, pal.id, "Pal", "", UserError::UserIdInvalid),
        (gone.id, pal.id, "Pal", "", UserError::UserIdInvalid),
        (owner.id, pal.id, "", "", UserError::FirstNameInvalid),
        (owner.id, pal.id, "Pal", "a\tb", UserError::LastNameInvalid),
    ];
    for (from, to, first, last, error) in refused {
        assert_eq!(
            store.add_contact(from, to, first, last, 50),
            Err(error.clone()),
            "{from} adds {to} ({first:?} {last:?})"
        );
    }
    assert!(store.contacts(owner.id).unwrap().is_empty());
    assert!(store.contact_of(pal.id, 10).unwrap().is_empty());

    store
        .add_contact(owner.id, pal.id, "Pal", "Y", 100)
        .unwrap();
    assert_eq!(
        store.contacts(owner.id).unwrap(),
        vec![added(pal.id, "Pal", "Y", 100)]
    );
    store
        .add_contact(owner.id, pal.id, "Buddy", "", 200)
        .unwrap();
    assert_eq!(
        store.contacts(owner.id).unwrap(),
        vec![added(pal.id, "Buddy", "", 100)],
        "renamed, the date kept"
    );
    assert_eq!(store.contact_of(pal.id, 10).unwrap(), vec![owner.id]);
}

/// `delete_contacts` removes the named contacts (skipping others) and `delete_by_phones` the
/// contacts and phone-book entries with those phones; `contact_of` follows.
pub fn deleting_contacts(factory: Factory<'_>) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    let u1 = create(&*store, 2, "U1");
    let u2 = create(&*store, 3, "U2");
    let u3 = create(&*store, 4, "U3");
    for (user, date) in [(u1.id, 10), (u2.id, 20), (u3.id, 30)] {
        store.add_contact(owner.id, user, "C", "", date).unwrap();
    }
    store.add_contact(u1.id, u2.id, "C", "", 40).unwrap();
    assert_eq!(
        store
            .delete_contacts(owner.id, &[u2.id, first_id() + 77, u2.id, owner.id])
            .unwrap(),
        vec![u2.id]
    );
    assert_eq!(ids(&store.contacts(owner.id).unwrap()), vec![u1.id, u3.id]);
    assert_eq!(store.contact(owner.id, u2.id).unwrap(), None);
    assert_eq!(
        store.contact_of(u2.id, 10).unwrap(),
        vec![u1.id],
        "another's contact of it stays"
    );
    assert!(
        store
            .delete_contacts(owner.id, &[u2.id])
            .unwrap()
            .is_empty()
    );

    // By phone: any spelling; bad and unknown phones skipped; phone-book entries go too.
    store
        .import_contacts(owner.id, &[entry(1, &phone(8), "Eight", "")], 50)
        .unwrap();
    let removed = store
        .delete_by_phones(
            owner.id,
            &[
                "+1 555 000 0004".to_owned(),
                "not a phone".to_owned(),
                phone(77),
                phone(8),
                phone(4),
            ],
        )
        .unwrap();
    assert_eq!(removed, vec![u3.id]);
    assert_eq!(ids(&store.contacts(owner.id).unwrap()), vec![u1.id]);
    assert!(store.contact_of(u3.id, 10).unwrap().is_empty());
    let eight = create(&*store, 8, "Eight");
    assert!(
        store.contact(owner.id, eight.id).unwrap().is_none(),
        "the phone-book entry was removed"
    );
    assert_eq!(
        store.contacts(u1.id).unwrap(),
        vec![added(u2.id, "C", "", 40)],
        "other owners are untouched"
    );
}

/// Contacts come by user id whatever the order they were added in; `contact_of` by owner
/// id, at most `limit`.
pub fn contacts_are_listed_by_user_id(factory: Factory<'_>) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    let mut users = Vec::new();
    for (id, n) in [
        (first_id() + 500, 2),
        (42, 3),
        (first_id() + 300, 4),
        (7, 5),
    ] {
        let account = Account::new(id, phone(n), "User");
        store.put_account(&account).unwrap();
        users.push(id);
    }
    for (date, &user) in (1..).zip(&users) {
        store.add_contact(owner.id, user, "C", "", date).unwrap();
    }
    let mut sorted = users.clone();
    sorted.sort_unstable();
    assert_eq!(ids(&store.contacts(owner.id).unwrap()), sorted);

    // Several owners of one contact, listed by owner id and cut at the limit.
    for &user in users.iter().rev() {
        store
            .add_contact(user, 42, "Answer", "", 1)
            .unwrap_or_else(|e| {
                assert_eq!(user, 42, "only 42 cannot add itself: {e}");
            });
    }
    let mut owners: Vec<i64> = users.iter().copied().filter(|&u| u != 42).collect();
    owners.push(owner.id);
    owners.sort_unstable();
    assert_eq!(store.contact_of(42, 100).unwrap(), owners);
    assert_eq!(store.contact_of(42, 2).unwrap(), owners[..2].to_vec());
    assert!(store.contact_of(42, 0).unwrap().is_empty());
}

/// Blocking is once per pair (a repeat keeps the first date), paged by user id with the
/// total, undone by `unblock`; oneself and unknown users cannot be blocked.
pub fn blocking_users(factory: Factory<'_>) {
    let store = factory();
    let owner = create(&*store, 1, "Owner");
    let u1 = create(&*store, 2, "U1");
    let u2 = create(&*store, 3, "U2");
    let u3 = create(&*store, 4, "U3");
    assert_eq!(store.blocked(owner.id, 0, 10).unwrap(), (Vec::new(), 0));
    assert!(store.block(owner.id, u2.id, 100).unwrap());
    assert!(
        !store.block(owner.id, u2.id, 200).unwrap(),
        "already blocked"
    );
    assert_eq!(
        store.blocked(owner.id, 0, 10).unwrap(),
        (
            vec![Blocked {
                user_id: u2.id,
                date: 100
            }],
            1
        )
    );
    assert!(store.block(owner.id, u3.id, 300).unwrap());
    assert!(store.block(owner.id, u1.id, 400).unwrap());
    let all = vec![
        Blocked {
            user_id: u1.id,
            date: 400,
        },
        Blocked {
            user_id: u2.id,
            date: 100,
        },
        Blocked {
            user_id: u3.id,
            date: 300,
        },
    ];
    assert_eq!(store.blocked(owner.id, 0, 10).unwrap(), (all.clone(), 3));
    assert_eq!(
        store.blocked(owner.id, 1, 1).unwrap(),
        (all[1..2].to_vec(), 3)
    );
    assert_eq!(
        store.blocked(owner.id, 2, 5).unwrap(),
        (all[2..].to_vec(), 3)
    );
    assert_eq!(store.blocked(owner.id, 3, 5).unwrap(), (Vec::new(), 3));
    assert_eq!(store.blocked(owner.id, 0, 0).unwrap(), (Vec::new(), 3));
    assert!(store.is_blocked(owner.id, u2.id).unwrap());
    assert!(!store.is_blocked(u2.id, owner.id).unwrap(), "one way only");
    assert_eq!(store.blocked(u2.id, 0, 10).unwrap(), (Vec::new(), 0));

    assert!(store.unblock(owner.id, u2.id).unwrap());
    assert!(!store.unblock(owner.id, u2.id).unwrap());
    assert!(!store.is_blocked(owner.id, u2.id).unwrap());
    assert_eq!(store.blocked(owner.id, 0, 10).unwrap().1, 2);
    assert!(store.block(owner.id, u2.id, 500).unwrap(), "blocked afresh");
    assert_eq!(
        store.blocked(owner.id, 1, 1).unwrap().0,
        vec![Blocked {
            user_id: u2.id,
            date: 500
        }]
    );

    assert_eq!(
        store.block(owner.id, owner.id, 1),
        Err(UserError::ContactIdInvalid)
    );
    assert_eq!(
        store.block(owner.id, first_id() + 40, 1),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.block(first_id() + 40, owner.id, 1),
        Err(UserError::UserIdInvalid)
    );
    assert!(!store.is_blocked(owner.id, owner.id).unwrap());
    assert!(!store.is_blocked(owner.id, first_id() + 40).unwrap());
    assert_eq!(store.blocked(owner.id, 0, 10).unwrap().1, 3);
}

fn app(auth_key_id: i64, hash: i64, now: i32, model: &str, ip: &str) -> Authorization {
    let mut authorization = Authorization::new(auth_key_id, hash, now);
    authorization.api_id = 4;
    authorization.device_model = model.to_owned();
    authorization.platform = "Android".to_owned();
    authorization.system_version = "14".to_owned();
    authorization.app_version = "10.1".to_owned();
    authorization.ip = ip.to_owned();
    authorization
}

/// An authorization is recorded once per key: a later record refreshes the details and the
/// activity but keeps the first hash and creation date. They list by key id; removing one
/// returns it and unregisters the devices its key registered.
pub fn authorizations_keep_their_first_hash_and_date(factory: Factory<'_>) {
    let store = factory();
    let user = create(&*store, 1, "User");
    let other = create(&*store, 2, "Other");
    let first = app(-5, 111, 1_000, "Pixel", "10.0.0.1");
    assert_eq!(store.put_authorization(user.id, &first).unwrap(), first);
    assert_eq!(store.authorizations(user.id).unwrap(), vec![first.clone()]);

    let mut later = app(-5, 222, 2_000, "Pixel 8", "10.0.0.2");
    later.active = 2_500;
    later.api_id = 5;
    let refreshed = store.put_authorization(user.id, &later).unwrap();
    let mut expected = later;
    expected.hash = 111;
    expected.created = 1_000;
    assert_eq!(
        refreshed, expected,
        "hash and created kept, the rest refreshed"
    );
    assert_eq!(
        store.authorizations(user.id).unwrap(),
        vec![expected.clone()]
    );

    let seven = app(7, 777, 3_000, "iPhone", "10.0.0.7");
    let three = app(3, 333, 3_100, "Desktop", "10.0.0.3");
    store.put_authorization(user.id, &seven).unwrap();
    store.put_authorization(user.id, &three).unwrap();
    assert_eq!(
        store.authorizations(user.id).unwrap(),
        vec![expected.clone(), three.clone(), seven.clone()],
        "by key id"
    );
    assert!(store.authorizations(other.id).unwrap().is_empty());

    // Long details are cut to whole characters.
    let long = app(9, 999, 3_200, &"é".repeat(MAX_DETAIL_LEN), "10.0.0.9");
    let stored = store.put_authorization(user.id, &long).unwrap();
    assert!(stored.device_model.len() <= MAX_DETAIL_LEN);
    assert!(!stored.device_model.is_empty());
    assert!(long.device_model.starts_with(&stored.device_model));
    assert_eq!(store.authorizations(user.id).unwrap()[3], stored);

    // Devices go with the key that registered them.
    let by_first = Device::new(-5, 2, "fcm-token-a");
    let by_first_web = Device::new(-5, 10, "https://push.example/a");
    let by_seven = Device::new(7, 2, "fcm-token-b");
    for device in [&by_first, &by_first_web, &by_seven] {
        store.register_device(user.id, device).unwrap();
    }
    assert_eq!(
        store.remove_authorization(user.id, -5).unwrap(),
        Some(expected)
    );
    assert_eq!(store.remove_authorization(user.id, -5).unwrap(), None);
    assert_eq!(store.remove_authorization(user.id, 12_345).unwrap(), None);
    assert_eq!(
        store.authorizations(user.id).unwrap(),
        vec![three, seven, stored]
    );
    assert_eq!(store.devices(user.id).unwrap(), vec![by_seven]);
    // A key removed may sign in again, as a new authorization.
    let back = app(-5, 555, 4_000, "Pixel", "10.0.0.5");
    assert_eq!(store.put_authorization(user.id, &back).unwrap(), back);
    assert_eq!(
        store.put_authorization(first_id() + 60, &first),
        Err(UserError::UserIdInvalid)
    );
    assert!(store.authorizations(first_id() + 60).unwrap().is_empty());
}

/// Push devices: registering the same token type and token replaces; empty and too long
/// tokens are `TOKEN_INVALID`; listed by token type and token; unregistering says whether
/// there was one.
pub fn push_devices(factory: Factory<'_>) {
    let store = factory();
    let user = create(&*store, 1, "User");
    let other = create(&*store, 2, "Other");
    let plain = Device::new(1, 2, "tok1");
    store.register_device(user.id, &plain).unwrap();
    assert_eq!(store.devices(user.id).unwrap(), vec![plain]);
    let mut rich = Device::new(3, 2, "tok1");
    rich.app_sandbox = true;
    rich.secret = vec![1, 2, 3];
    rich.other_uids = vec![other.id];
    store.register_device(user.id, &rich).unwrap();
    assert_eq!(
        store.devices(user.id).unwrap(),
        vec![rich.clone()],
        "replaced"
    );

    let apns = Device::new(1, 1, "tok0");
    let fcm = Device::new(1, 2, "tok0");
    store.register_device(user.id, &fcm).unwrap();
    store.register_device(user.id, &apns).unwrap();
    assert_eq!(
        store.devices(user.id).unwrap(),
        vec![apns.clone(), fcm.clone(), rich],
        "by token type, then token"
    );
    for bad in [String::new(), "t".repeat(MAX_TOKEN_LEN + 1)] {
        assert_eq!(
            store.register_device(user.id, &Device::new(1, 2, bad.clone())),
            Err(UserError::TokenInvalid),
            "a token of {} bytes",
            bad.len()
        );
    }
    assert!(
        store
            .register_device(user.id, &Device::new(1, 2, "t".repeat(MAX_TOKEN_LEN)))
            .is_ok(),
        "the longest token is fine"
    );
    assert!(
        store
            .unregister_device(user.id, 2, &"t".repeat(MAX_TOKEN_LEN))
            .unwrap()
    );
    assert_eq!(store.devices(user.id).unwrap().len(), 3);

    // Another user's devices are its own, even with the same token.
    store.register_device(other.id, &fcm).unwrap();
    assert!(store.unregister_device(user.id, 2, "tok1").unwrap());
    assert!(!store.unregister_device(user.id, 2, "tok1").unwrap());
    assert!(
        !store.unregister_device(user.id, 3, "tok0").unwrap(),
        "the type counts"
    );
    assert_eq!(store.devices(user.id).unwrap(), vec![apns, fcm.clone()]);
    assert!(store.unregister_device(user.id, 2, "tok0").unwrap());
    assert_eq!(store.devices(other.id).unwrap(), vec![fcm.clone()]);
    assert_eq!(
        store.register_device(first_id() + 70, &fcm),
        Err(UserError::UserIdInvalid)
    );
    assert!(store.devices(first_id() + 70).unwrap().is_empty());
}

/// Deleting an account frees its phone and username for reuse, empties its names, photos,
/// contacts, phone book, blocks, authorizations and devices, keeps others' contacts of it,
/// and leaves it readable as deleted; later writes for it are `USER_ID_INVALID`.
pub fn deleting_an_account(factory: Factory<'_>) {
    let store = factory();
    let gone = store.create_account(&phone(1), "Gone", "Soon").unwrap();
    let friend = create(&*store, 2, "Friend");
    let foe = create(&*store, 3, "Foe");
    store.set_username(gone.id, Some("Gone_User")).unwrap();
    store
        .update_profile(
            gone.id,
            &ProfileChange {
                about: Some("about me".to_owned()),
                ..ProfileChange::default()
            },
        )
        .unwrap();
    store.add_photo(gone.id, photo(1, 10)).unwrap();
    store
        .set_presence(gone.id, Presence::Offline { was_online: 10 })
        .unwrap();
    store.add_contact(gone.id, friend.id, "F", "", 10).unwrap();
    store.add_contact(friend.id, gone.id, "G", "", 11).unwrap();
    store
        .import_contacts(gone.id, &[entry(1, &phone(9), "Nine", "")], 12)
        .unwrap();
    store.block(gone.id, foe.id, 13).unwrap();
    store.block(foe.id, gone.id, 14).unwrap();
    store
        .put_authorization(gone.id, &app(1, 1, 15, "Phone", "10.0.0.1"))
        .unwrap();
    store
        .register_device(gone.id, &Device::new(1, 2, "token"))
        .unwrap();

    store.delete_account(gone.id).unwrap();
    let mut tombstone = Account::new(gone.id, "", "");
    tombstone.deleted = true;
    assert_eq!(store.account(gone.id).unwrap(), Some(tombstone));
    assert_eq!(store.by_phone(&phone(1)).unwrap(), None);
    assert_eq!(store.by_username("gone_user").unwrap(), None);
    assert!(search_ids(&*store, "gone", 10).is_empty());
    assert!(store.photos(gone.id).unwrap().is_empty());
    assert!(store.contacts(gone.id).unwrap().is_empty());
    assert!(store.contact_of(friend.id, 10).unwrap().is_empty());
    assert_eq!(store.blocked(gone.id, 0, 10).unwrap(), (Vec::new(), 0));
    assert!(store.authorizations(gone.id).unwrap().is_empty());
    assert!(store.devices(gone.id).unwrap().is_empty());
    // Others' contacts of it stay: they see a deleted account.
    assert_eq!(
        store.contact(friend.id, gone.id).unwrap(),
        Some(added(gone.id, "G", "", 11))
    );
    assert_eq!(store.contact_of(gone.id, 10).unwrap(), vec![friend.id]);

    // Every write for it is refused.
    let id = gone.id;
    assert_eq!(store.delete_account(id), Err(UserError::UserIdInvalid));
    assert_eq!(
        store.update_profile(id, &first_name("Back")).map(|_| ()),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.set_username(id, Some("gone_again")).map(|_| ()),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.set_presence(id, Presence::Online { expires: 99 }),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.add_photo(id, photo(2, 20)).map(|_| ()),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store
            .import_contacts(id, &[entry(1, &phone(2), "F", "")], 20)
            .map(|_| ()),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.add_contact(id, friend.id, "F", "", 20),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.add_contact(foe.id, id, "G", "", 20),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(store.block(id, foe.id, 20), Err(UserError::UserIdInvalid));
    assert_eq!(
        store
            .put_authorization(id, &app(2, 2, 20, "Phone", "10.0.0.2"))
            .map(|_| ()),
        Err(UserError::UserIdInvalid)
    );
    assert_eq!(
        store.register_device(id, &Device::new(2, 2, "again")),
        Err(UserError::UserIdInvalid)
    );
    let mut tombstone = Account::new(id, "", "");
    tombstone.deleted = true;
    assert_eq!(
        store.account(id).unwrap(),
        Some(tombstone),
        "still a tombstone"
    );
    assert!(store.devices(id).unwrap().is_empty());
    assert!(store.photos(id).unwrap().is_empty());

    // The phone and username are anyone's; a new account gets a new id.
    let reborn = store.create_account(&phone(1), "Reborn", "").unwrap();
    assert!(reborn.id > foe.id, "ids are never given twice");
    assert_eq!(
        store.by_phone(&phone(1)).unwrap().map(|a| a.id),
        Some(reborn.id)
    );
    store.set_username(friend.id, Some("GONE_USER")).unwrap();
    assert_eq!(
        store.by_username("gone_user").unwrap().map(|a| a.id),
        Some(friend.id)
    );
    assert!(
        store.contacts(reborn.id).unwrap().is_empty(),
        "nothing inherited"
    );
    assert!(store.contact_of(reborn.id, 10).unwrap().is_empty());
    // The deleted account's phone book went with it.
    let nine = create(&*store, 9, "Nine");
    assert!(store.contact_of(nine.id, 10).unwrap().is_empty());
    assert!(store.contacts(gone.id).unwrap().is_empty());
}

/// The first account gets the configured first id.
pub fn ids_start_at_the_configured_first_id(factory: LimitsFactory<'_>) {
    let store = factory(UserStoreConfig {
        first_user_id: 500,
        ..UserStoreConfig::default()
    });
    assert_eq!(create(&*store, 1, "A").id, 500);
    assert_eq!(create(&*store, 2, "B").id, 501);
}

/// Past `max_photos`, adding a photo drops the oldest; an id dropped that way may be used
/// again.
pub fn photos_past_the_limit_drop_the_oldest(factory: LimitsFactory<'_>) {
    let store = factory(UserStoreConfig {
        max_photos: 3,
        ..UserStoreConfig::default()
    });
    let user = create(&*store, 1, "User");
    for id in 1..=5 {
        let account = store.add_photo(user.id, photo(id, id as i32 * 10)).unwrap();
        assert_eq!(account.photo, Some(photo(id, id as i32 * 10)));
    }
    assert_eq!(
        store.photos(user.id).unwrap(),
        vec![photo(5, 50), photo(4, 40), photo(3, 30)]
    );
    assert_eq!(
        store.add_photo(user.id, photo(4, 1)),
        Err(UserError::PhotoInvalid)
    );
    store.add_photo(user.id, photo(1, 60)).unwrap();
    assert_eq!(
        store.photos(user.id).unwrap(),
        vec![photo(1, 60), photo(5, 50), photo(4, 40)]
    );
    assert_eq!(
        store.account(user.id).unwrap().unwrap().photo,
        Some(photo(1, 60))
    );
}

/// Past `max_contacts` a new contact is refused (`CONTACTS_TOO_MUCH`, or a retry on import)
/// and past `max_phone_book` a new phone-book entry asks for a retry; renaming what is
/// there is always allowed.
pub fn contacts_and_phone_book_are_bounded(factory: LimitsFactory<'_>) {
    let store = factory(UserStoreConfig {
        max_contacts: 2,
        max_phone_book: 2,
        ..UserStoreConfig::default()
    });
    let owner = create(&*store, 1, "Owner");
    let users: Vec<i64> = (2..=5).map(|n| create(&*store, n, "U").id).collect();
    let outcome = store
        .import_contacts(
            owner.id,
            &[
                entry(1, &phone(2), "A", ""),
                entry(2, &phone(3), "B", ""),
                entry(3, &phone(4), "C", ""),
                entry(4, &phone(2), "A2", ""),
                entry(5, &phone(20), "P", ""),
                entry(6, &phone(21), "Q", ""),
                entry(7, &phone(22), "R", ""),
                entry(8, &phone(20), "P2", ""),
            ],
            100,
        )
        .unwrap();
    assert_eq!(
        outcome.imported,
        vec![(1, users[0]), (2, users[1]), (4, users[0])]
    );
    assert_eq!(outcome.phone_book, vec![(5, 1), (6, 1), (8, 1)]);
    assert_eq!(outcome.retry, vec![3, 7]);
    assert_eq!(ids(&store.contacts(owner.id).unwrap()), users[..2].to_vec());
    assert_eq!(
        store.add_contact(owner.id, users[3], "D", "", 100),
        Err(UserError::ContactsTooMuch)
    );
    assert_eq!(store.contact(owner.id, users[3]).unwrap(), None);
    store
        .add_contact(owner.id, users[1], "Bee", "", 200)
        .unwrap();
    assert_eq!(
        store.contact(owner.id, users[1]).unwrap(),
        Some(contact(users[1], "Bee", "", 100))
    );
    // Room again after a removal.
    store.delete_contacts(owner.id, &[users[0]]).unwrap();
    store.add_contact(owner.id, users[3], "D", "", 300).unwrap();
    assert_eq!(
        ids(&store.contacts(owner.id).unwrap()),
        vec![users[1], users[3]]
    );
    // And in the phone book.
    store.delete_by_phones(owner.id, &[phone(21)]).unwrap();
    let retried = store
        .import_contacts(owner.id, &[entry(7, &phone(22), "R", "")], 400)
        .unwrap();
    assert_eq!(retried.phone_book, vec![(7, 1)]);
}

/// Past `max_blocked` a new block is `BLOCKED_TOO_MUCH`; repeating a block is not new.
pub fn blocked_users_are_bounded(factory: LimitsFactory<'_>) {
    let store = factory(UserStoreConfig {
        max_blocked: 2,
        ..UserStoreConfig::default()
    });
    let owner = create(&*store, 1, "Owner");
    let users: Vec<i64> = (2..=4).map(|n| create(&*store, n, "U").id).collect();
    assert!(store.block(owner.id, users[0], 1).unwrap());
    assert!(store.block(owner.id, users[1], 2).unwrap());
    assert_eq!(
        store.block(owner.id, users[2], 3),
        Err(UserError::BlockedTooMuch)
    );
    assert!(!store.is_blocked(owner.id, users[2]).unwrap());
    assert!(
        !store.block(owner.id, users[1], 4).unwrap(),
        "a repeat at the bound"
    );
    assert_eq!(store.blocked(owner.id, 0, 10).unwrap().1, 2);
    assert!(store.unblock(owner.id, users[0]).unwrap());
    assert!(store.block(owner.id, users[2], 5).unwrap());
}

/// Past `max_authorizations` or `max_devices` a new one is `TooMany`; refreshing or
/// replacing one that is there is not new.
pub fn authorizations_and_devices_are_bounded(factory: LimitsFactory<'_>) {
    let store = factory(UserStoreConfig {
        max_authorizations: 2,
        max_devices: 2,
        ..UserStoreConfig::default()
    });
    let user = create(&*store, 1, "User");
    store
        .put_authorization(user.id, &app(1, 1, 1, "A", "ip"))
        .unwrap();
    store
        .put_authorization(user.id, &app(2, 2, 2, "B", "ip"))
        .unwrap();
    assert_eq!(
        store.put_authorization(user.id, &app(3, 3, 3, "C", "ip")),
        Err(UserError::TooMany)
    );
    assert_eq!(
        store
            .put_authorization(user.id, &app(2, 9, 4, "B2", "ip"))
            .unwrap()
            .device_model,
        "B2"
    );
    assert_eq!(store.authorizations(user.id).unwrap().len(), 2);
    store.remove_authorization(user.id, 1).unwrap();
    store
        .put_authorization(user.id, &app(3, 3, 5, "C", "ip"))
        .unwrap();

    store
        .register_device(user.id, &Device::new(2, 2, "a"))
        .unwrap();
    store
        .register_device(user.id, &Device::new(2, 2, "b"))
        .unwrap();
    assert_eq!(
        store.register_device(user.id, &Device::new(2, 2, "c")),
        Err(UserError::TooMany)
    );
    let mut replaced = Device::new(3, 2, "b");
    replaced.app_sandbox = true;
    store.register_device(user.id, &replaced).unwrap();
    assert_eq!(
        store.devices(user.id).unwrap(),
        vec![Device::new(2, 2, "a"), replaced]
    );
    assert!(store.unregister_device(user.id, 2, "a").unwrap());
    store
        .register_device(user.id, &Device::new(2, 2, "c"))
        .unwrap();
}

// --- the model-based test ---

/// Phone spellings of the model test, with the number each names (`None`: not a phone). Two
/// spellings name the same number.
const PHONES: [(&str, Option<&str>); 7] = [
    ("+1 555 000 0001", Some("15550000001")),
    ("15550000001", Some("15550000001")),
    ("1-555-000-0002", Some("15550000002")),
    ("15550000003", Some("15550000003")),
    ("(1) 555 000 0004", Some("15550000004")),
    ("555-abc", None),
    ("", None),
];

/// Usernames of the model test, with whether Telegram accepts each; some differ by case only.
const USERNAMES: [(&str, bool); 7] = [
    ("Alpha_1", true),
    ("alpha_1", true),
    ("ALPHA_1", true),
    ("bravo_2", true),
    ("Charlie_3", true),
    ("bad", false),
    ("9lives", false),
];

/// First names of the model test, with whether Telegram accepts each.
const NAMES: [(&str, bool); 5] = [
    ("Ann", true),
    ("Bob", true),
    ("Cy Dee", true),
    ("", false),
    ("  ", false),
];

/// How many user ids the model test names: `first_user_id` and the ones after it.
const SLOTS: i64 = 6;

fn slot_id(slot: u8) -> i64 {
    first_id() + i64::from(slot)
}

/// One step of the model-based test. Users are slots (`first_user_id + slot`, an account
/// or not); phones, usernames and names index the test's small tables.
#[derive(Debug, Clone)]
pub enum Op {
    /// `create_account`.
    Create {
        /// Index into the phones.
        phone: usize,
        /// Index into the names.
        name: usize,
    },
    /// `set_channel_username` of channel `1 + channel` (`None` removes).
    SetChannelUsername {
        /// The channel, 0 to 2.
        channel: u8,
        /// Index into the usernames.
        username: Option<usize>,
    },
    /// `username_owner`.
    UsernameOwner {
        /// Index into the usernames.
        username: usize,
    },
    /// `set_username` (`None` removes).
    SetUsername {
        /// The user's slot.
        user: u8,
        /// Index into the usernames.
        username: Option<usize>,
    },
    /// `update_profile` of the first name.
    SetFirstName {
        /// The user's slot.
        user: u8,
        /// Index into the names.
        name: usize,
    },
    /// `import_contacts`, client ids counting from 0.
    Import {
        /// The importer's slot.
        owner: u8,
        /// (phone index, name index) of each entry.
        entries: Vec<(usize, usize)>,
    },
    /// `add_contact`.
    AddContact {
        /// The owner's slot.
        owner: u8,
        /// The contact's slot.
        user: u8,
        /// Index into the names.
        name: usize,
    },
    /// `delete_contacts`.
    DeleteContacts {
        /// The owner's slot.
        owner: u8,
        /// Slots of the contacts to remove.
        users: Vec<u8>,
    },
    /// `block`.
    Block {
        /// The owner's slot.
        owner: u8,
        /// The blocked user's slot.
        user: u8,
    },
    /// `unblock`.
    Unblock {
        /// The owner's slot.
        owner: u8,
        /// The blocked user's slot.
        user: u8,
    },
    /// `delete_account`.
    DeleteAccount {
        /// The user's slot.
        user: u8,
    },
    /// `by_phone`.
    ByPhone {
        /// Index into the phones.
        phone: usize,
    },
    /// `by_username`.
    ByUsername {
        /// Index into the usernames.
        username: usize,
    },
    /// `contacts`.
    Contacts {
        /// The owner's slot.
        owner: u8,
    },
    /// A page of `blocked`.
    BlockedPage {
        /// The owner's slot.
        owner: u8,
        /// Offset.
        offset: usize,
        /// Limit.
        limit: usize,
    },
}

/// The model's account.
#[derive(Debug, Clone)]
struct ModelAccount {
    phone: String,
    first_name: String,
    username: Option<String>,
    deleted: bool,
}

/// A contact in the model. One made from a phone-book entry may carry either the date of
/// the first or of the latest import of the entry (the rules name neither), so both are
/// kept.
#[derive(Debug, Clone)]
struct ModelContact {
    first_name: String,
    last_name: String,
    dates: (i32, i32),
}

/// A phone-book entry in the model: names and the first and latest import dates.
#[derive(Debug, Clone)]
struct ModelEntry {
    first_name: String,
    last_name: String,
    dates: (i32, i32),
}

/// A deliberately plain reference: maps, everything found by scanning them.
#[derive(Debug)]
struct Model {
    next_id: i64,
    accounts: BTreeMap<i64, ModelAccount>,
    contacts: BTreeMap<(i64, i64), ModelContact>,
    phone_book: BTreeMap<(i64, String), ModelEntry>,
    blocked: BTreeMap<(i64, i64), i32>,
    /// Channels' usernames as spelled.
    channel_names: BTreeMap<i64, String>,
}

impl Model {
    fn live(&self, id: i64) -> bool {
        self.accounts.get(&id).is_some_and(|a| !a.deleted)
    }

    fn holder_of_phone(&self, phone: &str) -> Option<i64> {
        self.accounts
            .iter()
            .find(|(_, a)| !a.deleted && a.phone == phone)
            .map(|(id, _)| *id)
    }

    fn holder_of_username(&self, username: &str) -> Option<i64> {
        let key = username.to_ascii_lowercase();
        self.accounts
            .iter()
            .find(|(_, a)| {
                !a.deleted
                    && a.username
                        .as_ref()
                        .is_some_and(|u| u.to_ascii_lowercase() == key)
            })
            .map(|(id, _)| *id)
    }

    fn channel_of_username(&self, username: &str) -> Option<i64> {
        let key = username.to_ascii_lowercase();
        self.channel_names
            .iter()
            .find(|(_, name)| name.to_ascii_lowercase() == key)
            .map(|(id, _)| *id)
    }

    fn account(&self, id: i64) -> Option<Account> {
        self.accounts.get(&id).map(|a| {
            let mut account = Account::new(id, a.phone.clone(), a.first_name.clone());
            account.username.clone_from(&a.username);
            account.deleted = a.deleted;
            account
        })
    }

    fn contacts_of(&self, owner: i64) -> Vec<(i64, &ModelContact)> {
        self.contacts
            .iter()
            .filter(|((o, _), _)| *o == owner)
            .map(|((_, user), c)| (*user, c))
            .collect()
    }

    fn blocked_by(&self, owner: i64) -> Vec<Blocked> {
        self.blocked
            .iter()
            .filter(|((o, _), _)| *o == owner)
            .map(|((_, user_id), date)| Blocked {
                user_id: *user_id,
                date: *date,
            })
            .collect()
    }
}

/// What the model expects of a call: a value, or one of the errors that apply (the rules do
/// not order the checks, so any applicable error is right).
type Expect<T> = Result<T, Vec<UserError>>;

fn check_result<T: PartialEq + std::fmt::Debug>(
    step: usize,
    what: &str,
    got: &Result<T, UserError>,
    expected: &Expect<T>,
) {
    match (got, expected) {
        (Ok(got), Ok(expected)) => assert_eq!(got, expected, "step {step}: {what}"),
        (Err(got), Err(allowed)) => assert!(
            allowed.contains(got),
            "step {step}: {what}: {got:?}, expected one of {allowed:?}"
        ),
        (got, expected) => panic!("step {step}: {what}: got {got:?}, expected {expected:?}"),
    }
}

/// `Ok(())` when no error applies, else all those that do.
fn errors(applicable: Vec<UserError>) -> Expect<()> {
    if applicable.is_empty() {
        Ok(())
    } else {
        Err(applicable)
    }
}

fn compare_contacts(step: usize, got: &[Contact], expected: &[(i64, &ModelContact)]) {
    assert_eq!(
        got.len(),
        expected.len(),
        "step {step}: contacts {got:?} against {expected:?}"
    );
    for (got, (user_id, want)) in got.iter().zip(expected) {
        assert_eq!(got.user_id, *user_id, "step {step}: contact ids");
        assert_eq!(
            (got.first_name.as_str(), got.last_name.as_str()),
            (want.first_name.as_str(), want.last_name.as_str()),
            "step {step}: names of contact {user_id}"
        );
        assert!(
            got.date == want.dates.0 || got.date == want.dates.1,
            "step {step}: date of contact {user_id}: {} not in {:?}",
            got.date,
            want.dates
        );
    }
}

/// Compares everything a client can read about the universe: every slot's account,
/// contacts, `contact_of` and blocked users, and every phone's and username's holder.
fn compare_state(step: usize, store: &dyn UserStore, model: &Model) {
    let last = model.next_id.max(first_id() + SLOTS);
    for id in first_id()..=last {
        assert_eq!(
            store.account(id).unwrap(),
            model.account(id),
            "step {step}: account {id}"
        );
        let contacts = store.contacts(id).unwrap();
        compare_contacts(step, &contacts, &model.contacts_of(id));
        let owners: Vec<i64> = model
            .contacts
            .keys()
            .filter(|(_, user)| *user == id)
            .map(|(owner, _)| *owner)
            .collect();
        assert_eq!(
            store.contact_of(id, 100).unwrap(),
            owners,
            "step {step}: contact_of {id}"
        );
        let blocked = model.blocked_by(id);
        let total = blocked.len();
        assert_eq!(
            store.blocked(id, 0, 100).unwrap(),
            (blocked, total),
            "step {step}: blocked by {id}"
        );
    }
    for (spelling, number) in PHONES {
        let expected = number
            .and_then(|n| model.holder_of_phone(n))
            .and_then(|id| model.account(id));
        assert_eq!(
            store.by_phone(spelling).unwrap(),
            expected,
            "step {step}: by_phone {spelling:?}"
        );
    }
    for (name, valid) in USERNAMES {
        let expected = valid
            .then(|| model.holder_of_username(name))
            .flatten()
            .and_then(|id| model.account(id));
        assert_eq!(
            store.by_username(name).unwrap(),
            expected,
            "step {step}: by_username {name:?}"
        );
    }
}

/// Applies `ops` to a fresh store (default limits, which the universe never reaches) and to
/// a plain reference model, comparing every result and then everything readable.
pub fn model_agrees(factory: Factory<'_>, ops: &[Op]) {
    let store = factory();
    let mut model = Model {
        next_id: first_id(),
        accounts: BTreeMap::new(),
        contacts: BTreeMap::new(),
        phone_book: BTreeMap::new(),
        blocked: BTreeMap::new(),
        channel_names: BTreeMap::new(),
    };
    for (step, op) in ops.iter().enumerate() {
        let date = 1_000 + i32::try_from(step).unwrap();
        match op {
            Op::Create { phone, name } => {
                let (spelling, number) = PHONES[*phone];
                let (first, name_ok) = NAMES[*name];
                let got = store.create_account(spelling, first, "");
                let mut applicable = Vec::new();
                if number.is_none() {
                    applicable.push(UserError::PhoneNumberInvalid);
                }
                if !name_ok {
                    applicable.push(UserError::FirstNameInvalid);
                }
                if let Some(holder) = number.and_then(|n| model.holder_of_phone(n)) {
                    applicable.push(UserError::PhoneNumberOccupied(holder));
                }
                let expected = errors(applicable).map(|()| {
                    let number = number.unwrap().to_owned();
                    let id = model.next_id;
                    model.next_id += 1;
                    model.accounts.insert(
                        id,
                        ModelAccount {
                            phone: number.clone(),
                            first_name: first.to_owned(),
                            username: None,
                            deleted: false,
                        },
                    );
                    // Whoever had the number in their phone book has the account now.
                    let importers: Vec<(i64, String)> = model
                        .phone_book
                        .keys()
                        .filter(|(_, p)| *p == number)
                        .cloned()
                        .collect();
                    for key in importers {
                        let entry = model.phone_book.remove(&key).unwrap();
                        model.contacts.insert(
                            (key.0, id),
                            ModelContact {
                                first_name: entry.first_name,
                                last_name: entry.last_name,
                                dates: entry.dates,
                            },
                        );
                    }
                    model.account(id).unwrap()
                });
                check_result(step, "create_account", &got, &expected);
            }
            Op::SetUsername { user, username } => {
                let id = slot_id(*user);
                let wanted = username.map(|i| USERNAMES[i]);
                let got = store.set_username(id, wanted.map(|(name, _)| name));
                let mut applicable = Vec::new();
                if !model.live(id) {
                    applicable.push(UserError::UserIdInvalid);
                } else if model.accounts[&id].username.as_deref() == wanted.map(|(n, _)| n) {
                    applicable.push(UserError::UsernameNotModified);
                } else if let Some((name, valid)) = wanted {
                    if !valid {
                        applicable.push(UserError::UsernameInvalid);
                    } else if model.holder_of_username(name).is_some_and(|h| h != id)
                        || model.channel_of_username(name).is_some()
                    {
                        applicable.push(UserError::UsernameOccupied);
                    }
                }
                let expected = errors(applicable).map(|()| {
                    model.accounts.get_mut(&id).unwrap().username =
                        wanted.map(|(n, _)| n.to_owned());
                    model.account(id).unwrap()
                });
                check_result(step, "set_username", &got, &expected);
            }
            Op::SetFirstName { user, name } => {
                let id = slot_id(*user);
                let (first, valid) = NAMES[*name];
                let got = store.update_profile(id, &first_name(first));
                let mut applicable = Vec::new();
                if !model.live(id) {
                    applicable.push(UserError::UserIdInvalid);
                }
                if !valid {
                    applicable.push(UserError::FirstNameInvalid);
                }
                let expected = errors(applicable).map(|()| {
                    first.clone_into(&mut model.accounts.get_mut(&id).unwrap().first_name);
                    model.account(id).unwrap()
                });
                check_result(step, "update_profile", &got, &expected);
            }
            Op::Import { owner, entries } => {
                let owner = slot_id(*owner);
                let request: Vec<ImportContact> = (0..)
                    .zip(entries)
                    .map(|(client_id, &(phone, name))| {
                        entry(client_id, PHONES[phone].0, NAMES[name].0, "Imp")
                    })
                    .collect();
                let got = store.import_contacts(owner, &request, date);
                let expected = if model.live(owner) {
                    let mut outcome = ImportOutcome::default();
                    for (client_id, &(phone, name)) in (0..).zip(entries) {
                        let first = NAMES[name].0.to_owned();
                        let last = "Imp".to_owned();
                        let Some(number) = PHONES[phone].1 else {
                            outcome.retry.push(client_id);
                            continue;
                        };
                        match model.holder_of_phone(number) {
                            Some(holder) if holder == owner => {}
                            Some(holder) => {
                                let dates = model
                                    .contacts
                                    .get(&(owner, holder))
                                    .map_or((date, date), |c| c.dates);
                                model.contacts.insert(
                                    (owner, holder),
                                    ModelContact {
                                        first_name: first,
                                        last_name: last,
                                        dates,
                                    },
                                );
                                outcome.imported.push((client_id, holder));
                            }
                            None => {
                                let key = (owner, number.to_owned());
                                let first_date =
                                    model.phone_book.get(&key).map_or(date, |e| e.dates.0);
                                model.phone_book.insert(
                                    key,
                                    ModelEntry {
                                        first_name: first,
                                        last_name: last,
                                        dates: (first_date, date),
                                    },
                                );
                                let importers =
                                    model.phone_book.keys().filter(|(_, p)| p == number).count();
                                outcome
                                    .phone_book
                                    .push((client_id, u32::try_from(importers).unwrap()));
                            }
                        }
                    }
                    Ok(outcome)
                } else {
                    Err(vec![UserError::UserIdInvalid])
                };
                check_result(step, "import_contacts", &got, &expected);
            }
            Op::AddContact { owner, user, name } => {
                let (owner, user) = (slot_id(*owner), slot_id(*user));
                let (first, valid) = NAMES[*name];
                let got = store.add_contact(owner, user, first, "", date);
                let mut applicable = Vec::new();
                if !model.live(owner) {
                    applicable.push(UserError::UserIdInvalid);
                }
                if owner == user {
                    applicable.push(UserError::ContactIdInvalid);
                } else if !model.live(user) {
                    applicable.push(UserError::UserIdInvalid);
                }
                if !valid {
                    applicable.push(UserError::FirstNameInvalid);
                }
                let expected = errors(applicable).map(|()| {
                    let dates = model
                        .contacts
                        .get(&(owner, user))
                        .map_or((date, date), |c| c.dates);
                    model.contacts.insert(
                        (owner, user),
                        ModelContact {
                            first_name: first.to_owned(),
                            last_name: String::new(),
                            dates,
                        },
                    );
                });
                check_result(step, "add_contact", &got, &expected);
            }
            Op::DeleteContacts { owner, users } => {
                let owner = slot_id(*owner);
                let ids: Vec<i64> = users.iter().map(|&u| slot_id(u)).collect();
                let got = store.delete_contacts(owner, &ids);
                let mut removed = Vec::new();
                for id in ids {
                    if model.contacts.remove(&(owner, id)).is_some() {
                        removed.push(id);
                    }
                }
                check_result(step, "delete_contacts", &got, &Ok(removed));
            }
            Op::Block { owner, user } => {
                let (owner, user) = (slot_id(*owner), slot_id(*user));
                let got = store.block(owner, user, date);
                let mut applicable = Vec::new();
                if !model.live(owner) {
                    applicable.push(UserError::UserIdInvalid);
                }
                if owner == user {
                    applicable.push(UserError::ContactIdInvalid);
                } else if !model.accounts.contains_key(&user) {
                    // A deleted account may be blocked; one that never was may not.
                    applicable.push(UserError::UserIdInvalid);
                }
                let expected =
                    errors(applicable).map(|()| match model.blocked.entry((owner, user)) {
                        Entry::Occupied(_) => false,
                        Entry::Vacant(vacant) => {
                            vacant.insert(date);
                            true
                        }
                    });
                check_result(step, "block", &got, &expected);
            }
            Op::Unblock { owner, user } => {
                let (owner, user) = (slot_id(*owner), slot_id(*user));
                let got = store.unblock(owner, user);
                let expected = model.blocked.remove(&(owner, user)).is_some();
                check_result(step, "unblock", &got, &Ok(expected));
            }
            Op::DeleteAccount { user } => {
                let id = slot_id(*user);
                let got = store.delete_account(id);
                let expected = if model.live(id) {
                    let account = model.accounts.get_mut(&id).unwrap();
                    *account = ModelAccount {
                        phone: String::new(),
                        first_name: String::new(),
                        username: None,
                        deleted: true,
                    };
                    model.contacts.retain(|(owner, _), _| *owner != id);
                    model.phone_book.retain(|(owner, _), _| *owner != id);
                    model.blocked.retain(|(owner, _), _| *owner != id);
                    Ok(())
                } else {
                    Err(vec![UserError::UserIdInvalid])
                };
                check_result(step, "delete_account", &got, &expected);
            }
            Op::ByPhone { phone } => {
                let (spelling, number) = PHONES[*phone];
                let expected = number
                    .and_then(|n| model.holder_of_phone(n))
                    .and_then(|id| model.account(id));
                check_result(step, "by_phone", &store.by_phone(spelling), &Ok(expected));
            }
            Op::SetChannelUsername { channel, username } => {
                let id = 1 + i64::from(*channel);
                let wanted = username.map(|i| USERNAMES[i]);
                let got = store.set_channel_username(id, wanted.map(|(name, _)| name));
                let mut applicable = Vec::new();
                if model.channel_names.get(&id).map(String::as_str) == wanted.map(|(n, _)| n) {
                    applicable.push(UserError::UsernameNotModified);
                } else if let Some((name, valid)) = wanted {
                    if !valid {
                        applicable.push(UserError::UsernameInvalid);
                    } else if model.holder_of_username(name).is_some()
                        || model.channel_of_username(name).is_some_and(|c| c != id)
                    {
                        applicable.push(UserError::UsernameOccupied);
                    }
                }
                let expected = errors(applicable).map(|()| match wanted {
                    Some((name, _)) => {
                        model.channel_names.insert(id, name.to_owned());
                    }
                    None => {
                        model.channel_names.remove(&id);
                    }
                });
                check_result(step, "set_channel_username", &got, &expected);
                check_result(
                    step,
                    "channel_username",
                    &store.channel_username(id),
                    &Ok(model.channel_names.get(&id).cloned()),
                );
            }
            Op::UsernameOwner { username } => {
                let (name, valid) = USERNAMES[*username];
                let expected = if valid {
                    model
                        .channel_of_username(name)
                        .map(UsernameOwner::Channel)
                        .or_else(|| model.holder_of_username(name).map(UsernameOwner::User))
                } else {
                    None
                };
                check_result(
                    step,
                    "username_owner",
                    &store.username_owner(name),
                    &Ok(expected),
                );
            }
            Op::ByUsername { username } => {
                let (name, valid) = USERNAMES[*username];
                let expected = valid
                    .then(|| model.holder_of_username(name))
                    .flatten()
                    .and_then(|id| model.account(id));
                check_result(step, "by_username", &store.by_username(name), &Ok(expected));
            }
            Op::Contacts { owner } => {
                let owner = slot_id(*owner);
                let got = store.contacts(owner).unwrap();
                compare_contacts(step, &got, &model.contacts_of(owner));
            }
            Op::BlockedPage {
                owner,
                offset,
                limit,
            } => {
                let owner = slot_id(*owner);
                let all = model.blocked_by(owner);
                let total = all.len();
                let page: Vec<Blocked> = all.into_iter().skip(*offset).take(*limit).collect();
                check_result(
                    step,
                    "blocked",
                    &store.blocked(owner, *offset, *limit),
                    &Ok((page, total)),
                );
            }
        }
        compare_state(step, &*store, &model);
    }
}

/// Random operation sequences for [`model_agrees`], over a few phones (two spellings of
/// one), usernames (some differing by case, some invalid), names and user slots.
pub fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    use proptest::prelude::*;
    // Mostly the first few slots, which the first creations fill, so that ops meet.
    let slot = || prop_oneof![3 => 0u8..3, 1 => 0u8..u8::try_from(SLOTS).unwrap()];
    let phone = || 0..PHONES.len();
    let name = || 0..NAMES.len();
    let op = prop_oneof![
        4 => (phone(), name()).prop_map(|(phone, name)| Op::Create { phone, name }),
        2 => (slot(), proptest::option::weighted(0.8, 0..USERNAMES.len()))
            .prop_map(|(user, username)| Op::SetUsername { user, username }),
        1 => (slot(), name()).prop_map(|(user, name)| Op::SetFirstName { user, name }),
        3 => (slot(), proptest::collection::vec((phone(), name()), 0..4))
            .prop_map(|(owner, entries)| Op::Import { owner, entries }),
        2 => (slot(), slot(), name()).prop_map(|(owner, user, name)| Op::AddContact { owner, user, name }),
        2 => (slot(), proptest::collection::vec(slot(), 0..3))
            .prop_map(|(owner, users)| Op::DeleteContacts { owner, users }),
        2 => (slot(), slot()).prop_map(|(owner, user)| Op::Block { owner, user }),
        1 => (slot(), slot()).prop_map(|(owner, user)| Op::Unblock { owner, user }),
        1 => slot().prop_map(|user| Op::DeleteAccount { user }),
        1 => phone().prop_map(|phone| Op::ByPhone { phone }),
        1 => (0..USERNAMES.len()).prop_map(|username| Op::ByUsername { username }),
        2 => (0u8..3, proptest::option::weighted(0.8, 0..USERNAMES.len()))
            .prop_map(|(channel, username)| Op::SetChannelUsername { channel, username }),
        1 => (0..USERNAMES.len()).prop_map(|username| Op::UsernameOwner { username }),
        1 => slot().prop_map(|owner| Op::Contacts { owner }),
        1 => (slot(), 0usize..4, 0usize..4)
            .prop_map(|(owner, offset, limit)| Op::BlockedPage { owner, offset, limit }),
    ];
    proptest::collection::vec(op, 0..60)
}

/// A bot gets the next id, no phone, a username that ends in `bot` and is free, and its
/// profile; `update_bot` changes the profile of a live bot only, within the limits, and
/// nothing of a refused change is stored.
pub fn bots_are_accounts_with_a_profile(factory: Factory<'_>) {
    let store = factory();
    let first = first_id();
    let ann = store.create_account(&phone(1), "Ann", "").unwrap();
    let profile = BotProfile {
        owner: ann.id,
        token_hash: [7; 32],
        ..BotProfile::default()
    };
    let bot = store.create_bot("Helper", "Helper_Bot", &profile).unwrap();
    assert_eq!(bot.id, first + 1, "the next id");
    assert_eq!(bot.phone, "");
    assert_eq!(bot.bot.as_ref(), Some(&profile));
    assert_eq!(store.by_username("helper_bot").unwrap(), Some(bot.clone()));
    assert_eq!(store.account(bot.id).unwrap(), Some(bot.clone()));
    for (name, error) in [
        ("helper_bot", UserError::UsernameOccupied),
        ("helper", UserError::UsernameInvalid),
        ("hbot", UserError::UsernameInvalid),
        ("1_bot", UserError::UsernameInvalid),
    ] {
        assert_eq!(store.create_bot("X", name, &profile), Err(error), "{name}");
    }
    assert_eq!(
        store.create_bot("", "other_bot", &profile),
        Err(UserError::FirstNameInvalid)
    );
    let changed = store
        .update_bot(bot.id, &mut |profile| {
            profile.description = "helps".into();
            profile.commands = vec![BotCommand {
                command: "start".into(),
                description: "begin".into(),
            }];
            profile.info_version += 1;
        })
        .unwrap();
    let stored = changed.bot.clone().unwrap();
    assert_eq!(
        (
            stored.description.as_str(),
            stored.commands.len(),
            stored.info_version
        ),
        ("helps", 1, 1)
    );
    assert_eq!(store.account(bot.id).unwrap(), Some(changed.clone()));
    for bad in ["Start", "", "a-b", &"c".repeat(33)] {
        let refused = store.update_bot(bot.id, &mut |profile| {
            profile.commands = vec![BotCommand {
                command: bad.to_owned(),
                description: "x".into(),
            }];
        });
        assert_eq!(refused, Err(UserError::BotCommandInvalid), "{bad:?}");
    }
    let too_many = store.update_bot(bot.id, &mut |profile| {
        profile.commands = (0..101)
            .map(|n| BotCommand {
                command: format!("c{n}"),
                description: "x".into(),
            })
            .collect();
    });
    assert_eq!(too_many, Err(UserError::BotInvalid));
    assert_eq!(
        store.account(bot.id).unwrap(),
        Some(changed),
        "nothing refused is kept"
    );
    assert_eq!(
        store.update_bot(ann.id, &mut |_| {}),
        Err(UserError::BotInvalid),
        "a person has no bot profile"
    );
    assert_eq!(
        store.update_bot(first + 99, &mut |_| {}),
        Err(UserError::BotInvalid)
    );
    store.delete_account(bot.id).unwrap();
    assert_eq!(
        store.update_bot(bot.id, &mut |_| {}),
        Err(UserError::BotInvalid)
    );
}
