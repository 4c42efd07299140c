//! What both roles of a connection do with an encrypted message: open a frame into a body cut
//! from it without copying, and seal a message into the transport's output.

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{self, ENCRYPTED_HEADROOM, EncryptedHeader, Padding};
use columba_mtproto::transport::{Outgoing, Transport};
use rand_core::RngCore;

/// An opened frame: its header, its body (a slice of the frame) and its quick-ack token.
pub(super) struct Opened {
    pub(super) header: EncryptedHeader,
    pub(super) body: Bytes,
    pub(super) quick_ack_token: u32,
}

/// Opens `frame` with `key`; `None` for anything that does not authenticate (one outcome,
/// whatever failed).
pub(super) fn open(mut frame: BytesMut, key: &AuthKey, direction: Direction) -> Option<Opened> {
    let (header, body_len, quick_ack_token) = message::open(&mut frame, key, direction)
        .map(|opened| (opened.header, opened.body.len(), opened.quick_ack_token))
        .ok()?;
    let body = frame
        .freeze()
        .slice(ENCRYPTED_HEADROOM..ENCRYPTED_HEADROOM + body_len);
    Some(Opened {
        header,
        body,
        quick_ack_token,
    })
}

/// Seals the message in `message` (headroom, then body) and frames it into `output`;
/// `false` if it could not be sealed or framed (nothing is written then).
#[allow(
    clippy::too_many_arguments,
    reason = "one call's parts, from two roles"
)]
pub(super) fn seal<R: RngCore + ?Sized>(
    transport: &mut Transport,
    output: &mut BytesMut,
    key: &AuthKey,
    direction: Direction,
    header: &EncryptedHeader,
    message: &mut BytesMut,
    quick_ack: bool,
    rng: &mut R,
) -> bool {
    message::seal(message, key, direction, header, Padding::Minimal, rng).is_ok()
        && transport
            .encode(
                Outgoing::Payload {
                    data: message,
                    quick_ack,
                },
                output,
            )
            .is_ok()
}

/// Frames an unencrypted (key exchange) message into `output`. Such a message is far below
/// any frame limit; a framing that cannot take it is one the peer broke, and the
/// connection's next read fails on it.
pub(super) fn send_plain(transport: &mut Transport, output: &mut BytesMut, payload: &[u8]) {
    let _ = transport.encode(
        Outgoing::Payload {
            data: payload,
            quick_ack: false,
        },
        output,
    );
}
