//! The little of PEM and DER that RSA keys in PKCS#1 form need.
//!
//! PKCS#1 (RFC 8017, appendix A.1) keys are a DER `SEQUENCE` of `INTEGER`s; PEM (RFC 7468)
//! wraps the DER in base64 between `-----BEGIN <label>-----` and `-----END <label>-----`.
//! Base64 goes through `base64ct`, whose decoder does not branch on the data, because private
//! keys pass through it.

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use super::rsa::RsaKeyError;

const TAG_INTEGER: u8 = 0x02;
const TAG_SEQUENCE: u8 = 0x30;

/// Extracts and decodes the body of the first PEM block with `label`.
pub(crate) fn decode(text: &str, label: &str) -> Result<Zeroizing<Vec<u8>>, RsaKeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or(RsaKeyError::Pem)? + begin.len();
    let rest = text.get(start..).ok_or(RsaKeyError::Pem)?;
    let stop = rest.find(&end).ok_or(RsaKeyError::Pem)?;
    let body: Zeroizing<String> = Zeroizing::new(
        rest.get(..stop)
            .ok_or(RsaKeyError::Pem)?
            .split_whitespace()
            .collect(),
    );
    Base64::decode_vec(&body)
        .map(Zeroizing::new)
        .map_err(|_| RsaKeyError::Pem)
}

/// Encodes DER bytes as a PEM block with `label`, 64 characters a line.
pub(crate) fn encode(der: &[u8], label: &str) -> String {
    let body = Zeroizing::new(Base64::encode_string(der));
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A reader over DER bytes.
pub(crate) struct DerReader<'a> {
    data: &'a [u8],
}

impl<'a> DerReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Reads one element with `tag`, returning its contents.
    fn element(&mut self, tag: u8) -> Result<&'a [u8], RsaKeyError> {
        let (&found, rest) = self.data.split_first().ok_or(RsaKeyError::Der)?;
        if found != tag {
            return Err(RsaKeyError::Der);
        }
        let (&first, mut rest) = rest.split_first().ok_or(RsaKeyError::Der)?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            // Long form: 1 to 4 length bytes, minimal (DER).
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(RsaKeyError::Der);
            }
            let bytes = rest.get(..count).ok_or(RsaKeyError::Der)?;
            rest = rest.get(count..).ok_or(RsaKeyError::Der)?;
            if bytes.first() == Some(&0) {
                return Err(RsaKeyError::Der);
            }
            let length = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if length < 0x80 {
                return Err(RsaKeyError::Der);
            }
            length
        };
        let contents = rest.get(..length).ok_or(RsaKeyError::Der)?;
        self.data = rest.get(length..).ok_or(RsaKeyError::Der)?;
        Ok(contents)
    }

    /// Reads a `SEQUENCE` and returns a reader over its contents.
    pub(crate) fn sequence(&mut self) -> Result<Self, RsaKeyError> {
        self.element(TAG_SEQUENCE).map(DerReader::new)
    }

    /// Reads a non-negative `INTEGER`, returning its big-endian magnitude without the sign
    /// byte.
    pub(crate) fn unsigned(&mut self) -> Result<&'a [u8], RsaKeyError> {
        let contents = self.element(TAG_INTEGER)?;
        match contents {
            [] => Err(RsaKeyError::Der),
            [first, ..] if first & 0x80 != 0 => Err(RsaKeyError::Der),
            [0, second, ..] if second & 0x80 == 0 => Err(RsaKeyError::Der),
            [0, rest @ ..] if !rest.is_empty() => Ok(rest),
            _ => Ok(contents),
        }
    }
}

/// Appends a DER length.
fn push_length(out: &mut Vec<u8>, length: usize) {
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// Appends a non-negative `INTEGER` from big-endian bytes (leading zeros are dropped).
pub(crate) fn push_unsigned(out: &mut Vec<u8>, magnitude: &[u8]) {
    let magnitude = super::minimal_be(magnitude);
    let needs_sign_byte = magnitude.first().is_none_or(|&b| b & 0x80 != 0);
    out.push(TAG_INTEGER);
    push_length(out, magnitude.len() + usize::from(needs_sign_byte));
    if needs_sign_byte {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
}

/// Wraps `contents` in a `SEQUENCE`.
pub(crate) fn sequence(contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 4);
    out.push(TAG_SEQUENCE);
    push_length(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_with_minimal_encoding() {
        for value in [&[0u8][..], &[0x7f], &[0x80], &[0, 0, 1, 2], &[0xff; 200]] {
            let mut out = Vec::new();
            push_unsigned(&mut out, value);
            let mut reader = DerReader::new(&out);
            let read = reader.unsigned().unwrap();
            let skip = value.iter().take_while(|&&b| b == 0).count();
            let expected = if skip == value.len() {
                &[0u8][..]
            } else {
                &value[skip..]
            };
            assert_eq!(read, expected);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn malformed_der_is_refused() {
        // Negative integer, non-minimal integer, non-minimal length, truncated contents.
        for bad in [
            &[2u8, 1, 0x80][..],
            &[2, 2, 0, 1],
            &[2, 0x81, 1, 5],
            &[2, 5, 1],
        ] {
            assert!(DerReader::new(bad).unsigned().is_err(), "{bad:?}");
        }
        assert!(
            DerReader::new(&[0x30, 0x85, 1, 1, 1, 1, 1])
                .sequence()
                .is_err()
        );
    }

    #[test]
    fn pem_round_trips_and_needs_its_label() {
        let der = (0..=255u8).collect::<Vec<_>>();
        let text = encode(&der, "RSA PUBLIC KEY");
        assert!(text.lines().all(|line| line.len() <= 64));
        assert_eq!(*decode(&text, "RSA PUBLIC KEY").unwrap(), der);
        assert!(decode(&text, "RSA PRIVATE KEY").is_err());
        assert!(decode("-----BEGIN X-----\n!!!\n-----END X-----", "X").is_err());
    }
}
