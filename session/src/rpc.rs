//! Answers to RPC queries: `rpc_result`, `rpc_error`, and `gzip_packed` results.

use bytes::{BufMut, Bytes, BytesMut};
use columba_mtproto::tl::mtproto::types;
use columba_mtproto::tl::service::{GzipPacked, RpcResult};
use columba_mtproto::tl::{Deserializable, Identifiable, Reader, Serializable};

/// An `rpc_error`: Telegram's convention is an HTTP-like code (400, 401, 403, 420, 500, ...)
/// and an upper-case reason such as `PHONE_CODE_INVALID` or `FLOOD_WAIT_30`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("rpc_error {code} {message}")]
pub struct RpcError {
    /// The error code.
    pub code: i32,
    /// The reason, upper case with underscores.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The TL object.
    pub fn to_bytes(&self) -> Vec<u8> {
        types::RpcError {
            error_code: self.code,
            error_message: self.message.clone(),
        }
        .to_bytes()
    }
}

/// What a request gets: the result's bytes (a TL object of the function's return type), or
/// an error.
pub type RpcOutcome = Result<Bytes, RpcError>;

/// Builds `rpc_result req_msg_id result`, packing the result with gzip when it is at least
/// `gzip_threshold` bytes and that makes it smaller.
pub(crate) fn rpc_result_body(
    req_msg_id: i64,
    outcome: RpcOutcome,
    gzip_threshold: Option<usize>,
) -> Bytes {
    let result: Bytes = match outcome {
        Ok(bytes) => maybe_gzip(bytes, gzip_threshold),
        Err(error) => Bytes::from(error.to_bytes()),
    };
    let mut body = BytesMut::with_capacity(12 + result.len());
    body.put_u32_le(RpcResult::CONSTRUCTOR_ID);
    body.put_i64_le(req_msg_id);
    body.extend_from_slice(&result);
    body.freeze()
}

/// `body` as it is, or `gzip_packed` when that is smaller and `body` is long enough. Takes
/// `body` by value: a clone of a `Bytes` made from a `Vec` allocates.
pub(crate) fn maybe_gzip(body: Bytes, gzip_threshold: Option<usize>) -> Bytes {
    match gzip_threshold {
        Some(threshold) if body.len() >= threshold => {
            let packed = GzipPacked::pack(&body).to_bytes();
            if packed.len() < body.len() {
                Bytes::from(packed)
            } else {
                body
            }
        }
        _ => body,
    }
}

/// Why a received result could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultError {
    /// Corrupt or too large once expanded.
    Gzip,
    /// An `rpc_error` that does not decode.
    Malformed,
}

/// Reads the `result` of an `rpc_result`: expands `gzip_packed` (within `max_unpacked_len`)
/// and turns `rpc_error` into an error.
pub(crate) fn read_result(
    result: &[u8],
    max_unpacked_len: usize,
) -> Result<RpcOutcome, ResultError> {
    let expanded;
    let mut bytes = result;
    if Reader::new(bytes).peek_u32() == Some(GzipPacked::CONSTRUCTOR_ID) {
        let packed = GzipPacked::from_bytes(bytes).map_err(|_| ResultError::Gzip)?;
        expanded = packed
            .unpack(max_unpacked_len)
            .map_err(|_| ResultError::Gzip)?;
        bytes = &expanded;
    }
    if Reader::new(bytes).peek_u32() == Some(types::RpcError::CONSTRUCTOR_ID) {
        let error = types::RpcError::from_bytes(bytes).map_err(|_| ResultError::Malformed)?;
        return Ok(Err(RpcError {
            code: error.error_code,
            message: error.error_message,
        }));
    }
    Ok(Ok(Bytes::copy_from_slice(bytes)))
}
