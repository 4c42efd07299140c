//! [`ChannelInfo`]: what the API keeps about a channel (or a basic group) as the store's
//! opaque group info.
//!
//! Layout: a version byte (`02`; `01` is still read), a flags byte (bit 0 broadcast, bit 1
//! deleted, bit 2 an invite link was exported), the creator (i64), the creation date (i32),
//! then the title and the description, each a u32 length and UTF-8 bytes; version 2 then
//! has the invite link's generation (u32), the admin who exported it (i64) and when (i32)
//! when flag bit 2 is set. Little-endian. Reading never panics or over-allocates.

/// The version byte written.
const VERSION: u8 = 2;
/// The first version: no invite link.
const VERSION_1: u8 = 1;

/// The flags byte's bits.
const BROADCAST: u8 = 1;
const DELETED: u8 = 1 << 1;
const HAS_INVITE: u8 = 1 << 2;

/// A channel's (or a basic group's) title, kind, origin and invite link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The title.
    pub title: String,
    /// The description.
    pub about: String,
    /// A broadcast channel (otherwise a supergroup).
    pub broadcast: bool,
    /// Deleted by its creator: gone for everyone.
    pub deleted: bool,
    /// Who created it.
    pub creator: i64,
    /// When (Unix seconds).
    pub date: i32,
    /// Its permanent invite link, once one was exported.
    pub invite: Option<InviteLink>,
}

/// A group's permanent invite link: the link itself is derived from the group's id and the
/// generation ([`crate::channels::invite_hash`]); revoking it takes the next generation, so
/// every earlier link stops working without a list of revoked links to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLink {
    /// The generation (1 for the first link; each revocation adds one).
    pub generation: u32,
    /// Who exported it.
    pub admin: i64,
    /// When (Unix seconds).
    pub date: i32,
}

impl ChannelInfo {
    /// The info of a new group: no description, no invite link.
    pub fn new(title: String, broadcast: bool, creator: i64, date: i32) -> Self {
        Self {
            title,
            about: String::new(),
            broadcast,
            deleted: false,
            creator,
            date,
            invite: None,
        }
    }

    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(38 + self.title.len() + self.about.len());
        out.push(VERSION);
        let mut flags = 0;
        if self.broadcast {
            flags |= BROADCAST;
        }
        if self.deleted {
            flags |= DELETED;
        }
        if self.invite.is_some() {
            flags |= HAS_INVITE;
        }
        out.push(flags);
        out.extend_from_slice(&self.creator.to_le_bytes());
        out.extend_from_slice(&self.date.to_le_bytes());
        for text in [&self.title, &self.about] {
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        if let Some(invite) = &self.invite {
            out.extend_from_slice(&invite.generation.to_le_bytes());
            out.extend_from_slice(&invite.admin.to_le_bytes());
            out.extend_from_slice(&invite.date.to_le_bytes());
        }
        out
    }

    /// Reads stored bytes; `None` when they are not a channel's info.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION && version != VERSION_1 {
            return None;
        }
        let (&flags, rest) = rest.split_first()?;
        let (creator, rest) = rest.split_first_chunk::<8>()?;
        let (date, mut rest) = rest.split_first_chunk::<4>()?;
        let mut texts = Vec::with_capacity(2);
        for _ in 0..2 {
            let (len, after) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            if len > after.len() {
                return None;
            }
            let (text, after) = after.split_at(len);
            texts.push(String::from_utf8(text.to_vec()).ok()?);
            rest = after;
        }
        let invite = if version == VERSION && flags & HAS_INVITE != 0 {
            let (generation, after) = rest.split_first_chunk::<4>()?;
            let (admin, after) = after.split_first_chunk::<8>()?;
            let (date, after) = after.split_first_chunk::<4>()?;
            rest = after;
            Some(InviteLink {
                generation: u32::from_le_bytes(*generation),
                admin: i64::from_le_bytes(*admin),
                date: i32::from_le_bytes(*date),
            })
        } else {
            None
        };
        if !rest.is_empty() {
            return None;
        }
        let about = texts.pop()?;
        let title = texts.pop()?;
        Some(Self {
            title,
            about,
            broadcast: flags & BROADCAST != 0,
            deleted: flags & DELETED != 0,
            creator: i64::from_le_bytes(*creator),
            date: i32::from_le_bytes(*date),
            invite,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_first_version_info_still_reads() {
        let mut old = vec![VERSION_1, BROADCAST];
        old.extend_from_slice(&7i64.to_le_bytes());
        old.extend_from_slice(&99i32.to_le_bytes());
        for text in ["News", ""] {
            old.extend_from_slice(&u32::try_from(text.len()).unwrap().to_le_bytes());
            old.extend_from_slice(text.as_bytes());
        }
        let mut expected = ChannelInfo::new("News".to_owned(), true, 7, 99);
        assert_eq!(ChannelInfo::decode(&old), Some(expected.clone()));
        // Version 1 has no invite fields, whatever its flags say.
        old[1] |= HAS_INVITE;
        assert_eq!(ChannelInfo::decode(&old), Some(expected.clone()));
        // A version-2 info whose invite flag is set but whose fields are cut is refused.
        expected.invite = Some(InviteLink {
            generation: 3,
            admin: 7,
            date: 100,
        });
        let mut bytes = expected.encode();
        assert_eq!(ChannelInfo::decode(&bytes), Some(expected));
        bytes.pop();
        assert_eq!(ChannelInfo::decode(&bytes), None);
    }

    proptest! {
        #[test]
        fn any_info_reads_back(
            title in ".{0,20}", about in ".{0,20}", broadcast in any::<bool>(),
            deleted in any::<bool>(), creator in any::<i64>(), date in any::<i32>(),
            invite in proptest::option::of((any::<u32>(), any::<i64>(), any::<i32>())),
        ) {
            let invite = invite.map(|(generation, admin, date)| InviteLink { generation, admin, date });
            let info = ChannelInfo { title, about, broadcast, deleted, creator, date, invite };
            prop_assert_eq!(ChannelInfo::decode(&info.encode()), Some(info));
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ChannelInfo::decode(&bytes);
        }
    }
}
