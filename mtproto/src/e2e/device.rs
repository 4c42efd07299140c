//! All secret chats of one device, as one sans-IO state machine (feature `api`): the key
//! exchange with the relay's DH group, the chats it makes, and the order of what it asks the
//! relay to do.
//!
//! In the shape of quinn-proto: the application hands in what the user does ([`request`],
//! [`accept`], [`decline`], [`close`], [`send_text`], [`send`]), what the relay answers
//! ([`handle_dh_config`], [`handle_chat`], [`handle_send_error`]) and what it pushes
//! ([`handle_update`], [`handle_difference`]); it takes out the calls to make ([`poll_rpc`],
//! in order) and what happened ([`poll_event`]). Time and randomness come in as arguments.
//!
//! **Acknowledging the queue.** Each encrypted message the relay pushes has a `qts`; once the
//! relay is told that a qts was received (`messages.receivedQueue`) it deletes the message.
//! A device that acknowledged a message and then lost the state it changed (its sequence
//! counts, a key switch) could never get it back: the chat would break. So the machine
//! acknowledges only what a saved state covers: [`save`] gives the state with the qts it
//! covers, and once the application has stored it, [`saved`] queues the `receivedQueue` for
//! that qts (TDLib's order: save, then confirm).
//!
//! **Ordering.** The calls of one chat must reach the relay in the order [`poll_rpc`] gives
//! them (an `acceptEncryption` before the chat's first message; messages in their sequence
//! order): send each after the previous one's answer, or chain them with `invokeAfterMsg`.
//!
//! Left to the application: resolving users, uploading a file's encrypted parts (then
//! [`send_file`]), downloading and decrypting files ([`super::file`]), TTL timers.
//!
//! [`request`]: SecretChats::request
//! [`accept`]: SecretChats::accept
//! [`decline`]: SecretChats::decline
//! [`close`]: SecretChats::close
//! [`send_text`]: SecretChats::send_text
//! [`send`]: SecretChats::send
//! [`send_file`]: SecretChats::send_file
//! [`handle_dh_config`]: SecretChats::handle_dh_config
//! [`handle_chat`]: SecretChats::handle_chat
//! [`handle_send_error`]: SecretChats::handle_send_error
//! [`handle_update`]: SecretChats::handle_update
//! [`handle_difference`]: SecretChats::handle_difference
//! [`poll_rpc`]: SecretChats::poll_rpc
//! [`poll_event`]: SecretChats::poll_event
//! [`save`]: SecretChats::save
//! [`saved`]: SecretChats::saved

use std::collections::{BTreeMap, VecDeque};

use rand_core::{CryptoRng, RngCore};

use super::chat::random_id_of;
use super::chat::saved::{In, Out};
use super::chat::{ChatError, ChatLimits, LoadError, Outgoing, SecretChat};
use super::cipher::Side;
use super::exchange::{self, KeyRequest};
use crate::crypto::{DH_LEN, DhError, DhGroup, TELEGRAM_DH_G, TELEGRAM_DH_PRIME};
use crate::tl::api::{enums, functions, types};
use crate::tl::secret::enums as e2e;
use crate::tl::{Reader, Serializable as _};

/// The `random` asked of `messages.getDhConfig` (mixed into every exponent, never used
/// alone; TDLib asks for as much).
pub const DH_RANDOM_LEN: i32 = 256;
/// The format version of [`SecretChats::save`] (2: with the self-destruct timers).
const VERSION: u8 = 2;

mod ttl;
use ttl::{Timers, ttl_of};
/// Messages held past a hole in the qts, at most (more are dropped: the difference that
/// fills the hole brings them again).
const MAX_AHEAD: usize = 1000;
/// Messages held for chats whose acceptance has not come, at most (more are dropped: the
/// chat's sequence numbers ask for them again).
const MAX_EARLY: usize = 100;

/// The chat a message belongs to.
fn chat_of_message(message: &enums::EncryptedMessage) -> i32 {
    match message {
        enums::EncryptedMessage::EncryptedMessage(m) => m.chat_id,
        enums::EncryptedMessage::EncryptedMessageService(m) => m.chat_id,
    }
}

/// A call to make to the relay.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Rpc {
    /// `messages.getDhConfig`: answer with [`SecretChats::handle_dh_config`].
    GetDhConfig(functions::messages::GetDhConfig),
    /// `messages.requestEncryption`: answer with [`SecretChats::handle_chat`].
    RequestEncryption(functions::messages::RequestEncryption),
    /// `messages.acceptEncryption`: answer with [`SecretChats::handle_chat`].
    AcceptEncryption(functions::messages::AcceptEncryption),
    /// `messages.discardEncryption`.
    DiscardEncryption(functions::messages::DiscardEncryption),
    /// `messages.sendEncrypted`; an error goes to [`SecretChats::handle_send_error`].
    SendEncrypted(functions::messages::SendEncrypted),
    /// `messages.sendEncryptedService`; an error goes to [`SecretChats::handle_send_error`].
    SendEncryptedService(functions::messages::SendEncryptedService),
    /// `messages.sendEncryptedFile`; an error goes to [`SecretChats::handle_send_error`].
    SendEncryptedFile(functions::messages::SendEncryptedFile),
    /// `messages.receivedQueue`.
    ReceivedQueue(functions::messages::ReceivedQueue),
}

/// Why a chat ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// This device closed or declined it.
    Local,
    /// The other side closed, declined or cancelled it (or the relay did).
    Remote {
        /// Whether the other side asked for the history to be deleted.
        history_deleted: bool,
    },
    /// The other side broke the protocol's rules: the chat was closed from here.
    Broken(ChatError),
    /// The key exchange failed (a value out of range, a fingerprint that differs).
    KeyExchange,
}

/// What happened, for the application.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A user asks for a secret chat with this device: [`SecretChats::accept`] or
    /// [`SecretChats::decline`].
    Requested {
        /// The chat.
        chat_id: i32,
        /// Who asks.
        user_id: i64,
    },
    /// The chat's key is agreed: users may compare `visualization` out of band.
    Ready {
        /// The chat.
        chat_id: i32,
        /// The other user.
        user_id: i64,
        /// The 36-byte key picture.
        visualization: [u8; 36],
    },
    /// A message of the other side, in the chat's order.
    Message {
        /// The chat.
        chat_id: i32,
        /// The message (service messages the chat handles itself are not given).
        message: e2e::DecryptedMessage,
        /// The encrypted file it came with, if any.
        file: Option<types::EncryptedFile>,
    },
    /// The chat's key was replaced.
    Rekeyed {
        /// The chat.
        chat_id: i32,
        /// Keys replaced so far.
        generation: u32,
    },
    /// The other side's layer changed.
    LayerChanged {
        /// The chat.
        chat_id: i32,
        /// Its layer now.
        layer: i32,
    },
    /// The other side types (`updateEncryptedChatTyping` from the relay, or a
    /// `decryptedMessageActionTyping` inside the chat).
    Typing {
        /// The chat.
        chat_id: i32,
    },
    /// The other side deleted messages (`decryptedMessageActionDeleteMessages`).
    Deleted {
        /// The chat.
        chat_id: i32,
        /// The messages, by random id.
        random_ids: Vec<i64>,
    },
    /// The other side cleared the chat's history (`decryptedMessageActionFlushHistory`).
    HistoryFlushed {
        /// The chat.
        chat_id: i32,
    },
    /// The other side set the self-destruct timer (`decryptedMessageActionSetMessageTTL`);
    /// the timers themselves are the application's.
    TtlChanged {
        /// The chat.
        chat_id: i32,
        /// Seconds, 0 for none.
        ttl_seconds: i32,
    },
    /// The other side opened messages (`decryptedMessageActionReadMessages`: what starts a
    /// self-destruct timer).
    Opened {
        /// The chat.
        chat_id: i32,
        /// The messages, by random id.
        random_ids: Vec<i64>,
    },
    /// The other side took a screenshot (`decryptedMessageActionScreenshotMessages`).
    Screenshot {
        /// The chat.
        chat_id: i32,
        /// The messages it shows, by random id.
        random_ids: Vec<i64>,
    },
    /// The other side read this side's messages up to a date.
    Read {
        /// The chat.
        chat_id: i32,
        /// Up to this date.
        max_date: i32,
    },
    /// A message's self-destruct time is up: the application deletes it (on this device;
    /// the other side runs its own timer).
    Expired {
        /// The chat.
        chat_id: i32,
        /// The message, by random id.
        random_id: i64,
    },
    /// The chat ended.
    Closed {
        /// The chat.
        chat_id: i32,
        /// Why.
        reason: CloseReason,
    },
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No DH group yet: make the [`Rpc::GetDhConfig`] that [`SecretChats::request`] or
    /// [`SecretChats::accept`] queued, and hand in its answer first.
    #[error("no DH config yet")]
    NoDhConfig,
    /// No such chat in the state the command needs.
    #[error("no chat {0} in a state for this")]
    NoChat(i32),
    /// The chat could not send.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The relay's DH group failed its checks.
    #[error(transparent)]
    Dh(#[from] DhError),
}

/// One chat of the device.
enum Chat {
    /// This device asked; waiting for the other side's `g_b`.
    Requesting {
        user_id: i64,
        access_hash: Option<i64>,
        request: Box<KeyRequest>,
    },
    /// Asked of this device; waiting for the user.
    Requested {
        user_id: i64,
        access_hash: i64,
        g_a: Vec<u8>,
    },
    /// Established.
    Ready {
        user_id: i64,
        access_hash: i64,
        chat: Box<SecretChat>,
        /// When the current key was agreed (Unix seconds), and its generation then.
        keyed_at: u64,
        generation: u32,
        layer: i32,
    },
}

/// A device's saved state ([`SecretChats::save`]) and the qts it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The bytes to store (they hold keys: store them as secretly as the device's auth key).
    pub bytes: Vec<u8>,
    /// The last qts whose message the state includes: pass it to [`SecretChats::saved`] once
    /// the bytes are stored.
    pub qts: i32,
}

/// All secret chats of one device.
pub struct SecretChats {
    user_id: i64,
    group: Option<(DhGroup, i32)>,
    random: Vec<u8>,
    chats: BTreeMap<i32, Chat>,
    limits: ChatLimits,
    /// The highest qts whose message was taken, saved, and acknowledged.
    taken_qts: i32,
    acknowledged_qts: i32,
    /// Whether a `getDhConfig` is asked and not answered.
    config_asked: bool,
    /// Messages past a hole in the qts, by qts, until the hole is filled (or a difference
    /// fills it): taken in order only.
    ahead: BTreeMap<i32, enums::EncryptedMessage>,
    /// Messages of chats this device requested whose `g_b` has not come yet (the relay pushes
    /// the acceptance first, but a client may see them in another order), handed in once the
    /// chat is ready.
    early: Vec<enums::EncryptedMessage>,
    /// Self-destruct timers.
    timers: Timers,
    rpcs: VecDeque<Rpc>,
    events: VecDeque<Event>,
}

impl core::fmt::Debug for SecretChats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretChats")
            .field("user_id", &self.user_id)
            .field("chats", &self.chats.len())
            .field("taken_qts", &self.taken_qts)
            .finish_non_exhaustive()
    }
}

fn input_chat(chat_id: i32, access_hash: i64) -> enums::InputEncryptedChat {
    types::InputEncryptedChat {
        chat_id,
        access_hash,
    }
    .into()
}

impl SecretChats {
    /// The secret chats of a device of user `user_id`, none yet.
    pub fn new(user_id: i64, limits: ChatLimits) -> Self {
        Self {
            user_id,
            group: None,
            random: Vec::new(),
            chats: BTreeMap::new(),
            limits,
            taken_qts: 0,
            acknowledged_qts: 0,
            config_asked: false,
            ahead: BTreeMap::new(),
            early: Vec::new(),
            timers: Timers::default(),
            rpcs: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The qts to pass to `updates.getDifference`: the last one a saved state covers (the
    /// relay drops entries up to the qts a difference names, so it must not name one whose
    /// message is not saved).
    pub fn difference_qts(&self) -> i32 {
        self.acknowledged_qts
    }

    /// Whether a hole in the qts holds messages back: the application asks
    /// `updates.getDifference` from [`Self::difference_qts`] and hands the answer to
    /// [`Self::handle_difference`].
    pub fn needs_difference(&self) -> bool {
        !self.ahead.is_empty()
    }

    /// The device's qts from `updates.getState`, for a device that has none yet (a new one):
    /// messages are taken from the next qts on.
    pub fn handle_state(&mut self, qts: i32) {
        if self.taken_qts == 0 && self.acknowledged_qts == 0 {
            self.taken_qts = qts;
            self.acknowledged_qts = qts;
        }
    }

    /// The next call to make, in order.
    pub fn poll_rpc(&mut self) -> Option<Rpc> {
        self.rpcs.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The established chats' ids.
    pub fn ready_chats(&self) -> impl Iterator<Item = i32> + '_ {
        self.chats
            .iter()
            .filter(|(_, chat)| matches!(chat, Chat::Ready { .. }))
            .map(|(id, _)| *id)
    }

    fn ask_dh_config(&mut self) {
        if !self.config_asked {
            self.config_asked = true;
            let version = self.group.as_ref().map_or(0, |(_, version)| *version);
            self.rpcs
                .push_back(Rpc::GetDhConfig(functions::messages::GetDhConfig {
                    version,
                    random_length: DH_RANDOM_LEN,
                }));
        }
    }

    /// The relay's answer to [`Rpc::GetDhConfig`]: a new group is checked in full (safe
    /// prime, generator) unless it is Telegram's or the one checked before; its `random` is
    /// kept to mix into the next exponent.
    pub fn handle_dh_config<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        config: &enums::messages::DhConfig,
        rng: &mut R,
    ) -> Result<(), DeviceError> {
        self.config_asked = false;
        match config {
            enums::messages::DhConfig::DhConfig(config) => {
                let g = u32::try_from(config.g).map_err(|_| DhError::BadGenerator(0))?;
                // The full check (a safe prime by Miller-Rabin) once per (p, g): Telegram's
                // group is known good, and a group this device checked before is kept.
                let known = self
                    .group
                    .as_ref()
                    .filter(|(group, _)| group.prime().as_slice() == config.p && group.g() == g)
                    .map(|(group, _)| group.clone());
                let group = match known {
                    Some(group) => group,
                    None if config.p == TELEGRAM_DH_PRIME && g == TELEGRAM_DH_G => {
                        DhGroup::telegram()
                    }
                    None => DhGroup::checked(&config.p, g, rng)?,
                };
                self.group = Some((group, config.version));
                self.random.clone_from(&config.random);
            }
            enums::messages::DhConfig::DhConfigNotModified(config) => {
                if self.group.is_none() {
                    return Err(DeviceError::NoDhConfig);
                }
                self.random.clone_from(&config.random);
            }
        }
        Ok(())
    }

    fn group(&mut self) -> Result<DhGroup, DeviceError> {
        match &self.group {
            Some((group, _)) => Ok(group.clone()),
            None => {
                self.ask_dh_config();
                Err(DeviceError::NoDhConfig)
            }
        }
    }

    /// Asks `user` (`user_id`) for a secret chat; the chat's id. Without a DH group yet,
    /// [`DeviceError::NoDhConfig`] with the [`Rpc::GetDhConfig`] queued: ask again after its
    /// answer.
    pub fn request<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        user: enums::InputUser,
        user_id: i64,
        rng: &mut R,
    ) -> Result<i32, DeviceError> {
        let group = self.group()?;
        let request = KeyRequest::new(group, &self.random, rng);
        // Chat ids are the requester's random_id; zero and ids in use are drawn again.
        let chat_id = loop {
            let id = rng.next_u32() as i32;
            if id != 0 && !self.chats.contains_key(&id) {
                break id;
            }
        };
        self.rpcs.push_back(Rpc::RequestEncryption(
            functions::messages::RequestEncryption {
                user_id: user,
                random_id: chat_id,
                g_a: request.g_a().to_vec(),
            },
        ));
        self.chats.insert(
            chat_id,
            Chat::Requesting {
                user_id,
                access_hash: None,
                request: Box::new(request),
            },
        );
        Ok(chat_id)
    }

    /// Accepts the chat [`Event::Requested`] named. Without a DH group yet,
    /// [`DeviceError::NoDhConfig`] with the [`Rpc::GetDhConfig`] queued.
    pub fn accept<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        now: u64,
        rng: &mut R,
    ) -> Result<(), DeviceError> {
        if !matches!(self.chats.get(&chat_id), Some(Chat::Requested { .. })) {
            return Err(DeviceError::NoChat(chat_id));
        }
        let group = self.group()?;
        let Some(Chat::Requested {
            user_id,
            access_hash,
            g_a,
        }) = self.chats.remove(&chat_id)
        else {
            return Err(DeviceError::NoChat(chat_id));
        };
        let Ok((key, g_b)) = exchange::accept(&group, &g_a, &self.random, rng) else {
            self.discard(chat_id, false, CloseReason::KeyExchange);
            return Ok(());
        };
        self.rpcs.push_back(Rpc::AcceptEncryption(
            functions::messages::AcceptEncryption {
                peer: input_chat(chat_id, access_hash),
                g_b: g_b.to_vec(),
                key_fingerprint: key.fingerprint(),
            },
        ));
        self.establish(
            chat_id,
            user_id,
            access_hash,
            key,
            group,
            Side::Participant,
            now,
            rng,
        );
        Ok(())
    }

    /// Declines the chat [`Event::Requested`] named.
    pub fn decline(&mut self, chat_id: i32) -> Result<(), DeviceError> {
        if !matches!(self.chats.get(&chat_id), Some(Chat::Requested { .. })) {
            return Err(DeviceError::NoChat(chat_id));
        }
        self.discard(chat_id, false, CloseReason::Local);
        Ok(())
    }

    /// Closes a chat (or cancels a request), deleting its history on both sides if asked.
    pub fn close(&mut self, chat_id: i32, delete_history: bool) -> Result<(), DeviceError> {
        if !self.chats.contains_key(&chat_id) {
            return Err(DeviceError::NoChat(chat_id));
        }
        self.discard(chat_id, delete_history, CloseReason::Local);
        Ok(())
    }

    /// Forgets a chat, queues its `discardEncryption` and tells the application.
    fn discard(&mut self, chat_id: i32, delete_history: bool, reason: CloseReason) {
        self.chats.remove(&chat_id);
        self.timers.forget_chat(chat_id);
        self.rpcs.push_back(Rpc::DiscardEncryption(
            functions::messages::DiscardEncryption {
                delete_history,
                chat_id,
            },
        ));
        self.events.push_back(Event::Closed { chat_id, reason });
    }

    #[allow(clippy::too_many_arguments, reason = "a chat's every part")]
    fn establish<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        user_id: i64,
        access_hash: i64,
        key: super::ChatKey,
        group: DhGroup,
        side: Side,
        now: u64,
        rng: &mut R,
    ) {
        let visualization = key.visualization();
        let mut chat = SecretChat::new(side, key, group, self.limits);
        // A chat's first message says the layer this side speaks.
        let notify = chat.notify_layer(rng);
        let layer = chat.peer_layer();
        self.chats.insert(
            chat_id,
            Chat::Ready {
                user_id,
                access_hash,
                chat: Box::new(chat),
                keyed_at: now,
                generation: 0,
                layer,
            },
        );
        self.events.push_back(Event::Ready {
            chat_id,
            user_id,
            visualization,
        });
        match notify {
            Ok(outgoing) => self.queue_send(chat_id, access_hash, outgoing, None),
            Err(error) => self.discard(chat_id, false, CloseReason::Broken(error)),
        }
    }

    fn queue_send(
        &mut self,
        chat_id: i32,
        access_hash: i64,
        outgoing: Outgoing,
        file: Option<enums::InputEncryptedFile>,
    ) {
        let peer = input_chat(chat_id, access_hash);
        let rpc = match (outgoing.service, file) {
            (true, _) => Rpc::SendEncryptedService(functions::messages::SendEncryptedService {
                peer,
                random_id: outgoing.random_id,
                data: outgoing.data,
            }),
            (false, Some(file)) => Rpc::SendEncryptedFile(functions::messages::SendEncryptedFile {
                silent: false,
                peer,
                random_id: outgoing.random_id,
                data: outgoing.data,
                file,
            }),
            (false, None) => Rpc::SendEncrypted(functions::messages::SendEncrypted {
                silent: false,
                peer,
                random_id: outgoing.random_id,
                data: outgoing.data,
            }),
        };
        self.rpcs.push_back(rpc);
    }

    /// A chat from the relay: the answer to [`Rpc::RequestEncryption`] or
    /// [`Rpc::AcceptEncryption`], or an `updateEncryption`'s.
    pub fn handle_chat<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat: &enums::EncryptedChat,
        now: u64,
        rng: &mut R,
    ) {
        match chat {
            enums::EncryptedChat::EncryptedChatWaiting(waiting) => {
                if let Some(Chat::Requesting { access_hash, .. }) = self.chats.get_mut(&waiting.id)
                {
                    *access_hash = Some(waiting.access_hash);
                }
            }
            enums::EncryptedChat::EncryptedChatRequested(requested) => {
                // A request of another user to this device; a repeat changes nothing.
                if requested.admin_id != self.user_id
                    && requested.participant_id == self.user_id
                    && !self.chats.contains_key(&requested.id)
                {
                    self.chats.insert(
                        requested.id,
                        Chat::Requested {
                            user_id: requested.admin_id,
                            access_hash: requested.access_hash,
                            g_a: requested.g_a.clone(),
                        },
                    );
                    self.events.push_back(Event::Requested {
                        chat_id: requested.id,
                        user_id: requested.admin_id,
                    });
                }
            }
            enums::EncryptedChat::EncryptedChat(ready) => {
                // Only the requester completes here; the acceptor's own answer repeats g_a.
                if !matches!(self.chats.get(&ready.id), Some(Chat::Requesting { .. })) {
                    return;
                }
                let Some(Chat::Requesting {
                    user_id, request, ..
                }) = self.chats.remove(&ready.id)
                else {
                    return;
                };
                let group = self
                    .group
                    .as_ref()
                    .map(|(group, _)| group.clone())
                    .unwrap_or_else(DhGroup::telegram);
                match request.complete(&ready.g_a_or_b, ready.key_fingerprint) {
                    Ok(key) => {
                        self.establish(
                            ready.id,
                            user_id,
                            ready.access_hash,
                            key,
                            group,
                            Side::Creator,
                            now,
                            rng,
                        );
                        // Messages of the chat that came before its acceptance, in order.
                        let early = std::mem::take(&mut self.early);
                        let (mine, others): (Vec<_>, Vec<_>) = early
                            .into_iter()
                            .partition(|message| chat_of_message(message) == ready.id);
                        self.early = others;
                        for message in &mine {
                            self.open(message, now, rng);
                        }
                    }
                    Err(_) => self.discard(ready.id, false, CloseReason::KeyExchange),
                }
            }
            enums::EncryptedChat::EncryptedChatDiscarded(discarded) => {
                self.timers.forget_chat(discarded.id);
                if self.chats.remove(&discarded.id).is_some() {
                    self.events.push_back(Event::Closed {
                        chat_id: discarded.id,
                        reason: CloseReason::Remote {
                            history_deleted: discarded.history_deleted,
                        },
                    });
                }
            }
            enums::EncryptedChat::EncryptedChatEmpty(_) => {}
        }
    }

    /// An error the relay gave a send of chat `chat_id` (its name): `ENCRYPTION_DECLINED`
    /// and the ids that say the chat is gone close it.
    pub fn handle_send_error(&mut self, chat_id: i32, error: &str) {
        if matches!(
            error,
            "ENCRYPTION_DECLINED" | "ENCRYPTION_ID_INVALID" | "CHAT_ID_INVALID"
        ) && self.chats.remove(&chat_id).is_some()
        {
            self.events.push_back(Event::Closed {
                chat_id,
                reason: CloseReason::Remote {
                    history_deleted: false,
                },
            });
        }
    }

    /// A text message to a ready chat.
    pub fn send_text<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        text: &str,
        now: u64,
        rng: &mut R,
    ) -> Result<i64, DeviceError> {
        self.send_with(chat_id, None, now, rng, |chat, rng| {
            chat.send_text(text, rng)
        })
    }

    /// A message (service or not) to a ready chat.
    pub fn send<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        message: e2e::DecryptedMessage,
        now: u64,
        rng: &mut R,
    ) -> Result<i64, DeviceError> {
        let (random_id, ttl) = (random_id_of(&message), ttl_of(&message));
        let sent = self.send_with(chat_id, None, now, rng, |chat, rng| chat.send(message, rng))?;
        self.timers.track(chat_id, random_id, ttl, false);
        Ok(sent)
    }

    /// A message with a file whose encrypted parts the application uploaded (`file`), its
    /// media carrying the file's key and IV ([`super::FileKey`]).
    pub fn send_file<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        message: e2e::DecryptedMessage,
        file: enums::InputEncryptedFile,
        now: u64,
        rng: &mut R,
    ) -> Result<i64, DeviceError> {
        let (random_id, ttl) = (random_id_of(&message), ttl_of(&message));
        let sent = self.send_with(chat_id, Some(file), now, rng, |chat, rng| {
            chat.send(message, rng)
        })?;
        self.timers.track(chat_id, random_id, ttl, false);
        Ok(sent)
    }

    /// This device's user saw these received messages: the timers of those with a TTL start,
    /// and the other side is told (`decryptedMessageActionReadMessages`, which starts the
    /// sender's timers).
    pub fn open_messages<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        random_ids: &[i64],
        now: u64,
        rng: &mut R,
    ) -> Result<(), DeviceError> {
        let timed = self.timers.opened_here(chat_id, random_ids, now);
        if timed.is_empty() {
            return Ok(());
        }
        let read = crate::tl::secret::types::DecryptedMessageService {
            random_id: rng.next_u64() as i64,
            action: crate::tl::secret::types::DecryptedMessageActionReadMessages {
                random_ids: timed,
            }
            .into(),
        };
        self.send(chat_id, read.into(), now, rng).map(|_| ())
    }

    /// When [`Self::handle_timeout`] is next due (Unix seconds), if a timer runs.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    /// The time is `now`: the messages whose self-destruct time is up become
    /// [`Event::Expired`].
    pub fn handle_timeout(&mut self, now: u64) {
        for (chat_id, random_id) in self.timers.expire(now) {
            self.events.push_back(Event::Expired { chat_id, random_id });
        }
    }

    /// What the sends share: the chat makes the message, its call is queued, and the chat's
    /// counters are looked at; the message's random id.
    fn send_with<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        file: Option<enums::InputEncryptedFile>,
        now: u64,
        rng: &mut R,
        make: impl FnOnce(&mut SecretChat, &mut R) -> Result<Outgoing, ChatError>,
    ) -> Result<i64, DeviceError> {
        let (chat, access_hash) = self.ready(chat_id)?;
        let outgoing = make(chat, rng)?;
        let random_id = outgoing.random_id;
        self.queue_send(chat_id, access_hash, outgoing, file);
        self.after_change(chat_id, now, rng);
        Ok(random_id)
    }

    fn ready(&mut self, chat_id: i32) -> Result<(&mut SecretChat, i64), DeviceError> {
        match self.chats.get_mut(&chat_id) {
            Some(Chat::Ready {
                chat, access_hash, ..
            }) => Ok((chat, *access_hash)),
            _ => Err(DeviceError::NoChat(chat_id)),
        }
    }

    /// After a chat changed: the events its counters say (a new key, a new layer), and a
    /// re-key when one is due.
    fn after_change<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        chat_id: i32,
        now: u64,
        rng: &mut R,
    ) {
        let Some(Chat::Ready {
            chat,
            access_hash,
            keyed_at,
            generation,
            layer,
            ..
        }) = self.chats.get_mut(&chat_id)
        else {
            return;
        };
        let access_hash = *access_hash;
        let mut events = Vec::new();
        if chat.key_generation() != *generation {
            *generation = chat.key_generation();
            *keyed_at = now;
            events.push(Event::Rekeyed {
                chat_id,
                generation: *generation,
            });
        }
        if chat.peer_layer() != *layer {
            *layer = chat.peer_layer();
            events.push(Event::LayerChanged {
                chat_id,
                layer: *layer,
            });
        }
        let rekey = if chat.needs_rekey(now.saturating_sub(*keyed_at)) {
            chat.start_rekey(rng)
        } else {
            Ok(None)
        };
        self.events.extend(events);
        match rekey {
            Ok(Some(outgoing)) => self.queue_send(chat_id, access_hash, outgoing, None),
            Ok(None) => {}
            Err(error) => self.discard(chat_id, false, CloseReason::Broken(error)),
        }
    }

    /// An update the relay pushed: `updateEncryption`, `updateNewEncryptedMessage`,
    /// `updateEncryptedChatTyping`, `updateEncryptedMessagesRead` (others are ignored).
    pub fn handle_update<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        update: &enums::Update,
        now: u64,
        rng: &mut R,
    ) {
        match update {
            enums::Update::UpdateEncryption(update) => self.handle_chat(&update.chat, now, rng),
            enums::Update::UpdateNewEncryptedMessage(update) => {
                self.handle_message(&update.message, update.qts, now, rng);
            }
            enums::Update::UpdateEncryptedChatTyping(update)
                if self.chats.contains_key(&update.chat_id) =>
            {
                self.events.push_back(Event::Typing {
                    chat_id: update.chat_id,
                });
            }
            enums::Update::UpdateEncryptedMessagesRead(update)
                if self.chats.contains_key(&update.chat_id) =>
            {
                self.events.push_back(Event::Read {
                    chat_id: update.chat_id,
                    max_date: update.max_date,
                });
            }
            _ => {}
        }
    }

    /// The `new_encrypted_messages` of an `updates.difference` (or slice) whose state has
    /// qts `qts`: they are the entries before it, in order.
    pub fn handle_difference<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        messages: &[enums::EncryptedMessage],
        qts: i32,
        now: u64,
        rng: &mut R,
    ) {
        let count = i32::try_from(messages.len()).unwrap_or(i32::MAX);
        let first = qts.saturating_sub(count).saturating_add(1);
        for (offset, message) in messages.iter().enumerate() {
            let offset = i32::try_from(offset).unwrap_or(i32::MAX);
            self.handle_message(message, first.saturating_add(offset), now, rng);
        }
    }

    /// One encrypted message with its qts. A qts taken before is a repeat, dropped.
    fn handle_message<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &enums::EncryptedMessage,
        qts: i32,
        now: u64,
        rng: &mut R,
    ) {
        if qts <= self.taken_qts {
            return;
        }
        // Taken in qts order: one past a hole waits for the hole (a device that has taken
        // nothing yet starts where the relay is).
        if self.taken_qts != 0 && qts != self.taken_qts.saturating_add(1) {
            if self.ahead.len() < MAX_AHEAD {
                self.ahead.insert(qts, message.clone());
            }
            return;
        }
        self.take(message, qts, now, rng);
        while let Some(next) = self.ahead.remove(&self.taken_qts.saturating_add(1)) {
            let qts = self.taken_qts.saturating_add(1);
            self.take(&next, qts, now, rng);
        }
        // What the hole left behind: anything at or below the qts taken is a repeat.
        let taken = self.taken_qts;
        self.ahead.retain(|qts, _| *qts > taken);
    }

    /// Takes one message, the next in qts order.
    fn take<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &enums::EncryptedMessage,
        qts: i32,
        now: u64,
        rng: &mut R,
    ) {
        self.taken_qts = qts;
        self.open(message, now, rng);
    }

    /// Opens one message in its chat.
    fn open<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &enums::EncryptedMessage,
        now: u64,
        rng: &mut R,
    ) {
        let (chat_id, bytes, file) = match message {
            enums::EncryptedMessage::EncryptedMessage(m) => {
                let file = match &m.file {
                    enums::EncryptedFile::EncryptedFile(file) => Some(file.clone()),
                    enums::EncryptedFile::EncryptedFileEmpty(_) => None,
                };
                (m.chat_id, &m.bytes, file)
            }
            enums::EncryptedMessage::EncryptedMessageService(m) => (m.chat_id, &m.bytes, None),
        };
        if matches!(self.chats.get(&chat_id), Some(Chat::Requesting { .. })) {
            // Its acceptance has not come yet; beyond the bound a message waits for the
            // chat's own Resend instead.
            if self.early.len() < MAX_EARLY {
                self.early.push(message.clone());
            }
            return;
        }
        let Some(Chat::Ready {
            chat, access_hash, ..
        }) = self.chats.get_mut(&chat_id)
        else {
            return;
        };
        let access_hash = *access_hash;
        match chat.receive(bytes, rng) {
            Ok(Ok(received)) => {
                let mut file = file;
                for message in received.messages {
                    self.timers
                        .track(chat_id, random_id_of(&message), ttl_of(&message), true);
                    let event = action_event(chat_id, &message).unwrap_or_else(|| Event::Message {
                        chat_id,
                        message,
                        // A file belongs to the message it came with, the first one out.
                        file: file.take(),
                    });
                    if let Event::Opened { random_ids, .. } = &event {
                        self.timers.opened_there(chat_id, random_ids, now);
                    }
                    self.events.push_back(event);
                }
                for outgoing in received.send {
                    self.queue_send(chat_id, access_hash, outgoing, None);
                }
                self.after_change(chat_id, now, rng);
            }
            // Not ours to read (forged, or under a key long gone): dropped.
            Ok(Err(_)) => {}
            Err(error) => self.discard(chat_id, false, CloseReason::Broken(error)),
        }
    }

    /// The device's state with the last qts it covers. Store the bytes, then call
    /// [`Self::saved`] with the qts.
    pub fn save(&self) -> Saved {
        let mut out = Out::default();
        out.u8(VERSION);
        out.i64(self.user_id);
        out.i32(self.taken_qts);
        out.i32(self.acknowledged_qts);
        match &self.group {
            Some((group, version)) => {
                out.u8(1);
                out.bytes(group.prime());
                out.u32(group.g());
                out.i32(*version);
            }
            None => out.u8(0),
        }
        out.u32(u32::try_from(self.limits.max_held).unwrap_or(u32::MAX));
        out.u32(u32::try_from(self.limits.max_outbox).unwrap_or(u32::MAX));
        out.u32(u32::try_from(self.chats.len()).unwrap_or(u32::MAX));
        for (chat_id, chat) in &self.chats {
            out.i32(*chat_id);
            match chat {
                Chat::Requesting {
                    user_id,
                    access_hash,
                    request,
                } => {
                    out.u8(0);
                    out.i64(*user_id);
                    match access_hash {
                        Some(hash) => {
                            out.u8(1);
                            out.i64(*hash);
                        }
                        None => out.u8(0),
                    }
                    out.bytes(request.secret());
                }
                Chat::Requested {
                    user_id,
                    access_hash,
                    g_a,
                } => {
                    out.u8(1);
                    out.i64(*user_id);
                    out.i64(*access_hash);
                    out.bytes(g_a);
                }
                Chat::Ready {
                    user_id,
                    access_hash,
                    chat,
                    keyed_at,
                    generation,
                    layer,
                } => {
                    out.u8(2);
                    out.i64(*user_id);
                    out.i64(*access_hash);
                    out.i64(i64::try_from(*keyed_at).unwrap_or(i64::MAX));
                    out.u32(*generation);
                    out.i32(*layer);
                    chat.save_into(&mut out);
                }
            }
        }
        self.timers.save_into(&mut out);
        Saved {
            bytes: out.0,
            qts: self.taken_qts,
        }
    }

    /// The state [`Self::save`] gave up to `qts` is stored: the relay may drop the messages
    /// up to it (the `receivedQueue` is queued).
    pub fn saved(&mut self, qts: i32) {
        if qts > self.acknowledged_qts && qts <= self.taken_qts {
            self.acknowledged_qts = qts;
            self.rpcs
                .push_back(Rpc::ReceivedQueue(functions::messages::ReceivedQueue {
                    max_qts: qts,
                }));
        }
    }

    /// Reads a device's state [`Self::save`] gave; nothing of it is trusted. Calls and
    /// events not taken before the save are not in it: a message whose answer was not sent
    /// is asked for again by the other side's `Resend`, and messages not acknowledged come
    /// again from the relay.
    pub fn load(bytes: &[u8]) -> Result<Self, LoadError> {
        let mut input = In(Reader::new(bytes));
        if input.u8("version")? != VERSION {
            return Err(LoadError("version"));
        }
        let user_id = input.i64("user id")?;
        let taken_qts = input.i32("taken qts")?;
        let acknowledged_qts = input.i32("acknowledged qts")?;
        let group = match input.u8("group")? {
            0 => None,
            1 => {
                let prime = input.array::<DH_LEN>("prime")?;
                let g = input.u32("g")?;
                let version = input.i32("dh version")?;
                let group = DhGroup::trusted(&prime, g).map_err(|_| LoadError("group"))?;
                Some((group, version))
            }
            _ => return Err(LoadError("group")),
        };
        let limits = ChatLimits {
            max_held: usize::try_from(input.u32("max held")?).map_err(|_| LoadError("limits"))?,
            max_outbox: usize::try_from(input.u32("max outbox")?)
                .map_err(|_| LoadError("limits"))?,
        };
        // The smallest chat: its id, a tag, a user id, a flag and an empty secret.
        let count = input.count(4 + 1 + 8 + 1 + 4, "chats")?;
        let mut chats = BTreeMap::new();
        for _ in 0..count {
            let chat_id = input.i32("chat id")?;
            let chat = match input.u8("chat state")? {
                0 => {
                    let user_id = input.i64("user id")?;
                    let access_hash = match input.u8("access hash")? {
                        0 => None,
                        1 => Some(input.i64("access hash")?),
                        _ => return Err(LoadError("access hash")),
                    };
                    let secret = input.array::<DH_LEN>("exchange secret")?;
                    let group = group
                        .as_ref()
                        .map(|(group, _)| group.clone())
                        .ok_or(LoadError("a request without a group"))?;
                    Chat::Requesting {
                        user_id,
                        access_hash,
                        request: Box::new(KeyRequest::restore(group, secret)),
                    }
                }
                1 => Chat::Requested {
                    user_id: input.i64("user id")?,
                    access_hash: input.i64("access hash")?,
                    g_a: input.bytes("g_a")?.to_vec(),
                },
                2 => {
                    let user_id = input.i64("user id")?;
                    let access_hash = input.i64("access hash")?;
                    let keyed_at =
                        u64::try_from(input.i64("keyed at")?).map_err(|_| LoadError("keyed at"))?;
                    let generation = input.u32("generation")?;
                    let layer = input.i32("layer")?;
                    let chat = SecretChat::load_from(&mut input)?;
                    Chat::Ready {
                        user_id,
                        access_hash,
                        chat: Box::new(chat),
                        keyed_at,
                        generation,
                        layer,
                    }
                }
                _ => return Err(LoadError("chat state")),
            };
            if chats.insert(chat_id, chat).is_some() {
                return Err(LoadError("a chat twice"));
            }
        }
        let timers = Timers::load_from(&mut input)?;
        if !input.0.is_empty() {
            return Err(LoadError("trailing bytes"));
        }
        Ok(Self {
            user_id,
            group,
            random: Vec::new(),
            chats,
            limits,
            taken_qts,
            acknowledged_qts,
            config_asked: false,
            ahead: BTreeMap::new(),
            early: Vec::new(),
            timers,
            rpcs: VecDeque::new(),
            events: VecDeque::new(),
        })
    }
}

/// The event of a service message whose action the application acts on; `None` for other
/// messages (given as [`Event::Message`]).
fn action_event(chat_id: i32, message: &e2e::DecryptedMessage) -> Option<Event> {
    use e2e::DecryptedMessageAction as A;
    Some(match super::chat::action_of(message)? {
        A::DecryptedMessageActionDeleteMessages(action) => Event::Deleted {
            chat_id,
            random_ids: action.random_ids.clone(),
        },
        A::DecryptedMessageActionFlushHistory(_) => Event::HistoryFlushed { chat_id },
        A::DecryptedMessageActionSetMessageTTL(action) => Event::TtlChanged {
            chat_id,
            ttl_seconds: action.ttl_seconds,
        },
        A::DecryptedMessageActionReadMessages(action) => Event::Opened {
            chat_id,
            random_ids: action.random_ids.clone(),
        },
        A::DecryptedMessageActionScreenshotMessages(action) => Event::Screenshot {
            chat_id,
            random_ids: action.random_ids.clone(),
        },
        A::DecryptedMessageActionTyping(_) => Event::Typing { chat_id },
        _ => return None,
    })
}

/// The bytes of an [`Rpc`]'s function, as they go to the relay.
impl Rpc {
    /// The serialized function.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::GetDhConfig(f) => f.to_bytes(),
            Self::RequestEncryption(f) => f.to_bytes(),
            Self::AcceptEncryption(f) => f.to_bytes(),
            Self::DiscardEncryption(f) => f.to_bytes(),
            Self::SendEncrypted(f) => f.to_bytes(),
            Self::SendEncryptedService(f) => f.to_bytes(),
            Self::SendEncryptedFile(f) => f.to_bytes(),
            Self::ReceivedQueue(f) => f.to_bytes(),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]
mod tests;
