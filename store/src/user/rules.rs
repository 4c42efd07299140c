//! Telegram's rules for what a user may call themselves, shared by every backend: phone
//! numbers, names, the about text, usernames, and the `hash` of a contact list.

use super::UserError;

/// The longest phone number accepted, in digits (E.164 allows 15; some test numbers are
/// longer).
pub const MAX_PHONE_DIGITS: usize = 20;
/// The longest first or last name, in characters (Telegram's limit: 64).
pub const MAX_NAME_CHARS: usize = 64;
/// The longest about text, in characters (Telegram's limit for an account without Premium:
/// 70).
pub const MAX_ABOUT_CHARS: usize = 70;
/// The shortest username a user may choose (Telegram: 5).
pub const MIN_USERNAME_LEN: usize = 5;
/// The shortest username the server may give one of its own accounts ([`put_account`]:
/// service users and bots, as Telegram's `@gif` and `@pic`).
///
/// [`put_account`]: super::UserStore::put_account
pub const MIN_SERVICE_USERNAME_LEN: usize = 3;
/// The longest username (Telegram: 32).
pub const MAX_USERNAME_LEN: usize = 32;
/// The longest push token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The longest push secret, in bytes.
pub const MAX_SECRET_LEN: usize = 256;
/// The most `other_uids` of a device.
pub const MAX_OTHER_UIDS: usize = 16;
/// The longest text of an authorization's app details (device model, versions, address), in
/// bytes; longer text is cut at a character boundary.
pub const MAX_DETAIL_LEN: usize = 256;

/// The longest bot command, without its slash (Telegram's limit: 32).
pub const MAX_BOT_COMMAND_LEN: usize = 32;
/// The longest description of a bot command, in characters (Telegram's limit: 256).
pub const MAX_BOT_COMMAND_DESCRIPTION_CHARS: usize = 256;
/// The most commands of a bot (Telegram's limit: 100).
pub const MAX_BOT_COMMANDS: usize = 100;
/// The longest bot description, in characters (Telegram's limit: 512).
pub const MAX_BOT_DESCRIPTION_CHARS: usize = 512;

/// Whether `command` may be a bot command: 1 to [`MAX_BOT_COMMAND_LEN`] of `a-z`, `0-9` and
/// `_` (the Bot API's rule; Telegram lowercases what bots send first).
pub fn bot_command_valid(command: &str) -> bool {
    (1..=MAX_BOT_COMMAND_LEN).contains(&command.len())
        && command
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a bot's profile against the limits above.
pub(crate) fn check_bot(profile: &super::BotProfile) -> Result<(), UserError> {
    if profile.description.chars().count() > MAX_BOT_DESCRIPTION_CHARS
        || profile.commands.len() > MAX_BOT_COMMANDS
    {
        return Err(UserError::BotInvalid);
    }
    for command in &profile.commands {
        let described = command.description.chars().count();
        if !bot_command_valid(&command.command)
            || !(1..=MAX_BOT_COMMAND_DESCRIPTION_CHARS).contains(&described)
        {
            return Err(UserError::BotCommandInvalid);
        }
    }
    Ok(())
}

/// Whether `username` may be a bot's: it ends in `bot`, any case (Telegram's rule).
pub fn is_bot_username(username: &str) -> bool {
    username
        .len()
        .checked_sub(3)
        .and_then(|start| username.get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case("bot"))
}

/// A phone number as accounts keep it (digits only; spaces, dashes, brackets and a leading
/// `+` dropped), if it is one.
pub fn normalize_phone(phone: &str) -> Option<String> {
    if phone.len() > 4 * MAX_PHONE_DIGITS {
        return None;
    }
    let digits: String = phone
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')'))
        .collect();
    let valid = !digits.is_empty()
        && digits.len() <= MAX_PHONE_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then_some(digits)
}

/// A username as the uniqueness index keeps it (ASCII lower case), if it is one the store
/// may hold: 3 to 32 characters of `a-z`, `0-9` and `_`, starting with a letter (the
/// shortest are for the server's own accounts; users choose from
/// [`user_username_key`]'s).
pub fn username_key(username: &str) -> Option<String> {
    let bytes = username.as_bytes();
    let valid = (MIN_SERVICE_USERNAME_LEN..=MAX_USERNAME_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    valid.then(|| username.to_ascii_lowercase())
}

/// [`username_key`] of a username a user may choose (`account.updateUsername`): Telegram's
/// rules, 5 to 32 characters.
pub fn user_username_key(username: &str) -> Option<String> {
    if username.len() < MIN_USERNAME_LEN {
        return None;
    }
    username_key(username)
}

/// Whether `name` is a name Telegram accepts: no more than [`MAX_NAME_CHARS`] characters,
/// no control characters, and (when `required`) not blank.
fn name_ok(name: &str, required: bool) -> bool {
    name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control)
        && (!required || !name.trim().is_empty())
}

/// Checks a first name: `FIRSTNAME_INVALID` when blank, too long or of control characters.
pub fn check_first_name(name: &str) -> Result<(), UserError> {
    if name_ok(name, true) {
        Ok(())
    } else {
        Err(UserError::FirstNameInvalid)
    }
}

/// Checks a last name: `LASTNAME_INVALID` when too long or of control characters.
pub fn check_last_name(name: &str) -> Result<(), UserError> {
    if name_ok(name, false) {
        Ok(())
    } else {
        Err(UserError::LastNameInvalid)
    }
}

/// Checks an about text: `ABOUT_TOO_LONG` past [`MAX_ABOUT_CHARS`] characters.
pub fn check_about(about: &str) -> Result<(), UserError> {
    if about.chars().count() <= MAX_ABOUT_CHARS {
        Ok(())
    } else {
        Err(UserError::AboutTooLong)
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// The words an account is found by in [`search`](super::UserStore::search): the lower-case
/// words of its names (each at most [`MAX_NAME_CHARS`] characters, so bounded), without
/// repeats.
pub fn name_words(first_name: &str, last_name: &str) -> Vec<String> {
    let mut words: Vec<String> = first_name
        .split_whitespace()
        .chain(last_name.split_whitespace())
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    words
}

/// The `hash` of a contact list (`contacts.getContacts`): Telegram's usual hash of a list
/// of ids (core.telegram.org/api/offsets, "Hash generation"), the same as
/// [`history_hash`](crate::message::history_hash).
pub fn contacts_hash(ids: impl IntoIterator<Item = i64>) -> i64 {
    crate::message::history_hash(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_digits() {
        assert_eq!(
            normalize_phone("+1 (555) 000-1"),
            Some("15550001".to_owned())
        );
        assert_eq!(normalize_phone("12ab"), None);
        assert_eq!(normalize_phone(""), None);
        assert_eq!(normalize_phone(&"1".repeat(21)), None);
        assert_eq!(normalize_phone(&" ".repeat(10_000)), None);
    }

    #[test]
    fn usernames_follow_telegrams_rules() {
        assert_eq!(user_username_key("Echo_Bot"), Some("echo_bot".to_owned()));
        assert_eq!(user_username_key("a1234"), Some("a1234".to_owned()));
        let long = "a".repeat(33);
        for bad in [
            "abcd",
            "1abcd",
            "_abcd",
            "abc de",
            "abcdé",
            long.as_str(),
            "",
        ] {
            assert_eq!(user_username_key(bad), None, "{bad:?}");
        }
        assert!(user_username_key(&"a".repeat(32)).is_some());
        // The server's own accounts may be shorter, not less well-formed.
        assert_eq!(username_key("Gif"), Some("gif".to_owned()));
        for bad in ["ab", "1ab", "a b", long.as_str()] {
            assert_eq!(username_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_and_about_have_limits() {
        assert!(check_first_name("Ann").is_ok());
        assert_eq!(check_first_name("  "), Err(UserError::FirstNameInvalid));
        assert_eq!(check_first_name("a\nb"), Err(UserError::FirstNameInvalid));
        assert!(check_first_name(&"é".repeat(64)).is_ok());
        assert_eq!(
            check_first_name(&"é".repeat(65)),
            Err(UserError::FirstNameInvalid)
        );
        assert!(check_last_name("").is_ok());
        assert_eq!(
            check_last_name(&"x".repeat(65)),
            Err(UserError::LastNameInvalid)
        );
        assert!(check_about(&"x".repeat(70)).is_ok());
        assert_eq!(check_about(&"x".repeat(71)), Err(UserError::AboutTooLong));
    }

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }

    #[test]
    fn the_hash_mixes_every_id_in_order() {
        assert_eq!(contacts_hash([]), 0);
        assert_eq!(contacts_hash([5]), 5);
        // Second step: h = 5; h ^= h >> 21 (5); h ^= h << 35; h ^= h >> 4; h += 7.
        let mut h: u64 = 5;
        h ^= h >> 21;
        h ^= h << 35;
        h ^= h >> 4;
        assert_eq!(contacts_hash([5, 7]), (h + 7) as i64);
        assert_ne!(contacts_hash([5, 7]), contacts_hash([7, 5]));
    }
}
