//! `msg_container`: checked on receipt.
//!
//! The TL decoder (`columba_mtproto::tl::service::MsgContainer`) already refuses more than
//! 1024 messages and nested containers. What needs the session's view is checked here: every
//! inner msg_id lies below the container's own, and no inner id repeats; a container that
//! breaks either gets bad_msg_notification 64 (invalid container). Each inner message then goes
//! through the session's msg_id and seq_no checks on its own, and is acknowledged on its own.
//!
//! On send, the outbox packs messages (`crate::outbox`): up to a count and a byte size, the
//! container numbered after its contents (so its msg_id is the highest) with an even seq_no.

use std::collections::HashSet;

use columba_mtproto::tl::service::MsgContainer;

/// Default cap on a container's serialized size.
pub const DEFAULT_MAX_CONTAINER_BYTES: usize = 512 * 1024;

/// Why a received container is invalid (bad_msg_notification 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ContainerError {
    /// An inner message's msg_id is not below the container's.
    #[error("inner msg_id {0:#x} is not below the container's")]
    InnerIdNotBelow(i64),
    /// Two inner messages share a msg_id.
    #[error("inner msg_id {0:#x} appears twice")]
    DuplicateInnerId(i64),
}

impl ContainerError {
    /// The bad_msg_notification code: 64, invalid container.
    pub(crate) fn bad_msg_code(&self) -> i32 {
        64
    }
}

/// Checks a received container against its own msg_id.
pub(crate) fn check_container(
    container_msg_id: i64,
    container: &MsgContainer,
) -> Result<(), ContainerError> {
    let mut seen = HashSet::with_capacity(container.messages.len());
    for message in &container.messages {
        if message.msg_id >= container_msg_id {
            return Err(ContainerError::InnerIdNotBelow(message.msg_id));
        }
        if !seen.insert(message.msg_id) {
            return Err(ContainerError::DuplicateInnerId(message.msg_id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use columba_mtproto::tl::service::Message;

    #[test]
    fn received_containers_need_lower_distinct_inner_ids() {
        let inner = |msg_id| Message {
            msg_id,
            seqno: 1,
            body: vec![0; 4],
        };
        let ok = MsgContainer {
            messages: vec![inner(4), inner(8)],
        };
        assert_eq!(check_container(12, &ok), Ok(()));
        assert_eq!(
            check_container(8, &ok),
            Err(ContainerError::InnerIdNotBelow(8))
        );
        let twice = MsgContainer {
            messages: vec![inner(4), inner(4)],
        };
        assert_eq!(
            check_container(12, &twice),
            Err(ContainerError::DuplicateInnerId(4))
        );
        assert_eq!(ContainerError::DuplicateInnerId(4).bad_msg_code(), 64);
    }
}
