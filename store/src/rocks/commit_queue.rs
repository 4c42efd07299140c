//! Group commit: callers that write to the same instance queue their work; one of them, the
//! leader, takes everything queued (up to a bound), commits it as one batch with one sync,
//! and hands each caller its result. While a leader syncs, new work queues up for the next
//! group, so a hot box costs one sync per group instead of one per send.
//!
//! Leadership passes from caller to caller: the first caller to find no leader leads; when
//! a leader has finished its group and more work is queued, the oldest queued caller leads
//! next (so no caller serves others indefinitely after its own work is done). A leader that
//! panics fails its group's work and still hands leadership on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::thread::Thread;

/// The queue of one instance. `J` is a caller's work, `R` its result.
#[derive(Debug)]
pub(crate) struct CommitQueue<J, R> {
    inner: Mutex<Inner<J, R>>,
    max_group: usize,
    max_weight: usize,
}

#[derive(Debug)]
struct Inner<J, R> {
    /// Queued work with the thread waiting for it: only the callers whose work is done (and
    /// the next leader) are woken, not every waiter at each group's end.
    queue: VecDeque<Queued<J>>,
    /// The threads of the group being committed, by work.
    committing: HashMap<u64, Thread>,
    /// Whether some caller leads (drains and commits) right now, or has been told to.
    leading: bool,
    /// The queued caller told to lead next.
    next_leader: Option<u64>,
    done: HashMap<u64, R>,
    next_id: u64,
}

/// Work waiting in the queue: its id, the work, its weight, and the thread to wake.
#[derive(Debug)]
struct Queued<J> {
    id: u64,
    job: J,
    weight: usize,
    thread: Thread,
}

impl<J, R> CommitQueue<J, R> {
    /// An empty queue whose groups hold at most `max_group` callers' work, and at most
    /// `max_weight` of it (the bytes a batch may hold; a group always takes one job, however
    /// heavy).
    pub(crate) fn new(max_group: usize, max_weight: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                committing: HashMap::new(),
                leading: false,
                next_leader: None,
                done: HashMap::new(),
                next_id: 0,
            }),
            max_group: max_group.max(1),
            max_weight,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<J, R>> {
        // Every change to the queue's state is made whole under the lock; a panic while it
        // is held (none is expected) leaves it consistent.
        crate::lock(&self.inner)
    }

    /// Runs `job` in a group and returns its result. `commit` is called (by whichever caller
    /// leads) with a group's work in queue order and must return one result per job, in the
    /// same order; `failed` makes the result of work whose leader panicked.
    pub(crate) fn run(
        &self,
        job: J,
        weight: usize,
        commit: impl FnOnce(Vec<J>) -> Vec<R>,
        failed: impl Fn() -> R,
    ) -> R {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id = inner.next_id.wrapping_add(1);
        inner.queue.push_back(Queued {
            id,
            job,
            weight,
            thread: std::thread::current(),
        });
        if inner.leading {
            loop {
                if let Some(result) = inner.done.remove(&id) {
                    return result;
                }
                if inner.next_leader == Some(id) {
                    inner.next_leader = None;
                    break;
                }
                drop(inner);
                // Woken by the leader that finished this work or passes leadership here;
                // a spurious wake-up only checks again.
                std::thread::park();
                inner = self.lock();
            }
        } else {
            inner.leading = true;
        }
        // Leading: this caller's work is at the front of the queue, so it is in the group.
        let mut take = 0;
        let mut weight = 0usize;
        for queued in inner.queue.iter().take(self.max_group) {
            weight = weight.saturating_add(queued.weight);
            if take > 0 && weight > self.max_weight {
                break;
            }
            take += 1;
        }
        let mut group = Vec::with_capacity(take);
        let mut ids = Vec::with_capacity(take);
        let state = &mut *inner;
        for queued in state.queue.drain(..take) {
            state.committing.insert(queued.id, queued.thread);
            ids.push(queued.id);
            group.push(queued.job);
        }
        drop(inner);
        let mut leadership = Leadership {
            queue: self,
            own: id,
            ids: &ids,
            failed: &failed,
            results: None,
        };
        let results = commit(group);
        leadership.results = Some(results);
        drop(leadership);
        let mut inner = self.lock();
        inner.done.remove(&id).unwrap_or_else(failed)
    }
}

/// Hands a group's results out and leadership on when the leader is done, also when it
/// panics (then every job of the group fails).
struct Leadership<'a, J, R, F: Fn() -> R> {
    queue: &'a CommitQueue<J, R>,
    /// The leader's own work, whose result nobody collects if the leader panics.
    own: u64,
    ids: &'a [u64],
    failed: &'a F,
    results: Option<Vec<R>>,
}

impl<J, R, F: Fn() -> R> Drop for Leadership<'_, J, R, F> {
    fn drop(&mut self) {
        let mut inner = self.queue.lock();
        let mut results = self.results.take().unwrap_or_default().into_iter();
        let unwinding = std::thread::panicking();
        let mut wake = Vec::with_capacity(self.ids.len() + 1);
        for id in self.ids {
            // A commit that returned too few results fails the rest rather than hang them.
            let result = results.next().unwrap_or_else(self.failed);
            let thread = inner.committing.remove(id);
            if !(unwinding && *id == self.own) {
                inner.done.insert(*id, result);
                if *id != self.own {
                    wake.extend(thread);
                }
            }
        }
        match inner
            .queue
            .front()
            .map(|queued| (queued.id, queued.thread.clone()))
        {
            Some((next, thread)) => {
                inner.next_leader = Some(next);
                wake.push(thread);
            }
            None => inner.leading = false,
        }
        drop(inner);
        for thread in wake {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn one_caller_commits_its_own_work() {
        let queue = CommitQueue::new(8, usize::MAX);
        let result = queue.run(5, 1, |group| group.iter().map(|x| x * 2).collect(), || 0);
        assert_eq!(result, 10);
    }

    #[test]
    fn concurrent_callers_share_groups_and_each_gets_its_own_result() {
        let queue = Arc::new(CommitQueue::new(16, usize::MAX));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32u64)
            .map(|n| {
                let queue = queue.clone();
                let commits = commits.clone();
                std::thread::spawn(move || {
                    let mut sum = 0;
                    for round in 0..50u64 {
                        let job = n * 1000 + round;
                        let result = queue.run(
                            job,
                            1,
                            |group| {
                                commits.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                group.iter().map(|x| x + 1).collect()
                            },
                            || 0,
                        );
                        assert_eq!(result, job + 1);
                        sum += 1;
                    }
                    sum
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 32 * 50);
        let groups = commits.load(Ordering::Relaxed);
        assert!(groups < 32 * 50, "some work was grouped: {groups} commits");
    }

    #[test]
    fn a_panicking_leader_fails_its_group_and_hands_on() {
        let queue = Arc::new(CommitQueue::new(4, usize::MAX));
        let panicked = std::thread::spawn({
            let queue = queue.clone();
            move || {
                queue.run(
                    1,
                    1,
                    |_group: Vec<i32>| -> Vec<i32> { panic!("leader fails") },
                    || -1,
                )
            }
        })
        .join();
        assert!(panicked.is_err());
        // The queue still works: a new caller leads.
        assert_eq!(queue.run(2, 1, |group| group, || -1), 2);
    }

    #[test]
    fn too_few_results_fail_the_rest() {
        let queue: CommitQueue<i32, i32> = CommitQueue::new(4, usize::MAX);
        assert_eq!(queue.run(7, 1, |_| Vec::new(), || -1), -1);
    }
}

#[cfg(test)]
mod weight_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Groups stop at the weight bound (but always take one job, however heavy).
    #[test]
    fn groups_stay_under_their_weight() {
        let queue = Arc::new(CommitQueue::new(64, 10));
        let largest = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16usize)
            .map(|n| {
                let queue = queue.clone();
                let largest = largest.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let weight = if n == 0 { 50 } else { 4 };
                        let result = queue.run(
                            weight,
                            weight,
                            |group: Vec<usize>| {
                                let total: usize = group.iter().sum();
                                if group.len() > 1 {
                                    largest.fetch_max(total, Ordering::Relaxed);
                                }
                                std::thread::sleep(std::time::Duration::from_micros(300));
                                group
                            },
                            || 0,
                        );
                        assert_eq!(result, weight);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(largest.load(Ordering::Relaxed) <= 10);
    }
}
