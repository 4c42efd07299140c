//! Memberships on sharded RocksDB: participants, the index by join date, classes, counts,
//! read watermarks and post views on the group's instance (where a channel's box is); each
//! user's list of groups on the user's instance.
//!
//! A change writes the group's instance first, with a `1f` record naming the (group, user)
//! whose list must follow when the user lives on another instance; the user's row is written
//! next and the record dropped last. Opening the store rewrites the user's row of every `1f`
//! record left by a crash from the group's participant row, which is authoritative: the
//! repair is idempotent and never replays a stale change.

use super::instance::Reader;
use super::message::{RocksMessageStore, count_newer};
use super::plan::{corrupt, read_dialog};
use crate::codec::{
    BatchOp, decode_group_counts, decode_key_id, decode_membership, decode_number,
    decode_participant, encode_group_counts, encode_key_id, encode_membership, encode_number,
    encode_participant,
};
use crate::keys::{self, Prefix};
use crate::message::members::{check_group, check_participant, check_room, matches, recount};
use crate::message::{
    BoxId, Dialog, GroupCounts, MAX_PAGE, Membership, MessageError, Participant, ParticipantChange,
    ParticipantFilter, ParticipantPage, Peer,
};

/// The box whose instance (and lock) a group's rows share: a channel's own box; a basic group
/// is placed as a channel with its id would be (the rows' keys keep the two apart).
pub(crate) fn group_box(group: Peer) -> BoxId {
    match group {
        Peer::User(id) | Peer::Chat(id) | Peer::Channel(id) => BoxId::Channel(id),
    }
}

/// The `1e` classes a participant is listed in.
fn classes(participant: &Participant) -> Vec<u8> {
    [
        ParticipantFilter::Admins,
        ParticipantFilter::Banned,
        ParticipantFilter::Restricted,
    ]
    .into_iter()
    .filter(|filter| matches(participant, *filter))
    .filter_map(class_of)
    .collect()
}

/// A filter's `1e` class, or `None` for [`ParticipantFilter::Recent`] (the `19` index).
fn class_of(filter: ParticipantFilter) -> Option<u8> {
    match filter {
        ParticipantFilter::Admins => Some(0),
        ParticipantFilter::Banned => Some(1),
        ParticipantFilter::Restricted => Some(2),
        _ => None,
    }
}

fn key_error(number: u32, error: keys::KeyError) -> MessageError {
    MessageError::Backend(crate::BackendError::with_source(
        format!("instance {number}"),
        error,
    ))
}

/// A user's record in a group.
pub(crate) fn read_participant(
    reader: &Reader<'_>,
    group: Peer,
    user_id: i64,
) -> Result<Option<Participant>, MessageError> {
    let number = reader.instance.number;
    reader.get(
        &keys::group_user(Prefix::Participant, group, user_id),
        |value| decode_participant(user_id, value).map_err(|error| corrupt(number, error)),
    )
}

/// A group's counts (zero when it has none).
pub(crate) fn read_counts(reader: &Reader<'_>, group: Peer) -> Result<GroupCounts, MessageError> {
    let number = reader.instance.number;
    Ok(reader
        .get(&keys::group_prefix(Prefix::GroupCounts, group), |value| {
            decode_group_counts(value).map_err(|error| corrupt(number, error))
        })?
        .unwrap_or_default())
}

/// A member's read watermark in a channel (0 when none).
pub(crate) fn read_watermark(
    reader: &Reader<'_>,
    group: Peer,
    user_id: i64,
) -> Result<i32, MessageError> {
    let number = reader.instance.number;
    let value = reader.get(
        &keys::group_user(Prefix::MemberRead, group, user_id),
        |value| decode_number(value).map_err(|error| corrupt(number, error)),
    )?;
    Ok(value.map_or(0, |value| i32::try_from(value).unwrap_or(i32::MAX)))
}

/// The row writing a member's read watermark.
pub(crate) fn watermark_op(group: Peer, user_id: i64, max_id: i32) -> BatchOp {
    BatchOp::put(
        keys::group_user(Prefix::MemberRead, group, user_id),
        encode_number(u32::try_from(max_id).unwrap_or(0)),
    )
}

/// The row writing a group's counts.
pub(crate) fn counts_op(group: Peer, counts: &GroupCounts) -> BatchOp {
    BatchOp::put(
        keys::group_prefix(Prefix::GroupCounts, group),
        encode_group_counts(counts),
    )
}

/// The user's memberships (all of them), from their instance.
fn read_memberships(reader: &Reader<'_>, user_id: i64) -> Result<Vec<Membership>, MessageError> {
    let number = reader.instance.number;
    let mut walk = reader.range(&keys::user_groups_prefix(user_id))?;
    walk.first();
    let mut memberships = Vec::new();
    while let Some((key, value)) = walk.item()? {
        let (_, group) = keys::decode_user_group(key).map_err(|error| key_error(number, error))?;
        memberships.push(decode_membership(group, value).map_err(|error| corrupt(number, error))?);
        walk.next();
    }
    Ok(memberships)
}

/// The row of the user's list that mirrors `participant` (put, or delete when `None`).
fn mirror_op(group: Peer, user_id: i64, participant: Option<&Participant>) -> BatchOp {
    let key = keys::user_group(user_id, group);
    match participant {
        Some(participant) => BatchOp::put(
            key,
            encode_membership(&Membership {
                group,
                role: participant.role,
                date: participant.date,
            }),
        ),
        None => BatchOp::delete(key),
    }
}

impl RocksMessageStore {
    /// Rewrites the user side of every membership change a crash interrupted (the `1f`
    /// records), from the participant rows. Returns how many it finished.
    pub(crate) fn finish_memberships(&self) -> Result<u64, MessageError> {
        let mut done = 0;
        for instance in &self.shards.instances {
            let pending = {
                let reader = instance.latest();
                let mut walk = reader.range(&[Prefix::MemberPending as u8])?;
                walk.first();
                let mut pending = Vec::new();
                while let Some((key, _)) = walk.item()? {
                    pending.push(
                        keys::decode_group_user(Prefix::MemberPending, key)
                            .map_err(|error| key_error(instance.number, error))?,
                    );
                    walk.next();
                }
                pending
            };
            for (group, user_id) in pending {
                let participant = read_participant(&instance.latest(), group, user_id)?;
                let user_instance = self.shards.of(BoxId::User(user_id))?;
                user_instance.write(&[mirror_op(group, user_id, participant.as_ref())], true)?;
                instance.write(
                    &[BatchOp::delete(keys::group_user(
                        Prefix::MemberPending,
                        group,
                        user_id,
                    ))],
                    false,
                )?;
                done += 1;
            }
        }
        Ok(done)
    }

    pub(crate) fn set_participant_rows(
        &self,
        group: Peer,
        user_id: i64,
        participant: Option<Participant>,
    ) -> Result<ParticipantChange, MessageError> {
        check_group(group)?;
        if user_id <= 0 {
            return Err(MessageError::UserIdInvalid);
        }
        if let Some(participant) = &participant {
            check_participant(participant, &self.config)?;
            if participant.user_id != user_id {
                return Err(MessageError::UserIdInvalid);
            }
        }
        let group_box = group_box(group);
        let user_box = BoxId::User(user_id);
        let home = self.shards.of(group_box)?;
        let user_home = self.shards.of(user_box)?;
        home.check_writable()?;
        user_home.check_writable()?;
        // The group's box lock orders this change with sends (which move watermarks) and
        // other changes of the group; the user's, with their other memberships.
        let _held = self.locks.lock(&[group_box, user_box]);
        let reader = home.latest();
        let before = read_participant(&reader, group, user_id)?;
        let counts_before = read_counts(&reader, group)?;
        let user_groups = read_memberships(&user_home.latest(), user_id)?
            .iter()
            .filter(|membership| membership.role.is_member())
            .count();
        check_room(
            group,
            &counts_before,
            before.as_ref(),
            participant.as_ref(),
            user_groups,
            &self.config,
        )?;
        let counts = recount(counts_before, before.as_ref(), participant.as_ref());
        let mut ops = Vec::new();
        if let Some(before) = &before {
            if before.role.is_member() {
                ops.push(BatchOp::delete(keys::member_by_date(
                    group,
                    before.date,
                    user_id,
                )));
            }
            for class in classes(before) {
                ops.push(BatchOp::delete(keys::participant_class(
                    group, class, user_id,
                )));
            }
        }
        let participant_key = keys::group_user(Prefix::Participant, group, user_id);
        match &participant {
            Some(after) => {
                ops.push(BatchOp::put(participant_key, encode_participant(after)));
                if after.role.is_member() {
                    ops.push(BatchOp::put(
                        keys::member_by_date(group, after.date, user_id),
                        Vec::new(),
                    ));
                }
                for class in classes(after) {
                    ops.push(BatchOp::put(
                        keys::participant_class(group, class, user_id),
                        Vec::new(),
                    ));
                }
            }
            None => ops.push(BatchOp::delete(participant_key)),
        }
        if !participant.as_ref().is_some_and(|p| p.role.is_member()) {
            ops.push(BatchOp::delete(keys::group_user(
                Prefix::MemberRead,
                group,
                user_id,
            )));
        }
        ops.push(counts_op(group, &counts));
        let mirror = mirror_op(group, user_id, participant.as_ref());
        if user_home.number == home.number {
            ops.push(mirror);
            home.write(&ops, false)?;
        } else {
            let pending = keys::group_user(Prefix::MemberPending, group, user_id);
            ops.push(BatchOp::put(pending.clone(), Vec::new()));
            home.write(&ops, true)?;
            user_home.write(&[mirror], false)?;
            // Losing this write only means the next open rewrites the same row again.
            home.write_unsynced(&[BatchOp::delete(pending)])?;
        }
        Ok(ParticipantChange { before, counts })
    }

    pub(crate) fn create_group_rows(
        &self,
        channel: bool,
        info: Vec<u8>,
        creator: i64,
        date: i32,
    ) -> Result<Peer, MessageError> {
        if info.len() > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        if creator <= 0 {
            return Err(MessageError::UserIdInvalid);
        }
        let member_of = read_memberships(&self.shards.of(BoxId::User(creator))?.latest(), creator)?
            .iter()
            .filter(|membership| membership.role.is_member())
            .count();
        if member_of >= self.config.max_groups_per_user {
            return Err(MessageError::ChannelsTooMuch);
        }
        let counter = self.shards.number(0)?;
        let group = {
            let _ids = crate::lock(&self.group_ids);
            let key = vec![Prefix::NextGroupId as u8];
            let number = counter.number;
            let last = counter
                .latest()
                .get(&key, |value| {
                    decode_key_id(value).map_err(|error| corrupt(number, error))
                })?
                .unwrap_or(0);
            let id = last.checked_add(1).ok_or(MessageError::Exhausted)?;
            // Synced before the id is used: a crash may waste an id, never give one twice.
            counter.write(&[BatchOp::put(key, encode_key_id(id))], true)?;
            if channel {
                Peer::Channel(id)
            } else {
                Peer::Chat(id)
            }
        };
        let home = self.shards.of(group_box(group))?;
        home.write(
            &[BatchOp::put(
                keys::group_prefix(Prefix::GroupInfo, group),
                info,
            )],
            false,
        )?;
        self.set_participant_rows(group, creator, Some(Participant::creator(creator, date)))?;
        Ok(group)
    }

    pub(crate) fn set_group_info_row(
        &self,
        group: Peer,
        info: Vec<u8>,
    ) -> Result<(), MessageError> {
        check_group(group)?;
        if info.len() > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        let group_box = group_box(group);
        let home = self.shards.of(group_box)?;
        let _held = self.locks.lock(&[group_box]);
        let key = keys::group_prefix(Prefix::GroupInfo, group);
        if !home.latest().contains(&key)? {
            return Err(MessageError::PeerIdInvalid);
        }
        home.write(&[BatchOp::put(key, info)], false)
    }

    pub(crate) fn group_info_row(&self, group: Peer) -> Result<Option<Vec<u8>>, MessageError> {
        check_group(group)?;
        self.shards
            .of(group_box(group))?
            .snapshot()
            .get(&keys::group_prefix(Prefix::GroupInfo, group), |value| {
                Ok(value.to_vec())
            })
    }

    pub(crate) fn participant_row(
        &self,
        group: Peer,
        user_id: i64,
    ) -> Result<Option<Participant>, MessageError> {
        check_group(group)?;
        read_participant(
            &self.shards.of(group_box(group))?.snapshot(),
            group,
            user_id,
        )
    }

    pub(crate) fn participant_page(
        &self,
        group: Peer,
        filter: ParticipantFilter,
        offset: usize,
        limit: usize,
    ) -> Result<ParticipantPage, MessageError> {
        check_group(group)?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(MessageError::LimitInvalid);
        }
        let reader = self.shards.of(group_box(group))?.snapshot();
        let number = reader.instance.number;
        let counts = read_counts(&reader, group)?;
        let (prefix, count) = match class_of(filter) {
            None => (
                keys::group_prefix(Prefix::MemberByDate, group),
                counts.members,
            ),
            Some(class) => (
                keys::participant_class_prefix(group, class),
                match filter {
                    ParticipantFilter::Admins => counts.admins,
                    ParticipantFilter::Banned => counts.banned,
                    _ => counts.restricted,
                },
            ),
        };
        let mut walk = reader.range(&prefix)?;
        walk.first();
        let mut users = Vec::new();
        let mut skipped = 0;
        while users.len() < limit {
            let Some((key, _)) = walk.item()? else {
                break;
            };
            if skipped < offset {
                skipped += 1;
            } else {
                let user_id = match class_of(filter) {
                    None => keys::decode_member_by_date(key).map(|(_, _, user)| user),
                    Some(_) => keys::decode_participant_class(key).map(|(_, _, user)| user),
                }
                .map_err(|error| key_error(number, error))?;
                users.push(user_id);
            }
            walk.next();
        }
        let mut participants = Vec::with_capacity(users.len());
        for user_id in users {
            let participant = read_participant(&reader, group, user_id)?.ok_or_else(|| {
                MessageError::Backend(crate::BackendError::new(format!(
                    "instance {number}: an index row without its participant"
                )))
            })?;
            participants.push(participant);
        }
        Ok(ParticipantPage {
            participants,
            count: usize::try_from(count).unwrap_or(usize::MAX),
        })
    }

    pub(crate) fn counts_row(&self, group: Peer) -> Result<GroupCounts, MessageError> {
        check_group(group)?;
        read_counts(&self.shards.of(group_box(group))?.snapshot(), group)
    }

    pub(crate) fn membership_rows(&self, user_id: i64) -> Result<Vec<Membership>, MessageError> {
        read_memberships(&self.shards.of(BoxId::User(user_id))?.snapshot(), user_id)
    }

    pub(crate) fn channel_dialog_rows(&self, user_id: i64) -> Result<Vec<Dialog>, MessageError> {
        let mut dialogs = Vec::new();
        for membership in self.membership_rows(user_id)? {
            let Peer::Channel(channel) = membership.group else {
                continue;
            };
            if !membership.role.is_member() {
                continue;
            }
            let box_id = BoxId::Channel(channel);
            let reader = self.shards.of(box_id)?.snapshot();
            dialogs.push(channel_dialog(&reader, channel, user_id, membership.date)?);
        }
        dialogs.sort_by_key(|d| std::cmp::Reverse((d.top_date, d.top_message, d.peer)));
        Ok(dialogs)
    }

    pub(crate) fn channel_dialog_row(
        &self,
        user_id: i64,
        channel: i64,
    ) -> Result<Option<Dialog>, MessageError> {
        let group = Peer::Channel(channel);
        let reader = self.shards.of(BoxId::Channel(channel))?.snapshot();
        // The channel's side is authoritative for membership.
        match read_participant(&reader, group, user_id)? {
            Some(participant) if participant.role.is_member() => Ok(Some(channel_dialog(
                &reader,
                channel,
                user_id,
                participant.date,
            )?)),
            _ => Ok(None),
        }
    }

    pub(crate) fn view_rows(
        &self,
        channel: i64,
        ids: &[i32],
        increment: bool,
    ) -> Result<Vec<u32>, MessageError> {
        let group = Peer::Channel(channel);
        check_group(group)?;
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let box_id = BoxId::Channel(channel);
        let home = self.shards.of(box_id)?;
        let held = increment.then(|| self.locks.lock(&[box_id]));
        let reader = home.latest();
        let number = home.number;
        let mut views = Vec::with_capacity(ids.len());
        // Counts as this call leaves them (an id may be asked for twice).
        let mut counted: std::collections::BTreeMap<i32, u32> = std::collections::BTreeMap::new();
        for id in ids {
            let count = match counted.get(id) {
                Some(count) => *count,
                None if !reader.contains(&keys::message(box_id, *id))? => {
                    views.push(0);
                    continue;
                }
                None => reader
                    .get(&keys::post_views(group, *id), |value| {
                        decode_number(value).map_err(|error| corrupt(number, error))
                    })?
                    .unwrap_or(0),
            };
            let count = if increment {
                count.saturating_add(1)
            } else {
                count
            };
            counted.insert(*id, count);
            views.push(count);
        }
        let ops: Vec<BatchOp> = counted
            .iter()
            .filter(|_| increment)
            .map(|(id, count)| BatchOp::put(keys::post_views(group, *id), encode_number(*count)))
            .collect();
        if !ops.is_empty() {
            // Views are counters, not promises: a crash may lose the last ones, as
            // Telegram's own counters lag. Not synced.
            home.write_unsynced(&ops)?;
        }
        drop(held);
        Ok(views)
    }
}

/// A member's dialog of a channel: the channel's newest message, the member's watermark, the
/// messages above it.
fn channel_dialog(
    reader: &Reader<'_>,
    channel: i64,
    user_id: i64,
    joined: i32,
) -> Result<Dialog, MessageError> {
    let box_id = BoxId::Channel(channel);
    let peer = Peer::Channel(channel);
    let record = read_dialog(reader, box_id, peer)?.unwrap_or_default();
    let read = read_watermark(reader, peer, user_id)?;
    let counts = read_counts(reader, peer)?;
    let unread = count_newer(reader, box_id, peer, record, read)?;
    let (top_message, top_date) = if record.top_id > 0 {
        (record.top_id, record.top_date)
    } else {
        (0, joined)
    };
    Ok(Dialog {
        peer,
        top_message,
        top_date,
        read_inbox_max_id: read,
        read_outbox_max_id: counts.read_outbox_max_id,
        unread_count: i32::try_from(unread).unwrap_or(i32::MAX),
    })
}
