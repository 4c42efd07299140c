//! Decodes arbitrary bytes as whatever TL object their leading constructor id names, in every
//! schema (each constructor and function of mtproto.tl, api.tl and the end-to-end secret.tl),
//! plus the hand-written service constructors.
//!
//! Invariants checked (a violation panics, which libFuzzer reports):
//! - decoding never panics and never reads past the input;
//! - whatever decodes re-encodes to exactly the bytes it consumed (decoding is canonical).

#![no_main]

use columba_mtproto::tl::{
    self,
    service::{MsgContainer, RpcResult},
    testing::decode_reencode,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for result in [
        tl::mtproto::decode_reencode(data),
        tl::api::decode_reencode(data),
        tl::secret::decode_reencode(data),
        decode_reencode::<MsgContainer>(data),
        decode_reencode::<RpcResult>(data),
    ] {
        match result {
            Ok(Some(consumed)) => assert!(consumed <= data.len()),
            Ok(None) => {}
            Err(failure) => panic!("{failure}"),
        }
    }
});
