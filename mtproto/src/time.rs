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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_ids_carry_the_time() {
        let id = msg_id_at(Duration::new(1_707_425_105, 500_000_000));
        assert_eq!(id >> 32, 1_707_425_105);
        assert_eq!(id & 3, 0);
        assert_eq!((id & 0xffff_ffff) as u64, 0x8000_0000);
        assert!(msg_id_at(Duration::new(10, 1)) < msg_id_at(Duration::new(10, 1000)));
    }
}
