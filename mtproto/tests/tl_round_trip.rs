//! Property tests over every generated TL item of both schemas: arbitrary values round-trip
//! (encode, decode, equal, nothing left over), and arbitrary bytes never panic the decoder.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed assertion or an out-of-range index is a test failure"
)]

use columba_mtproto::tl::{
    self, Deserializable, Reader, Serializable,
    service::{GzipPacked, MsgContainer, RpcResult},
    testing::Gen,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_service_schema_item_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let checked = tl::mtproto::round_trip_every_type(&mut g).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // 27 constructors, 17 types and 9 functions are generated from mtproto.tl.
        prop_assert!(checked >= 50, "only {checked} items checked");
    }

    #[test]
    fn every_api_schema_item_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let checked = tl::api::round_trip_every_type(&mut g).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(checked > 3000, "only {checked} items checked");
    }

    #[test]
    fn every_secret_schema_item_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let checked = tl::secret::round_trip_every_type(&mut g).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // secret.tl has 85 constructors.
        prop_assert!(checked >= 80, "only {checked} items checked");
    }

    #[test]
    fn hand_written_service_constructors_round_trip(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        tl::testing::check_round_trip::<MsgContainer>(&mut g).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Whatever decodes must re-encode to the bytes it consumed.
        tl::mtproto::decode_reencode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        tl::api::decode_reencode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        tl::secret::decode_reencode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = MsgContainer::from_bytes(&bytes);
        let _ = RpcResult::from_bytes(&bytes);
        let _ = GzipPacked::from_bytes(&bytes);
    }

    #[test]
    fn arbitrary_tails_after_a_known_id_never_panic(
        index in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Start with a real constructor id so that decoding gets past the first word.
        let (id, _) = *index.get(tl::api::ALL_IDS);
        let mut bytes = id.to_le_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        tl::api::decode_reencode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

#[test]
fn known_answer_req_pq_multi_and_res_pq() {
    use tl::mtproto::{enums, functions, types};
    // From https://core.telegram.org/mtproto/samples-auth_key: the nonce of the example.
    let nonce: [u8; 16] = *b"\x40\x67\x09\xF6\x12\xFA\xDF\xBE\xC3\xF0\x28\x9D\x0A\xA6\x7E\xEF";
    let request = functions::ReqPqMulti { nonce };
    let bytes = request.to_bytes();
    assert_eq!(&bytes[..4], &[0xf1, 0x8e, 0x7e, 0xbe]);
    assert_eq!(&bytes[4..], &nonce);

    let res = types::ResPQ {
        nonce,
        server_nonce: [0x11; 16],
        pq: vec![0x17, 0xED, 0x48, 0x94, 0x1A, 0x08, 0xF9, 0x81],
        server_public_key_fingerprints: vec![-0x3f0e_d1b3_f42c_6f61],
    };
    let bytes = res.to_bytes();
    // resPQ#05162463, then nonce, server_nonce, pq as 1-byte length 8 + 8 bytes + 3 padding.
    assert_eq!(&bytes[..4], &[0x63, 0x24, 0x16, 0x05]);
    assert_eq!(bytes[36], 8);
    assert_eq!(bytes.len(), 4 + 16 + 16 + 12 + 4 + 4 + 8);
    let decoded = enums::ResPQ::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, enums::ResPQ::ResPQ(res));
}

#[test]
fn flags_and_shared_bits() {
    use tl::api::types::InputMediaUploadedPhoto;
    // inputMediaUploadedPhoto has `live_photo:flags.3?true video:flags.3?InputDocument`.
    let photo = |live_photo, video| InputMediaUploadedPhoto {
        spoiler: false,
        live_photo,
        file: tl::api::enums::InputFile::InputFile(tl::api::types::InputFile {
            id: 1,
            parts: 1,
            name: "a".into(),
            md5_checksum: String::new(),
        }),
        stickers: None,
        ttl_seconds: Some(5),
        video,
    };
    let video = Some(tl::api::enums::InputDocument::InputDocumentEmpty(
        tl::api::types::InputDocumentEmpty {},
    ));
    let both = photo(true, video);
    assert_eq!(
        InputMediaUploadedPhoto::from_bytes(&both.to_bytes()).unwrap(),
        both
    );
    let flags = u32::from_le_bytes(both.to_bytes()[4..8].try_into().unwrap());
    assert_eq!(flags, (1 << 1) | (1 << 3));
    // Half a group is not sent: the bit stays clear.
    let half = photo(true, None);
    let flags = u32::from_le_bytes(half.to_bytes()[4..8].try_into().unwrap());
    assert_eq!(flags, 1 << 1);
}

#[test]
fn unknown_flag_bits_and_constructors_are_typed_errors() {
    use tl::api::types::InputMediaUploadedPhoto;
    let mut bytes = InputMediaUploadedPhoto {
        spoiler: false,
        live_photo: false,
        file: tl::api::enums::InputFile::InputFile(tl::api::types::InputFile {
            id: 1,
            parts: 1,
            name: String::new(),
            md5_checksum: String::new(),
        }),
        stickers: None,
        ttl_seconds: None,
        video: None,
    }
    .to_bytes();
    bytes[7] = 0x80; // bit 31
    assert!(matches!(
        InputMediaUploadedPhoto::from_bytes(&bytes),
        Err(tl::DecodeError::UnknownFlags {
            flags: 0x8000_0000,
            ..
        })
    ));
    assert_eq!(
        tl::api::enums::InputPeer::from_bytes(&[1, 2, 3, 4]),
        Err(tl::DecodeError::UnknownConstructor {
            type_name: "InputPeer",
            id: 0x0403_0201
        })
    );
}

#[test]
fn generic_wrappers_carry_any_query() {
    use tl::api::functions::{InvokeWithLayer, help::GetConfig};
    let call = InvokeWithLayer {
        layer: tl::API_LAYER,
        query: GetConfig {},
    };
    let bytes = call.to_bytes();
    let decoded = InvokeWithLayer::<tl::RawObject>::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.layer, 229);
    assert_eq!(decoded.query.constructor_id(), Some(0xc4f9_186b));
    assert_eq!(
        GetConfig::from_bytes(&decoded.query.0).unwrap(),
        GetConfig {}
    );
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    // textBold#6724abc4 text:RichText, nested far beyond the limit, ending in textEmpty.
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        bytes.extend_from_slice(&0x6724_abc4u32.to_le_bytes());
    }
    bytes.extend_from_slice(&0xdc3d_824fu32.to_le_bytes());
    let result = tl::api::enums::RichText::deserialize(&mut Reader::new(&bytes));
    assert_eq!(
        result,
        Err(tl::DecodeError::TooDeep {
            limit: Reader::DEFAULT_MAX_DEPTH
        })
    );

    // At the limit itself, decoding succeeds (run in a thread with the default test stack).
    let depth = Reader::DEFAULT_MAX_DEPTH as usize - 1;
    let mut ok = Vec::new();
    for _ in 0..depth {
        ok.extend_from_slice(&0x6724_abc4u32.to_le_bytes());
    }
    ok.extend_from_slice(&0xdc3d_824fu32.to_le_bytes());
    std::thread::spawn(move || tl::api::enums::RichText::from_bytes(&ok).unwrap())
        .join()
        .unwrap();
}

#[test]
fn names_and_ids() {
    assert_eq!(tl::api::name_for_id(0xda9b_0d0d), Some("invokeWithLayer"));
    assert_eq!(tl::mtproto::name_for_id(0x7abe_77ec), Some("ping"));
    assert_eq!(tl::api::name_for_id(0), None);
}

#[test]
fn fuzz_seed_corpus_decodes() {
    // The seeds of the tl_decode fuzz target are real objects: each must decode, in one schema
    // or as a hand-written service constructor, and re-encode identically.
    // The directory cargo runs the test in, not the one it was compiled in: a build cache
    // shared between checkouts may hold a binary compiled elsewhere.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let dir = std::path::Path::new(&manifest_dir).join("../fuzz/corpus/tl_decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let decoded = tl::mtproto::decode_reencode(&bytes).unwrap().is_some()
            || tl::api::decode_reencode(&bytes).unwrap().is_some()
            || MsgContainer::from_bytes(&bytes).is_ok()
            || RpcResult::from_bytes(&bytes).is_ok();
        assert!(decoded, "seed {} does not decode", path.display());
        seen += 1;
    }
    assert!(seen >= 10);
}
