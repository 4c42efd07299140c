//! Counters of what a session refused or dropped, so that an operator can see a misbehaving
//! peer (or a bug) without reading logs.

/// Counts kept by one session. Every refusal of a peer's message adds to exactly one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Messages accepted (inner messages of containers counted one by one).
    pub accepted: u64,
    /// Messages answered with bad_msg_notification, by code: 16, 17, 18, 19, 20, 32, 33, 34,
    /// 35, 48, 64 in that order.
    pub bad_msg: [u64; 11],
    /// Messages ignored as duplicates (an id already seen).
    pub duplicates: u64,
    /// Messages ignored because their id lies below the window (client role: the server gets 20).
    pub below_window: u64,
    /// Bodies that did not decode as what their constructor says.
    pub malformed: u64,
    /// `gzip_packed` objects refused (corrupt, or expanding past the cap).
    pub gzip_refused: u64,
    /// Id vectors over 8192 entries (service-message limits; the connection gets -429).
    pub oversized_vectors: u64,
    /// Answers, notifications or acks that refer to nothing this side sent.
    pub unrelated: u64,
    /// Sent messages forgotten unacknowledged because of the re-send buffer's limits.
    pub forgotten_unacked: u64,
    /// Requests refused because too many were pending.
    pub flood_refused: u64,
    /// Messages re-sent with a new msg_id.
    pub resent: u64,
    /// Updates dropped because the client was not reading (the send queue was full).
    pub dropped_updates: u64,
    /// Messages the session does not handle (`msg_copy`, `http_wait`) and ignored.
    pub unsupported: u64,
}

impl SessionStats {
    /// Adds one to the counter of a bad_msg_notification code (unknown codes are ignored).
    pub(crate) fn count_bad_msg(&mut self, code: i32) {
        if let Some(slot) = bad_msg_index(code).and_then(|at| self.bad_msg.get_mut(at)) {
            *slot += 1;
        }
    }

    /// The number of bad_msg_notification messages sent with `code`.
    pub fn bad_msg_count(&self, code: i32) -> u64 {
        bad_msg_index(code)
            .and_then(|at| self.bad_msg.get(at))
            .copied()
            .unwrap_or(0)
    }
}

/// Where a bad_msg_notification code is counted in [`SessionStats::bad_msg`].
fn bad_msg_index(code: i32) -> Option<usize> {
    const CODES: [i32; 11] = [16, 17, 18, 19, 20, 32, 33, 34, 35, 48, 64];
    CODES.iter().position(|&known| known == code)
}
