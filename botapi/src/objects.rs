//! The Bot API's objects (`User`, `Chat`, `Message`, `Update`) from stored accounts and
//! messages, as one bot sees them.
//!
//! A bot's `message_id`s are the ids of its own box (each account has its own ids, as in
//! Telegram), and a private chat's `id` is the other user's id.

use columba_api::Backend;
use columba_api::body::Body;
use columba_mtproto::tl::Deserializable as _;
use columba_mtproto::tl::api::enums;
use columba_store::message::{BoxId, Peer, StoredMessage};
use columba_store::user::Account;
use serde_json::{Map, Value, json};

use crate::entities::{self, Entity};
use crate::files::FileRef;
use crate::markup;
use crate::reply::BotApiError;

/// A `User`.
pub fn user(account: &Account) -> Value {
    let mut user = Map::new();
    user.insert("id".into(), json!(account.id));
    user.insert("is_bot".into(), json!(account.is_bot()));
    user.insert("first_name".into(), json!(account.first_name));
    if !account.last_name.is_empty() {
        user.insert("last_name".into(), json!(account.last_name));
    }
    if let Some(username) = &account.username {
        user.insert("username".into(), json!(username));
    }
    Value::Object(user)
}

/// `getMe`'s `User`: the bot with what it can do.
pub fn me(account: &Account) -> Value {
    let mut me = user(account);
    if let Value::Object(members) = &mut me {
        for (name, value) in [
            ("can_join_groups", false),
            ("can_read_all_group_messages", false),
            ("supports_inline_queries", false),
            ("can_connect_to_business", false),
            ("has_main_web_app", false),
        ] {
            members.insert(name.into(), json!(value));
        }
    }
    me
}

/// The `Chat` of a private chat with `account`.
pub fn private_chat(account: &Account) -> Value {
    let mut chat = Map::new();
    chat.insert("id".into(), json!(account.id));
    chat.insert("type".into(), json!("private"));
    chat.insert("first_name".into(), json!(account.first_name));
    if !account.last_name.is_empty() {
        chat.insert("last_name".into(), json!(account.last_name));
    }
    if let Some(username) = &account.username {
        chat.insert("username".into(), json!(username));
    }
    Value::Object(chat)
}

/// What building messages for one bot needs.
pub struct View<'a> {
    /// The stores.
    pub backend: &'a Backend,
    /// The bot.
    pub bot: &'a Account,
}

impl View<'_> {
    fn account(&self, id: i64) -> Result<Account, BotApiError> {
        if id == self.bot.id {
            return Ok(self.bot.clone());
        }
        let account = self
            .backend
            .users
            .account(id)
            .map_err(columba_api::ApiError::from)?;
        Ok(account.unwrap_or_else(|| Account::new(id, "", "Deleted Account")))
    }

    /// A stored message of the bot's box, if it is one the Bot API shows (a private chat).
    pub fn message(&self, stored: &StoredMessage) -> Result<Option<Value>, BotApiError> {
        self.message_at_depth(stored, 0)
    }

    fn message_at_depth(
        &self,
        stored: &StoredMessage,
        depth: u8,
    ) -> Result<Option<Value>, BotApiError> {
        let Peer::User(peer) = stored.peer else {
            return Ok(None);
        };
        let body = Body::decode(&stored.body);
        if body.action.is_some() {
            return Ok(None);
        }
        let mut message = Map::new();
        message.insert("message_id".into(), json!(stored.id));
        message.insert("from".into(), user(&self.account(stored.from)?));
        message.insert("chat".into(), private_chat(&self.account(peer)?));
        message.insert("date".into(), json!(stored.date));
        if let Some(edited) = stored.edit_date {
            message.insert("edit_date".into(), json!(edited));
        }
        let file = stored
            .media
            .as_deref()
            .and_then(|bytes| enums::MessageMedia::from_bytes(bytes).ok())
            .and_then(|media| FileRef::of_media(&media));
        let (text_key, entities_key) = if file.is_some() {
            ("caption", "caption_entities")
        } else {
            ("text", "entities")
        };
        if let Some(file) = &file {
            let (name, value) = file.message_json(&self.backend.access, self.bot.id);
            message.insert(name.into(), value);
        }
        if !body.text.is_empty() || file.is_none() {
            message.insert(text_key.into(), json!(body.text));
        }
        let mut found: Vec<Entity> = body
            .entities
            .as_deref()
            .and_then(|bytes| Vec::<enums::MessageEntity>::from_bytes(bytes).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(Entity::from_tl)
            .collect();
        // Telegram marks the commands in what people send bots.
        if !stored.out && !found.iter().any(|e| e.kind == entities::Kind::BotCommand) {
            found.extend(entities::bot_commands(&body.text));
            found.sort_by_key(|entity| entity.offset);
        }
        if !found.is_empty() {
            message.insert(
                entities_key.into(),
                Value::Array(found.iter().map(Entity::to_json).collect()),
            );
        }
        if let Some(markup) = body
            .reply_markup
            .as_deref()
            .and_then(|bytes| enums::ReplyMarkup::from_bytes(bytes).ok())
            .and_then(|markup| markup::to_json(&markup))
        {
            message.insert("reply_markup".into(), markup);
        }
        if let Some(forwarded) = body.forwarded {
            message.insert(
                "forward_origin".into(),
                json!({
                    "type": "user",
                    "date": forwarded.date,
                    "sender_user": user(&self.account(forwarded.from)?),
                }),
            );
        }
        if depth == 0 {
            if let Some(reply) = body.reply_to_in(self.bot.id) {
                let replied = self
                    .backend
                    .messages
                    .get_messages(BoxId::User(self.bot.id), &[reply])
                    .map_err(columba_api::ApiError::from)?;
                if let Some(replied) = replied.first() {
                    if let Some(value) = self.message_at_depth(replied, 1)? {
                        message.insert("reply_to_message".into(), value);
                    }
                }
            }
        }
        Ok(Some(Value::Object(message)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    #[test]
    fn users_and_chats_show_what_they_have() {
        let mut ann = Account::new(5, "1555", "Ann").with_username("ann_l");
        ann.last_name = "Lee".into();
        assert_eq!(
            user(&ann),
            json!({"id": 5, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "username": "ann_l"})
        );
        let chat = private_chat(&Account::new(6, "", "Bo"));
        assert_eq!(
            chat,
            json!({"id": 6, "type": "private", "first_name": "Bo"})
        );
        let me = me(&Account::new(7, "", "B"));
        assert_eq!(me["can_join_groups"], json!(false));
    }
}
