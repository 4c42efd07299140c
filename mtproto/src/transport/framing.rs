//! The four envelopes, as pure functions over plaintext bytes: parse a header, write a frame.

use bytes::{BufMut, BytesMut};

use super::{Framing, Role, TransportError};

/// What an envelope holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// A payload of `Header::body` bytes.
    Payload { quick_ack: bool },
    /// A bare quick-ack token (abridged and intermediate, server to client).
    QuickAck(u32),
}

/// A parsed envelope header: the frame is `prefix + body + suffix` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) prefix: usize,
    pub(crate) body: usize,
    pub(crate) suffix: usize,
    pub(crate) envelope: Envelope,
}

impl Header {
    pub(crate) fn total(&self) -> usize {
        self.prefix + self.body + self.suffix
    }
}

const QUICK_ACK_BIT: u32 = 0x8000_0000;
/// The header of a padded-intermediate quick-ack frame.
pub(crate) const PADDED_QUICK_ACK_MARK: u32 = 0xffff_ffff;
/// The full framing's envelope: length, seqno, CRC32.
pub(crate) const FULL_OVERHEAD: usize = 12;

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Some(u32::from_le_bytes(word))
}

fn check_max(len: u64, max: usize) -> Result<usize, TransportError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(TransportError::FrameTooLarge { len, max }),
    }
}

/// Parses the envelope at the start of `buf`. `Ok(None)`: more bytes are needed to know.
pub(crate) fn parse(
    framing: Framing,
    role: Role,
    buf: &[u8],
    max: usize,
) -> Result<Option<Header>, TransportError> {
    match framing {
        Framing::Abridged => parse_abridged(role, buf, max),
        Framing::Intermediate | Framing::PaddedIntermediate => {
            let Some(word) = u32_at(buf, 0) else {
                return Ok(None);
            };
            let padded = framing == Framing::PaddedIntermediate;
            if word & QUICK_ACK_BIT != 0 {
                return match role {
                    Role::Server => {
                        payload_header(u64::from(word & !QUICK_ACK_BIT), 4, true, !padded, max)
                    }
                    // From the server, a word with the top bit set is a bare quick-ack token in
                    // intermediate; padded intermediate frames its tokens instead.
                    Role::Client if !padded => Ok(Some(Header {
                        prefix: 4,
                        body: 0,
                        suffix: 0,
                        envelope: Envelope::QuickAck(word),
                    })),
                    Role::Client => Err(TransportError::BadLength {
                        len: u64::from(word),
                    }),
                };
            }
            payload_header(u64::from(word), 4, false, !padded, max)
        }
        Framing::Full => {
            let Some(len) = u32_at(buf, 0) else {
                return Ok(None);
            };
            let len = u64::from(len);
            if len < FULL_OVERHEAD as u64 || len % 4 != 0 {
                return Err(TransportError::BadLength { len });
            }
            let body = check_max(len - FULL_OVERHEAD as u64, max)?;
            Ok(Some(Header {
                prefix: 8,
                body,
                suffix: 4,
                envelope: Envelope::Payload { quick_ack: false },
            }))
        }
    }
}

fn payload_header(
    len: u64,
    prefix: usize,
    quick_ack: bool,
    aligned: bool,
    max: usize,
) -> Result<Option<Header>, TransportError> {
    if len == 0 || (aligned && len % 4 != 0) {
        return Err(TransportError::BadLength { len });
    }
    let body = check_max(len, max)?;
    Ok(Some(Header {
        prefix,
        body,
        suffix: 0,
        envelope: Envelope::Payload { quick_ack },
    }))
}

fn parse_abridged(role: Role, buf: &[u8], max: usize) -> Result<Option<Header>, TransportError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let flagged = first & 0x80 != 0;
    if flagged && role == Role::Client {
        // A quick-ack token, sent byte-swapped so that its top bit comes first.
        let Some(word) = u32_at(buf, 0) else {
            return Ok(None);
        };
        return Ok(Some(Header {
            prefix: 4,
            body: 0,
            suffix: 0,
            envelope: Envelope::QuickAck(word.swap_bytes()),
        }));
    }
    let short = first & 0x7f;
    let (prefix, words) = if short == 0x7f {
        let Some(word) = u32_at(buf, 0) else {
            return Ok(None);
        };
        // The spec reserves the long form for 127 words and more; a shorter frame in it is
        // malformed (and would not re-encode to the same bytes).
        if word >> 8 < 0x7f {
            return Err(TransportError::BadLength {
                len: u64::from(word >> 8) * 4,
            });
        }
        (4, word >> 8)
    } else {
        (1, u32::from(short))
    };
    payload_header(u64::from(words) * 4, prefix, flagged, true, max)
}

/// Checks a whole full-framing frame (`frame` is the entire envelope) and returns its seqno.
pub(crate) fn check_full(frame: &[u8]) -> Result<u32, TransportError> {
    let crc_at = frame.len().saturating_sub(4);
    let covered = frame.get(..crc_at).unwrap_or_default();
    let expected = crc32fast::hash(covered);
    let found = u32_at(frame, crc_at).unwrap_or(0);
    if expected != found {
        return Err(TransportError::BadCrc { expected, found });
    }
    Ok(u32_at(frame, 4).unwrap_or(0))
}

/// Appends a payload envelope. The caller has validated sizes; `padding` is only used by padded
/// intermediate and `seqno` only by full.
pub(crate) fn write_payload(
    framing: Framing,
    data: &[u8],
    quick_ack: bool,
    padding: &[u8],
    seqno: u32,
    dst: &mut BytesMut,
) {
    let len = data.len();
    match framing {
        Framing::Abridged => {
            let words = (len / 4) as u32;
            let flag = if quick_ack { 0x80 } else { 0 };
            dst.reserve(4 + len);
            if words < 0x7f {
                dst.put_u8(words as u8 | flag);
            } else {
                dst.put_u32_le((words << 8) | 0x7f | u32::from(flag));
            }
            dst.put_slice(data);
        }
        Framing::Intermediate | Framing::PaddedIntermediate => {
            let total = (len + padding.len()) as u32;
            let flag = if quick_ack { QUICK_ACK_BIT } else { 0 };
            dst.reserve(4 + len + padding.len());
            dst.put_u32_le(total | flag);
            dst.put_slice(data);
            dst.put_slice(padding);
        }
        Framing::Full => {
            let start = dst.len();
            dst.reserve(FULL_OVERHEAD + len);
            dst.put_u32_le((len + FULL_OVERHEAD) as u32);
            dst.put_u32_le(seqno);
            dst.put_slice(data);
            let crc = crc32fast::hash(dst.get(start..).unwrap_or_default());
            dst.put_u32_le(crc);
        }
    }
}

/// Appends a quick-ack token in the framing's server-to-client form.
pub(crate) fn write_quick_ack(framing: Framing, token: u32, padding: &[u8], dst: &mut BytesMut) {
    match framing {
        Framing::Abridged => dst.put_u32_le(token.swap_bytes()),
        Framing::Intermediate => dst.put_u32_le(token),
        Framing::PaddedIntermediate => {
            dst.put_u32_le((8 + padding.len()) as u32);
            dst.put_u32_le(PADDED_QUICK_ACK_MARK);
            dst.put_u32_le(token);
            dst.put_slice(padding);
        }
        // Refused by the caller before we get here.
        Framing::Full => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn abridged_known_frames() {
        // Short form: 8 bytes = 2 words.
        let h = parse(Framing::Abridged, Role::Server, &[0x02], MAX)
            .unwrap()
            .unwrap();
        assert_eq!((h.prefix, h.body), (1, 8));
        // Quick ack requested: top bit of the short length.
        let h = parse(Framing::Abridged, Role::Server, &[0x82], MAX)
            .unwrap()
            .unwrap();
        assert_eq!(h.envelope, Envelope::Payload { quick_ack: true });
        // Long form: 0x7f then 127 words little-endian.
        let h = parse(Framing::Abridged, Role::Server, &[0x7f, 0x7f, 0, 0], MAX)
            .unwrap()
            .unwrap();
        assert_eq!((h.prefix, h.body), (4, 508));
        let h = parse(Framing::Abridged, Role::Server, &[0xff, 0x7f, 0, 0], MAX)
            .unwrap()
            .unwrap();
        assert_eq!(h.envelope, Envelope::Payload { quick_ack: true });
        // Long form for fewer than 127 words is not canonical.
        assert!(parse(Framing::Abridged, Role::Server, &[0x7f, 0x10, 0, 0], MAX).is_err());
        // Incomplete long header.
        assert_eq!(
            parse(Framing::Abridged, Role::Server, &[0x7f, 1], MAX).unwrap(),
            None
        );
        // Zero length.
        assert!(parse(Framing::Abridged, Role::Server, &[0], MAX).is_err());
        // Client side: a byte-swapped quick-ack token.
        let h = parse(
            Framing::Abridged,
            Role::Client,
            &[0x81, 0x02, 0x03, 0x04],
            MAX,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.envelope, Envelope::QuickAck(0x8102_0304));

        let mut out = BytesMut::new();
        write_payload(Framing::Abridged, &[9; 8], true, &[], 0, &mut out);
        assert_eq!(&out[..], &[0x82, 9, 9, 9, 9, 9, 9, 9, 9]);
        let mut out = BytesMut::new();
        write_payload(Framing::Abridged, &[0; 508], false, &[], 0, &mut out);
        assert_eq!(&out[..4], &[0x7f, 0x7f, 0, 0]);
        let mut out = BytesMut::new();
        write_quick_ack(Framing::Abridged, 0x8102_0304, &[], &mut out);
        assert_eq!(&out[..], &[0x81, 0x02, 0x03, 0x04]);
    }

    #[test]
    fn intermediate_known_frames() {
        let h = parse(Framing::Intermediate, Role::Server, &[8, 0, 0, 0x80], MAX)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.prefix, h.body, h.envelope),
            (4, 8, Envelope::Payload { quick_ack: true })
        );
        assert!(parse(Framing::Intermediate, Role::Server, &[7, 0, 0, 0], MAX).is_err());
        assert!(matches!(
            parse(Framing::Intermediate, Role::Server, &[0, 0, 0x20, 0], MAX),
            Err(TransportError::FrameTooLarge { len: 0x20_0000, .. })
        ));
        let h = parse(Framing::Intermediate, Role::Client, &[4, 3, 2, 0x81], MAX)
            .unwrap()
            .unwrap();
        assert_eq!(h.envelope, Envelope::QuickAck(0x8102_0304));
        // Padded: unaligned lengths are fine; a top-bit word from the server is not.
        let h = parse(
            Framing::PaddedIntermediate,
            Role::Client,
            &[13, 0, 0, 0],
            MAX,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.body, 13);
        assert!(
            parse(
                Framing::PaddedIntermediate,
                Role::Client,
                &[13, 0, 0, 0x80],
                MAX
            )
            .is_err()
        );

        let mut out = BytesMut::new();
        write_payload(
            Framing::PaddedIntermediate,
            &[1; 8],
            true,
            &[7, 7, 7],
            0,
            &mut out,
        );
        assert_eq!(&out[..], &[11, 0, 0, 0x80, 1, 1, 1, 1, 1, 1, 1, 1, 7, 7, 7]);
        let mut out = BytesMut::new();
        write_quick_ack(Framing::PaddedIntermediate, 0x8000_0001, &[5], &mut out);
        assert_eq!(
            &out[..],
            &[9, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0x80, 5]
        );
    }

    #[test]
    fn full_known_frame() {
        // len 16 | seqno 0 | payload 01020304 | CRC32 over the first 12 bytes.
        let mut frame = vec![16, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        let mut out = BytesMut::new();
        write_payload(Framing::Full, &[1, 2, 3, 4], false, &[], 0, &mut out);
        assert_eq!(&out[..], &frame[..]);
        let h = parse(Framing::Full, Role::Server, &frame, MAX)
            .unwrap()
            .unwrap();
        assert_eq!((h.prefix, h.body, h.suffix), (8, 4, 4));
        assert_eq!(check_full(&frame), Ok(0));
        frame[9] ^= 1;
        assert!(matches!(
            check_full(&frame),
            Err(TransportError::BadCrc { .. })
        ));
        assert!(parse(Framing::Full, Role::Server, &[8, 0, 0, 0], MAX).is_err());
        assert!(parse(Framing::Full, Role::Server, &[14, 0, 0, 0], MAX).is_err());
    }
}
