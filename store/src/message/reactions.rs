//! The one-reaction-per-user rule, shared by every backend.

use super::{MessageError, MessageStoreConfig, Reaction};

/// Refuses an empty or oversized reaction before anything is read.
pub(crate) fn check_reaction(
    reaction: Option<&[u8]>,
    config: &MessageStoreConfig,
) -> Result<(), MessageError> {
    match reaction {
        Some(bytes) if bytes.is_empty() || bytes.len() > config.max_reaction_len => {
            Err(MessageError::ReactionInvalid)
        }
        _ => Ok(()),
    }
}

/// Sets `user_id`'s reaction in `reactions` (replacing an earlier one, which keeps its place
/// in the order) or with `None` removes it. A list already at `max` takes no new reactor.
pub(crate) fn set_reaction(
    reactions: &mut Vec<Reaction>,
    user_id: i64,
    reaction: Option<&[u8]>,
    date: i32,
    max: usize,
) -> Result<(), MessageError> {
    let existing = reactions.iter().position(|r| r.user_id == user_id);
    match (existing, reaction) {
        (None, None) => Err(MessageError::MessageNotModified),
        (Some(at), None) => {
            reactions.remove(at);
            Ok(())
        }
        (Some(at), Some(bytes)) => {
            let Some(entry) = reactions.get_mut(at) else {
                return Err(MessageError::MessageNotModified);
            };
            if entry.reaction == bytes {
                return Err(MessageError::MessageNotModified);
            }
            entry.reaction = bytes.to_vec();
            entry.date = date;
            Ok(())
        }
        (None, Some(bytes)) => {
            if reactions.len() >= max {
                return Err(MessageError::ReactionsTooMany);
            }
            reactions.push(Reaction {
                user_id,
                reaction: bytes.to_vec(),
                date,
            });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reaction_per_user_replaced_and_removed() {
        let mut list = Vec::new();
        set_reaction(&mut list, 1, Some(b"a"), 10, 2).unwrap();
        set_reaction(&mut list, 2, Some(b"b"), 11, 2).unwrap();
        assert_eq!(
            set_reaction(&mut list, 3, Some(b"c"), 12, 2),
            Err(MessageError::ReactionsTooMany)
        );
        assert_eq!(
            set_reaction(&mut list, 1, Some(b"a"), 13, 2),
            Err(MessageError::MessageNotModified)
        );
        set_reaction(&mut list, 1, Some(b"z"), 14, 2).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list.first()
                .map(|r| (r.user_id, r.reaction.clone(), r.date)),
            Some((1, b"z".to_vec(), 14))
        );
        set_reaction(&mut list, 1, None, 15, 2).unwrap();
        assert_eq!(
            set_reaction(&mut list, 1, None, 16, 2),
            Err(MessageError::MessageNotModified)
        );
        assert_eq!(list.iter().map(|r| r.user_id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn empty_and_oversized_reactions_are_refused() {
        let config = MessageStoreConfig::default();
        assert_eq!(
            check_reaction(Some(b""), &config),
            Err(MessageError::ReactionInvalid)
        );
        let long = vec![b'x'; config.max_reaction_len + 1];
        assert_eq!(
            check_reaction(Some(&long), &config),
            Err(MessageError::ReactionInvalid)
        );
        assert_eq!(check_reaction(None, &config), Ok(()));
        assert_eq!(check_reaction(Some("👍".as_bytes()), &config), Ok(()));
    }
}
