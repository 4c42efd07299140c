//! The limits and options of a session, for both roles.
//!
//! Every limit a peer could push against is here, with its default and the reason for it.
//! What a peer gets when it crosses one is said on each field.

use std::time::Duration;

use crate::ack::AckPolicy;
use crate::container::DEFAULT_MAX_CONTAINER_BYTES;
use crate::msg_id::MsgIdPolicy;

/// The most ids `msgs_ack`, `msgs_state_req` and `msg_resend_req` may carry (the spec's limit).
pub const MAX_IDS_PER_VECTOR: usize = 8192;

/// Limits and options of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The window of received msg_ids and the time bounds they must lie in.
    pub msg_ids: MsgIdPolicy,
    /// When received content-related messages are acknowledged.
    pub acks: AckPolicy,
    /// At most this many messages go out in one container (the spec allows 1024).
    pub max_container_messages: usize,
    /// At most this many bytes go out in one container.
    pub max_container_bytes: usize,
    /// Outgoing request bodies (client) and results (server) at least this long are sent
    /// `gzip_packed` when that makes them smaller. `None` never compresses.
    pub gzip_threshold: Option<usize>,
    /// A received `gzip_packed` may expand to at most this many bytes; a larger one is dropped
    /// and counted. 1 MiB holds the largest request a client sends (a 512 KiB file part with
    /// room to spare); gotd allows 10 MiB.
    pub max_unpacked_len: usize,
    /// All the `gzip_packed` objects of one received message (a container may hold up to
    /// 1024) may expand to at most this many bytes together, so that one message cannot
    /// make the server inflate gigabytes.
    pub max_unpacked_per_message: usize,
    /// Server: an `invokeAfterMsgs` may wait for at most this many messages; more get
    /// `rpc_error` 400 `MSG_WAIT_TOO_MANY` (Columba's name; the spec sets no limit).
    pub max_invoke_after_ids: usize,
    /// Bytes of messages queued and not yet sent; beyond it, updates are dropped (and
    /// counted) rather than queued, so a client that stops reading cannot grow the server's
    /// memory. Answers are still queued: `max_pending_requests` bounds them.
    pub max_queued_bytes: usize,
    /// Server: bytes queued beyond which an update of a stream (a channel's posts,
    /// [`crate::ServerSession::push_stream_update`]) is replaced by the stream's "too long"
    /// message, sent once, and the stream's next updates skipped until the queue has
    /// drained: a client that falls behind in a busy channel refetches it
    /// (`updates.getChannelDifference`) rather than the server queueing the whole channel for
    /// it. Default 1 MiB.
    pub max_stream_lag_bytes: usize,
    /// Server: streams one session may be lagging in at once; past it the session's stream
    /// updates are dropped as on a full queue (the client is told `updatesTooLong`).
    /// Default 64.
    pub max_lagging_streams: usize,
    /// Sent content-related messages kept for re-sending until the peer acknowledges them, by
    /// count. Beyond it the oldest are forgotten (and counted): the peer can still learn their
    /// fate with `msgs_state_req`.
    pub max_unacked_messages: usize,
    /// The same, by bytes of body.
    pub max_unacked_bytes: usize,
    /// Server: requests of one session handed to the application and not yet answered,
    /// including those waiting in `invokeAfterMsg`. One more gets `rpc_error` 420
    /// `FLOOD_WAIT_1`. Client: requests waiting for an answer; one more is refused locally.
    pub max_pending_requests: usize,
    /// Server: how long an `invokeAfterMsg` query waits for a message the server has not seen
    /// before it gets `rpc_error` 400 `MSG_WAIT_TIMEOUT`.
    pub invoke_after_timeout: Duration,
    /// Server: the longest `disconnect_delay` honoured by `ping_delay_disconnect`; a longer
    /// one is shortened to this.
    pub max_disconnect_delay: Duration,
    /// Client: re-send content-related messages still unacknowledged after this long (with a
    /// new msg_id). `None` re-sends only on a new connection, which suits reliable streams.
    pub resend_after: Option<Duration>,
    /// Client: how many future salts to ask for (1..=64).
    pub future_salts: i32,
    /// Client: switch to the next salt this long before the current one expires, and ask for
    /// more salts when the last known one expires within twice this.
    pub salt_margin: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            msg_ids: MsgIdPolicy::default(),
            acks: AckPolicy::default(),
            max_container_messages: columba_mtproto::tl::service::MAX_CONTAINER_MESSAGES,
            max_container_bytes: DEFAULT_MAX_CONTAINER_BYTES,
            gzip_threshold: Some(512),
            max_unpacked_len: 1024 * 1024,
            max_unpacked_per_message: 4 * 1024 * 1024,
            max_invoke_after_ids: 64,
            max_queued_bytes: 16 * 1024 * 1024,
            max_stream_lag_bytes: 1024 * 1024,
            max_lagging_streams: 64,
            max_unacked_messages: 4096,
            max_unacked_bytes: 64 * 1024 * 1024,
            max_pending_requests: 1024,
            invoke_after_timeout: Duration::from_secs(30),
            max_disconnect_delay: Duration::from_secs(600),
            resend_after: None,
            future_salts: 32,
            salt_margin: Duration::from_secs(300),
        }
    }
}
