//! [`ChannelInfo`]: what the API keeps about a channel as the store's opaque group info.
//!
//! Layout: a version byte `01`, a flags byte (bit 0 broadcast, bit 1 deleted), the creator
//! (i64), the creation date (i32), then the title and the description, each a u32 length and
//! UTF-8 bytes. Little-endian. Reading never panics or over-allocates.

/// The version byte.
const VERSION: u8 = 1;

/// A channel's title, kind and origin.
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
}

impl ChannelInfo {
    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(22 + self.title.len() + self.about.len());
        out.push(VERSION);
        out.push(u8::from(self.broadcast) | (u8::from(self.deleted) << 1));
        out.extend_from_slice(&self.creator.to_le_bytes());
        out.extend_from_slice(&self.date.to_le_bytes());
        for text in [&self.title, &self.about] {
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// Reads stored bytes; `None` when they are not a channel's info.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION {
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
        if !rest.is_empty() {
            return None;
        }
        let about = texts.pop()?;
        let title = texts.pop()?;
        Some(Self {
            title,
            about,
            broadcast: flags & 1 != 0,
            deleted: flags & 2 != 0,
            creator: i64::from_le_bytes(*creator),
            date: i32::from_le_bytes(*date),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_info_reads_back(
            title in ".{0,20}", about in ".{0,20}", broadcast in any::<bool>(),
            deleted in any::<bool>(), creator in any::<i64>(), date in any::<i32>(),
        ) {
            let info = ChannelInfo { title, about, broadcast, deleted, creator, date };
            prop_assert_eq!(ChannelInfo::decode(&info.encode()), Some(info));
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ChannelInfo::decode(&bytes);
        }
    }
}
