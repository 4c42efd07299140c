//! Recognising what a received message is, from its constructor id.
//!
//! The session decodes the service messages it acts on; anything else is the application's
//! (an API query on the server, an update on the client) and stays bytes.

use columba_mtproto::tl::mtproto::{functions, types};
use columba_mtproto::tl::service::{GzipPacked, MsgContainer, MsgCopy, RpcResult};
use columba_mtproto::tl::{DecodeError, Deserializable, Identifiable, Reader};

use crate::config::MAX_IDS_PER_VECTOR;
use crate::msg_id::Relevance;

/// `invokeAfterMsg#cb9f372d {X:Type} msg_id:long query:!X = X` (API schema).
pub(crate) const INVOKE_AFTER_MSG_ID: u32 = 0xcb9f_372d;
/// `invokeAfterMsgs#3dc4b4f0 {X:Type} msg_ids:Vector<long> query:!X = X` (API schema).
pub(crate) const INVOKE_AFTER_MSGS_ID: u32 = 0x3dc4_b4f0;

/// A received message, decoded as far as the session needs.
#[derive(Debug)]
pub(crate) enum Incoming<'a> {
    Container(MsgContainer),
    Gzip(GzipPacked),
    Copy,
    Ack(types::MsgsAck),
    BadMsg(types::BadMsgNotification),
    BadSalt(types::BadServerSalt),
    StateReq(types::MsgsStateReq),
    StateInfo(types::MsgsStateInfo),
    AllInfo,
    DetailedInfo(types::MsgDetailedInfo),
    NewDetailedInfo(types::MsgNewDetailedInfo),
    ResendReq(types::MsgResendReq),
    ResendAnsReq(types::MsgResendAnsReq),
    /// `rpc_result`: the request's msg_id and the result's bytes (borrowed, not copied).
    RpcResult {
        req_msg_id: i64,
        result: &'a [u8],
    },
    Pong(types::Pong),
    FutureSalts(types::FutureSalts),
    NewSession(types::NewSessionCreated),
    DestroySessionOk(types::DestroySessionOk),
    DestroySessionNone(types::DestroySessionNone),
    Ping(functions::Ping),
    PingDelayDisconnect(functions::PingDelayDisconnect),
    GetFutureSalts(functions::GetFutureSalts),
    RpcDropAnswer(functions::RpcDropAnswer),
    DestroySession(functions::DestroySession),
    DestroyAuthKey,
    HttpWait,
    /// `invokeAfterMsg`/`invokeAfterMsgs`: the ids to wait for and the wrapped query.
    InvokeAfter {
        after: Vec<i64>,
        query: &'a [u8],
    },
    /// Anything else: an API query or an update, and the application's to decode.
    Other(&'a [u8]),
}

/// Why a received message could not be used.
#[derive(Debug)]
pub(crate) enum IncomingError {
    /// It does not decode as its constructor says.
    Malformed,
    /// An id vector longer than [`MAX_IDS_PER_VECTOR`].
    TooManyIds,
}

impl From<DecodeError> for IncomingError {
    fn from(_: DecodeError) -> Self {
        Self::Malformed
    }
}

fn decode<T: Deserializable>(body: &[u8]) -> Result<T, IncomingError> {
    Ok(T::from_bytes(body)?)
}

fn ids(ids: &[i64]) -> Result<(), IncomingError> {
    if ids.len() > MAX_IDS_PER_VECTOR {
        return Err(IncomingError::TooManyIds);
    }
    Ok(())
}

impl<'a> Incoming<'a> {
    /// Decodes `body`.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, IncomingError> {
        let Some(id) = Reader::new(body).peek_u32() else {
            return Err(IncomingError::Malformed);
        };
        Ok(match id {
            MsgContainer::CONSTRUCTOR_ID => Self::Container(decode(body)?),
            GzipPacked::CONSTRUCTOR_ID => Self::Gzip(decode(body)?),
            MsgCopy::CONSTRUCTOR_ID => {
                let _: MsgCopy = decode(body)?;
                Self::Copy
            }
            types::MsgsAck::CONSTRUCTOR_ID => {
                let ack: types::MsgsAck = decode(body)?;
                ids(&ack.msg_ids)?;
                Self::Ack(ack)
            }
            types::BadMsgNotification::CONSTRUCTOR_ID => Self::BadMsg(decode(body)?),
            types::BadServerSalt::CONSTRUCTOR_ID => Self::BadSalt(decode(body)?),
            types::MsgsStateReq::CONSTRUCTOR_ID => {
                let req: types::MsgsStateReq = decode(body)?;
                ids(&req.msg_ids)?;
                Self::StateReq(req)
            }
            types::MsgsStateInfo::CONSTRUCTOR_ID => Self::StateInfo(decode(body)?),
            types::MsgsAllInfo::CONSTRUCTOR_ID => {
                let info: types::MsgsAllInfo = decode(body)?;
                ids(&info.msg_ids)?;
                Self::AllInfo
            }
            types::MsgDetailedInfo::CONSTRUCTOR_ID => Self::DetailedInfo(decode(body)?),
            types::MsgNewDetailedInfo::CONSTRUCTOR_ID => Self::NewDetailedInfo(decode(body)?),
            types::MsgResendReq::CONSTRUCTOR_ID => {
                let req: types::MsgResendReq = decode(body)?;
                ids(&req.msg_ids)?;
                Self::ResendReq(req)
            }
            types::MsgResendAnsReq::CONSTRUCTOR_ID => {
                let req: types::MsgResendAnsReq = decode(body)?;
                ids(&req.msg_ids)?;
                Self::ResendAnsReq(req)
            }
            RpcResult::CONSTRUCTOR_ID => {
                let mut r = Reader::new(body);
                r.read_u32()?;
                let req_msg_id = r.read_i64()?;
                Self::RpcResult {
                    req_msg_id,
                    result: nonempty(r.read_rest())?,
                }
            }
            types::Pong::CONSTRUCTOR_ID => Self::Pong(decode(body)?),
            types::FutureSalts::CONSTRUCTOR_ID => Self::FutureSalts(decode(body)?),
            types::NewSessionCreated::CONSTRUCTOR_ID => Self::NewSession(decode(body)?),
            types::DestroySessionOk::CONSTRUCTOR_ID => Self::DestroySessionOk(decode(body)?),
            types::DestroySessionNone::CONSTRUCTOR_ID => Self::DestroySessionNone(decode(body)?),
            functions::Ping::CONSTRUCTOR_ID => Self::Ping(decode(body)?),
            functions::PingDelayDisconnect::CONSTRUCTOR_ID => {
                Self::PingDelayDisconnect(decode(body)?)
            }
            functions::GetFutureSalts::CONSTRUCTOR_ID => Self::GetFutureSalts(decode(body)?),
            functions::RpcDropAnswer::CONSTRUCTOR_ID => Self::RpcDropAnswer(decode(body)?),
            functions::DestroySession::CONSTRUCTOR_ID => Self::DestroySession(decode(body)?),
            functions::DestroyAuthKey::CONSTRUCTOR_ID => {
                let _: functions::DestroyAuthKey = decode(body)?;
                Self::DestroyAuthKey
            }
            types::HttpWait::CONSTRUCTOR_ID => Self::HttpWait,
            INVOKE_AFTER_MSG_ID => {
                let mut r = Reader::new(body);
                r.read_u32()?;
                let after = vec![r.read_i64()?];
                Self::InvokeAfter {
                    after,
                    query: nonempty(r.read_rest())?,
                }
            }
            INVOKE_AFTER_MSGS_ID => {
                let mut r = Reader::new(body);
                r.read_u32()?;
                let after: Vec<i64> = Vec::deserialize(&mut r)?;
                ids(&after)?;
                Self::InvokeAfter {
                    after,
                    query: nonempty(r.read_rest())?,
                }
            }
            _ => Self::Other(body),
        })
    }

    /// The seq_no parity this message must carry.
    pub(crate) fn relevance(&self) -> Relevance {
        match self {
            Self::Container(_) | Self::Ack(_) => Relevance::NotContentRelated,
            Self::RpcResult { .. } | Self::InvokeAfter { .. } | Self::Other(_) => {
                Relevance::ContentRelated
            }
            _ => Relevance::Either,
        }
    }

    /// Whether this message corrects the receiver's clock or salt, and so is checked without
    /// the time window.
    pub(crate) fn is_correction(&self) -> bool {
        matches!(self, Self::BadMsg(_) | Self::BadSalt(_))
    }
}

fn nonempty(query: &[u8]) -> Result<&[u8], IncomingError> {
    if query.len() < 4 {
        return Err(IncomingError::Malformed);
    }
    Ok(query)
}

/// Reads what a `gzip_packed` expanded to: any message but another wrapper (a container or
/// `gzip_packed` inside `gzip_packed` is malformed). Counts what it refuses.
pub(crate) fn parse_unpacked<'a>(
    inner: &'a [u8],
    stats: &mut crate::stats::SessionStats,
) -> Option<Incoming<'a>> {
    match Incoming::parse(inner) {
        Ok(Incoming::Container(_) | Incoming::Gzip(_)) | Err(_) => {
            stats.malformed += 1;
            None
        }
        Ok(parsed) => Some(parsed),
    }
}

/// Expands the `gzip_packed` objects of one received message within a cap per object and a
/// budget for the whole message (a container may hold up to 1024 of them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Inflater {
    budget: usize,
}

impl Inflater {
    /// Starts a new message with `budget` bytes to expand.
    pub(crate) fn reset(&mut self, budget: usize) {
        self.budget = budget;
    }

    /// Expands `packed` to at most `max_len` bytes and what is left of the budget; a failed
    /// attempt spends its whole allowance.
    pub(crate) fn unpack(&mut self, packed: &GzipPacked, max_len: usize) -> Result<Vec<u8>, ()> {
        let limit = max_len.min(self.budget);
        if limit == 0 {
            return Err(());
        }
        match packed.unpack(limit) {
            Ok(inner) => {
                self.budget -= inner.len().min(self.budget);
                Ok(inner)
            }
            Err(_) => {
                self.budget -= limit;
                Err(())
            }
        }
    }
}
