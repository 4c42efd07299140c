//! One bot's front: its queue of updates, read from the bot's box (new and edited messages
//! from people, through the box's update log) and its feed (button presses), with the Bot
//! API's `update_id`s, confirmation by offset, long polling with one poller at a time, and
//! the webhook that may replace polling.
//!
//! The queue is derived, not stored: what a bot confirmed is a position in its box's log
//! (and the next `update_id`), kept in a small file per bot when the front has a state
//! directory. After a restart the updates after that position are read again from the log
//! with the same ids, so an update is delivered until it is confirmed (at least once, as the
//! Bot API promises). Presses are not kept across a restart (their persons time out long
//! before). Updates older than [`crate::BotApiOptions::update_ttl`] are dropped, and a
//! queue never holds more than [`crate::BotApiOptions::max_queued_updates`].

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use columba_api::bots::{BotFeed, CallbackPress};
use columba_api::objects::now_unix;
use columba_api::{ApiError, Backend};
use columba_store::message::{BoxId, Difference, UpdateKind};
use columba_store::user::Account;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::objects::{self, View};
use crate::reply::BotApiError;

/// Log entries read per step.
const PAGE: usize = 100;

/// An update waiting in the queue.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) update_id: i64,
    /// The box's pts after it, for an update read from the box.
    pts: Option<i32>,
    /// `message`, `edited_message`, `callback_query`.
    pub(crate) kind: &'static str,
    payload: Value,
    made: Instant,
}

impl Queued {
    /// The `Update` object.
    pub(crate) fn to_json(&self) -> Value {
        let mut update = json!({ "update_id": self.update_id });
        if let Value::Object(members) = &mut update {
            members.insert(self.kind.to_owned(), self.payload.clone());
        }
        update
    }
}

/// The queue's state.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    next_update_id: i64,
    /// The box's pts read into the queue so far.
    read_pts: i32,
    entries: VecDeque<Queued>,
    /// The kinds of update wanted (`None`: all).
    allowed: Option<Vec<String>>,
    /// Whether the state was loaded (from the state file, or started).
    loaded: bool,
    /// The oldest messages read at the first start (Unix seconds).
    not_before: i32,
}

/// The webhook of a bot, and how its deliveries go.
#[derive(Debug, Clone, Default)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) secret_token: Option<String>,
    pub(crate) max_connections: u32,
    pub(crate) last_error_date: Option<i32>,
    pub(crate) last_error_message: Option<String>,
    /// Raised when the webhook changes, so that a delivery task of an old one stops.
    pub(crate) generation: u64,
}

/// One bot's front.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) bot: i64,
    feed: Arc<BotFeed>,
    queue: Mutex<Queue>,
    /// The latest `getUpdates`: an older one waiting ends with 409.
    polls: AtomicU64,
    preempt: Notify,
    pub(crate) webhook: Mutex<Option<Webhook>>,
    state_file: Option<PathBuf>,
}

/// Limits the queue keeps to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) max_queued: usize,
    pub(crate) ttl: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Instance {
    pub(crate) fn new(backend: &Backend, bot: i64, state_dir: Option<&PathBuf>) -> Self {
        Self {
            bot,
            feed: backend.bot_feeds.subscribe(bot),
            queue: Mutex::new(Queue::default()),
            polls: AtomicU64::new(0),
            preempt: Notify::new(),
            webhook: Mutex::new(None),
            state_file: state_dir.map(|dir| dir.join(bot.to_string())),
        }
    }

    /// The saved position (the box's pts confirmed, the next `update_id`), if any.
    fn load(&self) -> Option<(i32, i64)> {
        let text = std::fs::read_to_string(self.state_file.as_ref()?).ok()?;
        let mut words = text.split_whitespace();
        let pts = words.next()?.parse().ok()?;
        let id = words.next()?.parse().ok()?;
        Some((pts, id))
    }

    /// Saves the position: written to a new file and renamed over the old, so that a crash
    /// leaves one or the other (not synced: a crash may bring back updates confirmed just
    /// before it, never lose one).
    fn save(&self, pts: i32, next_id: i64) {
        let Some(path) = &self.state_file else {
            return;
        };
        let temporary = path.with_extension("new");
        let written = std::fs::write(&temporary, format!("{pts} {next_id}\n"))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = written {
            tracing::warn!(%error, bot = self.bot, "the Bot API could not save a bot's position");
        }
    }

    /// Confirms the updates below `offset` (a negative offset keeps the last `-offset`).
    /// Called on the blocking pool (it may write the state file).
    pub(crate) fn confirm(&self, offset: i64) {
        let mut queue = lock(&self.queue);
        let before = queue.entries.len();
        if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while queue.entries.len() > keep {
                queue.entries.pop_front();
            }
        } else if offset > 0 {
            while queue
                .entries
                .front()
                .is_some_and(|entry| entry.update_id < offset)
            {
                queue.entries.pop_front();
            }
        }
        if queue.entries.len() != before {
            let (pts, next) = position(&queue);
            drop(queue);
            self.save(pts, next);
        }
    }

    /// Sets the kinds of update wanted (`allowed_updates`; an empty list: the default, all
    /// that are served).
    pub(crate) fn set_allowed(&self, allowed: Vec<String>) {
        lock(&self.queue).allowed = (!allowed.is_empty()).then_some(allowed);
    }

    /// Loads the saved position once.
    fn ensure_loaded(&self, queue: &mut Queue, limits: QueueLimits) {
        if queue.loaded {
            return;
        }
        queue.loaded = true;
        match self.load() {
            Some((pts, id)) => {
                queue.read_pts = pts;
                queue.next_update_id = id;
            }
            None => {
                // A new front reads the messages of the last day, as the Bot API keeps
                // updates for a bot that has not asked yet. Its ids start at a random point
                // (as the Bot API's do after a week without updates), so that a client's old
                // offset confirms nothing new.
                queue.next_update_id = rand::random_range(1..1 << 30);
                let ttl = i32::try_from(limits.ttl.as_secs()).unwrap_or(i32::MAX);
                queue.not_before = now_unix().saturating_sub(ttl);
            }
        }
    }

    /// Drops every update waiting and every one the box holds now
    /// (`drop_pending_updates`). Blocking.
    pub(crate) fn drop_pending(
        &self,
        backend: &Backend,
        limits: QueueLimits,
    ) -> Result<(), BotApiError> {
        let state = backend
            .messages
            .state(BoxId::User(self.bot))
            .map_err(ApiError::from)?;
        let mut queue = lock(&self.queue);
        self.ensure_loaded(&mut queue, limits);
        queue.entries.clear();
        queue.read_pts = queue.read_pts.max(state.pts);
        let (pts, next) = position(&queue);
        drop(queue);
        self.save(pts, next);
        Ok(())
    }

    /// Reads what came since the last fill into the queue. Blocking (store reads).
    pub(crate) fn fill(
        &self,
        backend: &Backend,
        bot: &Account,
        limits: QueueLimits,
    ) -> Result<(), BotApiError> {
        let mut queue = lock(&self.queue);
        self.ensure_loaded(&mut queue, limits);
        let now = Instant::now();
        while queue
            .entries
            .front()
            .is_some_and(|entry| now.saturating_duration_since(entry.made) > limits.ttl)
        {
            queue.entries.pop_front();
        }
        let view = View { backend, bot };
        for press in self.feed.take_presses() {
            let payload = press_json(&view, &press)?;
            push(&mut queue, limits, None, "callback_query", payload);
        }
        loop {
            let difference = backend
                .messages
                .get_difference(BoxId::User(self.bot), queue.read_pts, PAGE)
                .map_err(ApiError::from)?;
            match difference {
                Difference::Empty { pts } => {
                    queue.read_pts = pts;
                    break;
                }
                Difference::TooLong { pts } => {
                    tracing::warn!(bot = self.bot, "a bot's box log no longer has its position");
                    queue.read_pts = pts;
                    break;
                }
                Difference::Changes {
                    entries,
                    messages,
                    complete,
                    pts,
                } => {
                    for entry in &entries {
                        let (id, kind) = match entry.kind {
                            UpdateKind::NewMessage { id } => (id, "message"),
                            UpdateKind::EditMessage { id } => (id, "edited_message"),
                            _ => continue,
                        };
                        let Some(message) = messages.iter().find(|message| message.id == id) else {
                            continue;
                        };
                        if message.out || message.date < queue.not_before {
                            continue;
                        }
                        if let Some(payload) = view.message(message)? {
                            push(&mut queue, limits, Some(entry.pts), kind, payload);
                        }
                    }
                    queue.read_pts = entries.last().map_or(pts, |entry| entry.pts);
                    if complete || entries.is_empty() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` queued updates of the wanted kinds, oldest first.
    pub(crate) fn batch(&self, limit: usize) -> Vec<Value> {
        let queue = lock(&self.queue);
        queue
            .entries
            .iter()
            .filter(|entry| {
                queue
                    .allowed
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|kind| kind == entry.kind))
            })
            .take(limit)
            .map(Queued::to_json)
            .collect()
    }

    /// How many updates wait.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.queue).entries.len()
    }

    /// The oldest update waiting, for a webhook delivery.
    pub(crate) fn first(&self) -> Option<Queued> {
        lock(&self.queue).entries.front().cloned()
    }

    /// Starts a `getUpdates`: older ones waiting end. Its generation.
    pub(crate) fn start_poll(&self) -> u64 {
        let generation = self.polls.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        self.preempt.notify_waiters();
        generation
    }

    /// Waits until something may have come, a newer `getUpdates` started (`false`), or
    /// `until`.
    pub(crate) async fn wait(&self, generation: u64, until: tokio::time::Instant) -> bool {
        let preempted = self.preempt.notified();
        tokio::pin!(preempted);
        preempted.as_mut().enable();
        if self.polls.load(Ordering::Acquire) != generation {
            return false;
        }
        tokio::select! {
            () = self.feed.changed() => true,
            () = &mut preempted => self.polls.load(Ordering::Acquire) == generation,
            () = tokio::time::sleep_until(until) => true,
        }
    }

    /// Whether `generation` is still the latest `getUpdates`.
    pub(crate) fn is_latest(&self, generation: u64) -> bool {
        self.polls.load(Ordering::Acquire) == generation
    }

    /// Waits for a change (a webhook's delivery loop), at most `timeout`.
    pub(crate) async fn changed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.feed.changed()).await;
    }
}

/// What to save: the box position before the first update not confirmed (everything before
/// it was confirmed, dropped, or not for the bot), and the next `update_id` to give.
fn position(queue: &Queue) -> (i32, i64) {
    let pts = queue
        .entries
        .iter()
        .find_map(|entry| entry.pts)
        .map_or(queue.read_pts, |pts| pts.saturating_sub(1));
    let next = queue
        .entries
        .front()
        .map_or(queue.next_update_id, |entry| entry.update_id);
    (pts, next)
}

fn push(
    queue: &mut Queue,
    limits: QueueLimits,
    pts: Option<i32>,
    kind: &'static str,
    payload: Value,
) {
    if queue
        .allowed
        .as_ref()
        .is_some_and(|allowed| !allowed.iter().any(|wanted| wanted == kind))
    {
        // Kinds the bot does not want are dropped, as the official server does.
        return;
    }
    if queue.entries.len() >= limits.max_queued.max(1) {
        queue.entries.pop_front();
    }
    let update_id = queue.next_update_id;
    queue.next_update_id = update_id.saturating_add(1);
    queue.entries.push_back(Queued {
        update_id,
        pts,
        kind,
        payload,
        made: Instant::now(),
    });
}

/// The `CallbackQuery` of a press.
fn press_json(view: &View<'_>, press: &CallbackPress) -> Result<Value, BotApiError> {
    let from = view
        .backend
        .users
        .account(press.user_id)
        .map_err(ApiError::from)?
        .unwrap_or_else(|| Account::new(press.user_id, "", "Deleted Account"));
    let mut query = json!({
        "id": press.query_id.to_string(),
        "from": objects::user(&from),
        "chat_instance": press.chat_instance.to_string(),
        "data": String::from_utf8_lossy(&press.data),
    });
    let message = view
        .backend
        .messages
        .get_messages(BoxId::User(view.bot.id), &[press.msg_id])
        .map_err(ApiError::from)?;
    if let (Some(message), Value::Object(members)) = (message.first(), &mut query) {
        if let Some(message) = view.message(message)? {
            members.insert("message".to_owned(), message);
        }
    }
    Ok(query)
}
