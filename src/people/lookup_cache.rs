//! Look-ups of a slow source (D1, the network status service) by key: answers reused for a
//! while, and concurrent look-ups of one key answered by one request. A burst of connections
//! with one key (a reconnect storm after a deploy) then costs one query.
//!
//! Inside a Durable Object every event runs in one I/O context, so waiters share the request
//! under way. A Worker request may not wait on I/O that another request started (workerd
//! refuses it and cancels the waiter as hung), so there waiters sleep on their own timer and
//! look again until the answer is in memory, and ask themselves if it does not come.

use super::bounded_map::BoundedMap;
use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::future::Future;
use std::hash::Hash;

enum Entry<V> {
    Fresh {
        at: i64,
        value: V,
    },
    /// A look-up under way that waiters share. `None` when it failed: failures are not kept,
    /// so the next look-up asks again.
    Shared(Shared<LocalBoxFuture<'static, Option<V>>>),
    /// A look-up under way in another request, started at `since`.
    InFlight {
        since: i64,
    },
}

/// How concurrent look-ups of one key wait for the one under way.
#[derive(Clone, Copy)]
pub enum Sharing {
    /// One I/O context (a Durable Object): waiters share the request.
    Shared,
    /// One I/O context per request (a Worker): waiters run `wait(attempt)` (a sleep, longer
    /// as attempts go by) and look again, at most `polls` times, then ask themselves.
    Polled {
        wait: fn(u32) -> LocalBoxFuture<'static, ()>,
        polls: u32,
    },
}

pub struct LookupCache<K, V> {
    /// At most `max_entries`; when it is full, the oldest goes.
    entries: RefCell<BoundedMap<K, Entry<V>>>,
    sharing: Sharing,
}

/// What the cache holds for a key, as far as one look-up is concerned.
enum Found<V> {
    Value(V),
    Shared(Shared<LocalBoxFuture<'static, Option<V>>>),
    InFlight,
    Nothing,
}

impl<K: Eq + Hash + Clone, V: Clone + 'static> LookupCache<K, V> {
    pub fn new(max_entries: usize, sharing: Sharing) -> Self {
        LookupCache {
            entries: RefCell::new(BoundedMap::new(max_entries)),
            sharing,
        }
    }

    /// The value for `key`: reused if read less than `max_age_ms` before `now`, else the
    /// answer of the look-up under way, else from `fetch`. `None` if the look-up failed.
    pub async fn get<F, R>(&self, key: &K, now: i64, max_age_ms: i64, fetch: F) -> Option<V>
    where
        F: FnOnce() -> R,
        R: Future<Output = Option<V>> + 'static,
    {
        match self.find(key, now, max_age_ms) {
            Found::Value(value) => return Some(value),
            Found::Shared(request) => return self.settle(key, now, request.await),
            Found::InFlight => {
                if let Sharing::Polled { wait, polls } = self.sharing {
                    for attempt in 0..polls {
                        wait(attempt).await;
                        match self.find(key, now, i64::MAX) {
                            Found::Value(value) => return Some(value),
                            Found::InFlight => continue,
                            // It failed, or its request was cancelled.
                            _ => break,
                        }
                    }
                }
            }
            Found::Nothing => {}
        }
        let answer = match self.sharing {
            Sharing::Shared => {
                let request = fetch().boxed_local().shared();
                self.insert(key, Entry::Shared(request.clone()));
                request.await
            }
            Sharing::Polled { .. } => {
                self.insert(key, Entry::InFlight { since: now });
                fetch().await
            }
        };
        self.settle(key, now, answer)
    }

    /// A look-up under way counts for as long as an answer would.
    fn find(&self, key: &K, now: i64, max_age_ms: i64) -> Found<V> {
        match self.entries.borrow().get(key) {
            Some(Entry::Fresh { at, value }) if now - at < max_age_ms => {
                Found::Value(value.clone())
            }
            Some(Entry::Shared(request)) => Found::Shared(request.clone()),
            Some(Entry::InFlight { since }) if now - since < max_age_ms => Found::InFlight,
            _ => Found::Nothing,
        }
    }

    fn settle(&self, key: &K, now: i64, answer: Option<V>) -> Option<V> {
        match &answer {
            Some(value) => self.insert(
                key,
                Entry::Fresh {
                    at: now,
                    value: value.clone(),
                },
            ),
            None => {
                let mut entries = self.entries.borrow_mut();
                if !matches!(entries.get(key), Some(Entry::Fresh { .. })) {
                    entries.remove(key);
                }
            }
        }
        answer
    }

    fn insert(&self, key: &K, entry: Entry<V>) {
        self.entries.borrow_mut().insert(key.clone(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::join_all;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Polls until ready: the look-ups here only ever wait for themselves.
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
        }
    }

    /// A look-up that counts its calls and answers on its fourth poll.
    fn counted(
        calls: &Rc<Cell<u32>>,
        answer: Option<u32>,
    ) -> impl Future<Output = Option<u32>> + use<> {
        calls.set(calls.get() + 1);
        async move {
            for _ in 0..3 {
                yield_once().await;
            }
            answer
        }
    }

    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if std::mem::replace(&mut yielded, true) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }

    #[test]
    fn concurrent_lookups_of_one_key_share_one_request() {
        let cache = LookupCache::new(10, Sharing::Shared);
        let calls = Rc::new(Cell::new(0));
        let answers = block_on(join_all(
            (0..5).map(|_| cache.get(&"k", 0, 1000, || counted(&calls, Some(7)))),
        ));
        assert_eq!(answers, vec![Some(7); 5]);
        assert_eq!(calls.get(), 1);
    }

    fn polled(polls: u32) -> Sharing {
        Sharing::Polled {
            wait: |_| yield_once().boxed_local(),
            polls,
        }
    }

    #[test]
    fn polled_lookups_wait_for_the_answer_in_memory() {
        let cache = LookupCache::new(10, polled(10));
        let calls = Rc::new(Cell::new(0));
        let answers = block_on(join_all(
            (0..5).map(|_| cache.get(&"k", 0, 1000, || counted(&calls, Some(7)))),
        ));
        assert_eq!(answers, vec![Some(7); 5]);
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn polled_lookups_ask_themselves_when_the_answer_is_late_or_failed() {
        let cache = LookupCache::new(10, polled(1));
        let calls = Rc::new(Cell::new(0));
        let answers = block_on(join_all(
            (0..3).map(|_| cache.get(&"k", 0, 1000, || counted(&calls, Some(7)))),
        ));
        assert_eq!(answers, vec![Some(7); 3]);
        assert_eq!(calls.get(), 3);
        let cache = LookupCache::new(10, polled(10));
        let calls = Rc::new(Cell::new(0));
        let answers = block_on(futures_util::future::join(
            cache.get(&"k", 0, 1000, || counted(&calls, None)),
            cache.get(&"k", 0, 1000, || counted(&calls, Some(8))),
        ));
        assert_eq!(answers, (None, Some(8)));
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn answers_are_reused_until_they_are_too_old() {
        let cache = LookupCache::new(10, Sharing::Shared);
        let calls = Rc::new(Cell::new(0));
        block_on(cache.get(&"k", 0, 1000, || counted(&calls, Some(1))));
        assert_eq!(
            block_on(cache.get(&"k", 999, 1000, || counted(&calls, Some(2)))),
            Some(1)
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(
            block_on(cache.get(&"k", 1000, 1000, || counted(&calls, Some(2)))),
            Some(2)
        );
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn failures_are_not_kept() {
        let cache = LookupCache::new(10, Sharing::Shared);
        let calls = Rc::new(Cell::new(0));
        assert_eq!(
            block_on(cache.get(&"k", 0, 1000, || counted(&calls, None))),
            None
        );
        assert_eq!(
            block_on(cache.get(&"k", 1, 1000, || counted(&calls, Some(3)))),
            Some(3)
        );
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_full_cache_forgets_its_oldest_entry() {
        let cache = LookupCache::new(2, Sharing::Shared);
        let calls = Rc::new(Cell::new(0));
        for key in ["a", "b", "c"] {
            block_on(cache.get(&key, 0, 1000, || counted(&calls, Some(0))));
        }
        // "b" and "c" are still held; "a", the oldest, went.
        for key in ["b", "c", "a"] {
            block_on(cache.get(&key, 0, 1000, || counted(&calls, Some(0))));
        }
        assert_eq!(calls.get(), 4);
    }
}
