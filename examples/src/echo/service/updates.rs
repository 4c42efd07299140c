//! Updates: the message store's update log as Telegram updates, for `getDifference` and for
//! the live sessions of other users; and the work that follows an answer (the echo's reply).

use super::*;

/// Entries of the update log a `getDifference` answer carries at most.
const DIFFERENCE_LIMIT: usize = 100;

impl EchoApp {
    pub(super) fn state(pts: i32) -> enums::updates::State {
        types::updates::State {
            pts,
            qts: 0,
            date: now_unix(),
            seq: 0,
            unread_count: 0,
        }
        .into()
    }
    /// The update of one log entry, as the box's owner sees it (`messages` holds the
    /// messages new-message and edit entries refer to).
    pub(super) fn update_of(
        entry: &UpdateEntry,
        messages: &[StoredMessage],
    ) -> Option<enums::Update> {
        let find = |id: i32| messages.iter().find(|message| message.id == id);
        let (pts, pts_count) = (entry.pts, entry.pts_count);
        Some(match &entry.kind {
            UpdateKind::NewMessage { id } => types::UpdateNewMessage {
                message: tl::message(find(*id)?),
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::EditMessage { id } => types::UpdateEditMessage {
                message: tl::message(find(*id)?),
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::DeleteMessages { ids } => types::UpdateDeleteMessages {
                messages: ids.clone(),
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::ReadInbox { peer, max_id } => types::UpdateReadHistoryInbox {
                folder_id: None,
                peer: tl::peer(*peer),
                top_msg_id: None,
                max_id: *max_id,
                still_unread_count: 0,
                pts,
                pts_count,
            }
            .into(),
            UpdateKind::ReadOutbox { peer, max_id } => types::UpdateReadHistoryOutbox {
                peer: tl::peer(*peer),
                max_id: *max_id,
                pts,
                pts_count,
            }
            .into(),
        })
    }

    pub(super) fn difference(&self, user: i64, pts: i32) -> Result<Vec<u8>, RpcError> {
        let box_id = BoxId::User(user);
        let answer: enums::updates::Difference = match self
            .messages
            .get_difference(box_id, pts, DIFFERENCE_LIMIT)
            .map_err(message_error)?
        {
            Difference::Empty { .. } => types::updates::DifferenceEmpty {
                date: now_unix(),
                seq: 0,
            }
            .into(),
            Difference::TooLong { pts } => types::updates::DifferenceTooLong { pts }.into(),
            Difference::Changes {
                entries,
                messages,
                complete,
                pts: box_pts,
            } => {
                let mut new_messages = Vec::new();
                let mut other_updates = Vec::new();
                for entry in &entries {
                    match (&entry.kind, Self::update_of(entry, &messages)) {
                        (
                            UpdateKind::NewMessage { .. },
                            Some(enums::Update::UpdateNewMessage(update)),
                        ) => {
                            new_messages.push(update.message);
                        }
                        (_, Some(update)) => other_updates.push(update),
                        (_, None) => {}
                    }
                }
                let users = self.users_of(&messages, user);
                let reached = entries.last().map_or(box_pts, |entry| entry.pts);
                if complete {
                    types::updates::Difference {
                        new_messages,
                        new_encrypted_messages: Vec::new(),
                        other_updates,
                        chats: Vec::new(),
                        users,
                        state: Self::state(box_pts),
                    }
                    .into()
                } else {
                    types::updates::DifferenceSlice {
                        new_messages,
                        new_encrypted_messages: Vec::new(),
                        other_updates,
                        chats: Vec::new(),
                        users,
                        intermediate_state: Self::state(reached),
                    }
                    .into()
                }
            }
        };
        Ok(answer.to_bytes())
    }

    /// Sends the owner of a box the updates of its log from `pts - pts_count` to `pts`.
    pub(super) fn notify(&self, affected: Affected) {
        let BoxId::User(owner) = affected.box_id else {
            return;
        };
        if owner == ECHO_USER_ID {
            // The echo user has no client to tell.
            return;
        }
        let from = affected.pts - affected.pts_count;
        let limit = usize::try_from(affected.pts_count.clamp(1, 100)).unwrap_or(1);
        let Ok(Difference::Changes {
            entries, messages, ..
        }) = self.messages.get_difference(affected.box_id, from, limit)
        else {
            return;
        };
        let updates: Vec<enums::Update> = entries
            .iter()
            .filter(|entry| entry.pts <= affected.pts)
            .filter_map(|entry| Self::update_of(entry, &messages))
            .collect();
        if updates.is_empty() {
            return;
        }
        let users = self.users_of(&messages, owner);
        self.push(owner, tl::updates(updates, users, now_unix()));
    }

    pub(super) fn push(&self, user: i64, updates: enums::Updates) {
        if let Some(server) = self.server() {
            server.send_update(user, Bytes::from(updates.to_bytes()));
        }
    }

    pub(super) fn run_after(&self, job: After) {
        match job {
            After::Echo {
                user,
                text,
                media,
                source,
            } => {
                self.echo(user, text, media, source);
            }
            After::Notify(affected) => {
                for affected in affected {
                    self.notify(affected);
                }
            }
        }
    }

    /// The echo user answers `user`'s message `source` with `text` and `media`; `true` if a
    /// reply was stored now (`false`: it was there already, or the store failed). The reply's
    /// random id follows from the message it answers, so that echoing the same message twice
    /// stores one reply.
    fn echo(&self, user: i64, text: Vec<u8>, media: Option<Vec<u8>>, source: i32) -> bool {
        let random_id = (user as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(source as u64) as i64;
        let sent = self
            .messages
            .send(&private_message(ECHO_USER_ID, user, random_id, text, media));
        match sent {
            Ok(outcome) if !outcome.repeated => {
                if let Some(theirs) = outcome.deliveries.get(1) {
                    self.notify(Affected {
                        box_id: theirs.box_id,
                        pts: theirs.pts,
                        pts_count: 1,
                    });
                }
                true
            }
            Ok(_) => false,
            // The same reply is being stored right now (a resend raced the start's
            // catch-up): it is answered.
            Err(MessageError::RandomIdDuplicate) => false,
            Err(error) => {
                tracing::warn!(%error, "the echo could not answer");
                false
            }
        }
    }

    /// Answers the messages to the echo user that a stop cut off before their reply: the
    /// newest `per_user` messages of every user's chat with the echo are echoed again, and
    /// the replies that exist already are not stored twice (their random ids follow from the
    /// messages). Returns how many replies were made up. Run once at start, before or while
    /// serving; it stops between two users once `stop` is set.
    pub fn catch_up_echoes(&self, per_user: i32, stop: &AtomicBool) -> usize {
        let mut made_up = 0;
        for user in self.users.ids() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if user == ECHO_USER_ID {
                continue;
            }
            let page = self.messages.get_history(
                BoxId::User(user),
                Peer::User(ECHO_USER_ID),
                &HistoryQuery {
                    offset_id: 0,
                    offset_date: 0,
                    add_offset: 0,
                    limit: per_user,
                    max_id: 0,
                    min_id: 0,
                },
            );
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, user, "echo catch-up: history unreadable");
                    continue;
                }
            };
            // Oldest first, so that made-up replies come in the order of their messages.
            for message in page
                .messages
                .into_iter()
                .rev()
                .filter(|message| message.out)
            {
                if self.echo(user, message.body, message.media, message.id) {
                    made_up += 1;
                }
            }
        }
        if made_up > 0 {
            tracing::info!(made_up, "echo replies a stop had cut off were sent");
        }
        made_up
    }
}
