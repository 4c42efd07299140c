//! What a handler may answer with: the value of the function's `Return` type, or the same
//! value [`Encoded`] ahead of time.
//!
//! A handler that answers the same bytes to many callers (the configuration every client
//! asks for on every connection) encodes them once and hands out the bytes; the type
//! parameter keeps the compile-time check that the bytes are of the type the schema says.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use columba_mtproto::tl::Serializable;

/// A value of type `T`, already encoded. Cheap to clone (the bytes are shared).
pub struct Encoded<T> {
    bytes: Bytes,
    // `fn() -> T`: an `Encoded<T>` holds no `T`, so it is `Send` and `Sync` whatever `T` is.
    of: PhantomData<fn() -> T>,
}

impl<T: Serializable> Encoded<T> {
    /// Encodes `value`.
    pub fn new(value: &T) -> Self {
        Self {
            bytes: Bytes::from(value.to_bytes()),
            of: PhantomData,
        }
    }
}

impl<T> Encoded<T> {
    /// The encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl<T> Clone for Encoded<T> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            of: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Encoded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoded")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// An answer of type `R`, as bytes: implemented for `R` itself (encoded when the handler
/// is done) and for [`Encoded<R>`] (handed out as it is).
pub trait IntoAnswer<R> {
    /// The answer's bytes.
    fn into_answer(self) -> Bytes;
}

impl<R: Serializable> IntoAnswer<R> for R {
    fn into_answer(self) -> Bytes {
        Bytes::from(self.to_bytes())
    }
}

impl<R> IntoAnswer<R> for Encoded<R> {
    fn into_answer(self) -> Bytes {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use columba_mtproto::tl::api::{enums, types};

    use super::*;

    #[test]
    fn both_forms_give_the_same_bytes() {
        let value: enums::NearestDc = types::NearestDc {
            country: "NL".to_owned(),
            this_dc: 2,
            nearest_dc: 4,
        }
        .into();
        let encoded = Encoded::new(&value);
        assert_eq!(encoded.bytes().as_ref(), value.to_bytes().as_slice());
        let cloned = encoded.clone();
        assert_eq!(
            IntoAnswer::<enums::NearestDc>::into_answer(cloned),
            IntoAnswer::<enums::NearestDc>::into_answer(value)
        );
        assert!(format!("{encoded:?}").contains("NearestDc"));
    }
}
