//! Unencrypted messages, used only by the handshake.

use bytes::{BufMut, BytesMut};

/// auth_key_id (0), msg_id, length.
pub const PLAIN_HEADER_LEN: usize = 20;

/// An unencrypted message, borrowed from its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// The message id.
    pub msg_id: i64,
    /// The TL object.
    pub body: &'a [u8],
}

/// Why a frame is not an unencrypted message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlainError {
    /// Shorter than the 20-byte header.
    #[error("frame of {0} bytes is shorter than an unencrypted message header")]
    TooShort(usize),
    /// The auth_key_id is not zero: the frame is an encrypted message.
    #[error("auth_key_id is not zero")]
    Encrypted,
    /// The length field is negative, unaligned, or past the frame (beyond the at most 15
    /// bytes of padding that padded intermediate adds).
    #[error("length {length} does not fit a frame of {frame} bytes")]
    BadLength {
        /// The length field.
        length: i32,
        /// The frame's size.
        frame: usize,
    },
}

/// Appends an unencrypted message.
pub fn write_plain(msg_id: i64, body: &[u8], out: &mut BytesMut) {
    out.reserve(PLAIN_HEADER_LEN + body.len());
    out.put_i64_le(0);
    out.put_i64_le(msg_id);
    out.put_i32_le(i32::try_from(body.len()).unwrap_or(i32::MAX));
    out.put_slice(body);
}

/// Reads an unencrypted message. Up to 15 trailing bytes (transport padding) are ignored.
pub fn read_plain(frame: &[u8]) -> Result<PlainMessage<'_>, PlainError> {
    let header = frame
        .first_chunk::<PLAIN_HEADER_LEN>()
        .ok_or(PlainError::TooShort(frame.len()))?;
    let [
        k0,
        k1,
        k2,
        k3,
        k4,
        k5,
        k6,
        k7,
        m0,
        m1,
        m2,
        m3,
        m4,
        m5,
        m6,
        m7,
        l0,
        l1,
        l2,
        l3,
    ] = *header;
    if [k0, k1, k2, k3, k4, k5, k6, k7] != [0; 8] {
        return Err(PlainError::Encrypted);
    }
    let msg_id = i64::from_le_bytes([m0, m1, m2, m3, m4, m5, m6, m7]);
    let length = i32::from_le_bytes([l0, l1, l2, l3]);
    let rest = frame.get(PLAIN_HEADER_LEN..).unwrap_or_default();
    let body = usize::try_from(length)
        .ok()
        .filter(|len| len % 4 == 0 && *len <= rest.len() && rest.len() - len <= 15)
        .and_then(|len| rest.get(..len))
        .ok_or(PlainError::BadLength {
            length,
            frame: frame.len(),
        })?;
    Ok(PlainMessage { msg_id, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_sample_req_pq_multi_frame() {
        // https://core.telegram.org/mtproto/samples-auth_key step 1: auth_key_id 0, message_id
        // 0x65C53D500006724D... as printed (D4720600503DC565 in wire order), length 20, then
        // req_pq_multi with the example's nonce.
        let mut body = vec![0xf1, 0x8e, 0x7e, 0xbe];
        body.extend_from_slice(&[
            0x40, 0x67, 0x09, 0xF6, 0x12, 0xFA, 0xDF, 0xBE, 0xC3, 0xF0, 0x28, 0x9D, 0x0A, 0xA6,
            0x7E, 0xEF,
        ]);
        let msg_id = i64::from_le_bytes([0xD4, 0x72, 0x06, 0x00, 0x50, 0x3D, 0xC5, 0x65]);
        let mut out = BytesMut::new();
        write_plain(msg_id, &body, &mut out);
        assert_eq!(&out[..8], &[0; 8]);
        assert_eq!(
            &out[8..16],
            &[0xD4, 0x72, 0x06, 0x00, 0x50, 0x3D, 0xC5, 0x65]
        );
        assert_eq!(&out[16..20], &[20, 0, 0, 0]);
        let read = read_plain(&out).unwrap();
        assert_eq!(
            read,
            PlainMessage {
                msg_id,
                body: &body
            }
        );
    }

    #[test]
    fn malformed_frames() {
        assert_eq!(read_plain(&[0; 19]), Err(PlainError::TooShort(19)));
        let mut frame = BytesMut::new();
        write_plain(4, &[1, 2, 3, 4], &mut frame);
        frame[0] = 1;
        assert_eq!(read_plain(&frame), Err(PlainError::Encrypted));
        frame[0] = 0;
        frame[16] = 8;
        assert!(matches!(
            read_plain(&frame),
            Err(PlainError::BadLength { length: 8, .. })
        ));
        frame[16] = 2;
        assert!(matches!(
            read_plain(&frame),
            Err(PlainError::BadLength { .. })
        ));
        frame[16] = 0xff;
        frame[19] = 0xff;
        assert!(matches!(
            read_plain(&frame),
            Err(PlainError::BadLength { .. })
        ));
        // Transport padding after the body is tolerated, more is not.
        frame[16] = 4;
        frame[19] = 0;
        frame.extend_from_slice(&[0; 15]);
        assert!(read_plain(&frame).is_ok());
        frame.extend_from_slice(&[0; 1]);
        assert!(read_plain(&frame).is_err());
    }
}
