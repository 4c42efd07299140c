//! The service constructors that the schema marks "special" and every implementation writes by
//! hand: `rpc_result` (its result is any object), `msg_container` with its bare `message`s,
//! `msg_copy` and `gzip_packed`.
//!
//! Limits from <https://core.telegram.org/mtproto/service_messages>: a container holds at most
//! [`MAX_CONTAINER_MESSAGES`] messages and never another container. Decompression of
//! `gzip_packed` always takes an explicit cap on the expanded size.

use std::io::Read as _;

use super::{
    BareDeserializable, BareSerializable, BufMut, DecodeError, Deserializable, Identifiable,
    RawObject, Reader, Serializable, read_vector_header, write_bytes, write_count,
};

/// At most this many messages in one `msg_container` (the spec's limit).
pub const MAX_CONTAINER_MESSAGES: usize = 1024;

/// `rpc_result#f35c6d01 req_msg_id:long result:Object = RpcResult`: the answer to the request
/// whose msg_id is `req_msg_id`. `result` is the answer's bytes (an object of the function's
/// return type, an `rpc_error`, or a `gzip_packed` holding either).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcResult {
    /// The msg_id of the request answered.
    pub req_msg_id: i64,
    /// The serialized answer; it takes the rest of the message.
    pub result: RawObject,
}

impl Identifiable for RpcResult {
    const CONSTRUCTOR_ID: u32 = 0xf35c_6d01;
    const TL_NAME: &'static str = "rpc_result";
}

impl BareSerializable for RpcResult {
    fn serialize_bare<B: BufMut>(&self, buf: &mut B) {
        buf.put_i64_le(self.req_msg_id);
        self.result.serialize(buf);
    }
}

impl Serializable for RpcResult {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32_le(Self::CONSTRUCTOR_ID);
        self.serialize_bare(buf);
    }
}

impl BareDeserializable for RpcResult {
    const MIN_BARE_SIZE: usize = 8;
    fn deserialize_bare(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            req_msg_id: r.read_i64()?,
            result: RawObject::deserialize(r)?,
        })
    }
}

impl Deserializable for RpcResult {
    const MIN_WIRE_SIZE: usize = 12;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.expect_constructor(Self::CONSTRUCTOR_ID, Self::TL_NAME)?;
        Self::deserialize_bare(r)
    }
}

/// The bare `message msg_id:long seqno:int bytes:int body:Object`, found only inside
/// [`MsgContainer`] and [`MsgCopy`]. `bytes` is the body's length, derived from `body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The inner message's own msg_id.
    pub msg_id: i64,
    /// The inner message's own seq_no.
    pub seqno: i32,
    /// The serialized object.
    pub body: Vec<u8>,
}

impl BareSerializable for Message {
    fn serialize_bare<B: BufMut>(&self, buf: &mut B) {
        buf.put_i64_le(self.msg_id);
        buf.put_i32_le(self.seqno);
        write_count(buf, self.body.len());
        buf.put_slice(&self.body);
    }
}

impl BareDeserializable for Message {
    const MIN_BARE_SIZE: usize = 16;
    fn deserialize_bare(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let msg_id = r.read_i64()?;
        let seqno = r.read_i32()?;
        let len = r.read_i32()?;
        let size = usize::try_from(len)
            .ok()
            .filter(|size| size % 4 == 0 && *size <= r.remaining())
            .ok_or(DecodeError::InvalidLength(i64::from(len)))?;
        let body = r.read_slice(size)?;
        if Reader::new(body).peek_u32() == Some(MsgContainer::CONSTRUCTOR_ID) {
            return Err(DecodeError::NestedContainer);
        }
        Ok(Self {
            msg_id,
            seqno,
            body: body.to_vec(),
        })
    }
}

/// `msg_container#73f1f8dc messages:vector<message>`: several messages sent as one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MsgContainer {
    /// The messages, each with its own msg_id and seq_no.
    pub messages: Vec<Message>,
}

impl Identifiable for MsgContainer {
    const CONSTRUCTOR_ID: u32 = 0x73f1_f8dc;
    const TL_NAME: &'static str = "msg_container";
}

impl BareSerializable for MsgContainer {
    fn serialize_bare<B: BufMut>(&self, buf: &mut B) {
        write_count(buf, self.messages.len());
        for message in &self.messages {
            message.serialize_bare(buf);
        }
    }
}

impl Serializable for MsgContainer {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32_le(Self::CONSTRUCTOR_ID);
        self.serialize_bare(buf);
    }
}

impl BareDeserializable for MsgContainer {
    const MIN_BARE_SIZE: usize = 4;
    fn deserialize_bare(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = read_vector_header(r, false, Message::MIN_BARE_SIZE)?;
        if count > MAX_CONTAINER_MESSAGES {
            return Err(DecodeError::LimitExceeded {
                what: "messages in a container",
                value: count,
                limit: MAX_CONTAINER_MESSAGES,
            });
        }
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            messages.push(Message::deserialize_bare(r)?);
        }
        Ok(Self { messages })
    }
}

impl Deserializable for MsgContainer {
    const MIN_WIRE_SIZE: usize = 8;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.expect_constructor(Self::CONSTRUCTOR_ID, Self::TL_NAME)?;
        Self::deserialize_bare(r)
    }
}

/// `msg_copy#e06046b2 orig_message:Message`: a copy of an earlier message. The spec says
/// clients do not use it; it is decoded so that a server can recognise and refuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgCopy {
    /// The copied message.
    pub orig_message: Message,
}

impl Identifiable for MsgCopy {
    const CONSTRUCTOR_ID: u32 = 0xe060_46b2;
    const TL_NAME: &'static str = "msg_copy";
}

impl Serializable for MsgCopy {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32_le(Self::CONSTRUCTOR_ID);
        self.orig_message.serialize_bare(buf);
    }
}

impl Deserializable for MsgCopy {
    const MIN_WIRE_SIZE: usize = 20;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.expect_constructor(Self::CONSTRUCTOR_ID, Self::TL_NAME)?;
        Ok(Self {
            orig_message: Message::deserialize_bare(r)?,
        })
    }
}

/// `gzip_packed#3072cfa1 packed_data:bytes`: an object compressed with gzip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GzipPacked {
    /// The gzip stream.
    pub packed_data: Vec<u8>,
}

/// Why a `gzip_packed` payload could not be expanded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GzipError {
    /// The expanded object would be larger than the caller's limit (a decompression bomb, or
    /// just too big).
    #[error("gzip_packed expands beyond the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The packed data is not a valid gzip stream.
    #[error("gzip_packed holds an invalid gzip stream: {0}")]
    Invalid(#[from] std::io::Error),
}

impl GzipPacked {
    /// Compresses the serialized object `data`.
    pub fn pack(data: &[u8]) -> Self {
        let mut encoder = flate2::read::GzEncoder::new(data, flate2::Compression::default());
        let mut packed_data = Vec::with_capacity(data.len() / 2 + 32);
        // Reading from an in-memory slice through the encoder cannot fail.
        let _ = encoder.read_to_end(&mut packed_data);
        Self { packed_data }
    }

    /// Expands the packed object, refusing to produce more than `limit` bytes. Memory used is
    /// bounded by the limit whatever the compressed stream claims.
    pub fn unpack(&self, limit: usize) -> Result<Vec<u8>, GzipError> {
        let decoder = flate2::read::GzDecoder::new(self.packed_data.as_slice());
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let mut out = Vec::with_capacity(limit.min(self.packed_data.len().saturating_mul(4)));
        decoder.take(cap).read_to_end(&mut out)?;
        if out.len() > limit {
            return Err(GzipError::TooLarge { limit });
        }
        Ok(out)
    }
}

impl Identifiable for GzipPacked {
    const CONSTRUCTOR_ID: u32 = 0x3072_cfa1;
    const TL_NAME: &'static str = "gzip_packed";
}

impl Serializable for GzipPacked {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32_le(Self::CONSTRUCTOR_ID);
        write_bytes(buf, &self.packed_data);
    }
}

impl Deserializable for GzipPacked {
    const MIN_WIRE_SIZE: usize = 8;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.expect_constructor(Self::CONSTRUCTOR_ID, Self::TL_NAME)?;
        Ok(Self {
            packed_data: r.read_bytes()?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(msg_id: i64, body: &[u8]) -> Message {
        Message {
            msg_id,
            seqno: 1,
            body: body.to_vec(),
        }
    }

    #[test]
    fn container_round_trip() {
        let container = MsgContainer {
            messages: vec![message(4, &[1, 2, 3, 4]), message(8, &[0; 8])],
        };
        let bytes = container.to_bytes();
        assert_eq!(&bytes[..4], &0x73f1_f8dcu32.to_le_bytes());
        assert_eq!(MsgContainer::from_bytes(&bytes).unwrap(), container);
    }

    #[test]
    fn container_limits() {
        let inner = MsgContainer { messages: vec![] }.to_bytes();
        let nested = MsgContainer {
            messages: vec![message(4, &inner)],
        }
        .to_bytes();
        assert_eq!(
            MsgContainer::from_bytes(&nested),
            Err(DecodeError::NestedContainer)
        );

        let too_many = MsgContainer {
            messages: (0..=MAX_CONTAINER_MESSAGES as i64)
                .map(|i| message(i * 4, &[]))
                .collect(),
        };
        assert!(matches!(
            MsgContainer::from_bytes(&too_many.to_bytes()),
            Err(DecodeError::LimitExceeded {
                value: 1025,
                limit: 1024,
                ..
            })
        ));

        // A body length past the end, and an unaligned one.
        let mut bad = MsgContainer {
            messages: vec![message(4, &[0; 4])],
        }
        .to_bytes();
        bad[20] = 8;
        assert_eq!(
            MsgContainer::from_bytes(&bad),
            Err(DecodeError::InvalidLength(8))
        );
        bad[20] = 3;
        assert_eq!(
            MsgContainer::from_bytes(&bad),
            Err(DecodeError::InvalidLength(3))
        );
    }

    #[test]
    fn rpc_result_takes_the_rest() {
        let value = RpcResult {
            req_msg_id: 42,
            result: RawObject(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        };
        assert_eq!(RpcResult::from_bytes(&value.to_bytes()).unwrap(), value);
    }

    #[test]
    fn gzip_round_trip_and_bomb_cap() {
        let data = vec![7u8; 100_000];
        let packed = GzipPacked::pack(&data);
        assert!(packed.packed_data.len() < 1_000);
        let decoded = GzipPacked::from_bytes(&packed.to_bytes()).unwrap();
        assert_eq!(decoded.unpack(100_000).unwrap(), data);
        assert!(matches!(
            decoded.unpack(99_999),
            Err(GzipError::TooLarge { limit: 99_999 })
        ));
        let garbage = GzipPacked {
            packed_data: vec![1, 2, 3],
        };
        assert!(matches!(garbage.unpack(10), Err(GzipError::Invalid(_))));
    }
}
