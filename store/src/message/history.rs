//! `messages.getHistory`'s paging rules (core.telegram.org/method/messages.getHistory and
//! /api/offsets), as one function over any source of a chat's messages, newest first.
//!
//! The start of the page is `offsetFromID(offset_id) + add_offset`, where `offsetFromID` is
//! the number of messages from the newest down to and including `offset_id` (with no
//! offset_id, the number of messages dated at or after `offset_date`; with neither, zero).
//! The page is the `limit` messages from there (a negative start cuts the page short); then
//! `max_id` (keep ids below it) and `min_id` (keep ids above it) filter it.

use super::{HistoryPage, MessageError, StoredMessage};

/// The parameters of `messages.getHistory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    /// Start below this message id (0: from the newest).
    pub offset_id: i32,
    /// With no `offset_id`: start with messages sent before this date (0: from the newest).
    pub offset_date: i32,
    /// Messages to skip after the offset; negative to go newer.
    pub add_offset: i32,
    /// Messages to return: 1..=1000, or 0 for the default of 20.
    pub limit: i32,
    /// If positive, only ids below it.
    pub max_id: i32,
    /// If positive, only ids above it.
    pub min_id: i32,
}

/// The default page size when `limit` is 0.
pub(super) const DEFAULT_HISTORY_LIMIT: usize = 20;
/// The largest page; a larger `limit` is clamped to it.
pub(super) const MAX_HISTORY_LIMIT: usize = 100;

/// A chat's messages in one box, newest first, as a backend can serve them.
pub trait HistorySource {
    /// How many messages the chat has.
    fn len(&self) -> usize;
    /// Whether the chat has no messages.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How many have an id at or above `id`.
    fn at_or_above_id(&self, id: i32) -> usize;
    /// How many were sent at or after `date`.
    fn at_or_after_date(&self, date: i32) -> usize;
    /// The messages at positions `start..start + len` (newest is 0).
    fn range(&self, start: usize, len: usize) -> Vec<StoredMessage>;
}

/// Applies the rules to `source`.
pub fn select_history(
    source: &dyn HistorySource,
    query: &HistoryQuery,
) -> Result<HistoryPage, MessageError> {
    // Telegram serves at most 100 messages a page; more is clamped, a negative limit refused.
    let limit = match usize::try_from(query.limit) {
        Ok(0) => DEFAULT_HISTORY_LIMIT,
        Ok(limit) => limit.min(MAX_HISTORY_LIMIT),
        Err(_) => return Err(MessageError::LimitInvalid),
    };
    let count = source.len();
    let base = if query.offset_id > 0 {
        source.at_or_above_id(query.offset_id)
    } else if query.offset_date > 0 {
        source.at_or_after_date(query.offset_date)
    } else {
        0
    };
    let start = i64::try_from(base).unwrap_or(i64::MAX) + i64::from(query.add_offset);
    let end = start.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX));
    let count_i = i64::try_from(count).unwrap_or(i64::MAX);
    let from = start.clamp(0, count_i);
    let to = end.clamp(0, count_i);
    let from = usize::try_from(from).unwrap_or(0);
    let to = usize::try_from(to).unwrap_or(0);
    let mut messages = if to > from {
        source.range(from, to - from)
    } else {
        Vec::new()
    };
    // max_id cuts from the newest end: the page then starts that much further down.
    let before = messages.len();
    if query.max_id > 0 {
        messages.retain(|message| message.id < query.max_id);
    }
    let skipped = before - messages.len();
    if query.min_id > 0 {
        messages.retain(|message| message.id > query.min_id);
    }
    Ok(HistoryPage {
        messages,
        count,
        offset_id_offset: from + skipped,
    })
}

/// The `hash` of a list of ids, as `messages.getHistory` and friends compute it
/// (core.telegram.org/api/offsets): for each id, `h ^= h >> 21; h ^= h << 35; h ^= h >> 4;
/// h += id`, on 64 unsigned bits, read back as signed.
pub fn history_hash(ids: impl IntoIterator<Item = i64>) -> i64 {
    let mut hash: u64 = 0;
    for id in ids {
        hash ^= hash >> 21;
        hash ^= hash << 35;
        hash ^= hash >> 4;
        hash = hash.wrapping_add(id as u64);
    }
    hash as i64
}

/// A chat's messages held in memory, newest first.
pub(crate) struct SliceSource<'a>(pub(crate) &'a [&'a StoredMessage]);

impl HistorySource for SliceSource<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn at_or_above_id(&self, id: i32) -> usize {
        self.0.partition_point(|message| message.id >= id)
    }
    fn at_or_after_date(&self, date: i32) -> usize {
        // Dates follow ids in a box, so the newest-first list is sorted by date too.
        self.0.partition_point(|message| message.date >= date)
    }
    fn range(&self, start: usize, len: usize) -> Vec<StoredMessage> {
        self.0
            .iter()
            .skip(start)
            .take(len)
            .map(|message| (*message).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BoxId, Peer};
    use super::*;

    fn chat(ids: &[i32]) -> Vec<StoredMessage> {
        let mut messages: Vec<StoredMessage> = ids
            .iter()
            .map(|&id| StoredMessage {
                id,
                box_id: BoxId::User(1),
                peer: Peer::User(2),
                from: 2,
                out: false,
                date: 1000 + id,
                edit_date: None,
                random_id: i64::from(id),
                body: Vec::new(),
                media: None,
                flags: 0,
                pinned: false,
                reactions: Vec::new(),
            })
            .collect();
        messages.sort_by_key(|message| std::cmp::Reverse(message.id));
        messages
    }

    fn ids(page: &HistoryPage) -> Vec<i32> {
        page.messages.iter().map(|message| message.id).collect()
    }

    fn query(offset_id: i32, add_offset: i32, limit: i32) -> HistoryQuery {
        HistoryQuery {
            offset_id,
            add_offset,
            limit,
            ..HistoryQuery::default()
        }
    }

    #[test]
    fn the_documented_use_cases() {
        let messages = chat(&(1..=100).collect::<Vec<_>>());
        let refs: Vec<&StoredMessage> = messages.iter().collect();
        let source = SliceSource(&refs);
        // 20 older than 50.
        let older = select_history(&source, &query(50, 0, 20)).unwrap();
        assert_eq!(ids(&older), (30..=49).rev().collect::<Vec<_>>());
        assert_eq!(older.offset_id_offset, 51);
        // 20 newer: 50 and the 19 above it.
        let newer = select_history(&source, &query(50, -20, 20)).unwrap();
        assert_eq!(ids(&newer), (50..=69).rev().collect::<Vec<_>>());
        // 20 around.
        let around = select_history(&source, &query(50, -10, 20)).unwrap();
        assert_eq!(ids(&around), (40..=59).rev().collect::<Vec<_>>());
        // From the newest.
        let latest = select_history(&source, &query(0, 0, 0)).unwrap();
        assert_eq!(ids(&latest), (81..=100).rev().collect::<Vec<_>>());
        assert_eq!(latest.count, 100);
    }

    #[test]
    fn a_negative_start_cuts_the_page_and_filters_apply_after() {
        let messages = chat(&[2, 4, 6, 8, 10]);
        let refs: Vec<&StoredMessage> = messages.iter().collect();
        let source = SliceSource(&refs);
        let page = select_history(&source, &query(8, -5, 4)).unwrap();
        assert_eq!(ids(&page), vec![10], "start -3: only position 0 remains");
        let filtered = select_history(
            &source,
            &HistoryQuery {
                limit: 10,
                max_id: 9,
                min_id: 2,
                ..HistoryQuery::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&filtered), vec![8, 6, 4]);
        assert_eq!(
            filtered.offset_id_offset, 1,
            "10 was cut by max_id: the page starts at 8"
        );
        let by_date = select_history(
            &source,
            &HistoryQuery {
                offset_date: 1007,
                limit: 10,
                ..HistoryQuery::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&by_date), vec![6, 4, 2], "sent before the date");
    }

    #[test]
    fn impossible_limits_are_refused() {
        let messages = chat(&[1]);
        let refs: Vec<&StoredMessage> = messages.iter().collect();
        let source = SliceSource(&refs);
        assert_eq!(
            select_history(&source, &query(0, 0, -1)),
            Err(MessageError::LimitInvalid)
        );
        let many = chat(&(1..=300).collect::<Vec<_>>());
        let many_refs: Vec<&StoredMessage> = many.iter().collect();
        let clamped = select_history(&SliceSource(&many_refs), &query(0, 0, 1001)).unwrap();
        assert_eq!(clamped.messages.len(), 100, "clamped to 100");
        let far = select_history(&source, &query(0, i32::MAX, 100)).unwrap();
        assert!(far.messages.is_empty());
        let before = select_history(&source, &query(0, i32::MIN, 100)).unwrap();
        assert!(before.messages.is_empty());
    }

    #[test]
    fn the_hash_follows_the_documented_fold() {
        assert_eq!(history_hash([]), 0);
        assert_eq!(history_hash([5]), 5);
        // Two steps by hand: h = 5; h ^= h>>21 (5); h ^= h<<35; h ^= h>>4; h += 7.
        let mut h: u64 = 5;
        h ^= h >> 21;
        h ^= h << 35;
        h ^= h >> 4;
        h = h.wrapping_add(7);
        assert_eq!(history_hash([5, 7]), h as i64);
    }
}
