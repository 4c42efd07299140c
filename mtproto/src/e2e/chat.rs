//! One established secret chat on one device: what is sent is numbered, wrapped, encrypted and
//! kept for a `Resend`; what arrives is decrypted, checked, put in order and either handled
//! here (`Resend`, `NotifyLayer`) or handed to the application.
//!
//! [`SecretChat`] is sans-IO: the caller passes the relay's messages in and sends what comes
//! out (`sendEncrypted` for messages, `sendEncryptedService` for service messages), with an
//! RNG for padding and random bytes. It holds no clock: asking again for a hole that stays
//! open is the caller's timer ([`SecretChat::ask_again`]).
//!
//! Messages a hostile relay forges or alters fail decryption and are dropped
//! ([`Dropped`]); messages it drops, repeats or reorders are put right by the sequence
//! numbers; anything that breaks the rules of a genuine peer (wrong parity, a layer going back,
//! a `Resend` that cannot be served, too many held messages) ends the chat
//! ([`ChatError`]).

use std::collections::VecDeque;

use rand_core::{CryptoRng, RngCore};

use super::cipher::{self, ChatKey, E2eError, Side};
use super::layer::{self, LayerError};
use super::seq::{Arrival, SeqError, Sequence};
use crate::tl::SECRET_LAYER;
use crate::tl::secret::{enums, types};

/// The layer a peer is taken to speak until it says otherwise
/// (<https://core.telegram.org/api/end-to-end#updating-to-new-layers>).
pub const INITIAL_PEER_LAYER: i32 = 46;

/// Limits of one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatLimits {
    /// Messages held behind a hole before the chat is given up.
    pub max_held: usize,
    /// Sent messages kept (encrypted) to answer a `Resend`; older ones are forgotten, and a
    /// `Resend` for them ends the chat.
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
    /// An authentic message that is not a layer wrapper this side can read.
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

/// A held or in-order message: its wrapper's layer and the message.
type Item = (i32, enums::DecryptedMessage);

/// One established chat.
pub struct SecretChat {
    side: Side,
    key: ChatKey,
    peer_layer: i32,
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
fn action_of(message: &enums::DecryptedMessage) -> Option<&enums::DecryptedMessageAction> {
    match message {
        enums::DecryptedMessage::DecryptedMessageService(m) => Some(&m.action),
        enums::DecryptedMessage::DecryptedMessageService8(m) => Some(&m.action),
        _ => None,
    }
}

impl SecretChat {
    /// A chat with a freshly agreed key, on `side`.
    pub fn new(side: Side, key: ChatKey, limits: ChatLimits) -> Self {
        Self {
            side,
            key,
            peer_layer: INITIAL_PEER_LAYER,
            seq: Sequence::new(side, limits.max_held),
            outbox: VecDeque::new(),
            limits,
        }
    }

    /// The chat's key.
    pub fn key(&self) -> &ChatKey {
        &self.key
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
        let numbers = self.seq.next_out()?;
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
        let outgoing = Outgoing {
            random_id,
            data,
            service,
        };
        if self.outbox.len() >= self.limits.max_outbox {
            self.outbox.pop_front();
        }
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
        let payload = match cipher::decrypt(&self.key, self.side.other(), data) {
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
            (layered.layer, layered.message),
        )?;
        if matches!(arrival, Arrival::Repeat) {
            return Ok(Ok(received));
        }
        if let Some((start, end)) = resend {
            let range = self.seq.resend_range(start, end)?;
            for count in range.clone() {
                let kept = self
                    .outbox
                    .iter()
                    .find(|(kept, _)| *kept == count)
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
                for (layer, message) in items {
                    self.deliver(layer, message, &mut received)?;
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
    fn deliver(
        &mut self,
        layer: i32,
        message: enums::DecryptedMessage,
        received: &mut Received,
    ) -> Result<(), ChatError> {
        if layer < self.peer_layer && self.peer_layer > INITIAL_PEER_LAYER {
            return Err(ChatError::LayerWentBack {
                before: self.peer_layer,
                now: layer,
            });
        }
        self.peer_layer = self.peer_layer.max(layer);
        match action_of(&message) {
            // Served on arrival.
            Some(enums::DecryptedMessageAction::DecryptedMessageActionResend(_)) => {}
            Some(enums::DecryptedMessageAction::DecryptedMessageActionNotifyLayer(notify)) => {
                self.peer_layer = self.peer_layer.max(notify.layer);
            }
            _ => received.messages.push(message),
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests;
