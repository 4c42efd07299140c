//! How the stock modules encode a message's body in the store (which keeps bodies as opaque
//! bytes): the text as UTF-8, and when the message replies to or forwards another, a small
//! header before it.
//!
//! A plain body is the text's bytes, as bodies were before headers existed. A body with a
//! header starts with `ff` (never the first byte of UTF-8 text), then its version, then:
//! the reply's target per box as a count (u8) of (owner i64, message id i32), a forward flag
//! (u8) with the original sender (i64) and date (i32) when set, in version `02` a service
//! action (u8: `00` none, `01` a pinned message, `02` a channel created, `03` a user added
//! and `04` a user removed, each of these two followed by the user's id as i64, `05` a basic
//! group created and `06` a group renamed, whose title is the text), in version `03` the
//! reply markup and the text's entities (each a u32 length, zero for none, then that many
//! bytes of the TL-serialized `ReplyMarkup` or `Vector<MessageEntity>`, at most
//! [`MAX_MARKUP_BYTES`] and [`MAX_ENTITIES_BYTES`]), and the text's bytes to the end.
//! Versions `01` (no action byte) and `02` (no markup or entities) are still read. Integers are little-endian. Reading never panics or
//! over-allocates: a header that does not parse leaves the whole body as (lossy) text.
//!
//! A reply names its target per box because message ids are per box: the target has one id
//! in the sender's box and another in the recipient's.

/// The first byte of a body with a header.
const MARK: u8 = 0xff;
/// The header's version: 2 added the service action, 3 the reply markup and entities.
const VERSION: u8 = 3;
/// The version before markup and entities.
const VERSION_2: u8 = 2;
/// The first version, without the action byte.
const VERSION_1: u8 = 1;
/// The most boxes a reply names (a private chat has two).
pub const MAX_REPLY_BOXES: usize = 8;
/// The most bytes of a stored reply markup (a hundred buttons with 64-byte callback data
/// and long labels fit).
pub const MAX_MARKUP_BYTES: usize = 32 * 1024;
/// The most bytes of a message's stored entities.
pub const MAX_ENTITIES_BYTES: usize = 32 * 1024;

/// Where a forwarded message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// The user who first sent it.
    pub from: i64,
    /// When it was first sent (Unix seconds).
    pub date: i32,
}

/// What a service message records (a message the server writes, shown as an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// The sender pinned the message this one replies to (`messageActionPinMessage`).
    PinMessage,
    /// The sender created the channel (`messageActionChannelCreate`); the body's text is
    /// the title it was created with.
    ChannelCreate,
    /// The sender added this user to the group (`messageActionChatAddUser`); a user who
    /// joined by themselves names themselves.
    ChatAddUser(i64),
    /// This user left the group, or the sender removed them (`messageActionChatDeleteUser`).
    ChatDeleteUser(i64),
    /// The sender created the basic group (`messageActionChatCreate`); the body's text is
    /// its title.
    ChatCreate,
    /// The sender renamed the group (`messageActionChatEditTitle`); the body's text is the
    /// new title.
    ChatEditTitle,
    /// The sender joined through an invite link this user exported
    /// (`messageActionChatJoinedByLink`).
    ChatJoinedByLink(i64),
}

impl Action {
    /// The user a service message about a member names besides its sender (the one added,
    /// removed, or whose link was used).
    pub fn named_user(self) -> Option<i64> {
        match self {
            Self::ChatAddUser(user) | Self::ChatDeleteUser(user) | Self::ChatJoinedByLink(user) => {
                Some(user)
            }
            _ => None,
        }
    }
}

/// A message's body as the stock modules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// The text.
    pub text: String,
    /// The message it replies to, per box: (the box's owner, the id there).
    pub reply_to: Vec<(i64, i32)>,
    /// Where it was forwarded from.
    pub forwarded: Option<Forwarded>,
    /// For a service message, what it records.
    pub action: Option<Action>,
    /// The buttons a bot sent with it: a TL-serialized `ReplyMarkup`.
    pub reply_markup: Option<Vec<u8>>,
    /// The text's formatting: a TL-serialized `Vector<MessageEntity>`.
    pub entities: Option<Vec<u8>>,
}

impl Body {
    /// A body of text alone.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// The id of the replied-to message in `owner`'s box.
    pub fn reply_to_in(&self, owner: i64) -> Option<i32> {
        self.reply_to
            .iter()
            .find(|(box_owner, _)| *box_owner == owner)
            .map(|(_, id)| *id)
    }

    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        if self.reply_to.is_empty()
            && self.forwarded.is_none()
            && self.action.is_none()
            && self.reply_markup.is_none()
            && self.entities.is_none()
        {
            return self.text.as_bytes().to_vec();
        }
        let mut out = vec![MARK, VERSION];
        let replies = self.reply_to.len().min(MAX_REPLY_BOXES);
        out.push(u8::try_from(replies).unwrap_or(0));
        for (owner, id) in self.reply_to.iter().take(replies) {
            out.extend_from_slice(&owner.to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        match self.forwarded {
            Some(forwarded) => {
                out.push(1);
                out.extend_from_slice(&forwarded.from.to_le_bytes());
                out.extend_from_slice(&forwarded.date.to_le_bytes());
            }
            None => out.push(0),
        }
        match self.action {
            None => out.push(0),
            Some(Action::PinMessage) => out.push(1),
            Some(Action::ChannelCreate) => out.push(2),
            Some(Action::ChatAddUser(user)) => {
                out.push(3);
                out.extend_from_slice(&user.to_le_bytes());
            }
            Some(Action::ChatDeleteUser(user)) => {
                out.push(4);
                out.extend_from_slice(&user.to_le_bytes());
            }
            Some(Action::ChatCreate) => out.push(5),
            Some(Action::ChatEditTitle) => out.push(6),
            Some(Action::ChatJoinedByLink(inviter)) => {
                out.push(7);
                out.extend_from_slice(&inviter.to_le_bytes());
            }
        }
        // Past their bounds (which senders check first) markup and entities are dropped
        // rather than stored in a form that would not read back.
        for (part, max) in [
            (&self.reply_markup, MAX_MARKUP_BYTES),
            (&self.entities, MAX_ENTITIES_BYTES),
        ] {
            let part = part.as_deref().filter(|part| part.len() <= max);
            let bytes = part.unwrap_or_default();
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(self.text.as_bytes());
        out
    }

    /// Reads stored bytes.
    pub fn decode(bytes: &[u8]) -> Self {
        Self::decode_header(bytes)
            .unwrap_or_else(|| Self::text(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn decode_header(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.strip_prefix(&[MARK])?.split_first()?;
        if !matches!(version, VERSION | VERSION_2 | VERSION_1) {
            return None;
        }
        let (&count, mut rest) = rest.split_first()?;
        if usize::from(count) > MAX_REPLY_BOXES {
            return None;
        }
        let mut reply_to = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (owner, after) = rest.split_first_chunk::<8>()?;
            let (id, after) = after.split_first_chunk::<4>()?;
            reply_to.push((i64::from_le_bytes(*owner), i32::from_le_bytes(*id)));
            rest = after;
        }
        let (&flag, mut rest) = rest.split_first()?;
        let forwarded = match flag {
            0 => None,
            1 => {
                let (from, after) = rest.split_first_chunk::<8>()?;
                let (date, after) = after.split_first_chunk::<4>()?;
                rest = after;
                Some(Forwarded {
                    from: i64::from_le_bytes(*from),
                    date: i32::from_le_bytes(*date),
                })
            }
            _ => return None,
        };
        let action = if version == VERSION_1 {
            None
        } else {
            let (&action, after) = rest.split_first()?;
            rest = after;
            match action {
                0 => None,
                1 => Some(Action::PinMessage),
                2 => Some(Action::ChannelCreate),
                5 => Some(Action::ChatCreate),
                6 => Some(Action::ChatEditTitle),
                3 | 4 | 7 => {
                    let (user, after) = rest.split_first_chunk::<8>()?;
                    rest = after;
                    let user = i64::from_le_bytes(*user);
                    Some(match action {
                        3 => Action::ChatAddUser(user),
                        4 => Action::ChatDeleteUser(user),
                        _ => Action::ChatJoinedByLink(user),
                    })
                }
                _ => return None,
            }
        };
        let mut parts = [None, None];
        if version == VERSION {
            for (part, max) in parts.iter_mut().zip([MAX_MARKUP_BYTES, MAX_ENTITIES_BYTES]) {
                let (len, after) = rest.split_first_chunk::<4>()?;
                let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
                if len > max || len > after.len() {
                    return None;
                }
                let (bytes, after) = after.split_at(len);
                *part = (!bytes.is_empty()).then(|| bytes.to_vec());
                rest = after;
            }
        }
        let [reply_markup, entities] = parts;
        Some(Self {
            text: String::from_utf8_lossy(rest).into_owned(),
            reply_to,
            forwarded,
            action,
            reply_markup,
            entities,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_text_is_stored_as_it_always_was() {
        assert_eq!(Body::text("héllo").encode(), "héllo".as_bytes());
        assert_eq!(Body::decode("héllo".as_bytes()), Body::text("héllo"));
    }

    #[test]
    fn headers_read_back_and_name_the_reply_per_box() {
        let body = Body {
            text: "re: hi".to_owned(),
            reply_to: vec![(5, 10), (6, 3)],
            forwarded: Some(Forwarded { from: 7, date: 99 }),
            action: None,
            reply_markup: Some(vec![1, 2, 3]),
            entities: None,
        };
        let decoded = Body::decode(&body.encode());
        assert_eq!(decoded, body);
        let service = Body {
            reply_to: vec![(5, 10)],
            action: Some(Action::PinMessage),
            ..Body::default()
        };
        assert_eq!(Body::decode(&service.encode()), service);
        // A version-2 header (no markup or entities) still reads.
        let mut two = vec![MARK, VERSION_2, 0, 0, 1];
        two.extend_from_slice(b"pinned");
        let read = Body::decode(&two);
        assert_eq!(
            (read.action, read.text.as_str(), read.reply_markup),
            (Some(Action::PinMessage), "pinned", None)
        );
        // A version-1 header (no action byte) still reads.
        let mut old = vec![MARK, VERSION_1, 1];
        old.extend_from_slice(&5i64.to_le_bytes());
        old.extend_from_slice(&10i32.to_le_bytes());
        old.push(0);
        old.extend_from_slice(b"re");
        let read = Body::decode(&old);
        assert_eq!(
            (read.reply_to_in(5), read.text.as_str(), read.action),
            (Some(10), "re", None)
        );
        assert_eq!(decoded.reply_to_in(6), Some(3));
        assert_eq!(decoded.reply_to_in(8), None);
    }

    proptest! {
        #[test]
        fn any_body_reads_back(
            text in ".{0,40}",
            reply_to in proptest::collection::vec((any::<i64>(), any::<i32>()), 0..=MAX_REPLY_BOXES),
            forwarded in proptest::option::of((any::<i64>(), any::<i32>())),
            action in 0u8..8,
            user in any::<i64>(),
            reply_markup in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
            entities in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
        ) {
            let action = match action {
                0 => None,
                1 => Some(Action::PinMessage),
                2 => Some(Action::ChannelCreate),
                3 => Some(Action::ChatAddUser(user)),
                4 => Some(Action::ChatDeleteUser(user)),
                5 => Some(Action::ChatCreate),
                6 => Some(Action::ChatEditTitle),
                _ => Some(Action::ChatJoinedByLink(user)),
            };
            let body = Body {
                text,
                reply_to,
                forwarded: forwarded.map(|(from, date)| Forwarded { from, date }),
                action,
                reply_markup,
                entities,
            };
            prop_assert_eq!(Body::decode(&body.encode()), body);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Body::decode(&bytes);
        }
    }
}
