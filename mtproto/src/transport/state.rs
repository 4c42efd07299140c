//! [`Transport`]: the per-connection framing state for either role.

use bytes::{Buf, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::detect::{Detected, Prefix, detect};
use super::framing::{self, Envelope, PADDED_QUICK_ACK_MARK};
use super::obfuscation::{KNOWN_TAGS, Obfuscation, ObfuscationInit};
use super::{ClientConfig, Config, EncodeError, Frame, Framing, Outgoing, Role, TransportError};

/// One connection's framing: decodes what the peer sends, encodes what we send.
///
/// A client names its framing up front and writes its tag (or obfuscated init) in front of its
/// first frame. A server starts undecided and learns the framing, and whether the connection is
/// obfuscated, from the client's first bytes; until then it cannot encode.
///
/// Randomness (padding bytes, the obfuscated init) comes from a generator seeded once from the
/// caller's RNG at construction, so a transport built from a seeded RNG is fully deterministic.
#[derive(Debug)]
pub struct Transport {
    role: Role,
    config: Config,
    framing: Option<Framing>,
    detected: Option<Detected>,
    obfuscation: Option<Obfuscation>,
    /// Client: the tag or init still to be written in front of the first frame.
    pending_prefix: Option<Vec<u8>>,
    /// Obfuscated: how many bytes at the front of the receive buffer are already decrypted.
    decrypted: usize,
    recv_seqno: u32,
    send_seqno: u32,
    rng: ChaCha20Rng,
    failed: bool,
}

fn seeded<R: RngCore + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

impl Transport {
    /// A client transport. With obfuscation, a fresh init is drawn from `rng`.
    pub fn client<R: RngCore + ?Sized>(config: ClientConfig, rng: &mut R) -> Self {
        let obfuscated = config.obfuscated || config.mtproxy.is_some();
        let init = obfuscated.then(|| {
            ObfuscationInit::generate(
                config.framing,
                config.mtproxy.as_ref().map(|p| p.dc_id),
                rng,
            )
        });
        Self::client_with(config, init, rng)
    }

    /// A client transport whose obfuscated init is given rather than drawn, for reproducible
    /// tests and for fuzzing. `init` should come from [`ObfuscationInit::generate`]; an init
    /// that breaks its rules will be misread by servers. Ignored when the configuration is not
    /// obfuscated.
    pub fn client_with_init<R: RngCore + ?Sized>(
        config: ClientConfig,
        init: ObfuscationInit,
        rng: &mut R,
    ) -> Self {
        let obfuscated = config.obfuscated || config.mtproxy.is_some();
        Self::client_with(config, obfuscated.then_some(init), rng)
    }

    fn client_with<R: RngCore + ?Sized>(
        config: ClientConfig,
        init: Option<ObfuscationInit>,
        rng: &mut R,
    ) -> Self {
        let (obfuscation, prefix) = match init {
            Some(init) => {
                let secret = config.mtproxy.as_ref().map(|p| &p.secret);
                let (obfuscation, first) = Obfuscation::client(&init, secret);
                (Some(obfuscation), first.to_vec())
            }
            None => (None, config.framing.plain_tag().to_vec()),
        };
        Self {
            role: Role::Client,
            detected: None,
            framing: Some(config.framing),
            config: config.config,
            obfuscation,
            pending_prefix: Some(prefix),
            decrypted: 0,
            recv_seqno: 0,
            send_seqno: 0,
            rng: seeded(rng),
            failed: false,
        }
    }

    /// A server transport; the framing is detected from the client's first bytes.
    pub fn server<R: RngCore + ?Sized>(config: Config, rng: &mut R) -> Self {
        Self {
            role: Role::Server,
            config,
            framing: None,
            detected: None,
            obfuscation: None,
            pending_prefix: None,
            decrypted: 0,
            recv_seqno: 0,
            send_seqno: 0,
            rng: seeded(rng),
            failed: false,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The framing, once known (always for a client).
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Server role: what detection found, once the client's first bytes have arrived.
    pub fn detected(&self) -> Option<Detected> {
        self.detected
    }

    /// Whether a decode error has made the stream unusable.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Takes the next whole frame off the front of `src`, the connection's receive buffer.
    ///
    /// `Ok(None)`: more bytes are needed; `src` keeps what it has (on an obfuscated connection
    /// those bytes are decrypted in place and remembered as such, so `src` must be the same
    /// buffer on the next call, with new bytes appended). Bytes are removed only together with
    /// a whole frame, whose payload is split off without copying. After an error, every later
    /// call returns [`TransportError::Closed`].
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
        if self.failed {
            return Err(TransportError::Closed);
        }
        let result = self.decode_frame(src);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
        let framing = match self.framing {
            Some(framing) => framing,
            None => match self.detect_prefix(src)? {
                Some(framing) => framing,
                None => return Ok(None),
            },
        };
        self.decrypted = self.decrypted.min(src.len());
        if let Some(obfuscation) = self.obfuscation.as_mut() {
            if let Some(fresh) = src.get_mut(self.decrypted..) {
                obfuscation.decrypt(fresh);
            }
            self.decrypted = src.len();
        }
        let Some(header) = framing::parse(framing, self.role, src, self.config.max_frame_len)?
        else {
            return Ok(None);
        };
        let total = header.total();
        if src.len() < total {
            // The length is within the limit (checked by `parse`), so reserving is safe.
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total);
        self.decrypted = self.decrypted.saturating_sub(total);
        if framing == Framing::Full {
            let found = framing::check_full(&frame)?;
            if found != self.recv_seqno {
                return Err(TransportError::BadSeqno {
                    expected: self.recv_seqno,
                    found,
                });
            }
            self.recv_seqno = self.recv_seqno.wrapping_add(1);
        }
        frame.advance(header.prefix);
        frame.truncate(header.body);
        match header.envelope {
            Envelope::QuickAck(token) => Ok(Some(Frame::QuickAck(token))),
            Envelope::Payload { quick_ack } => self.classify(framing, frame, quick_ack).map(Some),
        }
    }

    /// Tells payloads from the server's small frames (tokens, errors) in the client role.
    fn classify(
        &self,
        framing: Framing,
        data: BytesMut,
        quick_ack: bool,
    ) -> Result<Frame, TransportError> {
        if self.role == Role::Server {
            return Ok(Frame::Payload { data, quick_ack });
        }
        let word = |at: usize| -> Option<u32> {
            let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_le_bytes(bytes))
        };
        let small = match framing {
            // The smallest MTProto message is 24 bytes; padding adds at most 15.
            Framing::PaddedIntermediate => data.len() < 24,
            _ => data.len() == 4,
        };
        if !small {
            return Ok(Frame::Payload {
                data,
                quick_ack: false,
            });
        }
        if framing == Framing::PaddedIntermediate
            && (8..=16).contains(&data.len())
            && word(0) == Some(PADDED_QUICK_ACK_MARK)
        {
            return word(4)
                .map(Frame::QuickAck)
                .ok_or(TransportError::BadLength { len: 8 });
        }
        match word(0) {
            Some(code) => Ok(Frame::TransportError(code as i32)),
            None => Err(TransportError::BadLength {
                len: data.len() as u64,
            }),
        }
    }

    /// Server role: reads the tag or obfuscated init and fixes the framing.
    fn detect_prefix(&mut self, src: &mut BytesMut) -> Result<Option<Framing>, TransportError> {
        let Some(prefix) = detect(src)? else {
            return Ok(None);
        };
        let detected = match prefix {
            Prefix::Plain { framing, tag_len } => {
                if self.config.require_obfuscation {
                    return Err(TransportError::ObfuscationRequired);
                }
                src.advance(tag_len);
                Detected {
                    framing,
                    obfuscated: false,
                    dc_id: None,
                }
            }
            Prefix::Obfuscated => {
                let mut first = [0u8; 64];
                first.copy_from_slice(src.get(..64).ok_or(TransportError::BadLength { len: 0 })?);
                src.advance(64);
                let (obfuscation, tail) =
                    Obfuscation::server(&first, self.config.mtproxy_secret.as_ref());
                let [t0, t1, t2, t3, d0, d1, _, _] = tail;
                let tag = [t0, t1, t2, t3];
                // No tag is defined for the full framing: an init without a known tag is full.
                let framing = KNOWN_TAGS
                    .iter()
                    .find(|(known, _)| *known == tag)
                    .map_or(Framing::Full, |(_, framing)| *framing);
                self.obfuscation = Some(obfuscation);
                Detected {
                    framing,
                    obfuscated: true,
                    dc_id: Some(i16::from_le_bytes([d0, d1])),
                }
            }
        };
        self.framing = Some(detected.framing);
        self.detected = Some(detected);
        Ok(Some(detected.framing))
    }

    /// Appends one frame to `dst`, the connection's send buffer (a client's first frame is
    /// preceded by its tag or init). On error nothing is written.
    pub fn encode(&mut self, item: Outgoing<'_>, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let framing = self.framing.ok_or(EncodeError::NotDetected)?;
        self.validate(framing, &item)?;
        if let Some(prefix) = self.pending_prefix.take() {
            // Already in its final form: an obfuscated init was encrypted when it was made.
            dst.extend_from_slice(&prefix);
        }
        let start = dst.len();
        let mut padding = [0u8; 16];
        match item {
            Outgoing::Payload { data, quick_ack } => {
                let pad = self.padding(framing, 16, &mut padding);
                framing::write_payload(framing, data, quick_ack, pad, self.send_seqno, dst);
            }
            Outgoing::TransportError(code) => {
                let pad = self.padding(framing, 16, &mut padding);
                framing::write_payload(
                    framing,
                    &code.to_le_bytes(),
                    false,
                    pad,
                    self.send_seqno,
                    dst,
                );
            }
            Outgoing::QuickAck(token) => {
                let pad = self.padding(framing, 9, &mut padding);
                framing::write_quick_ack(framing, token, pad, dst);
            }
        }
        if framing == Framing::Full {
            self.send_seqno = self.send_seqno.wrapping_add(1);
        }
        if let (Some(obfuscation), Some(fresh)) = (self.obfuscation.as_mut(), dst.get_mut(start..))
        {
            obfuscation.encrypt(fresh);
        }
        Ok(())
    }

    /// Random padding of `0..bound` bytes for padded intermediate, none otherwise.
    fn padding<'b>(&mut self, framing: Framing, bound: u32, buf: &'b mut [u8; 16]) -> &'b [u8] {
        if framing != Framing::PaddedIntermediate {
            return &[];
        }
        let len = (self.rng.next_u32() % bound) as usize;
        let pad = buf.get_mut(..len).unwrap_or_default();
        self.rng.fill_bytes(pad);
        pad
    }

    fn validate(&self, framing: Framing, item: &Outgoing<'_>) -> Result<(), EncodeError> {
        let max = self.config.max_frame_len;
        match *item {
            Outgoing::Payload { data, quick_ack } => {
                if quick_ack && self.role == Role::Server {
                    return Err(EncodeError::WrongRole(
                        "server (clients ask for quick acks)",
                    ));
                }
                if quick_ack && !framing.has_quick_ack() {
                    return Err(EncodeError::QuickAckUnsupported(framing));
                }
                // Abridged counts 4-byte words in 3 bytes.
                let abridged_cap = 4 * 0x00ff_ffff;
                let len = data.len();
                if len == 0 || len > max || (framing == Framing::Abridged && len > abridged_cap) {
                    return Err(EncodeError::BadSize { len, max });
                }
                if framing != Framing::PaddedIntermediate && len % 4 != 0 {
                    return Err(EncodeError::Unaligned { len });
                }
            }
            Outgoing::QuickAck(token) => {
                if self.role == Role::Client {
                    return Err(EncodeError::WrongRole(
                        "client (servers send quick-ack tokens)",
                    ));
                }
                if !framing.has_quick_ack() {
                    return Err(EncodeError::QuickAckUnsupported(framing));
                }
                if token & 0x8000_0000 == 0 {
                    return Err(EncodeError::InvalidQuickAckToken(token));
                }
            }
            Outgoing::TransportError(_) => {
                if self.role == Role::Client {
                    return Err(EncodeError::WrongRole(
                        "client (servers send transport errors)",
                    ));
                }
            }
        }
        Ok(())
    }
}
