//! The methods: each reads its parameters, calls the stock code of `columba-api` as the bot,
//! and answers with the Bot API's objects.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use columba_api::body::Forwarded;
use columba_api::bots::{self, PressAnswer};
use columba_api::messages::{self, Outgoing};
use columba_api::{ApiError, Backend, Ctx, upload};
use columba_mtproto::tl::Deserializable as _;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{BoxId, Peer, StoredMessage};
use columba_store::user::Account;
use serde_json::{Value, json};

use crate::entities::{self, Entity};
use crate::files::{self, FileKind, FileRef};
use crate::instance::{Instance, QueueLimits, Webhook};
use crate::markup;
use crate::objects::{self, View};
use crate::reply::BotApiError;
use crate::request::Params;
use crate::server::{Shared, blocking};
use crate::webhook;

/// The most updates one `getUpdates` gives (the Bot API's limit).
const MAX_LIMIT: i64 = 100;

/// Calls `method` (lower case) for `bot`.
pub(crate) async fn call(
    shared: &Arc<Shared>,
    instance: &Arc<Instance>,
    bot: Account,
    method: &str,
    params: Params,
) -> Result<Value, BotApiError> {
    let call = Call {
        shared: shared.clone(),
        instance: instance.clone(),
        bot,
        params,
    };
    match method {
        "getme" => Ok(objects::me(&call.bot)),
        "logout" | "close" => {
            shared.forget(call.bot.id);
            Ok(json!(true))
        }
        "getupdates" => call.get_updates().await,
        "setwebhook" => call.set_webhook().await,
        "deletewebhook" => call.delete_webhook().await,
        "getwebhookinfo" => Ok(call.webhook_info()),
        "sendchataction" => call.send_chat_action().await,
        "editmessagetext" => call.edit(true).await,
        "editmessagecaption" => call.edit(true).await,
        "editmessagereplymarkup" => call.edit(false).await,
        "getmycommands" => {
            let (backend, bot) = (call.shared.backend.clone(), call.bot.id);
            let commands = blocking(move || Ok(bots::commands_of(&backend, bot)?)).await?;
            Ok(Value::Array(
                commands
                    .iter()
                    .map(|c| json!({"command": c.command, "description": c.description}))
                    .collect(),
            ))
        }
        _ => {
            let method = method.to_owned();
            blocking(move || call.blocking_method(&method)).await
        }
    }
}

#[derive(Clone)]
struct Call {
    shared: Arc<Shared>,
    instance: Arc<Instance>,
    bot: Account,
    params: Params,
}

impl Call {
    fn backend(&self) -> &Backend {
        &self.shared.backend
    }

    fn ctx(&self) -> Ctx {
        Ctx::on_behalf_of(self.shared.server.clone(), self.bot.id)
    }

    fn view(&self) -> View<'_> {
        View {
            backend: &self.shared.backend,
            bot: &self.bot,
        }
    }

    fn limits(&self) -> QueueLimits {
        QueueLimits {
            max_queued: self.shared.options.max_queued_updates,
            ttl: self.shared.options.update_ttl,
        }
    }

    fn blocking_method(&self, method: &str) -> Result<Value, BotApiError> {
        match method {
            "sendmessage" => self.send_message(),
            "forwardmessage" => self.forward(true),
            "copymessage" => self.forward(false),
            "sendphoto" => self.send_file(FileKind::Photo),
            "senddocument" => self.send_file(FileKind::Document),
            "deletemessage" => self.delete_message(),
            "answercallbackquery" => self.answer_callback_query(),
            "setmycommands" => self.set_my_commands(),
            "deletemycommands" => {
                self.default_scope()?;
                bots::set_commands(self.backend(), self.bot.id, Vec::new())?;
                Ok(json!(true))
            }
            "getchat" => self.get_chat(),
            "getchatmember" => self.get_chat_member(),
            "getfile" => self.get_file(),
            _ => Err(BotApiError::method_not_found()),
        }
    }

    /// `chat_id`: a user's id, or `@username`; a private chat with a person who talked to
    /// the bot (Telegram's rule: bots do not start conversations). Blocking.
    fn chat(&self, name: &str) -> Result<Account, BotApiError> {
        let not_found = || BotApiError::bad_request("chat not found");
        let id = self.chat_any(name)?;
        let account = self
            .backend()
            .users
            .account(id)
            .map_err(ApiError::from)?
            .filter(|account| !account.deleted && account.id != self.bot.id)
            .ok_or_else(not_found)?;
        if self
            .backend()
            .users
            .is_blocked(account.id, self.bot.id)
            .map_err(ApiError::from)?
        {
            return Err(BotApiError::forbidden("bot was blocked by the user"));
        }
        // Telegram's rules for a bot's messages, as the MTProto send keeps them, with the
        // Bot API's words.
        match messages::check_bot_may_write(self.backend(), self.bot.id, account.id) {
            Ok(()) => Ok(account),
            Err(error) if error.name() == "USER_IS_BOT" => {
                Err(BotApiError::forbidden("bot can't send messages to bots"))
            }
            Err(error) if error.name() == "PEER_ID_INVALID" => Err(BotApiError::forbidden(
                "bot can't initiate conversation with a user",
            )),
            Err(error) => Err(error.into()),
        }
    }

    /// The text (or caption) and its entities: parsed by `parse_mode`, or as given.
    fn formatted(
        &self,
        text: String,
        entities_name: &str,
    ) -> Result<(String, Vec<Entity>), BotApiError> {
        match self.params.text("parse_mode").as_deref() {
            Some("HTML" | "html") => entities::parse_html(&text),
            Some("MarkdownV2" | "markdownv2") => entities::parse_markdown_v2(&text),
            Some("") | None => {
                let entities = match self.params.json(entities_name)? {
                    Some(list) => entities::from_json_list(&list)?,
                    None => Vec::new(),
                };
                Ok((text, entities))
            }
            Some(other) => Err(BotApiError::bad_request(format!(
                "unsupported parse_mode \"{other}\""
            ))),
        }
    }

    fn reply_markup(&self) -> Result<Option<enums::ReplyMarkup>, BotApiError> {
        self.params
            .json("reply_markup")?
            .map(|value| markup::from_json(&value))
            .transpose()
    }

    /// The message a send replies to (`reply_parameters.message_id`, or the older
    /// `reply_to_message_id`).
    fn reply_to(&self) -> Result<Option<i32>, BotApiError> {
        let id = match self.params.json("reply_parameters")? {
            Some(parameters) => parameters.get("message_id").and_then(Value::as_i64),
            None => self.params.int("reply_to_message_id")?,
        };
        id.map(|id| {
            i32::try_from(id)
                .map_err(|_| BotApiError::bad_request("message to be replied not found"))
        })
        .transpose()
    }

    /// Sends `outgoing` as the bot, tells the person, and answers with the bot's copy.
    fn send(&self, outgoing: Outgoing) -> Result<Value, BotApiError> {
        let sent = messages::send_blocking(self.backend(), self.bot.id, outgoing)?;
        // The person is told here, on the pool: the answer waits for it, which keeps the
        // order of a bot's messages to a person.
        if let Some(affected) = sent.delivered {
            columba_api::updates::notify(&self.shared.server, self.backend(), affected);
        }
        self.view()
            .message(&sent.message)?
            .ok_or_else(BotApiError::internal)
    }

    fn tl_entities(entities: &[Entity]) -> Option<Vec<enums::MessageEntity>> {
        (!entities.is_empty()).then(|| entities.iter().map(Entity::to_tl).collect())
    }

    fn send_message(&self) -> Result<Value, BotApiError> {
        let chat = self.chat("chat_id")?;
        let text = self.params.text("text").unwrap_or_default();
        let (text, entities) = self.formatted(text, "entities")?;
        if text.trim().is_empty() {
            return Err(BotApiError::bad_request("message text is empty"));
        }
        let outgoing = Outgoing::new(chat.id, rand::random(), text, None)
            .replying_to(self.reply_to()?)
            .with_markup(self.reply_markup()?, Self::tl_entities(&entities));
        self.send(outgoing)
    }

    /// A message of the bot's box in `chat`, by id.
    fn own_message(&self, chat: i64, id: i64, missing: &str) -> Result<StoredMessage, BotApiError> {
        let id = i32::try_from(id).map_err(|_| BotApiError::bad_request(missing.to_owned()))?;
        self.backend()
            .messages
            .get_messages(BoxId::User(self.bot.id), &[id])
            .map_err(ApiError::from)?
            .into_iter()
            .find(|message| message.peer == Peer::User(chat))
            .ok_or_else(|| BotApiError::bad_request(missing.to_owned()))
    }

    /// `forwardMessage` (with its origin) and `copyMessage` (without; an answer of its id).
    fn forward(&self, with_origin: bool) -> Result<Value, BotApiError> {
        let chat = self.chat("chat_id")?;
        let from = self.chat("from_chat_id")?;
        let source = self.own_message(
            from.id,
            self.params.required_int("message_id")?,
            "message to forward not found",
        )?;
        let body = columba_api::body::Body::decode(&source.body);
        let mut text = body.text.clone();
        let mut entities = body
            .entities
            .as_deref()
            .and_then(|bytes| Vec::<enums::MessageEntity>::from_bytes(bytes).ok());
        let mut reply_markup = None;
        if !with_origin {
            if let Some(caption) = self.params.text("caption") {
                let (caption, found) = self.formatted(caption, "caption_entities")?;
                text = caption;
                entities = Self::tl_entities(&found);
            }
            reply_markup = self.reply_markup()?;
        }
        let mut outgoing = Outgoing::new(chat.id, rand::random(), text, source.media.clone())
            .with_markup(reply_markup, entities);
        if with_origin {
            outgoing.forwarded = Some(body.forwarded.unwrap_or(Forwarded {
                from: source.from,
                date: source.date,
            }));
            return self.send(outgoing);
        }
        let sent = self.send(outgoing)?;
        Ok(json!({ "message_id": sent.get("message_id") }))
    }

    /// `sendPhoto` and `sendDocument`: a file from the request, or a `file_id` again.
    fn send_file(&self, kind: FileKind) -> Result<Value, BotApiError> {
        let chat = self.chat("chat_id")?;
        let field = match kind {
            FileKind::Photo => "photo",
            FileKind::Document => "document",
        };
        let media = self.media_of(field, kind)?;
        let caption = self.params.text("caption").unwrap_or_default();
        let (caption, entities) = self.formatted(caption, "caption_entities")?;
        let outgoing = Outgoing::new(chat.id, rand::random(), caption, Some(media.to_bytes()))
            .replying_to(self.reply_to()?)
            .with_markup(self.reply_markup()?, Self::tl_entities(&entities));
        self.send(outgoing)
    }

    /// The media of a file parameter: an uploaded part (by its own name or `attach://`), or
    /// a `file_id` the bot was given.
    fn media_of(&self, field: &str, kind: FileKind) -> Result<enums::MessageMedia, BotApiError> {
        let attached = self
            .params
            .text(field)
            .and_then(|text| text.strip_prefix("attach://").map(str::to_owned));
        let upload = match &attached {
            Some(name) => self.params.file(name),
            None => self.params.file(field),
        };
        if let Some(upload) = upload {
            let name = upload
                .file_name
                .clone()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("{field}.bin"));
            let (file_id, parts) = files::save(self.backend(), self.bot.id, &upload.bytes)?;
            let input_file: enums::InputFile = if upload.bytes.len() > files::BIG_FILE {
                types::InputFileBig {
                    id: file_id,
                    parts,
                    name: name.clone(),
                }
                .into()
            } else {
                types::InputFile {
                    id: file_id,
                    parts,
                    name: name.clone(),
                    md5_checksum: String::new(),
                }
                .into()
            };
            let input: enums::InputMedia = match kind {
                FileKind::Photo => types::InputMediaUploadedPhoto {
                    spoiler: false,
                    live_photo: false,
                    file: input_file,
                    stickers: None,
                    ttl_seconds: None,
                    video: None,
                }
                .into(),
                FileKind::Document => types::InputMediaUploadedDocument {
                    nosound_video: false,
                    force_file: true,
                    spoiler: false,
                    file: input_file,
                    thumb: None,
                    mime_type: upload
                        .content_type
                        .clone()
                        .unwrap_or_else(|| "application/octet-stream".to_owned()),
                    attributes: vec![types::DocumentAttributeFilename { file_name: name }.into()],
                    stickers: None,
                    video_cover: None,
                    video_timestamp: None,
                    ttl_seconds: None,
                }
                .into(),
            };
            return Ok(upload::media(self.backend(), self.bot.id, &input)?);
        }
        let id = self
            .params
            .text(field)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                BotApiError::bad_request(format!("there is no {field} in the request"))
            })?;
        if id.starts_with("http://") || id.starts_with("https://") {
            return Err(BotApiError::bad_request(
                "wrong HTTP URL specified: files by URL are not fetched by this server",
            ));
        }
        let file = FileRef::from_file_id(&self.backend().access, self.bot.id, &id)
            .ok_or_else(|| BotApiError::bad_request("wrong file identifier/HTTP URL specified"))?;
        Ok(file.media(self.backend()))
    }

    fn delete_message(&self) -> Result<Value, BotApiError> {
        let chat = self.chat_any("chat_id")?;
        let message = self.own_message(
            chat,
            self.params.required_int("message_id")?,
            "message to delete not found",
        )?;
        let changed = self
            .backend()
            .messages
            .delete(BoxId::User(self.bot.id), &[message.id], true)
            .map_err(ApiError::from)?;
        for affected in changed {
            columba_api::updates::notify(&self.shared.server, self.backend(), affected);
        }
        Ok(json!(true))
    }

    /// `chat_id` without the checks of a send (the chat may be any the bot has).
    fn chat_any(&self, name: &str) -> Result<i64, BotApiError> {
        let text = self.params.required_text(name)?;
        match text.strip_prefix('@') {
            Some(username) => Ok(self
                .backend()
                .users
                .by_username(username)
                .map_err(ApiError::from)?
                .ok_or_else(|| BotApiError::bad_request("chat not found"))?
                .id),
            None => text
                .trim()
                .parse()
                .map_err(|_| BotApiError::bad_request("chat not found")),
        }
    }

    fn answer_callback_query(&self) -> Result<Value, BotApiError> {
        let id: i64 = self
            .params
            .required_text("callback_query_id")?
            .parse()
            .map_err(|_| {
                BotApiError::bad_request(
                    "query is too old and response timeout expired or query ID is invalid",
                )
            })?;
        let mut answer = PressAnswer::default();
        answer.alert = self.params.flag("show_alert");
        answer.message = self.params.text("text").filter(|text| !text.is_empty());
        answer.url = self.params.text("url").filter(|url| !url.is_empty());
        answer.cache_time = i32::try_from(self.params.int("cache_time")?.unwrap_or(0)).unwrap_or(0);
        bots::answer_press(self.backend(), self.bot.id, id, answer)?;
        Ok(json!(true))
    }

    /// Only the default menu is kept (no other scopes or languages).
    fn default_scope(&self) -> Result<(), BotApiError> {
        let scope = self.params.json("scope")?;
        let default = scope
            .as_ref()
            .is_none_or(|scope| scope.get("type").and_then(Value::as_str) == Some("default"));
        let language = self.params.text("language_code").unwrap_or_default();
        if default && language.is_empty() {
            Ok(())
        } else {
            Err(BotApiError::bad_request(
                "only the default command menu is kept by this server",
            ))
        }
    }

    fn set_my_commands(&self) -> Result<Value, BotApiError> {
        self.default_scope()?;
        let list = self
            .params
            .json("commands")?
            .ok_or_else(|| BotApiError::bad_request("parameter \"commands\" is required"))?;
        let list = list
            .as_array()
            .ok_or_else(|| BotApiError::bad_request("can't parse commands JSON object"))?;
        let commands = list
            .iter()
            .map(|command| {
                let text = |name: &str| {
                    command
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                types::BotCommand {
                    ephemeral: false,
                    command: text("command"),
                    description: text("description"),
                }
                .into()
            })
            .collect();
        let commands = bots::checked_commands(commands)?;
        bots::set_commands(self.backend(), self.bot.id, commands)?;
        Ok(json!(true))
    }

    fn get_chat(&self) -> Result<Value, BotApiError> {
        let id = self.chat_any("chat_id")?;
        // The bot itself, or a person it has a chat with (not any account by its id).
        let account = if id == self.bot.id {
            self.bot.clone()
        } else {
            self.chat("chat_id")
                .map_err(|_| BotApiError::bad_request("chat not found"))?
        };
        let mut chat = objects::private_chat(&account);
        if let Value::Object(members) = &mut chat {
            members.insert("accent_color_id".into(), json!(0));
            members.insert("max_reaction_count".into(), json!(11));
            if !account.about.is_empty() {
                members.insert("bio".into(), json!(account.about));
            }
        }
        Ok(chat)
    }

    fn get_chat_member(&self) -> Result<Value, BotApiError> {
        let chat = self
            .chat("chat_id")
            .map_err(|_| BotApiError::bad_request("chat not found"))?
            .id;
        let user = self.params.required_int("user_id")?;
        if user != chat && user != self.bot.id {
            return Err(BotApiError::bad_request("user not found"));
        }
        let account = if user == self.bot.id {
            self.bot.clone()
        } else {
            self.backend()
                .users
                .account(user)
                .map_err(ApiError::from)?
                .ok_or_else(|| BotApiError::bad_request("user not found"))?
        };
        Ok(json!({"status": "member", "user": objects::user(&account)}))
    }

    fn get_file(&self) -> Result<Value, BotApiError> {
        let id = self.params.required_text("file_id")?;
        let file = FileRef::from_file_id(&self.backend().access, self.bot.id, &id)
            .ok_or_else(|| BotApiError::bad_request("invalid file_id"))?;
        if file.size > self.shared.options.max_download_bytes {
            return Err(BotApiError::bad_request("file is too big"));
        }
        Ok(file.file_json(&self.backend().access, self.bot.id))
    }

    async fn get_updates(&self) -> Result<Value, BotApiError> {
        if self
            .instance
            .webhook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Err(BotApiError::conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to \
                 delete the webhook first",
            ));
        }
        let offset = self.params.int("offset")?.unwrap_or(0);
        let limit = self
            .params
            .int("limit")?
            .unwrap_or(MAX_LIMIT)
            .clamp(1, MAX_LIMIT);
        let limit = usize::try_from(limit).unwrap_or(1);
        let timeout = self.params.int("timeout")?.unwrap_or(0).max(0);
        let timeout = Duration::from_secs(u64::try_from(timeout).unwrap_or(0))
            .min(self.shared.options.max_poll);
        let allowed = match self.params.json("allowed_updates")? {
            Some(Value::Array(kinds)) => Some(
                kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            Some(_) => return Err(BotApiError::bad_request("can't parse allowed_updates")),
            None => None,
        };
        let generation = self.instance.start_poll();
        let until = tokio::time::Instant::now() + timeout;
        {
            let instance = self.instance.clone();
            blocking(move || {
                if let Some(allowed) = allowed {
                    instance.set_allowed(allowed);
                }
                instance.confirm(offset);
                Ok(())
            })
            .await?;
        }
        loop {
            {
                let (instance, backend, bot, limits) = (
                    self.instance.clone(),
                    self.shared.backend.clone(),
                    self.bot.clone(),
                    self.limits(),
                );
                blocking(move || instance.fill(&backend, &bot, limits)).await?;
            }
            let batch = self.instance.batch(limit);
            if !batch.is_empty() || tokio::time::Instant::now() >= until {
                return Ok(Value::Array(batch));
            }
            if !self.instance.wait(generation, until).await || !self.instance.is_latest(generation)
            {
                return Err(BotApiError::conflict(
                    "terminated by other getUpdates request; make sure that only one bot \
                     instance is running",
                ));
            }
        }
    }

    async fn set_webhook(&self) -> Result<Value, BotApiError> {
        let url = self.params.text("url").unwrap_or_default();
        if url.is_empty() {
            return self.delete_webhook().await;
        }
        let uri = webhook::check_url(&url)?;
        webhook::check_address(&uri, self.shared.options.allow_local_webhooks).await?;
        let secret_token = self
            .params
            .text("secret_token")
            .filter(|token| !token.is_empty());
        if secret_token
            .as_deref()
            .is_some_and(|token| !webhook::secret_token_valid(token))
        {
            return Err(BotApiError::bad_request(
                "secret token contains unallowed characters",
            ));
        }
        let max_connections = self
            .params
            .int("max_connections")?
            .unwrap_or(40)
            .clamp(1, 100);
        if let Some(Value::Array(kinds)) = self.params.json("allowed_updates")? {
            self.instance.set_allowed(
                kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if self.params.flag("drop_pending_updates") {
            let (instance, backend, limits) = (
                self.instance.clone(),
                self.shared.backend.clone(),
                self.limits(),
            );
            blocking(move || instance.drop_pending(&backend, limits)).await?;
        }
        // A poll in progress ends with a conflict, as the official server does.
        self.instance.start_poll();
        let generation = {
            let mut slot = self
                .instance
                .webhook
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let generation = slot
                .as_ref()
                .map_or(1, |old| old.generation.wrapping_add(1));
            *slot = Some(Webhook {
                url,
                secret_token,
                max_connections: u32::try_from(max_connections).unwrap_or(40),
                last_error_date: None,
                last_error_message: None,
                generation,
            });
            generation
        };
        tokio::spawn(webhook::deliver(
            self.shared.clone(),
            self.instance.clone(),
            self.bot.clone(),
            generation,
        ));
        Ok(json!(true))
    }

    async fn delete_webhook(&self) -> Result<Value, BotApiError> {
        self.instance
            .webhook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if self.params.flag("drop_pending_updates") {
            let (instance, backend, limits) = (
                self.instance.clone(),
                self.shared.backend.clone(),
                self.limits(),
            );
            blocking(move || instance.drop_pending(&backend, limits)).await?;
        }
        Ok(json!(true))
    }

    fn webhook_info(&self) -> Value {
        let webhook = self
            .instance
            .webhook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        let mut info = json!({
            "url": webhook.url,
            "has_custom_certificate": false,
            "pending_update_count": self.instance.pending(),
        });
        if let Value::Object(members) = &mut info {
            if !webhook.url.is_empty() {
                members.insert("max_connections".into(), json!(webhook.max_connections));
            }
            if let Some(date) = webhook.last_error_date {
                members.insert("last_error_date".into(), json!(date));
            }
            if let Some(message) = webhook.last_error_message {
                members.insert("last_error_message".into(), json!(message));
            }
        }
        info
    }

    async fn send_chat_action(&self) -> Result<Value, BotApiError> {
        let action: enums::SendMessageAction = match self.params.required_text("action")?.as_str() {
            "typing" => types::SendMessageTypingAction {}.into(),
            "upload_photo" => types::SendMessageUploadPhotoAction { progress: 0 }.into(),
            "upload_document" => types::SendMessageUploadDocumentAction { progress: 0 }.into(),
            "record_video" => types::SendMessageRecordVideoAction {}.into(),
            "upload_video" => types::SendMessageUploadVideoAction { progress: 0 }.into(),
            "record_voice" => types::SendMessageRecordAudioAction {}.into(),
            "upload_voice" => types::SendMessageUploadAudioAction { progress: 0 }.into(),
            "find_location" => types::SendMessageGeoLocationAction {}.into(),
            "choose_sticker" => types::SendMessageChooseStickerAction {}.into(),
            _ => {
                return Err(BotApiError::bad_request(
                    "wrong parameter action in request",
                ));
            }
        };
        let chat = {
            let call = self.clone();
            blocking(move || Ok(call.chat("chat_id")?.id)).await?
        };
        let request = functions::messages::SetTyping {
            peer: self.input_peer(chat),
            top_msg_id: None,
            action,
        };
        messages::set_typing(self.ctx(), self.shared.backend.clone(), request).await?;
        Ok(json!(true))
    }

    fn input_peer(&self, user: i64) -> enums::InputPeer {
        types::InputPeerUser {
            user_id: user,
            access_hash: self.backend().access.user_hash(user),
        }
        .into()
    }

    /// `editMessageText` and `editMessageCaption` (`text`: the text changes), and
    /// `editMessageReplyMarkup`.
    async fn edit(&self, text: bool) -> Result<Value, BotApiError> {
        if self.params.has("inline_message_id") {
            return Err(BotApiError::bad_request("inline messages are not served"));
        }
        let chat = self.chat_any("chat_id")?;
        let id = i32::try_from(self.params.required_int("message_id")?)
            .map_err(|_| BotApiError::bad_request("message to edit not found"))?;
        let (message, entities) = if text {
            let name = if self.params.has("caption") {
                "caption"
            } else {
                "text"
            };
            let entities_name = if name == "caption" {
                "caption_entities"
            } else {
                "entities"
            };
            let given = self.params.text(name).unwrap_or_default();
            let (given, found) = self.formatted(given, entities_name)?;
            (Some(given), Self::tl_entities(&found))
        } else {
            (None, None)
        };
        let request = functions::messages::EditMessage {
            no_webpage: false,
            invert_media: false,
            peer: self.input_peer(chat),
            id,
            message,
            media: None,
            reply_markup: self.reply_markup()?,
            entities,
            schedule_date: None,
            schedule_repeat_period: None,
            quick_reply_shortcut_id: None,
            rich_message: None,
        };
        messages::edit_message(self.ctx(), self.shared.backend.clone(), request).await?;
        let (backend, bot) = (self.shared.backend.clone(), self.bot.clone());
        blocking(move || {
            let stored = backend
                .messages
                .get_messages(BoxId::User(bot.id), &[id])
                .map_err(ApiError::from)?;
            let view = View {
                backend: &backend,
                bot: &bot,
            };
            match stored.first() {
                Some(stored) => view.message(stored)?.ok_or_else(BotApiError::internal),
                None => Err(BotApiError::bad_request("message to edit not found")),
            }
        })
        .await
    }
}
