//! Reads decrypted secret-chat payloads as `decryptedMessageLayer` wrappers.
//!
//! Invariants: parsing never panics; whatever is accepted names a layer of at least 17 and
//! re-encodes (with its random bytes) to the bytes it came from.

#![no_main]

use columba_mtproto::e2e::layer;
use columba_mtproto::tl::secret::enums::DecryptedMessageLayer;
use columba_mtproto::tl::{Deserializable, Serializable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(layered) = layer::parse(data) {
        assert!(layered.layer >= layer::MIN_LAYER);
        let wrapper = DecryptedMessageLayer::from_bytes(data).expect("parsed once");
        assert_eq!(wrapper.to_bytes(), data);
    }
});
