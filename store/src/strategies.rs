//! Proptest strategies for the store's identifiers, shared by the unit tests.

use proptest::prelude::*;

use crate::message::{BoxId, Peer};

/// Any box.
pub(crate) fn box_id() -> impl Strategy<Value = BoxId> {
    prop_oneof![
        any::<i64>().prop_map(BoxId::User),
        any::<i64>().prop_map(BoxId::Channel)
    ]
}

/// Any peer.
pub(crate) fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        any::<i64>().prop_map(Peer::User),
        any::<i64>().prop_map(Peer::Chat),
        any::<i64>().prop_map(Peer::Channel),
    ]
}
