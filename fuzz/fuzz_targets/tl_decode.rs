//! Decodes arbitrary bytes as whatever TL object their leading constructor id names, in both
//! schemas (every constructor and function of mtproto.tl and api.tl), plus the hand-written
//! service constructors.
//!
//! Invariants checked (a violation panics, which libFuzzer reports):
//! - decoding never panics and never reads past the input;
//! - whatever decodes re-encodes to exactly the bytes it consumed (decoding is canonical).

#![no_main]

use columba_mtproto::tl::{
    self, Deserializable, Reader, Serializable,
    service::{MsgContainer, RpcResult},
};
use libfuzzer_sys::fuzz_target;

fn check<T: Deserializable + Serializable>(data: &[u8]) {
    let mut reader = Reader::new(data);
    if let Ok(value) = T::deserialize(&mut reader) {
        let consumed = reader.position();
        assert!(consumed <= data.len());
        assert_eq!(value.to_bytes(), data[..consumed], "re-encoding differs");
    }
}

fuzz_target!(|data: &[u8]| {
    for result in [tl::mtproto::decode_reencode(data), tl::api::decode_reencode(data)] {
        match result {
            Ok(Some(consumed)) => assert!(consumed <= data.len()),
            Ok(None) => {}
            Err(failure) => panic!("{failure}"),
        }
    }
    check::<MsgContainer>(data);
    check::<RpcResult>(data);
});
