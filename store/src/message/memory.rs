//! [`MessageStore`] in memory: the reference backend, and the one tests use.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::history::{SliceSource, select_history};
use super::members::{check_group, check_participant, check_room, matches, recount};
use super::{
    Affected, BoxId, BoxState, Delivery, Dialog, Difference, GroupCounts, HistoryPage,
    HistoryQuery, MAX_PAGE, Membership, MessageError, MessageStore, MessageStoreConfig,
    Participant, ParticipantChange, ParticipantFilter, ParticipantPage, Peer, SendOutcome,
    SendRequest, StoredMessage, UpdateEntry, UpdateKind, check_reaction, set_reaction,
};

/// A message and the other copies of it (in other boxes).
#[derive(Debug, Clone)]
struct Copy {
    message: StoredMessage,
    others: Vec<(BoxId, i32)>,
}

#[derive(Debug, Default)]
struct Mailbox {
    state: BoxState,
    /// The newest message's date: a box's dates never go back.
    last_date: i32,
    messages: BTreeMap<i32, Copy>,
    log: VecDeque<UpdateEntry>,
    /// (read_inbox_max_id, read_outbox_max_id) per chat.
    marks: HashMap<Peer, (i32, i32)>,
}

impl Mailbox {
    /// Takes `count` pts; returns the new pts.
    fn take_pts(&mut self, count: i32) -> Result<i32, MessageError> {
        let pts = self
            .state
            .pts
            .checked_add(count)
            .ok_or(MessageError::Exhausted)?;
        self.state.pts = pts;
        Ok(pts)
    }

    fn log(&mut self, pts: i32, pts_count: i32, kind: UpdateKind, keep: usize) {
        self.log.push_back(UpdateEntry {
            pts,
            pts_count,
            kind,
        });
        while self.log.len() > keep.max(1) {
            self.log.pop_front();
        }
    }
}

/// A group's participants and, for a channel, its members' read state and post views.
#[derive(Debug, Default)]
struct GroupState {
    participants: BTreeMap<i64, Participant>,
    counts: GroupCounts,
    reads: HashMap<i64, i32>,
    views: HashMap<i32, u32>,
}

#[derive(Debug, Default)]
struct Inner {
    boxes: HashMap<BoxId, Mailbox>,
    sends: HashMap<(i64, Peer, i64), SendOutcome>,
    groups: HashMap<Peer, GroupState>,
    /// Each user's groups.
    member_of: HashMap<i64, BTreeMap<Peer, Membership>>,
    infos: HashMap<Peer, Vec<u8>>,
    last_group_id: i64,
}

impl Inner {
    /// The user's watermark in a channel.
    fn channel_read(&self, channel: i64, user_id: i64) -> i32 {
        self.groups
            .get(&Peer::Channel(channel))
            .and_then(|group| group.reads.get(&user_id))
            .copied()
            .unwrap_or(0)
    }

    /// The user's dialog of a channel they are in.
    fn channel_dialog(&self, channel: i64, user_id: i64, joined: i32) -> Dialog {
        let peer = Peer::Channel(channel);
        let read = self.channel_read(channel, user_id);
        let (mut top_message, mut top_date, mut unread) = (0, joined, 0);
        if let Some(mailbox) = self.boxes.get(&BoxId::Channel(channel)) {
            if let Some(top) = mailbox.messages.values().next_back() {
                top_message = top.message.id;
                top_date = top.message.date;
            }
            unread = mailbox.messages.range(read.saturating_add(1)..).count();
        }
        Dialog {
            peer,
            top_message,
            top_date,
            read_inbox_max_id: read,
            read_outbox_max_id: self
                .groups
                .get(&peer)
                .map_or(0, |group| group.counts.read_outbox_max_id),
            unread_count: i32::try_from(unread).unwrap_or(i32::MAX),
        }
    }
}

/// Messages in memory, behind one mutex: every call is atomic.
#[derive(Debug, Default)]
pub struct MemoryMessageStore {
    config: MessageStoreConfig,
    inner: Mutex<Inner>,
}

impl MemoryMessageStore {
    /// An empty store with default limits.
    pub fn new() -> Self {
        Self::with_config(MessageStoreConfig::default())
    }

    /// An empty store with these limits.
    pub fn with_config(config: MessageStoreConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every call changes the state in one step under the lock; a panic cannot leave it
        // half-changed, so a poisoned lock is still consistent.
        crate::lock(&self.inner)
    }
}

/// The boxes a send reaches, the sender's first, with each copy's peer and direction.
pub(crate) fn targets(
    request: &SendRequest,
    max_members: usize,
) -> Result<Vec<(BoxId, Peer, bool)>, MessageError> {
    let sender = request.sender;
    if sender <= 0 {
        return Err(MessageError::PeerIdInvalid);
    }
    match request.peer {
        Peer::User(user) if user <= 0 => Err(MessageError::PeerIdInvalid),
        Peer::User(user) if user == sender || request.sender_only => {
            Ok(vec![(BoxId::User(sender), Peer::User(user), true)])
        }
        Peer::User(user) => Ok(vec![
            (BoxId::User(sender), Peer::User(user), true),
            (BoxId::User(user), Peer::User(sender), false),
        ]),
        Peer::Chat(chat) => {
            if chat <= 0 || request.members.is_empty() || request.members.len() > max_members {
                return Err(MessageError::PeerIdInvalid);
            }
            let mut boxes = vec![(BoxId::User(sender), Peer::Chat(chat), true)];
            for &member in &request.members {
                if member <= 0 {
                    return Err(MessageError::PeerIdInvalid);
                }
                if boxes
                    .iter()
                    .all(|(box_id, _, _)| *box_id != BoxId::User(member))
                {
                    boxes.push((BoxId::User(member), Peer::Chat(chat), false));
                }
            }
            Ok(boxes)
        }
        Peer::Channel(channel) if channel <= 0 => Err(MessageError::PeerIdInvalid),
        Peer::Channel(channel) => Ok(vec![(
            BoxId::Channel(channel),
            Peer::Channel(channel),
            false,
        )]),
    }
}

fn check_limit(limit: usize) -> Result<(), MessageError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(MessageError::LimitInvalid)
    }
}

impl MessageStore for MemoryMessageStore {
    fn sent(
        &self,
        sender: i64,
        peer: Peer,
        random_id: i64,
    ) -> Result<Option<Vec<Delivery>>, MessageError> {
        Ok(self
            .lock()
            .sends
            .get(&(sender, peer, random_id))
            .map(|outcome| outcome.deliveries.clone()))
    }

    fn send(&self, request: &SendRequest) -> Result<SendOutcome, MessageError> {
        let key = (request.sender, request.peer, request.random_id);
        let mut inner = self.lock();
        // A repeat returns the first outcome whatever else it carries.
        if let Some(first) = inner.sends.get(&key) {
            let mut outcome = first.clone();
            outcome.repeated = true;
            return Ok(outcome);
        }
        let body_len = request.body.len() + request.media.as_ref().map_or(0, Vec::len);
        if body_len > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        let targets = targets(request, self.config.max_members)?;
        // Ids and pts first, checked for exhaustion, so that a failure changes nothing.
        let mut deliveries = Vec::with_capacity(targets.len());
        for (box_id, _, _) in &targets {
            let state = inner.boxes.get(box_id).map(|b| b.state).unwrap_or_default();
            let message_id = state.max_id.checked_add(1).ok_or(MessageError::Exhausted)?;
            let pts = state.pts.checked_add(1).ok_or(MessageError::Exhausted)?;
            deliveries.push(Delivery {
                box_id: *box_id,
                message_id,
                pts,
            });
        }
        for ((box_id, peer, out), delivery) in targets.iter().zip(&deliveries) {
            let others = deliveries
                .iter()
                .filter(|other| other.box_id != *box_id)
                .map(|other| (other.box_id, other.message_id))
                .collect();
            let last_date = inner.boxes.get(box_id).map_or(i32::MIN, |b| b.last_date);
            let message = StoredMessage {
                id: delivery.message_id,
                box_id: *box_id,
                peer: *peer,
                from: request.sender,
                out: *out,
                date: request.date.max(last_date),
                edit_date: None,
                random_id: request.random_id,
                body: request.body.clone(),
                media: request.media.clone(),
                flags: request.flags,
                pinned: false,
                reactions: Vec::new(),
            };
            let keep = self.config.log_entries_kept(*box_id);
            let mailbox = inner.boxes.entry(*box_id).or_default();
            mailbox.state.max_id = delivery.message_id;
            mailbox.last_date = message.date;
            mailbox.state.pts = delivery.pts;
            mailbox
                .messages
                .insert(delivery.message_id, Copy { message, others });
            mailbox.log(
                delivery.pts,
                1,
                UpdateKind::NewMessage {
                    id: delivery.message_id,
                },
                keep,
            );
            mailbox.marks.entry(*peer).or_default();
            if let BoxId::Channel(channel) = box_id {
                // The sender has read the channel up to their own post.
                let reads = &mut inner
                    .groups
                    .entry(Peer::Channel(*channel))
                    .or_default()
                    .reads;
                let read = reads.entry(request.sender).or_default();
                *read = (*read).max(delivery.message_id);
            }
        }
        let outcome = SendOutcome {
            deliveries,
            repeated: false,
        };
        inner.sends.insert(key, outcome.clone());
        Ok(outcome)
    }

    fn get_messages(&self, box_id: BoxId, ids: &[i32]) -> Result<Vec<StoredMessage>, MessageError> {
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let inner = self.lock();
        let Some(mailbox) = inner.boxes.get(&box_id) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| mailbox.messages.get(id))
            .map(|copy| copy.message.clone())
            .collect())
    }

    fn get_history(
        &self,
        box_id: BoxId,
        peer: Peer,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, MessageError> {
        let inner = self.lock();
        // References, newest first: only the page's messages are cloned.
        let chat: Vec<&StoredMessage> = inner
            .boxes
            .get(&box_id)
            .map(|mailbox| {
                mailbox
                    .messages
                    .values()
                    .rev()
                    .filter(|copy| copy.message.peer == peer)
                    .map(|copy| &copy.message)
                    .collect()
            })
            .unwrap_or_default();
        select_history(&SliceSource(&chat), query)
    }

    fn get_difference(
        &self,
        box_id: BoxId,
        pts: i32,
        limit: usize,
    ) -> Result<Difference, MessageError> {
        check_limit(limit)?;
        let inner = self.lock();
        let Some(mailbox) = inner.boxes.get(&box_id) else {
            return Ok(Difference::Empty { pts: 0 });
        };
        let current = mailbox.state.pts;
        if pts >= current {
            return Ok(Difference::Empty { pts: current });
        }
        // The pts before the oldest entry kept: anything older is gone.
        let floor = mailbox
            .log
            .front()
            .map_or(current, |entry| entry.pts - entry.pts_count);
        if pts < floor {
            return Ok(Difference::TooLong { pts: current });
        }
        let entries: Vec<UpdateEntry> = mailbox
            .log
            .iter()
            .filter(|entry| entry.pts > pts)
            .take(limit)
            .cloned()
            .collect();
        let mut messages = Vec::new();
        for entry in &entries {
            if let UpdateKind::NewMessage { id } | UpdateKind::EditMessage { id } = entry.kind {
                if let Some(copy) = mailbox.messages.get(&id) {
                    if !messages.iter().any(|m: &StoredMessage| m.id == id) {
                        messages.push(copy.message.clone());
                    }
                }
            }
        }
        let complete = entries.last().is_some_and(|entry| entry.pts == current);
        Ok(Difference::Changes {
            entries,
            messages,
            complete,
            pts: current,
        })
    }

    fn state(&self, box_id: BoxId) -> Result<BoxState, MessageError> {
        Ok(self
            .lock()
            .boxes
            .get(&box_id)
            .map(|mailbox| mailbox.state)
            .unwrap_or_default())
    }

    fn dialogs(
        &self,
        user_id: i64,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<Dialog>, MessageError> {
        check_limit(limit)?;
        let inner = self.lock();
        let Some(mailbox) = inner.boxes.get(&BoxId::User(user_id)) else {
            return Ok(Vec::new());
        };
        let mut dialogs: HashMap<Peer, Dialog> = HashMap::new();
        for copy in mailbox.messages.values() {
            let message = &copy.message;
            let (read_in, read_out) = mailbox
                .marks
                .get(&message.peer)
                .copied()
                .unwrap_or_default();
            let dialog = dialogs.entry(message.peer).or_insert(Dialog {
                peer: message.peer,
                top_message: 0,
                top_date: 0,
                read_inbox_max_id: read_in,
                read_outbox_max_id: read_out,
                unread_count: 0,
            });
            if message.id > dialog.top_message {
                dialog.top_message = message.id;
                dialog.top_date = message.date;
            }
            if !message.out && message.id > read_in {
                dialog.unread_count += 1;
            }
        }
        let mut dialogs: Vec<Dialog> = dialogs
            .into_values()
            .filter(|dialog| offset_id <= 0 || dialog.top_message < offset_id)
            .collect();
        dialogs.sort_by_key(|dialog| std::cmp::Reverse(dialog.top_message));
        dialogs.truncate(limit);
        Ok(dialogs)
    }

    fn dialog_count(&self, user_id: i64) -> Result<usize, MessageError> {
        let inner = self.lock();
        let Some(mailbox) = inner.boxes.get(&BoxId::User(user_id)) else {
            return Ok(0);
        };
        let peers: std::collections::HashSet<Peer> = mailbox
            .messages
            .values()
            .map(|copy| copy.message.peer)
            .collect();
        Ok(peers.len())
    }

    fn edit(
        &self,
        editor: i64,
        box_id: BoxId,
        id: i32,
        body: Vec<u8>,
        media: Option<Vec<u8>>,
        edit_date: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        if body.len() + media.as_ref().map_or(0, Vec::len) > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        let mut inner = self.lock();
        let copy = inner
            .boxes
            .get(&box_id)
            .and_then(|mailbox| mailbox.messages.get(&id))
            .ok_or(MessageError::MessageIdInvalid)?;
        if copy.message.from != editor {
            return Err(MessageError::MessageAuthorRequired);
        }
        let mut copies = vec![(box_id, id)];
        copies.extend(copy.others.iter().copied());
        // Pts first, so that an exhausted box changes nothing.
        for (target, target_id) in &copies {
            if let Some(mailbox) = inner.boxes.get(target) {
                if mailbox.messages.contains_key(target_id) && mailbox.state.pts == i32::MAX {
                    return Err(MessageError::Exhausted);
                }
            }
        }
        let mut affected = Vec::new();
        for (target, target_id) in copies {
            let Some(mailbox) = inner.boxes.get_mut(&target) else {
                continue;
            };
            let Some(copy) = mailbox.messages.get_mut(&target_id) else {
                continue;
            };
            copy.message.body = body.clone();
            copy.message.media = media.clone();
            copy.message.edit_date = Some(edit_date);
            let pts = mailbox.take_pts(1)?;
            mailbox.log(
                pts,
                1,
                UpdateKind::EditMessage { id: target_id },
                self.config.log_entries_kept(target),
            );
            affected.push(Affected {
                box_id: target,
                pts,
                pts_count: 1,
            });
        }
        Ok(affected)
    }

    fn delete(
        &self,
        box_id: BoxId,
        ids: &[i32],
        revoke: bool,
    ) -> Result<Vec<Affected>, MessageError> {
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let mut inner = self.lock();
        // Which ids go from which box.
        let mut plan: BTreeMap<BoxId, Vec<i32>> = BTreeMap::new();
        if let Some(mailbox) = inner.boxes.get(&box_id) {
            for id in ids {
                let Some(copy) = mailbox.messages.get(id) else {
                    continue;
                };
                let own = plan.entry(box_id).or_default();
                if !own.contains(id) {
                    own.push(*id);
                }
                if revoke {
                    for (other, other_id) in &copy.others {
                        let exists = inner
                            .boxes
                            .get(other)
                            .is_some_and(|b| b.messages.contains_key(other_id));
                        let list = plan.entry(*other).or_default();
                        if exists && !list.contains(other_id) {
                            list.push(*other_id);
                        }
                    }
                }
            }
        }
        for (target, removed) in &plan {
            let count = i32::try_from(removed.len()).unwrap_or(i32::MAX);
            let pts = inner.boxes.get(target).map_or(0, |b| b.state.pts);
            if pts.checked_add(count).is_none() {
                return Err(MessageError::Exhausted);
            }
        }
        let mut affected = Vec::new();
        for (target, removed) in plan {
            if removed.is_empty() {
                continue;
            }
            let Some(mailbox) = inner.boxes.get_mut(&target) else {
                continue;
            };
            for id in &removed {
                mailbox.messages.remove(id);
            }
            let count = i32::try_from(removed.len()).unwrap_or(i32::MAX);
            let pts = mailbox.take_pts(count)?;
            mailbox.log(
                pts,
                count,
                UpdateKind::DeleteMessages { ids: removed },
                self.config.log_entries_kept(target),
            );
            affected.push(Affected {
                box_id: target,
                pts,
                pts_count: count,
            });
        }
        Ok(affected)
    }

    fn pin(
        &self,
        box_id: BoxId,
        peer: Peer,
        ids: &[i32],
        pinned: bool,
        one_side: bool,
    ) -> Result<Vec<(BoxId, UpdateEntry)>, MessageError> {
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let mut inner = self.lock();
        let mailbox = inner
            .boxes
            .get(&box_id)
            .ok_or(MessageError::MessageIdInvalid)?;
        // Per box (this one first): the chat there and the ids whose state changes.
        let mut plan: Vec<(BoxId, Peer, Vec<i32>)> = vec![(box_id, peer, Vec::new())];
        let mut found = false;
        for id in ids {
            let Some(copy) = mailbox.messages.get(id).filter(|c| c.message.peer == peer) else {
                continue;
            };
            found = true;
            let mut targets = vec![(box_id, *id)];
            if !one_side {
                targets.extend(copy.others.iter().copied());
            }
            for (target, target_id) in targets {
                let Some(other) = inner
                    .boxes
                    .get(&target)
                    .and_then(|b| b.messages.get(&target_id))
                else {
                    continue;
                };
                if other.message.pinned == pinned {
                    continue;
                }
                match plan.iter_mut().find(|(b, _, _)| *b == target) {
                    Some((_, _, list)) if !list.contains(&target_id) => list.push(target_id),
                    Some(_) => {}
                    None => plan.push((target, other.message.peer, vec![target_id])),
                }
            }
        }
        if !found {
            return Err(MessageError::MessageIdInvalid);
        }
        plan.retain(|(_, _, list)| !list.is_empty());
        // Pts first, so that an exhausted box changes nothing.
        if plan.iter().any(|(target, _, _)| {
            inner
                .boxes
                .get(target)
                .is_some_and(|b| b.state.pts == i32::MAX)
        }) {
            return Err(MessageError::Exhausted);
        }
        let mut changes = Vec::with_capacity(plan.len());
        for (target, chat, changed) in plan {
            let Some(mailbox) = inner.boxes.get_mut(&target) else {
                continue;
            };
            for id in &changed {
                if let Some(copy) = mailbox.messages.get_mut(id) {
                    copy.message.pinned = pinned;
                }
            }
            let pts = mailbox.take_pts(1)?;
            let kind = UpdateKind::PinMessages {
                peer: chat,
                ids: changed,
                pinned,
            };
            mailbox.log(pts, 1, kind.clone(), self.config.log_entries_kept(target));
            changes.push((
                target,
                UpdateEntry {
                    pts,
                    pts_count: 1,
                    kind,
                },
            ));
        }
        Ok(changes)
    }

    fn pinned(
        &self,
        box_id: BoxId,
        peer: Peer,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<i32>, MessageError> {
        check_limit(limit)?;
        let inner = self.lock();
        let Some(mailbox) = inner.boxes.get(&box_id) else {
            return Ok(Vec::new());
        };
        Ok(mailbox
            .messages
            .values()
            .rev()
            .filter(|copy| copy.message.pinned && copy.message.peer == peer)
            .map(|copy| copy.message.id)
            .filter(|id| offset_id <= 0 || *id < offset_id)
            .take(limit)
            .collect())
    }

    fn react(
        &self,
        user_id: i64,
        box_id: BoxId,
        id: i32,
        reaction: Option<Vec<u8>>,
        date: i32,
    ) -> Result<Vec<StoredMessage>, MessageError> {
        check_reaction(reaction.as_deref(), &self.config)?;
        let mut inner = self.lock();
        let own = inner
            .boxes
            .get(&box_id)
            .and_then(|mailbox| mailbox.messages.get(&id))
            .ok_or(MessageError::MessageIdInvalid)?;
        // The rule decides on this box's copy; the others follow it.
        let mut reactions = own.message.reactions.clone();
        set_reaction(
            &mut reactions,
            user_id,
            reaction.as_deref(),
            date,
            self.config.max_reactions,
        )?;
        let mut copies = vec![(box_id, id)];
        copies.extend(own.others.iter().copied());
        let mut changed = Vec::with_capacity(copies.len());
        for (target, target_id) in copies {
            let Some(copy) = inner
                .boxes
                .get_mut(&target)
                .and_then(|mailbox| mailbox.messages.get_mut(&target_id))
            else {
                continue;
            };
            copy.message.reactions.clone_from(&reactions);
            changed.push(copy.message.clone());
        }
        Ok(changed)
    }

    fn read_history(
        &self,
        user_id: i64,
        peer: Peer,
        max_id: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        if max_id < 0 {
            return Err(MessageError::MessageIdInvalid);
        }
        let keep = self.config.max_log_entries;
        let own = BoxId::User(user_id);
        let mut inner = self.lock();
        if let Peer::Channel(channel) = peer {
            let (top, pts) = inner
                .boxes
                .get(&BoxId::Channel(channel))
                .map_or((0, 0), |mailbox| {
                    let top = mailbox.messages.keys().next_back().copied().unwrap_or(0);
                    (top, mailbox.state.pts)
                });
            let wanted = if max_id == 0 { top } else { max_id.min(top) };
            let group = inner.groups.entry(peer).or_default();
            let read = group.reads.entry(user_id).or_default();
            if wanted <= *read {
                return Ok(Vec::new());
            }
            *read = wanted;
            group.counts.read_outbox_max_id = group.counts.read_outbox_max_id.max(wanted);
            return Ok(vec![Affected {
                box_id: BoxId::Channel(channel),
                pts,
                pts_count: 0,
            }]);
        }
        let Some(mailbox) = inner.boxes.get_mut(&own) else {
            return Ok(Vec::new());
        };
        let top = mailbox
            .messages
            .values()
            .rev()
            .find(|copy| copy.message.peer == peer)
            .map_or(0, |copy| copy.message.id);
        // 0 reads everything; a watermark never moves back, nor past the newest message.
        let wanted = if max_id == 0 { top } else { max_id.min(top) };
        let current = mailbox.marks.get(&peer).map_or(0, |marks| marks.0);
        if wanted <= current {
            return Ok(Vec::new());
        }
        // Room for the pts in both boxes first, so that a failure changes nothing.
        let other_pts = match peer {
            Peer::User(other) if other != user_id => inner
                .boxes
                .get(&BoxId::User(other))
                .map_or(0, |b| b.state.pts),
            _ => 0,
        };
        let Some(mailbox) = inner.boxes.get_mut(&own) else {
            return Ok(Vec::new());
        };
        if mailbox.state.pts == i32::MAX || other_pts == i32::MAX {
            return Err(MessageError::Exhausted);
        }
        mailbox.marks.entry(peer).or_default().0 = wanted;
        let pts = mailbox.take_pts(1)?;
        mailbox.log(
            pts,
            1,
            UpdateKind::ReadInbox {
                peer,
                max_id: wanted,
            },
            keep,
        );
        let mut affected = vec![Affected {
            box_id: own,
            pts,
            pts_count: 1,
        }];
        // A private chat: the sender sees its messages read.
        if let Peer::User(other) = peer {
            if other != user_id {
                let read_copies: Vec<i32> = mailbox
                    .messages
                    .values()
                    .filter(|copy| {
                        copy.message.peer == peer && !copy.message.out && copy.message.id <= wanted
                    })
                    .flat_map(|copy| copy.others.iter())
                    .filter(|(box_id, _)| *box_id == BoxId::User(other))
                    .map(|(_, id)| *id)
                    .collect();
                if let Some(&outbox_max) = read_copies.iter().max() {
                    if let Some(theirs) = inner.boxes.get_mut(&BoxId::User(other)) {
                        let marks = theirs.marks.entry(Peer::User(user_id)).or_default();
                        if outbox_max > marks.1 {
                            marks.1 = outbox_max;
                            let pts = theirs.take_pts(1)?;
                            theirs.log(
                                pts,
                                1,
                                UpdateKind::ReadOutbox {
                                    peer: Peer::User(user_id),
                                    max_id: outbox_max,
                                },
                                keep,
                            );
                            affected.push(Affected {
                                box_id: BoxId::User(other),
                                pts,
                                pts_count: 1,
                            });
                        }
                    }
                }
            }
        }
        Ok(affected)
    }

    fn create_group(
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
        let group = {
            let mut inner = self.lock();
            let id = inner
                .last_group_id
                .checked_add(1)
                .ok_or(MessageError::Exhausted)?;
            let group = if channel {
                Peer::Channel(id)
            } else {
                Peer::Chat(id)
            };
            let user_groups = inner.member_of.get(&creator).map_or(0, |groups| {
                groups.values().filter(|m| m.role.is_member()).count()
            });
            if user_groups >= self.config.max_groups_per_user {
                return Err(MessageError::ChannelsTooMuch);
            }
            inner.last_group_id = id;
            inner.infos.insert(group, info);
            group
        };
        self.set_participant(group, creator, Some(Participant::creator(creator, date)))?;
        Ok(group)
    }

    fn set_group_info(&self, group: Peer, info: Vec<u8>) -> Result<(), MessageError> {
        check_group(group)?;
        if info.len() > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        match self.lock().infos.get_mut(&group) {
            Some(slot) => {
                *slot = info;
                Ok(())
            }
            None => Err(MessageError::PeerIdInvalid),
        }
    }

    fn group_info(&self, group: Peer) -> Result<Option<Vec<u8>>, MessageError> {
        check_group(group)?;
        Ok(self.lock().infos.get(&group).cloned())
    }

    fn set_participant(
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
        let mut inner = self.lock();
        let state = inner.groups.get(&group);
        let before = state.and_then(|state| state.participants.get(&user_id).cloned());
        let counts = state.map(|state| state.counts).unwrap_or_default();
        let user_groups = inner.member_of.get(&user_id).map_or(0, |groups| {
            groups.values().filter(|m| m.role.is_member()).count()
        });
        check_room(
            group,
            &counts,
            before.as_ref(),
            participant.as_ref(),
            user_groups,
            &self.config,
        )?;
        let counts = recount(counts, before.as_ref(), participant.as_ref());
        let state = inner.groups.entry(group).or_default();
        state.counts = counts;
        match &participant {
            Some(participant) => {
                state.participants.insert(user_id, participant.clone());
            }
            None => {
                state.participants.remove(&user_id);
            }
        }
        if !participant.as_ref().is_some_and(|p| p.role.is_member()) {
            state.reads.remove(&user_id);
        }
        let groups = inner.member_of.entry(user_id).or_default();
        match &participant {
            Some(participant) => {
                groups.insert(
                    group,
                    Membership {
                        group,
                        role: participant.role,
                        date: participant.date,
                    },
                );
            }
            None => {
                groups.remove(&group);
            }
        }
        Ok(ParticipantChange { before, counts })
    }

    fn participant(&self, group: Peer, user_id: i64) -> Result<Option<Participant>, MessageError> {
        check_group(group)?;
        Ok(self
            .lock()
            .groups
            .get(&group)
            .and_then(|state| state.participants.get(&user_id).cloned()))
    }

    fn participants(
        &self,
        group: Peer,
        filter: ParticipantFilter,
        offset: usize,
        limit: usize,
    ) -> Result<ParticipantPage, MessageError> {
        check_group(group)?;
        check_limit(limit)?;
        let inner = self.lock();
        let Some(state) = inner.groups.get(&group) else {
            return Ok(ParticipantPage {
                participants: Vec::new(),
                count: 0,
            });
        };
        let mut listed: Vec<&Participant> = state
            .participants
            .values()
            .filter(|participant| matches(participant, filter))
            .collect();
        if filter == ParticipantFilter::Recent {
            listed.sort_by_key(|p| (std::cmp::Reverse(p.date), p.user_id));
        }
        Ok(ParticipantPage {
            count: listed.len(),
            participants: listed
                .into_iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect(),
        })
    }

    fn group_counts(&self, group: Peer) -> Result<GroupCounts, MessageError> {
        check_group(group)?;
        Ok(self
            .lock()
            .groups
            .get(&group)
            .map(|state| state.counts)
            .unwrap_or_default())
    }

    fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, MessageError> {
        Ok(self
            .lock()
            .member_of
            .get(&user_id)
            .map(|groups| groups.values().copied().collect())
            .unwrap_or_default())
    }

    fn channel_dialogs(&self, user_id: i64) -> Result<Vec<Dialog>, MessageError> {
        let inner = self.lock();
        let mut dialogs: Vec<Dialog> = inner
            .member_of
            .get(&user_id)
            .into_iter()
            .flat_map(|groups| groups.values())
            .filter_map(|membership| match membership.group {
                Peer::Channel(channel) if membership.role.is_member() => {
                    Some(inner.channel_dialog(channel, user_id, membership.date))
                }
                _ => None,
            })
            .collect();
        dialogs.sort_by_key(|d| std::cmp::Reverse((d.top_date, d.top_message, d.peer)));
        Ok(dialogs)
    }

    fn views(&self, channel: i64, ids: &[i32], increment: bool) -> Result<Vec<u32>, MessageError> {
        check_group(Peer::Channel(channel))?;
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let mut inner = self.lock();
        let exists: Vec<bool> = {
            let mailbox = inner.boxes.get(&BoxId::Channel(channel));
            ids.iter()
                .map(|id| mailbox.is_some_and(|m| m.messages.contains_key(id)))
                .collect()
        };
        let views = &mut inner
            .groups
            .entry(Peer::Channel(channel))
            .or_default()
            .views;
        Ok(ids
            .iter()
            .zip(exists)
            .map(|(id, exists)| {
                if !exists {
                    return 0;
                }
                let count = views.entry(*id).or_default();
                if increment {
                    *count = count.saturating_add(1);
                }
                *count
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random sends (with repeated random ids), edits, deletes and reads agree with the
        /// reference model after every step.
        #[test]
        fn memory_store_agrees_with_the_model(ops in super::super::conformance::ops()) {
            super::super::conformance::model_agrees(
                &|config| Box::new(MemoryMessageStore::with_config(config)),
                &ops,
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random joins, role changes, bans, leaves, posts and reads agree with the model.
        #[test]
        fn memory_memberships_agree_with_the_model(ops in super::super::conformance::member_ops()) {
            super::super::conformance::members_agree_with_the_model(
                &|config| Box::new(MemoryMessageStore::with_config(config)),
                &ops,
            );
        }
    }

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|config| {
            Box::new(MemoryMessageStore::with_config(config))
        });
    }
}
