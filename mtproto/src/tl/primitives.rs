//! Codec implementations for the TL primitives, vectors, boxes and raw objects.

use super::{
    BOOL_FALSE_ID, BOOL_TRUE_ID, BareDeserializable, BareSerializable, BufMut, DecodeError,
    Deserializable, Reader, Serializable, VECTOR_ID, prealloc, read_vector_header, write_bytes,
    write_count,
};

impl Serializable for i32 {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_i32_le(*self);
    }
}

impl Deserializable for i32 {
    const MIN_WIRE_SIZE: usize = 4;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32()
    }
}

impl Serializable for i64 {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_i64_le(*self);
    }
}

impl Deserializable for i64 {
    const MIN_WIRE_SIZE: usize = 8;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i64()
    }
}

impl Serializable for f64 {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_f64_le(*self);
    }
}

impl Deserializable for f64 {
    const MIN_WIRE_SIZE: usize = 8;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_f64()
    }
}

impl Serializable for bool {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32_le(if *self { BOOL_TRUE_ID } else { BOOL_FALSE_ID });
    }
}

impl Deserializable for bool {
    const MIN_WIRE_SIZE: usize = 4;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u32()? {
            BOOL_TRUE_ID => Ok(true),
            BOOL_FALSE_ID => Ok(false),
            other => Err(DecodeError::InvalidBool(other)),
        }
    }
}

impl<const N: usize> Serializable for [u8; N] {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(self);
    }
}

impl<const N: usize> Deserializable for [u8; N] {
    const MIN_WIRE_SIZE: usize = N;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_array()
    }
}

impl Serializable for String {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        write_bytes(buf, self.as_bytes());
    }
}

impl Deserializable for String {
    const MIN_WIRE_SIZE: usize = 4;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = r.read_bytes()?;
        core::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// `Vec<u8>` is TL `bytes`, not a vector of bytes (TL has no byte type).
impl Serializable for Vec<u8> {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        write_bytes(buf, self);
    }
}

impl Deserializable for Vec<u8> {
    const MIN_WIRE_SIZE: usize = 4;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bytes().map(<[u8]>::to_vec)
    }
}

/// Any other `Vec<T>` is a boxed `Vector<T>` of boxed (or primitive) items.
impl<T: Serializable> Serializable for Vec<T> {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32_le(VECTOR_ID);
        write_count(buf, self.len());
        for item in self {
            item.serialize(buf);
        }
    }
}

impl<T: Deserializable> Deserializable for Vec<T> {
    const MIN_WIRE_SIZE: usize = 8;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = read_vector_header(r, true, T::MIN_WIRE_SIZE)?;
        let mut items = Self::with_capacity(prealloc(count));
        for _ in 0..count {
            items.push(T::deserialize(r)?);
        }
        Ok(items)
    }
}

impl<T: Serializable> Serializable for Box<T> {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        (**self).serialize(buf);
    }
}

impl<T: Deserializable> Deserializable for Box<T> {
    const MIN_WIRE_SIZE: usize = T::MIN_WIRE_SIZE;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::deserialize(r).map(Self::new)
    }
}

impl<T: BareSerializable> BareSerializable for Box<T> {
    fn serialize_bare<B: BufMut>(&self, buf: &mut B) {
        (**self).serialize_bare(buf);
    }
}

impl<T: BareDeserializable> BareDeserializable for Box<T> {
    const MIN_BARE_SIZE: usize = T::MIN_BARE_SIZE;
    fn deserialize_bare(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::deserialize_bare(r).map(Self::new)
    }
}

/// An object kept as its serialized bytes, for positions where the schema allows any object
/// (`rpc_result.result`, the `!X` query of `invokeWithLayer` and friends).
///
/// Decoding takes **everything that remains** in the reader, so it is only meaningful as the
/// last field of its container, which is where the schemas put such fields. Decode the
/// bytes later with the type that their constructor id names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawObject(pub Vec<u8>);

impl RawObject {
    /// The constructor id at the start of the object, if there are at least 4 bytes.
    pub fn constructor_id(&self) -> Option<u32> {
        Reader::new(&self.0).peek_u32()
    }
}

impl Serializable for RawObject {
    fn serialize<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(&self.0);
    }
}

impl Deserializable for RawObject {
    const MIN_WIRE_SIZE: usize = 0;
    fn deserialize(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.read_rest().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(7i32.to_bytes(), [7, 0, 0, 0]);
        assert_eq!(true.to_bytes(), [0xb5, 0x75, 0x72, 0x99]);
        assert_eq!(String::from("hi").to_bytes(), [2, b'h', b'i', 0]);
        assert_eq!(
            vec![1i64].to_bytes(),
            [0x15, 0xc4, 0xb5, 0x1c, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        let long = vec![0u8; 300].to_bytes();
        assert_eq!(&long[..4], &[254, 44, 1, 0]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn vector_count_is_checked_before_allocation() {
        // Declares 2^31 - 1 longs with 0 bytes behind.
        let bytes = [0x15, 0xc4, 0xb5, 0x1c, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            Vec::<i64>::from_bytes(&bytes),
            Err(DecodeError::VectorTooLong {
                declared: i32::MAX,
                remaining: 0
            })
        ));
        let negative = [0x15, 0xc4, 0xb5, 0x1c, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Vec::<i32>::from_bytes(&negative),
            Err(DecodeError::VectorTooLong { .. })
        ));
    }

    #[test]
    fn invalid_bool_and_utf8() {
        assert_eq!(
            bool::from_bytes(&[1, 2, 3, 4]),
            Err(DecodeError::InvalidBool(0x0403_0201))
        );
        assert_eq!(
            String::from_bytes(&[1, 0xff, 0, 0]),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn trailing_bytes_are_reported() {
        assert_eq!(
            i32::from_bytes(&[0; 5]),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }
}
