//! Messages and chats: sends (with the echo's reply to follow), history, messages by id,
//! dialogs, edits, and the answers of calls that change several boxes.

use super::*;

/// The longest text message, in characters (`message_length_max` of the config).
const MAX_TEXT_CHARS: usize = 4096;

impl EchoApp {
    pub(super) fn send(
        &self,
        user: i64,
        target: i64,
        random_id: i64,
        text: Vec<u8>,
        media: Option<Vec<u8>>,
    ) -> Handled {
        if String::from_utf8_lossy(&text).chars().count() > MAX_TEXT_CHARS {
            return Err(bad_request("MESSAGE_TOO_LONG"));
        }
        let request = private_message(user, target, random_id, text, media);
        let outcome = self.messages.send(&request).map_err(message_error)?;
        let mine = outcome
            .deliveries
            .first()
            .ok_or_else(|| internal("a send with no delivery"))?;
        let stored = self
            .messages
            .get_messages(BoxId::User(user), &[mine.message_id])
            .map_err(message_error)?;
        let message = stored
            .first()
            .ok_or_else(|| internal("a sent message is missing"))?;
        let answer = tl::updates(
            vec![
                types::UpdateMessageID {
                    id: mine.message_id,
                    random_id,
                }
                .into(),
                types::UpdateNewMessage {
                    message: tl::message(message),
                    pts: mine.pts,
                    pts_count: 1,
                }
                .into(),
            ],
            self.user_objects([user, target], user),
            message.date,
        );
        let mut after = Vec::new();
        if target == ECHO_USER_ID && user != ECHO_USER_ID {
            // A repeated send asks for the echo again: the server may have stopped between
            // storing the message and the echo's reply, and the client's resend (same
            // random_id, no answer seen) is the moment to make up for it. The reply's own
            // random_id follows from the message, so an echo that exists is not stored twice.
            after.push(After::Echo {
                user,
                text: request.body,
                media: request.media,
                source: mine.message_id,
            });
        } else if !outcome.repeated {
            if let Some(theirs) = outcome.deliveries.get(1) {
                after.push(After::Notify(vec![Affected {
                    box_id: theirs.box_id,
                    pts: theirs.pts,
                    pts_count: 1,
                }]));
            }
        }
        Ok((answer.to_bytes(), after))
    }

    pub(super) fn history(
        &self,
        user: i64,
        request: &functions::messages::GetHistory,
    ) -> Result<Vec<u8>, RpcError> {
        let target = self.input_peer(user, &request.peer)?;
        let page = self
            .messages
            .get_history(
                BoxId::User(user),
                Peer::User(target),
                &HistoryQuery {
                    offset_id: request.offset_id,
                    offset_date: request.offset_date,
                    add_offset: request.add_offset,
                    limit: request.limit,
                    max_id: request.max_id,
                    min_id: request.min_id,
                },
            )
            .map_err(message_error)?;
        let users = self.users_of(&page.messages, user);
        let messages: Vec<enums::Message> = page.messages.iter().map(tl::message).collect();
        let answer: enums::messages::Messages = if messages.len() == page.count {
            types::messages::Messages {
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users,
            }
            .into()
        } else {
            types::messages::MessagesSlice {
                inexact: false,
                count: i32::try_from(page.count).unwrap_or(i32::MAX),
                next_rate: None,
                offset_id_offset: Some(i32::try_from(page.offset_id_offset).unwrap_or(i32::MAX)),
                search_flood: None,
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users,
            }
            .into()
        };
        Ok(answer.to_bytes())
    }

    /// `messages.getMessages`: the messages asked for by id, `messageEmpty` for those missing.
    pub(super) fn messages_by_id(
        &self,
        user: i64,
        ids: &[enums::InputMessage],
    ) -> Result<Vec<u8>, RpcError> {
        if ids.len() > 200 {
            return Err(bad_request("LIMIT_INVALID"));
        }
        let wanted: Vec<i32> = ids
            .iter()
            .filter_map(|input| match input {
                enums::InputMessage::InputMessageID(input) => Some(input.id),
                _ => None,
            })
            .collect();
        let found = self
            .messages
            .get_messages(BoxId::User(user), &wanted)
            .map_err(message_error)?;
        let messages = wanted
            .iter()
            .map(|id| match found.iter().find(|message| message.id == *id) {
                Some(message) => tl::message(message),
                None => types::MessageEmpty {
                    id: *id,
                    peer_id: None,
                }
                .into(),
            })
            .collect();
        Ok(enums::messages::Messages::from(types::messages::Messages {
            messages,
            topics: Vec::new(),
            chats: Vec::new(),
            users: self.users_of(&found, user),
        })
        .to_bytes())
    }

    /// `messages.getDialogs`: a page of at most `limit` (1 to 100) chats below `offset_id`
    /// (the last top message of the page before; 0 for the first), as `messages.dialogs` when
    /// it is all there is and `messages.dialogsSlice` (with the whole count) otherwise.
    /// (`offset_date` and `offset_peer` add nothing: a top message's id is unique in the box.)
    pub(super) fn dialogs(
        &self,
        user: i64,
        offset_id: i32,
        limit: i32,
    ) -> Result<Vec<u8>, RpcError> {
        let limit = usize::try_from(limit.clamp(1, 100)).unwrap_or(100);
        // One more than asked, to know whether there is more.
        let mut dialogs = self
            .messages
            .dialogs(user, offset_id, limit + 1)
            .map_err(message_error)?;
        let partial = offset_id > 0 || dialogs.len() > limit;
        dialogs.truncate(limit);
        let tops: Vec<i32> = dialogs.iter().map(|dialog| dialog.top_message).collect();
        let messages = self
            .messages
            .get_messages(BoxId::User(user), &tops)
            .map_err(message_error)?;
        let users = self.users_of(&messages, user);
        let dialogs: Vec<enums::Dialog> = dialogs
            .iter()
            .map(|dialog| {
                types::Dialog {
                    pinned: false,
                    unread_mark: false,
                    view_forum_as_messages: false,
                    peer: tl::peer(dialog.peer),
                    top_message: dialog.top_message,
                    read_inbox_max_id: dialog.read_inbox_max_id,
                    read_outbox_max_id: dialog.read_outbox_max_id,
                    unread_count: dialog.unread_count,
                    unread_mentions_count: 0,
                    unread_reactions_count: 0,
                    unread_poll_votes_count: 0,
                    notify_settings: tl::notify_settings(),
                    pts: None,
                    draft: None,
                    folder_id: None,
                    ttl_period: None,
                }
                .into()
            })
            .collect();
        let messages: Vec<enums::Message> = messages.iter().map(tl::message).collect();
        let answer: enums::messages::Dialogs = if partial {
            let count = self.messages.dialog_count(user).map_err(message_error)?;
            types::messages::DialogsSlice {
                count: i32::try_from(count).unwrap_or(i32::MAX),
                dialogs,
                messages,
                chats: Vec::new(),
                users,
            }
            .into()
        } else {
            types::messages::Dialogs {
                dialogs,
                messages,
                chats: Vec::new(),
                users,
            }
            .into()
        };
        Ok(answer.to_bytes())
    }

    pub(super) fn edit(&self, user: i64, request: functions::messages::EditMessage) -> Handled {
        let box_id = BoxId::User(user);
        let current = self
            .messages
            .get_messages(box_id, &[request.id])
            .map_err(message_error)?;
        let current = current
            .first()
            .ok_or_else(|| bad_request("MESSAGE_ID_INVALID"))?;
        let body = match request.message {
            Some(text) => text.into_bytes(),
            None => current.body.clone(),
        };
        if body == current.body && request.media.is_none() {
            return Err(bad_request("MESSAGE_NOT_MODIFIED"));
        }
        let media = match &request.media {
            Some(input) => Some(self.media(user, input)?.to_bytes()),
            None => current.media.clone(),
        };
        let affected = self
            .messages
            .edit(user, box_id, request.id, body, media, now_unix())
            .map_err(message_error)?;
        let (mine, others): (Vec<Affected>, Vec<Affected>) = affected
            .into_iter()
            .partition(|affected| affected.box_id == box_id);
        let edited = self
            .messages
            .get_messages(box_id, &[request.id])
            .map_err(message_error)?;
        let edited = edited
            .first()
            .ok_or_else(|| bad_request("MESSAGE_ID_INVALID"))?;
        let (pts, pts_count) = mine
            .first()
            .map_or((0, 0), |affected| (affected.pts, affected.pts_count));
        let answer = tl::updates(
            vec![
                types::UpdateEditMessage {
                    message: tl::message(edited),
                    pts,
                    pts_count,
                }
                .into(),
            ],
            self.users_of(std::slice::from_ref(edited), user),
            now_unix(),
        );
        Ok((answer.to_bytes(), vec![After::Notify(others)]))
    }

    /// `messages.affectedMessages` for the caller's box; the other boxes are told.
    pub(super) fn affected(&self, user: i64, affected: Vec<Affected>) -> Handled {
        let box_id = BoxId::User(user);
        let (mine, others): (Vec<Affected>, Vec<Affected>) = affected
            .into_iter()
            .partition(|affected| affected.box_id == box_id);
        let (pts, pts_count) = match mine.first() {
            Some(affected) => (affected.pts, affected.pts_count),
            None => (self.messages.state(box_id).map_err(message_error)?.pts, 0),
        };
        let answer = enums::messages::AffectedMessages::from(types::messages::AffectedMessages {
            pts,
            pts_count,
        });
        Ok((answer.to_bytes(), vec![After::Notify(others)]))
    }
}
