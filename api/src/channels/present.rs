//! [`PresentMembers`]: which members of each channel have a session on this node, so that a
//! post costs what it delivers: the members present, not all members.
//!
//! A channel's list is built the first time something is posted in it (its members from the
//! store, kept if the runtime has them: [`ServerHandle::is_present`]) and kept from then on
//! by the runtime's presence changes ([`ServerHandle::take_presence`], read before each use:
//! a user who comes is added to the lists of their channels, one who goes is removed) and by
//! joins and leaves. A user who comes while their presence change waits gets the next post,
//! or catches up on the gap it leaves (the client asks for the channel's difference).
//!
//! Memory is bounded: at most [`PresentMembers::new`]'s number of channels are followed;
//! past it, and when the runtime lost presence changes, everything is dropped and rebuilt as
//! channels post again.
//!
//! Passive members ([`PassivePolicy`]): in a channel with more present members than the
//! policy's threshold, a post goes in real time only to the members active there lately
//! (who posted, read its history, asked for its difference or marked it read within the
//! window: [`PresentMembers::touch`]). The others get nothing until they open the channel,
//! when their client asks for its difference, as Telegram does for big chats that are not
//! open and Discord for passive sessions. Activity is kept for present members only, so it
//! takes no more memory than the lists.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use columba_session::runtime::ServerHandle;
use columba_store::message::Peer;

use crate::backend::Backend;
use crate::error::ApiError;

/// The passive-member policy by default: real time for everyone up to 5,000 present
/// members (the figure channels.md suggests), beyond it for the members active in the last
/// five minutes.
pub const DEFAULT_PASSIVE_POLICY: PassivePolicy = PassivePolicy {
    online_threshold: 5_000,
    active_window_secs: 300,
};

/// Who gets a big channel's posts in real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassivePolicy {
    /// Up to this many present members, every one of them gets every post.
    pub online_threshold: usize,
    /// Beyond it, the members active in the channel within this many seconds do.
    pub active_window_secs: i32,
}

/// Channels followed by default.
pub const DEFAULT_FOLLOWED_CHANNELS: usize = 100_000;

#[derive(Debug, Default)]
struct Lists {
    /// The present members of each followed channel.
    channels: HashMap<i64, HashSet<i64>>,
    /// The followed channels of each present user (to take them off when they go).
    of_user: HashMap<i64, Vec<i64>>,
    /// When each present member was last active in each followed channel (Unix seconds).
    active: HashMap<i64, HashMap<i64, i32>>,
}

impl Lists {
    fn add(&mut self, channel: i64, user: i64) {
        if let Some(members) = self.channels.get_mut(&channel) {
            members.insert(user);
            let followed = self.of_user.entry(user).or_default();
            if !followed.contains(&channel) {
                followed.push(channel);
            }
        }
    }

    fn remove(&mut self, channel: i64, user: i64) {
        if let Some(members) = self.channels.get_mut(&channel) {
            members.remove(&user);
        }
        if let Some(active) = self.active.get_mut(&channel) {
            active.remove(&user);
        }
        if let Some(followed) = self.of_user.get_mut(&user) {
            followed.retain(|id| *id != channel);
        }
    }
}

/// The present members of the channels of one node.
#[derive(Debug)]
pub struct PresentMembers {
    lists: Mutex<Lists>,
    max_channels: usize,
    passive: Mutex<PassivePolicy>,
}

impl Default for PresentMembers {
    fn default() -> Self {
        Self::new(DEFAULT_FOLLOWED_CHANNELS)
    }
}

impl PresentMembers {
    /// Lists that follow at most `max_channels` channels.
    pub fn new(max_channels: usize) -> Self {
        Self {
            lists: Mutex::new(Lists::default()),
            max_channels: max_channels.max(1),
            passive: Mutex::new(DEFAULT_PASSIVE_POLICY),
        }
    }

    /// Changes the passive-member policy (from the next post on).
    pub fn set_passive(&self, passive: PassivePolicy) {
        *self
            .passive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = passive;
    }

    /// The passive-member policy.
    pub fn passive(&self) -> PassivePolicy {
        *self
            .passive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Lists> {
        // Changed in single steps under the lock: a poisoned lock is still consistent.
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies the runtime's presence changes. Blocking (a user who came has their
    /// channels read from the store).
    fn catch_up(&self, server: &ServerHandle, backend: &Backend) -> Result<(), ApiError> {
        let mut changes = Vec::new();
        if !server.take_presence(&mut changes) {
            *self.lock() = Lists::default();
            return Ok(());
        }
        for (user, present) in changes {
            if present {
                let channels: Vec<i64> = backend
                    .messages
                    .memberships(user)?
                    .iter()
                    .filter(|m| m.role.is_member())
                    .filter_map(|m| match m.group {
                        Peer::Channel(id) => Some(id),
                        _ => None,
                    })
                    .collect();
                let mut lists = self.lock();
                for channel in channels {
                    lists.add(channel, user);
                }
            } else {
                let mut lists = self.lock();
                for channel in lists.of_user.remove(&user).unwrap_or_default() {
                    lists.remove(channel, user);
                }
            }
        }
        Ok(())
    }

    /// The members of `channel` present on this node. Blocking.
    pub fn members(
        &self,
        server: &ServerHandle,
        backend: &Backend,
        channel: i64,
    ) -> Result<Vec<i64>, ApiError> {
        self.catch_up(server, backend)?;
        if let Some(members) = self.lock().channels.get(&channel) {
            return Ok(members.iter().copied().collect());
        }
        let present: HashSet<i64> = super::member_ids(backend, channel, usize::MAX)?
            .into_iter()
            .filter(|user| server.is_present(*user))
            .collect();
        let mut lists = self.lock();
        if lists.channels.len() >= self.max_channels {
            *lists = Lists::default();
        }
        lists.channels.insert(channel, HashSet::new());
        for user in &present {
            lists.add(channel, *user);
        }
        Ok(present.into_iter().collect())
    }

    /// Who gets a post in `channel` now (`now` in Unix seconds): every present member, or
    /// past the policy's threshold only those active within its window. Blocking.
    pub fn recipients(
        &self,
        server: &ServerHandle,
        backend: &Backend,
        channel: i64,
        now: i32,
    ) -> Result<Vec<i64>, ApiError> {
        let present = self.members(server, backend, channel)?;
        let policy = self.passive();
        if present.len() <= policy.online_threshold {
            return Ok(present);
        }
        let since = now.saturating_sub(policy.active_window_secs);
        let lists = self.lock();
        let Some(active) = lists.active.get(&channel) else {
            return Ok(Vec::new());
        };
        Ok(present
            .into_iter()
            .filter(|user| active.get(user).is_some_and(|last| *last >= since))
            .collect())
    }

    /// `user` was active in `channel` at `now` (Unix seconds): they posted, read its
    /// history, asked for its difference or marked it read. Kept only while they are a
    /// present member of a followed channel.
    pub fn touch(&self, channel: i64, user: i64, now: i32) {
        let mut lists = self.lock();
        let present = lists
            .channels
            .get(&channel)
            .is_some_and(|members| members.contains(&user));
        if present {
            lists.active.entry(channel).or_default().insert(user, now);
        }
    }

    /// `user` became a member of `channel`.
    pub fn joined(&self, server: &ServerHandle, channel: i64, user: i64) {
        if server.is_present(user) {
            self.lock().add(channel, user);
        }
    }

    /// `user` is no longer a member of `channel`.
    pub fn left(&self, channel: i64, user: i64) {
        self.lock().remove(channel, user);
    }

    /// `channel` is gone (deleted): it is followed no more.
    pub fn forget(&self, channel: i64) {
        let mut lists = self.lock();
        lists.active.remove(&channel);
        for user in lists.channels.remove(&channel).unwrap_or_default() {
            if let Some(followed) = lists.of_user.get_mut(&user) {
                followed.retain(|id| *id != channel);
            }
        }
    }

    /// How many channels are followed now.
    pub fn followed(&self) -> usize {
        self.lock().channels.len()
    }
}
