//! Button presses: a person's `messages.getBotCallbackAnswer` waits, as a pending query,
//! for the bot's `messages.setBotCallbackAnswer` (or the timeout).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use columba_mtproto::tl::Deserializable as _;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{BoxId, Peer};
use tokio::sync::oneshot;

use super::{Bots, MAX_ANSWER_CHARS};
use crate::backend::Backend;
use crate::body::Body;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::{self, now_unix};

/// A press waiting for its bot.
#[derive(Debug)]
struct Waiting {
    bot: i64,
    user: i64,
    answer: oneshot::Sender<PressAnswer>,
}

/// Presses waiting for their bots, by query id.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    waiting: Mutex<HashMap<i64, Waiting>>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
impl Pending {
    /// The query ids of the presses waiting.
    pub(crate) fn waiting_ids(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }
}

/// Takes a press off the table when its request ends, answered or not (a timeout, or the
/// person's connection gone).
struct Registration {
    bots: Arc<Bots>,
    query_id: i64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.bots.backend.presses.lock().remove(&self.query_id);
    }
}

/// Whether `markup` has a callback button carrying `data`.
fn has_callback(markup: &[u8], data: &[u8]) -> bool {
    let Ok(enums::ReplyMarkup::ReplyInlineMarkup(markup)) = enums::ReplyMarkup::from_bytes(markup)
    else {
        return false;
    };
    markup.rows.iter().any(|row| {
        let enums::KeyboardInlineButtonRow::KeyboardInlineButtonRow(row) = row;
        row.buttons.iter().any(|button| {
            let enums::KeyboardInlineButton::KeyboardInlineButton(button) = button;
            matches!(
                &button.r#type,
                enums::InlineButtonType::InlineButtonTypeCallback(callback)
                    if callback.data == data
            )
        })
    })
}

/// What the bot is told of a press: its update (with the person), the same for a front
/// inside the server, and who the bot is.
struct Press {
    bot: i64,
    update: Bytes,
    feed: super::CallbackPress,
}

/// Checks a press of the button with `data` under message `msg_id` of the person's chat
/// with a bot, and builds the bot's `updateBotCallbackQuery`. Blocking.
fn press(
    bots: &Bots,
    user: i64,
    query_id: i64,
    request: &functions::messages::GetBotCallbackAnswer,
    data: &[u8],
) -> Result<Press, ApiError> {
    let backend = &bots.backend;
    let bot = backend.input_peer(user, &request.peer)?;
    if !backend.is_bot(bot)? {
        return Err(ApiError::bad_request("PEER_ID_INVALID"));
    }
    let invalid = || ApiError::bad_request("MESSAGE_ID_INVALID");
    let stored = backend
        .messages
        .get_messages(BoxId::User(user), &[request.msg_id])?
        .into_iter()
        .next()
        .filter(|stored| stored.peer == Peer::User(bot) && stored.from == bot)
        .ok_or_else(invalid)?;
    let body = Body::decode(&stored.body);
    if !body
        .reply_markup
        .as_deref()
        .is_some_and(|markup| has_callback(markup, data))
    {
        return Err(ApiError::bad_request("DATA_INVALID"));
    }
    // The same message has another id in the bot's box.
    let bot_msg_id = backend
        .messages
        .sent(bot, Peer::User(user), stored.random_id)?
        .unwrap_or_default()
        .iter()
        .find(|copy| copy.box_id == BoxId::User(bot))
        .map(|copy| copy.message_id)
        .ok_or_else(invalid)?;
    let chat_instance = backend.access.chat_instance(user, bot);
    let update = types::UpdateBotCallbackQuery {
        query_id,
        user_id: user,
        peer: objects::peer(Peer::User(user)),
        msg_id: bot_msg_id,
        chat_instance,
        data: Some(data.to_vec()),
        game_short_name: None,
    };
    let feed = super::CallbackPress {
        query_id,
        user_id: user,
        msg_id: bot_msg_id,
        chat_instance,
        data: data.to_vec(),
        date: now_unix(),
    };
    let updates = objects::updates(
        vec![update.into()],
        backend.user_objects([user], bot)?,
        now_unix(),
    );
    Ok(Press {
        bot,
        update: Bytes::from(updates.to_bytes()),
        feed,
    })
}

/// `messages.getBotCallbackAnswer`: a person presses a callback button of a bot's message;
/// the bot gets `updateBotCallbackQuery` and the press waits for its answer.
pub async fn get_bot_callback_answer(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::messages::GetBotCallbackAnswer,
) -> Result<enums::messages::BotCallbackAnswer, ApiError> {
    let user = ctx.user()?;
    let data = match (&request.data, request.game) {
        (Some(data), false) => data.clone(),
        // Games are not served.
        _ => return Err(ApiError::bad_request("DATA_INVALID")),
    };
    let query_id: i64 = rand::random();
    let press = {
        let bots = bots.clone();
        ctx.blocking(move || press(&bots, user, query_id, &request, &data))
            .await?
    };
    let (sender, receiver) = oneshot::channel();
    {
        let mut waiting = bots.backend.presses.lock();
        let mine = waiting.values().filter(|press| press.user == user).count();
        if waiting.len() >= bots.options.max_pending_callbacks
            || mine >= bots.options.max_pending_per_user
        {
            return Err(ApiError::flood_wait(
                bots.options.callback_timeout.as_secs().max(1),
            ));
        }
        waiting.insert(
            query_id,
            Waiting {
                bot: press.bot,
                user,
                answer: sender,
            },
        );
    }
    let _registration = Registration {
        bots: bots.clone(),
        query_id,
    };
    ctx.server().send_update(press.bot, press.update);
    bots.backend.bot_feeds.pressed(press.bot, press.feed);
    let Ok(Ok(answer)) = tokio::time::timeout(bots.options.callback_timeout, receiver).await else {
        return Err(ApiError::bad_request("BOT_RESPONSE_TIMEOUT"));
    };
    Ok(types::messages::BotCallbackAnswer {
        alert: answer.alert,
        has_url: answer.url.is_some(),
        native_ui: false,
        message: answer.message,
        url: answer.url,
        cache_time: answer.cache_time,
    }
    .into())
}

/// The bot's answer to a press.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PressAnswer {
    /// Show the text as an alert rather than a notice.
    pub alert: bool,
    /// The text (at most [`MAX_ANSWER_CHARS`] characters).
    pub message: Option<String>,
    /// A URL for the client to open.
    pub url: Option<String>,
    /// How long the client may keep the answer, in seconds.
    pub cache_time: i32,
}

/// Bot `bot` answers press `query_id`: `QUERY_ID_INVALID` when no press of its own waits
/// under that id (answered already, timed out, or another bot's), `MESSAGE_TOO_LONG` past
/// [`MAX_ANSWER_CHARS`].
pub fn answer_press(
    backend: &Backend,
    bot: i64,
    query_id: i64,
    answer: PressAnswer,
) -> Result<(), ApiError> {
    if answer
        .message
        .as_deref()
        .is_some_and(|message| message.chars().count() > MAX_ANSWER_CHARS)
    {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    let waiting = {
        let mut table = backend.presses.lock();
        match table.get(&query_id) {
            Some(waiting) if waiting.bot == bot => table.remove(&query_id),
            _ => None,
        }
    };
    let waiting = waiting.ok_or_else(|| ApiError::bad_request("QUERY_ID_INVALID"))?;
    // The person may have gone meanwhile: the answer is then dropped, as in Telegram.
    let _ = waiting.answer.send(PressAnswer {
        message: answer.message.filter(|message| !message.is_empty()),
        url: answer.url.filter(|url| !url.is_empty()),
        cache_time: answer.cache_time.max(0),
        ..answer
    });
    Ok(())
}

/// `messages.setBotCallbackAnswer`: the bot answers a press ([`answer_press`]).
pub async fn set_bot_callback_answer(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::messages::SetBotCallbackAnswer,
) -> Result<bool, ApiError> {
    let bot = ctx.user()?;
    let answer = PressAnswer {
        alert: request.alert,
        message: request.message,
        url: request.url,
        cache_time: request.cache_time,
    };
    answer_press(&bots.backend, bot, request.query_id, answer)?;
    Ok(true)
}
