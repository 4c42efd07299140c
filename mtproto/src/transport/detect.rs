//! Server-side detection of the framing from the first bytes of a connection.
//!
//! The rules make the choice unambiguous: an obfuscated init never starts with `ef`, with an
//! intermediate tag or an HTTP/TLS prefix, and never has zero bytes at 4..8, which is exactly
//! what the full framing's first frame has there (sequence number 0).

use super::{Framing, TransportError};

/// What the first bytes of a connection announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// A plain framing, announced by a tag of `tag_len` bytes (0 for full) that is not part of
    /// any frame.
    Plain {
        /// The framing.
        framing: Framing,
        /// How many bytes the tag takes.
        tag_len: usize,
    },
    /// An obfuscated connection: the first 64 bytes are its init.
    Obfuscated,
}

/// What a server learnt about a connection from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    /// The framing in use.
    pub framing: Framing,
    /// Whether the connection is obfuscated.
    pub obfuscated: bool,
    /// For obfuscated connections, the DC id field of the init (meaningful for MTProxy
    /// clients only; others leave random bytes there).
    pub dc_id: Option<i16>,
}

/// First ints of requests this transport does not speak: HTTP methods and a TLS record.
const HTTP_PREFIXES: [&[u8; 4]; 8] = [
    b"POST", b"GET ", b"HEAD", b"OPTI", b"PUT ", b"DELE", b"PATC", b"CONN",
];

/// Looks at the first bytes of a connection. `Ok(None)`: not enough bytes to tell yet (at most
/// 64 are ever needed).
pub fn detect(first: &[u8]) -> Result<Option<Prefix>, TransportError> {
    let Some(&b0) = first.first() else {
        return Ok(None);
    };
    if b0 == 0xef {
        return Ok(Some(Prefix::Plain {
            framing: Framing::Abridged,
            tag_len: 1,
        }));
    }
    let Some(word) = first.get(..4) else {
        return Ok(None);
    };
    if word == [0xee; 4] {
        return Ok(Some(Prefix::Plain {
            framing: Framing::Intermediate,
            tag_len: 4,
        }));
    }
    if word == [0xdd; 4] {
        return Ok(Some(Prefix::Plain {
            framing: Framing::PaddedIntermediate,
            tag_len: 4,
        }));
    }
    if HTTP_PREFIXES.iter().any(|p| p.as_slice() == word) {
        return Err(TransportError::UnsupportedProtocol("HTTP"));
    }
    if word.get(..3) == Some(&[0x16, 0x03, 0x01][..]) {
        return Err(TransportError::UnsupportedProtocol(
            "TLS (fake-TLS MTProxy)",
        ));
    }
    let Some(second) = first.get(4..8) else {
        return Ok(None);
    };
    if second == [0; 4] {
        return Ok(Some(Prefix::Plain {
            framing: Framing::Full,
            tag_len: 0,
        }));
    }
    if first.len() < 64 {
        return Ok(None);
    }
    Ok(Some(Prefix::Obfuscated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_prefix_is_recognised() {
        assert_eq!(detect(&[]), Ok(None));
        assert_eq!(
            detect(&[0xef]),
            Ok(Some(Prefix::Plain {
                framing: Framing::Abridged,
                tag_len: 1
            }))
        );
        assert_eq!(detect(&[0xee, 0xee, 0xee]), Ok(None));
        assert_eq!(
            detect(&[0xee; 4]),
            Ok(Some(Prefix::Plain {
                framing: Framing::Intermediate,
                tag_len: 4
            }))
        );
        assert_eq!(
            detect(&[0xdd; 5]),
            Ok(Some(Prefix::Plain {
                framing: Framing::PaddedIntermediate,
                tag_len: 4
            }))
        );
        assert_eq!(
            detect(&[40, 0, 0, 0, 0, 0, 0, 0]),
            Ok(Some(Prefix::Plain {
                framing: Framing::Full,
                tag_len: 0
            }))
        );
        assert_eq!(detect(&[40, 0, 0, 0, 1, 0, 0, 0]), Ok(None));
        assert_eq!(detect(&[0x42; 64]), Ok(Some(Prefix::Obfuscated)));
        assert!(matches!(
            detect(b"POST /api HTTP/1.1"),
            Err(TransportError::UnsupportedProtocol(_))
        ));
        assert!(matches!(
            detect(b"GET / HTTP/1.1"),
            Err(TransportError::UnsupportedProtocol(_))
        ));
        assert!(matches!(
            detect(&[0x16, 0x03, 0x01, 0x02, 0]),
            Err(TransportError::UnsupportedProtocol(_))
        ));
    }
}
