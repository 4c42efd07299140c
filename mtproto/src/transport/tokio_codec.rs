//! `tokio_util::codec` implementations, so that a [`Transport`] can sit in a `Framed`.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{EncodeError, Frame, Outgoing, Transport, TransportError};

/// The error type of the codec traits, which must be able to carry I/O errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing the underlying stream failed, or it ended inside a frame.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the framing.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl Decoder for Transport {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(Self::decode(self, src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match Self::decode(self, src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stream ended inside a frame",
            )
            .into()),
        }
    }
}

impl Encoder<Outgoing<'_>> for Transport {
    type Error = CodecError;

    fn encode(&mut self, item: Outgoing<'_>, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(Self::encode(self, item, dst)?)
    }
}
