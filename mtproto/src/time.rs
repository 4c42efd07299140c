//! Time as this crate receives it: always passed in, never read from a clock.

use std::time::{Duration, Instant};

/// The current time, as the caller sees it: a monotonic instant for deadlines and the wall
/// clock (time since the Unix epoch) for what goes on the wire (msg_ids, server_time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// For deadlines and timers.
    pub monotonic: Instant,
    /// Since 1970-01-01T00:00:00Z.
    pub unix: Duration,
}

impl Now {
    /// Whole seconds since the Unix epoch.
    pub fn unix_secs(&self) -> i64 {
        i64::try_from(self.unix.as_secs()).unwrap_or(i64::MAX)
    }
}

/// The msg_id for a wall-clock time: seconds in the high 32 bits, the fraction of a second in
/// the low 32, with the two lowest bits cleared (callers set them: client ids end in 0,
/// server replies in 1, server-initiated messages in 3).
pub fn msg_id_at(unix: Duration) -> i64 {
    let secs = unix.as_secs() & 0xffff_ffff;
    let fraction = (u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000;
    ((secs << 32) | (fraction & 0xffff_fffc)) as i64
}

/// What the two lowest bits of an id say about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgIdKind {
    /// Sent by the client: divisible by 4.
    Client,
    /// A server reply to a client message: ends in binary 01.
    ServerReply,
    /// A message the server started (an update, a service message): ends in binary 11.
    ServerInitiated,
}

impl MsgIdKind {
    /// The two lowest bits of ids of this kind.
    pub fn low_bits(self) -> i64 {
        match self {
            Self::Client => 0,
            Self::ServerReply => 1,
            Self::ServerInitiated => 3,
        }
    }
}

/// Produces strictly increasing msg_ids for one side of a connection or session (the
/// handshake's unencrypted messages and the session's encrypted ones alike).
#[derive(Debug, Clone, Default)]
pub struct MsgIdGenerator {
    last: i64,
    /// Added to the local clock (the client's correction from the server's time).
    offset_nanos: i64,
}

impl MsgIdGenerator {
    /// A generator with no clock correction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correction added to the local clock, in seconds (server time minus local
    /// time, as the handshake or a bad_msg_notification 16/17 gives it).
    pub fn set_time_offset(&mut self, seconds: i64) {
        self.offset_nanos = seconds.saturating_mul(1_000_000_000);
    }

    /// Sets a new correction after the peer said the clock was wrong (bad_msg_notification 16
    /// or 17), and lets ids follow the corrected clock even below the ids already produced:
    /// a client whose clock ran ahead would otherwise keep producing ids from the future.
    /// Ids stay above `floor`, the highest id the peer is known to have accepted, so that no
    /// accepted id is repeated and the peer's seq_no order still holds.
    pub fn resynchronise(&mut self, seconds: i64, floor: i64) {
        self.set_time_offset(seconds);
        self.last = floor;
    }

    /// The correction, in seconds.
    pub fn time_offset(&self) -> i64 {
        self.offset_nanos / 1_000_000_000
    }

    /// The last id produced (0 before the first).
    pub fn last(&self) -> i64 {
        self.last
    }

    /// The next id of `kind` at `now`: from the corrected clock, or just above the previous
    /// id when the clock has not moved past it.
    pub fn next(&mut self, now: Now, kind: MsgIdKind) -> i64 {
        let nanos = i64::try_from(now.unix.as_nanos())
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_nanos);
        let corrected = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
        let candidate = msg_id_at(corrected) | kind.low_bits();
        let id = if candidate > self.last {
            candidate
        } else {
            (((self.last >> 2) + 1) << 2) | kind.low_bits()
        };
        self.last = id;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(unix: Duration) -> Now {
        Now {
            monotonic: Instant::now(),
            unix,
        }
    }

    const T: Duration = Duration::from_secs(1_700_000_000);

    #[test]
    fn resynchronising_lets_ids_follow_a_clock_set_back() {
        let mut ids = MsgIdGenerator::new();
        let now = at(Duration::from_secs(1_700_000_600));
        let ahead = ids.next(now, MsgIdKind::Client);
        // set_time_offset alone keeps ids increasing (still from the future)...
        ids.set_time_offset(-600);
        assert!(ids.next(now, MsgIdKind::Client) > ahead);
        // ...resynchronise lets them follow the corrected clock.
        ids.resynchronise(-600, 0);
        let corrected = ids.next(now, MsgIdKind::Client);
        assert_eq!(corrected >> 32, 1_700_000_000);
        assert!(ids.next(now, MsgIdKind::Client) > corrected);
    }

    #[test]
    fn generated_ids_carry_time_parity_and_increase() {
        let mut generator = MsgIdGenerator::new();
        let a = generator.next(at(T), MsgIdKind::Client);
        assert_eq!(a >> 32, 1_700_000_000);
        assert_eq!(a & 3, 0);
        // The same instant again: still strictly increasing.
        let b = generator.next(at(T), MsgIdKind::Client);
        assert!(b > a && b & 3 == 0);
        let mut server = MsgIdGenerator::new();
        let reply = server.next(at(T), MsgIdKind::ServerReply);
        let push = server.next(at(T), MsgIdKind::ServerInitiated);
        assert_eq!((reply & 3, push & 3), (1, 3));
        assert!(push > reply);
        // A clock correction moves the ids.
        generator.set_time_offset(100);
        assert_eq!(
            generator.next(at(T), MsgIdKind::Client) >> 32,
            1_700_000_100
        );
        assert_eq!(generator.time_offset(), 100);
    }

    proptest! {
        #[test]
        fn generator_is_strictly_increasing_with_the_right_parity(
            steps in proptest::collection::vec((0u64..3_000_000_000, 0u8..3), 1..200),
        ) {
            let mut generator = MsgIdGenerator::new();
            let mut last = 0;
            let mut clock = T;
            for (advance_nanos, kind) in steps {
                // The clock may stand still or move forward by up to 3 s.
                clock += Duration::from_nanos(advance_nanos % 3 * 1_000_000_000 / 3 + advance_nanos % 7);
                let kind = [MsgIdKind::Client, MsgIdKind::ServerReply, MsgIdKind::ServerInitiated][usize::from(kind)];
                let id = generator.next(at(clock), kind);
                prop_assert!(id > last);
                prop_assert_eq!(id & 3, kind.low_bits());
                last = id;
            }
        }

    }

    #[test]
    fn msg_ids_carry_the_time() {
        let id = msg_id_at(Duration::new(1_707_425_105, 500_000_000));
        assert_eq!(id >> 32, 1_707_425_105);
        assert_eq!(id & 3, 0);
        assert_eq!((id & 0xffff_ffff) as u64, 0x8000_0000);
        assert!(msg_id_at(Duration::new(10, 1)) < msg_id_at(Duration::new(10, 1000)));
    }
}
