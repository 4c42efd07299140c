//! The layer wrapper of every secret message: `decryptedMessageLayer random_bytes layer
//! in_seq_no out_seq_no message`, the payload an encrypted secret message carries.
//!
//! The wrapper says which end-to-end layer the writer speaks and places the message in the
//! chat's sequence (`seq`). Its `random_bytes` make two encryptions of the same message
//! differ; the constructor page asks receivers to ignore a message with fewer than 15 of them.
//! Messages of layer 8 came without the wrapper; this module refuses them (a chat must be at
//! layer 17 or above, where sequence numbers exist).

use rand_core::{CryptoRng, RngCore};

use crate::tl::secret::{enums, types};
use crate::tl::{DecodeError, Deserializable as _, Reader, Serializable as _};

/// The fewest `random_bytes` a received wrapper may carry.
pub const MIN_RANDOM_BYTES: usize = 15;
/// How many `random_bytes` this module writes (with the length byte, one aligned TL string).
pub const RANDOM_BYTES_WRITTEN: usize = 31;
/// The oldest layer a wrapper may name: sequence numbers came with layer 17.
pub const MIN_LAYER: i32 = 17;

/// Why a decrypted payload was not a message of the chat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// Not a TL `decryptedMessageLayer`, or bytes after it.
    #[error("not a decryptedMessageLayer: {0}")]
    Decode(#[from] DecodeError),
    /// A bare layer-8 message without the wrapper.
    #[error("a layer-8 message without the layer wrapper")]
    Unwrapped,
    /// Fewer random bytes than the specification requires.
    #[error("{0} random bytes, at least 15 required")]
    TooFewRandomBytes(usize),
    /// A layer older than sequence numbers, or not a layer at all.
    #[error("layer {0} is below 17")]
    LayerTooOld(i32),
}

/// A received message in its wrapper (the `random_bytes` checked and dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Layered {
    /// The writer's end-to-end layer.
    pub layer: i32,
    /// The writer's `in_seq_no`, as on the wire (`2 × count + x`).
    pub in_seq_no: i32,
    /// The writer's `out_seq_no`, as on the wire.
    pub out_seq_no: i32,
    /// The message.
    pub message: enums::DecryptedMessage,
}

/// Reads a decrypted payload.
pub fn parse(payload: &[u8]) -> Result<Layered, LayerError> {
    let mut peek = Reader::new(payload);
    let id = crate::tl::read_u32(&mut peek)?;
    if matches!(id, 0x1f81_4f1f | 0xaa48_327d) {
        return Err(LayerError::Unwrapped);
    }
    let enums::DecryptedMessageLayer::DecryptedMessageLayer(wrapper) =
        enums::DecryptedMessageLayer::from_bytes(payload)?;
    if wrapper.random_bytes.len() < MIN_RANDOM_BYTES {
        return Err(LayerError::TooFewRandomBytes(wrapper.random_bytes.len()));
    }
    if wrapper.layer < MIN_LAYER {
        return Err(LayerError::LayerTooOld(wrapper.layer));
    }
    Ok(Layered {
        layer: wrapper.layer,
        in_seq_no: wrapper.in_seq_no,
        out_seq_no: wrapper.out_seq_no,
        message: wrapper.message,
    })
}

/// Wraps `message` for sending at `layer` with these (wire) sequence numbers and fresh
/// random bytes.
pub fn wrap<R: RngCore + CryptoRng + ?Sized>(
    message: enums::DecryptedMessage,
    layer: i32,
    in_seq_no: i32,
    out_seq_no: i32,
    rng: &mut R,
) -> Vec<u8> {
    let mut random_bytes = vec![0u8; RANDOM_BYTES_WRITTEN];
    rng.fill_bytes(&mut random_bytes);
    enums::DecryptedMessageLayer::from(types::DecryptedMessageLayer {
        random_bytes,
        layer,
        in_seq_no,
        out_seq_no,
        message,
    })
    .to_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::crypto::tests::hex;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn notify_layer(layer: i32) -> enums::DecryptedMessage {
        types::DecryptedMessageService {
            random_id: 0x0102_0304_0506_0708,
            action: types::DecryptedMessageActionNotifyLayer { layer }.into(),
        }
        .into()
    }

    #[test]
    fn the_reference_payload_parses() {
        // `../shared/reference/e2e.md` §1.9.
        let payload = hex(
            "8917e31b1011111111111111111111111111111111000000900000000000000001000000604116730807060504030201838804f390000000",
        );
        let layered = parse(&payload).unwrap();
        assert_eq!(
            (layered.layer, layered.in_seq_no, layered.out_seq_no),
            (144, 0, 1)
        );
        assert_eq!(layered.message, notify_layer(144));
    }

    #[test]
    fn wrap_and_parse_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let bytes = wrap(notify_layer(144), 144, 2, 3, &mut rng);
        let layered = parse(&bytes).unwrap();
        assert_eq!((layered.in_seq_no, layered.out_seq_no), (2, 3));
        assert_eq!(layered.message, notify_layer(144));
    }

    fn with_random_bytes(count: usize, layer: i32) -> Vec<u8> {
        enums::DecryptedMessageLayer::from(types::DecryptedMessageLayer {
            random_bytes: vec![9; count],
            layer,
            in_seq_no: 0,
            out_seq_no: 1,
            message: notify_layer(144),
        })
        .to_bytes()
    }

    #[test]
    fn too_few_random_bytes_and_old_layers_are_refused() {
        assert!(parse(&with_random_bytes(15, 144)).is_ok());
        assert_eq!(
            parse(&with_random_bytes(14, 144)),
            Err(LayerError::TooFewRandomBytes(14))
        );
        assert!(parse(&with_random_bytes(15, 17)).is_ok());
        assert_eq!(
            parse(&with_random_bytes(15, 16)),
            Err(LayerError::LayerTooOld(16))
        );
    }

    #[test]
    fn bare_layer_8_messages_and_trailing_bytes_are_refused() {
        let bare = enums::DecryptedMessage::from(types::DecryptedMessageService8 {
            random_id: 1,
            random_bytes: vec![0; 15],
            action: types::DecryptedMessageActionFlushHistory {}.into(),
        })
        .to_bytes();
        assert_eq!(parse(&bare), Err(LayerError::Unwrapped));
        let mut trailing = with_random_bytes(15, 144);
        trailing.extend([0, 0, 0, 0]);
        assert!(matches!(
            parse(&trailing),
            Err(LayerError::Decode(DecodeError::TrailingBytes { count: 4 }))
        ));
        assert!(matches!(parse(&[1, 2]), Err(LayerError::Decode(_))));
    }
}
