//! One established secret chat on one device: what is sent is numbered, wrapped, encrypted and
//! kept for a `Resend`; what arrives is decrypted, checked, put in order and either handled
//! here (`Resend`, `NotifyLayer`) or handed to the application.
//!
//! [`SecretChat`] is sans-IO: the caller passes the relay's messages in and sends what comes
//! out (`sendEncrypted` for messages, `sendEncryptedService` for service messages), with an
//! RNG for padding and random bytes. It holds no clock: asking again for a hole that stays
//! open is the caller's timer ([`SecretChat::ask_again`]).
//!
//! Keys are replaced inside the chat (perfect forward secrecy,
//! <https://core.telegram.org/api/end-to-end/pfs>): either side may start an exchange
//! ([`SecretChat::start_rekey`], due by [`SecretChat::needs_rekey`]); the requester commits
//! under the old key and switches, the accepter switches when the commit comes in order, and
//! the old key is kept for the other side's late messages until one arrives under the new key.
//!
//! Messages a hostile relay forges or alters fail decryption and are dropped
//! ([`Dropped`]); messages it drops, repeats or reorders are put right by the sequence
//! numbers; anything that breaks the rules of a genuine peer (wrong parity, a layer going back,
//! a `Resend` that cannot be served, too many held messages) ends the chat
//! ([`ChatError`]).

use std::collections::VecDeque;

use rand_core::{CryptoRng, RngCore};

use super::cipher::{self, ChatKey, E2eError, Side};
use super::exchange::{self, ExchangeError, KeyRequest};
use super::layer::{self, LayerError};
use super::seq::{Arrival, SeqError, Sequence};
use crate::crypto::DhGroup;
use crate::tl::SECRET_LAYER;
use crate::tl::secret::{enums, types};

/// Messages encrypted and decrypted under one key after which it is replaced.
pub const REKEY_AFTER_MESSAGES: u32 = 100;
/// Age in seconds after which a key that encrypted something is replaced (a week).
pub const REKEY_AFTER_SECS: u64 = 7 * 24 * 3600;

/// The layer a peer is taken to speak until it says otherwise
/// (<https://core.telegram.org/api/end-to-end#updating-to-new-layers>).
pub const INITIAL_PEER_LAYER: i32 = 46;

/// Limits of one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatLimits {
    /// Messages held behind a hole before the chat is given up.
    pub max_held: usize,
    /// Sent messages kept (encrypted) to answer a `Resend` until the other side counts them
    /// as received; with this many unacknowledged, sending fails with
    /// [`ChatError::OutboxFull`] until the other side writes again.
    pub max_outbox: usize,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_held: super::seq::DEFAULT_MAX_HELD,
            max_outbox: 1000,
        }
    }
}

/// An encrypted message to send through the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The `random_id` of the send (the same as the message's own).
    pub random_id: i64,
    /// The encrypted bytes (`data`).
    pub data: Vec<u8>,
    /// A service message (`sendEncryptedService`), or an ordinary one (`sendEncrypted`).
    pub service: bool,
}

/// Why a received message was dropped without ending the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dropped {
    /// Not decryptable with this chat's key: forged, altered, or for another key.
    #[error(transparent)]
    Undecryptable(#[from] E2eError),
}

/// A violation by the other side: the chat must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// An authentic message that is not a layer wrapper this side can read (fewer than 15
    /// random bytes included: the constructor page says to ignore such a message, but an
    /// ignored message is a hole in the sequence that can never be filled).
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Its sequence numbers break the rules.
    #[error(transparent)]
    Seq(#[from] SeqError),
    /// The other side's layer went back.
    #[error("layer went back from {before} to {now}")]
    LayerWentBack {
        /// The layer before.
        before: i32,
        /// The layer now.
        now: i32,
    },
    /// A `Resend` for messages this side no longer keeps.
    #[error("resend of messages {first}..={last} no longer kept")]
    ResendUnavailable {
        /// First message asked for (count).
        first: i32,
        /// Last message asked for (count).
        last: i32,
    },
    /// A message to send could not be encrypted (longer than a TL byte string).
    #[error(transparent)]
    Encrypt(E2eError),
    /// A re-keying message that does not fit the exchange in progress (an `AcceptKey` or
    /// `CommitKey` for no exchange of ours, a fingerprint that differs, a request while one
    /// was accepted).
    #[error("re-keying failed: {0}")]
    Rekey(&'static str),
    /// This many sent messages wait for the other side's acknowledgement: nothing more can
    /// be sent until it writes (not fatal).
    #[error("{0} sent messages are not acknowledged yet")]
    OutboxFull(usize),
    /// The other side's public value in a re-keying was refused.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// What a received message came to.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    /// Messages for the application, in the chat's order (`Resend` and `NotifyLayer` are
    /// handled here and not among them).
    pub messages: Vec<enums::DecryptedMessage>,
    /// Messages to send now (a `Resend` asking for a hole, or messages the other side asked
    /// for again), in order.
    pub send: Vec<Outgoing>,
}

/// A held or in-order message: its wrapper's layer, the message, and the fingerprint of the
/// key it came under.
type Item = (i32, enums::DecryptedMessage, i64);

/// A key exchange inside the chat.
enum Rekey {
    Idle,
    /// This side asked: its half of the exchange.
    Requested {
        exchange_id: i64,
        request: Box<KeyRequest>,
    },
    /// This side accepted the other's request and has the new key, waiting for the commit.
    /// (Both halves are boxed: a chat is idle most of its life.)
    Accepted {
        exchange_id: i64,
        key: Box<ChatKey>,
    },
}

/// One established chat.
pub struct SecretChat {
    side: Side,
    key: ChatKey,
    /// The chat's DH group, for re-keying.
    group: DhGroup,
    /// The key before the last switch, kept for the other side's late messages.
    old_key: Option<ChatKey>,
    rekey: Rekey,
    /// Messages encrypted and decrypted under the current key.
    used: u32,
    /// Messages encrypted under the current key.
    encrypted: u32,
    /// Keys replaced so far.
    generation: u32,
    peer_layer: i32,
    /// The layer of the other side's last wrapper in order (0 before the first): wrappers may
    /// not go back. Apart from `peer_layer`, which `NotifyLayer` raises: TDLib wraps at 73
    /// until it hears from us while announcing 144.
    wrapper_layer: i32,
    seq: Sequence<Item>,
    /// Sent messages by out count, for `Resend`.
    outbox: VecDeque<(i32, Outgoing)>,
    limits: ChatLimits,
}

impl core::fmt::Debug for SecretChat {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretChat")
            .field("side", &self.side)
            .field("key", &self.key)
            .field("peer_layer", &self.peer_layer)
            .field("counts", &self.seq.counts())
            .finish_non_exhaustive()
    }
}

/// The `random_id` of a message, whatever its layer.
pub fn random_id_of(message: &enums::DecryptedMessage) -> i64 {
    match message {
        enums::DecryptedMessage::DecryptedMessage8(m) => m.random_id,
        enums::DecryptedMessage::DecryptedMessageService8(m) => m.random_id,
        enums::DecryptedMessage::DecryptedMessage23(m) => m.random_id,
        enums::DecryptedMessage::DecryptedMessageService(m) => m.random_id,
        enums::DecryptedMessage::DecryptedMessage46(m) => m.random_id,
        enums::DecryptedMessage::DecryptedMessage(m) => m.random_id,
    }
}

/// The action of a service message, if it is one.
pub(crate) fn action_of(
    message: &enums::DecryptedMessage,
) -> Option<&enums::DecryptedMessageAction> {
    match message {
        enums::DecryptedMessage::DecryptedMessageService(m) => Some(&m.action),
        enums::DecryptedMessage::DecryptedMessageService8(m) => Some(&m.action),
        _ => None,
    }
}

impl SecretChat {
    /// A chat with a freshly agreed key, on `side`, in the DH group the key came from.
    pub fn new(side: Side, key: ChatKey, group: DhGroup, limits: ChatLimits) -> Self {
        Self {
            side,
            key,
            group,
            old_key: None,
            rekey: Rekey::Idle,
            used: 0,
            encrypted: 0,
            generation: 0,
            peer_layer: INITIAL_PEER_LAYER,
            wrapper_layer: 0,
            seq: Sequence::new(side, limits.max_held),
            outbox: VecDeque::new(),
            limits,
        }
    }

    /// The chat's key.
    pub fn key(&self) -> &ChatKey {
        &self.key
    }

    /// How many times the key has been replaced (the caller notes when this changes, to know
    /// the key's age for [`needs_rekey`](Self::needs_rekey)).
    pub fn key_generation(&self) -> u32 {
        self.generation
    }

    /// Whether the key is due for replacement: more than [`REKEY_AFTER_MESSAGES`] messages
    /// under it, or older than [`REKEY_AFTER_SECS`] having encrypted at least one, and no
    /// exchange in progress.
    pub fn needs_rekey(&self, key_age_secs: u64) -> bool {
        matches!(self.rekey, Rekey::Idle)
            && (self.used > REKEY_AFTER_MESSAGES
                || (key_age_secs > REKEY_AFTER_SECS && self.encrypted > 0))
    }

    /// Starts replacing the key (`decryptedMessageActionRequestKey`); `None` if an exchange is
    /// already in progress.
    pub fn start_rekey<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Option<Outgoing>, ChatError> {
        if !matches!(self.rekey, Rekey::Idle) {
            return Ok(None);
        }
        let exchange_id = rng.next_u64() as i64;
        // No server random here: the exchange runs inside the chat.
        let request = KeyRequest::new(self.group.clone(), &[], rng);
        let action = types::DecryptedMessageActionRequestKey {
            exchange_id,
            g_a: request.g_a().to_vec(),
        };
        self.rekey = Rekey::Requested {
            exchange_id,
            request: Box::new(request),
        };
        self.send_action(action.into(), rng).map(Some)
    }

    /// Makes `key` the chat's key, keeping the current one for late messages.
    fn switch_to(&mut self, key: ChatKey) {
        self.old_key = Some(core::mem::replace(&mut self.key, key));
        self.used = 0;
        self.encrypted = 0;
        self.generation = self.generation.saturating_add(1);
        self.rekey = Rekey::Idle;
    }

    /// The key a received message names, among the current, the previous and the one being
    /// agreed.
    fn key_for(&self, data: &[u8]) -> Option<&ChatKey> {
        let fingerprint = cipher::fingerprint_of(data)?;
        let pending = match &self.rekey {
            Rekey::Accepted { key, .. } => Some(key.as_ref()),
            _ => None,
        };
        [Some(&self.key), self.old_key.as_ref(), pending]
            .into_iter()
            .flatten()
            .find(|key| key.fingerprint() == fingerprint)
    }

    /// The layer the other side speaks, as far as it said.
    pub fn peer_layer(&self) -> i32 {
        self.peer_layer
    }

    /// The first message of a chat: this side's layer (`NotifyLayer`).
    pub fn notify_layer<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Outgoing, ChatError> {
        self.send_action(
            types::DecryptedMessageActionNotifyLayer {
                layer: SECRET_LAYER,
            }
            .into(),
            rng,
        )
    }

    /// A text message.
    pub fn send_text<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        text: &str,
        rng: &mut R,
    ) -> Result<Outgoing, ChatError> {
        let message = types::DecryptedMessage {
            no_webpage: false,
            silent: false,
            random_id: rng.next_u64() as i64,
            ttl: 0,
            message: text.to_owned(),
            media: None,
            entities: None,
            via_bot_name: None,
            reply_to_random_id: None,
            grouped_id: None,
        };
        self.send(message.into(), rng)
    }

    /// A service message with `action`.
    pub fn send_action<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        action: enums::DecryptedMessageAction,
        rng: &mut R,
    ) -> Result<Outgoing, ChatError> {
        let message = types::DecryptedMessageService {
            random_id: rng.next_u64() as i64,
            action,
        };
        self.send(message.into(), rng)
    }

    /// Numbers, wraps and encrypts `message`, and keeps it for a `Resend`.
    pub fn send<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: enums::DecryptedMessage,
        rng: &mut R,
    ) -> Result<Outgoing, ChatError> {
        // Nothing is counted as sent until the message exists: a message that cannot be sent
        // must not leave a hole the other side would ask for in vain.
        let acknowledged = self.seq.counts().peer_received;
        while self
            .outbox
            .front()
            .is_some_and(|(count, _)| *count < acknowledged)
        {
            self.outbox.pop_front();
        }
        if self.outbox.len() >= self.limits.max_outbox {
            return Err(ChatError::OutboxFull(self.limits.max_outbox));
        }
        let numbers = self.seq.peek_out()?;
        let random_id = random_id_of(&message);
        let service = action_of(&message).is_some();
        let payload = layer::wrap(
            message,
            SECRET_LAYER,
            numbers.in_seq_no,
            numbers.out_seq_no,
            rng,
        );
        let data =
            cipher::encrypt(&self.key, self.side, &payload, rng).map_err(ChatError::Encrypt)?;
        self.seq.next_out()?;
        self.used = self.used.saturating_add(1);
        self.encrypted = self.encrypted.saturating_add(1);
        let outgoing = Outgoing {
            random_id,
            data,
            service,
        };
        self.outbox
            .push_back((numbers.out_count(), outgoing.clone()));
        Ok(outgoing)
    }

    /// A new `Resend` for the hole that is still open, if any (the caller's timer calls this
    /// when a hole has stayed open for a while: the first request may have been lost).
    pub fn ask_again<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Option<Outgoing>, ChatError> {
        let Some((start_seq_no, end_seq_no)) = self.seq.open_hole() else {
            return Ok(None);
        };
        let action = types::DecryptedMessageActionResend {
            start_seq_no,
            end_seq_no,
        };
        self.send_action(action.into(), rng).map(Some)
    }

    /// Takes a message from the relay. `Ok(Err(_))`: dropped, the chat goes on; `Err(_)`: the
    /// chat must be closed.
    pub fn receive<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        data: &[u8],
        rng: &mut R,
    ) -> Result<Result<Received, Dropped>, ChatError> {
        let Some(key) = self.key_for(data) else {
            let error = match cipher::fingerprint_of(data) {
                Some(fingerprint) => E2eError::OtherKey { fingerprint },
                None => E2eError::Malformed { len: data.len() },
            };
            return Ok(Err(Dropped::from(error)));
        };
        let fingerprint = key.fingerprint();
        let payload = match cipher::decrypt(key, self.side.other(), data) {
            Ok(payload) => payload,
            Err(error) => return Ok(Err(Dropped::from(error))),
        };
        let layered = layer::parse(&payload)?;
        // A Resend is served on arrival, even out of order (but not when repeated).
        let resend = match action_of(&layered.message) {
            Some(enums::DecryptedMessageAction::DecryptedMessageActionResend(resend)) => {
                Some((resend.start_seq_no, resend.end_seq_no))
            }
            _ => None,
        };
        let mut received = Received::default();
        let arrival = self.seq.receive(
            layered.in_seq_no,
            layered.out_seq_no,
            (layered.layer, layered.message, fingerprint),
        )?;
        if matches!(arrival, Arrival::Repeat) {
            return Ok(Ok(received));
        }
        if let Some((start, end)) = resend {
            let range = self.seq.resend_range(start, end)?;
            // Kept messages are consecutive by count from the front.
            let first = self.outbox.front().map_or(0, |(count, _)| *count);
            for count in range.clone() {
                let kept = usize::try_from(count - first)
                    .ok()
                    .and_then(|index| self.outbox.get(index))
                    .filter(|(kept, _)| *kept == count)
                    .map(|(_, outgoing)| outgoing.clone());
                match kept {
                    Some(outgoing) => received.send.push(outgoing),
                    None => {
                        return Err(ChatError::ResendUnavailable {
                            first: *range.start(),
                            last: *range.end(),
                        });
                    }
                }
            }
        }
        match arrival {
            Arrival::Deliver(items) => {
                for (layer, message, fingerprint) in items {
                    self.deliver(layer, message, fingerprint, &mut received, rng)?;
                }
            }
            Arrival::Held {
                resend: Some((start_seq_no, end_seq_no)),
            } => {
                let action = types::DecryptedMessageActionResend {
                    start_seq_no,
                    end_seq_no,
                };
                received.send.push(self.send_action(action.into(), rng)?);
            }
            Arrival::Held { resend: None } | Arrival::Repeat => {}
        }
        Ok(Ok(received))
    }

    /// Handles one message in order.
    fn deliver<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        layer: i32,
        message: enums::DecryptedMessage,
        fingerprint: i64,
        received: &mut Received,
        rng: &mut R,
    ) -> Result<(), ChatError> {
        if layer < self.wrapper_layer {
            return Err(ChatError::LayerWentBack {
                before: self.wrapper_layer,
                now: layer,
            });
        }
        self.wrapper_layer = layer;
        self.peer_layer = self.peer_layer.max(layer);
        if fingerprint == self.key.fingerprint() {
            self.used = self.used.saturating_add(1);
            // The other side writes under the current key: once nothing older is missing,
            // the previous key has no message left to open.
            if self.seq.held().next().is_none() {
                self.old_key = None;
            }
        }
        use enums::DecryptedMessageAction as A;
        match action_of(&message) {
            // Served on arrival.
            Some(A::DecryptedMessageActionResend(_) | A::DecryptedMessageActionNoop(_)) => {}
            Some(A::DecryptedMessageActionNotifyLayer(notify)) => {
                self.peer_layer = self.peer_layer.max(notify.layer);
            }
            Some(A::DecryptedMessageActionRequestKey(request)) => {
                self.on_request_key(request.exchange_id, &request.g_a, received, rng)?;
            }
            Some(A::DecryptedMessageActionAcceptKey(accept)) => {
                self.on_accept_key(accept, received, rng)?;
            }
            Some(A::DecryptedMessageActionCommitKey(commit)) => {
                self.on_commit_key(commit.exchange_id, commit.key_fingerprint, received, rng)?;
            }
            Some(A::DecryptedMessageActionAbortKey(abort)) => {
                let ours = match &self.rekey {
                    Rekey::Requested { exchange_id, .. } | Rekey::Accepted { exchange_id, .. } => {
                        Some(*exchange_id)
                    }
                    Rekey::Idle => None,
                };
                if ours == Some(abort.exchange_id) {
                    self.rekey = Rekey::Idle;
                }
            }
            _ => received.messages.push(message),
        }
        Ok(())
    }

    /// The other side asks to replace the key. Two requests crossing: the one with the smaller
    /// exchange id (as a signed number) is dropped, both if they are equal.
    fn on_request_key<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        exchange_id: i64,
        g_a: &[u8],
        received: &mut Received,
        rng: &mut R,
    ) -> Result<(), ChatError> {
        match &self.rekey {
            Rekey::Requested {
                exchange_id: ours, ..
            } => {
                if *ours > exchange_id {
                    return Ok(());
                }
                if *ours == exchange_id {
                    self.rekey = Rekey::Idle;
                    return Ok(());
                }
            }
            Rekey::Accepted { .. } => {
                return Err(ChatError::Rekey("a key request while one is accepted"));
            }
            Rekey::Idle => {}
        }
        let (key, g_b) = exchange::accept(&self.group, g_a, &[], rng)?;
        let action = types::DecryptedMessageActionAcceptKey {
            exchange_id,
            g_b: g_b.to_vec(),
            key_fingerprint: key.fingerprint(),
        };
        self.rekey = Rekey::Accepted {
            exchange_id,
            key: Box::new(key),
        };
        received.send.push(self.send_action(action.into(), rng)?);
        Ok(())
    }

    /// The other side accepted this side's request: commit under the old key, then switch.
    /// A key that does not match its announced fingerprint ends the chat.
    fn on_accept_key<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        accept: &types::DecryptedMessageActionAcceptKey,
        received: &mut Received,
        rng: &mut R,
    ) -> Result<(), ChatError> {
        let Rekey::Requested {
            exchange_id,
            request,
        } = &self.rekey
        else {
            return Err(ChatError::Rekey("an accepted key for no request"));
        };
        if *exchange_id != accept.exchange_id {
            return Err(ChatError::Rekey("an accepted key for another request"));
        }
        let exchange_id = *exchange_id;
        match request.complete(&accept.g_b, accept.key_fingerprint) {
            Ok(key) => {
                let action = types::DecryptedMessageActionCommitKey {
                    exchange_id,
                    key_fingerprint: key.fingerprint(),
                };
                received.send.push(self.send_action(action.into(), rng)?);
                self.switch_to(key);
            }
            // An authentic message announcing a key that is not the one computed: a broken
            // or hostile peer (checklist item 4: discard the chat).
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }

    /// The requester committed: switch to the accepted key, and tell the other side with a
    /// message under it (`Noop`), after which it can drop the old key.
    fn on_commit_key<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        exchange_id: i64,
        fingerprint: i64,
        received: &mut Received,
        rng: &mut R,
    ) -> Result<(), ChatError> {
        let Rekey::Accepted {
            exchange_id: accepted,
            key,
        } = &self.rekey
        else {
            return Err(ChatError::Rekey("a commit for no accepted key"));
        };
        if *accepted != exchange_id || key.fingerprint() != fingerprint {
            return Err(ChatError::Rekey("a commit for another key"));
        }
        let key = key.as_ref().clone();
        self.switch_to(key);
        received
            .send
            .push(self.send_action(types::DecryptedMessageActionNoop {}.into(), rng)?);
        Ok(())
    }
}

pub(crate) mod saved;
pub use saved::LoadError;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests;
