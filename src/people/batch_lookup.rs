//! Look-ups of many keys in one query. Inside a Durable Object every event shares one I/O
//! context, so a look-up that arrives while a query is under way waits for it, and every
//! look-up that arrived meanwhile goes in the next query together: a burst of N look-ups
//! (1,000 people reconnecting to one airport after a deploy) costs a handful of queries, not
//! N. Nothing is kept between batches, so every look-up sees the source as it is now.

use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Shared, WeakShared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

/// A batch's answer: what was found, by key (a key not in it was not found); `None` when the
/// query failed.
type Answer<K, V> = Option<Rc<HashMap<K, V>>>;
type Batch<K, V> = Shared<LocalBoxFuture<'static, Answer<K, V>>>;
type Query<K, V> = dyn Fn(Vec<K>) -> LocalBoxFuture<'static, Option<HashMap<K, V>>>;

pub struct BatchLookup<K, V> {
    gathering: Rc<RefCell<Gathering<K, V>>>,
    query: Rc<Query<K, V>>,
    /// Keys that may wait for the next batch; past them a look-up is [`Unanswered::Busy`].
    max_waiting: usize,
}

/// Why a look-up has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Its batch's query failed.
    Failed,
    /// The next batch was full: a flood of look-ups is under way.
    Busy,
}

struct Gathering<K, V> {
    /// The keys of the batch that has not started yet.
    keys: Vec<K>,
    /// That batch, which starts when the one before it has finished.
    next: Option<Batch<K, V>>,
    /// The batch created last, while anyone still waits for it.
    last: Option<WeakShared<LocalBoxFuture<'static, Answer<K, V>>>>,
}

impl<K: Eq + Hash + Clone + 'static, V: Clone + 'static> BatchLookup<K, V> {
    /// `query` answers a batch of keys, a key asked for twice in it once or twice. (Making
    /// them distinct here, by a set or a sort, costs 1–4 KB of Wasm; SQL's `IN` does it free.)
    pub fn new(
        max_waiting: usize,
        query: impl Fn(Vec<K>) -> LocalBoxFuture<'static, Option<HashMap<K, V>>> + 'static,
    ) -> Self {
        BatchLookup {
            gathering: Rc::new(RefCell::new(Gathering {
                keys: Vec::new(),
                next: None,
                last: None,
            })),
            query: Rc::new(query),
            max_waiting,
        }
    }

    /// `Ok(Some(value))` when found, `Ok(None)` when not.
    pub async fn get(&self, key: &K) -> Result<Option<V>, Unanswered> {
        let batch = {
            let mut gathering = self.gathering.borrow_mut();
            if gathering.keys.len() >= self.max_waiting {
                return Err(Unanswered::Busy);
            }
            gathering.keys.push(key.clone());
            match &gathering.next {
                Some(batch) => batch.clone(),
                None => {
                    let previous = gathering.last.take().and_then(|last| last.upgrade());
                    let batch = self.batch(previous);
                    gathering.last = batch.downgrade();
                    gathering.next = Some(batch.clone());
                    batch
                }
            }
        };
        let found = batch.await.ok_or(Unanswered::Failed)?;
        Ok(found.get(key).cloned())
    }

    /// The next batch: it waits for `previous`, then takes the keys gathered so far.
    fn batch(&self, previous: Option<Batch<K, V>>) -> Batch<K, V> {
        let gathering = Rc::clone(&self.gathering);
        let query = Rc::clone(&self.query);
        async move {
            if let Some(previous) = previous {
                previous.await;
            }
            let keys = {
                let mut gathering = gathering.borrow_mut();
                gathering.next = None;
                std::mem::take(&mut gathering.keys)
            };
            query(keys).await.map(Rc::new)
        }
        .boxed_local()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::join_all;
    use std::cell::Cell;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    const MAX_WAITING: usize = 4;

    /// The queries a lookup made, in order, each with its keys.
    type Log = Rc<RefCell<Vec<Vec<u32>>>>;

    /// A source that knows the even keys (value: key × 10). A query is answered once `open`
    /// is set (the reply of the real I/O) and fails while `failing` is set.
    struct Source {
        log: Log,
        open: Rc<Cell<bool>>,
        failing: Rc<Cell<bool>>,
    }

    impl Source {
        fn new() -> Self {
            Source {
                log: Log::default(),
                open: Rc::new(Cell::new(true)),
                failing: Rc::default(),
            }
        }

        fn lookup(&self) -> BatchLookup<u32, u32> {
            let (log, open, failing) = (
                Rc::clone(&self.log),
                Rc::clone(&self.open),
                Rc::clone(&self.failing),
            );
            BatchLookup::new(MAX_WAITING, move |keys: Vec<u32>| {
                log.borrow_mut().push(keys.clone());
                let (open, failing) = (Rc::clone(&open), failing.get());
                async move {
                    std::future::poll_fn(|_| match open.get() {
                        true => Poll::Ready(()),
                        false => Poll::Pending,
                    })
                    .await;
                    (!failing).then(|| {
                        keys.into_iter()
                            .filter(|key| key % 2 == 0)
                            .map(|key| (key, key * 10))
                            .collect()
                    })
                }
                .boxed_local()
            })
        }
    }

    /// Polls until ready: the look-ups here only ever wait for the test.
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(value) = poll_once(future.as_mut()) {
                return value;
            }
        }
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_lone_lookup_is_one_query_of_one_key() {
        let source = Source::new();
        let lookup = source.lookup();
        assert_eq!(block_on(lookup.get(&4)), Ok(Some(40)));
        assert_eq!(block_on(lookup.get(&3)), Ok(None));
        assert_eq!(*source.log.borrow(), vec![vec![4], vec![3]]);
    }

    #[test]
    fn lookups_during_a_query_go_together_in_the_next_one() {
        let source = Source::new();
        let lookup = source.lookup();
        source.open.set(false);
        // The first look-up starts a query at once; the four after it find it under way and
        // wait for it, then go in one query.
        const KEYS: [u32; 5] = [1, 2, 3, 4, 2];
        let mut all = std::pin::pin!(join_all(KEYS.iter().map(|key| lookup.get(key))));
        assert!(poll_once(all.as_mut()).is_pending());
        assert_eq!(*source.log.borrow(), vec![vec![1]]);
        source.open.set(true);
        let answers = block_on(all);
        let expected: Vec<_> = KEYS
            .iter()
            .map(|key| Ok((key % 2 == 0).then_some(key * 10)))
            .collect();
        assert_eq!(answers, expected);
        assert_eq!(*source.log.borrow(), vec![vec![1], vec![2, 3, 4, 2]]);
    }

    #[test]
    fn past_the_waiting_bound_a_lookup_is_busy_at_once() {
        let source = Source::new();
        let lookup = source.lookup();
        source.open.set(false);
        // One under way, four waiting: the sixth is refused without being queued.
        let keys: Vec<u32> = (0..6).collect();
        let mut all = std::pin::pin!(join_all(keys.iter().map(|key| lookup.get(key))));
        assert!(poll_once(all.as_mut()).is_pending());
        source.open.set(true);
        let answers = block_on(all);
        assert_eq!(answers[5], Err(Unanswered::Busy));
        assert!(answers[..5].iter().all(Result::is_ok));
        assert_eq!(*source.log.borrow(), vec![vec![0], vec![1, 2, 3, 4]]);
    }

    #[test]
    fn a_failed_query_fails_its_batch_only() {
        let source = Source::new();
        let lookup = source.lookup();
        source.failing.set(true);
        assert_eq!(block_on(lookup.get(&2)), Err(Unanswered::Failed));
        source.failing.set(false);
        assert_eq!(block_on(lookup.get(&2)), Ok(Some(20)));
        assert_eq!(source.log.borrow().len(), 2);
    }

    #[test]
    fn the_batch_after_a_failed_one_still_runs() {
        let source = Source::new();
        let lookup = source.lookup();
        source.open.set(false);
        source.failing.set(true);
        let mut all = std::pin::pin!(join_all([1, 2, 4].iter().map(|key| lookup.get(key))));
        assert!(poll_once(all.as_mut()).is_pending());
        source.failing.set(false);
        source.open.set(true);
        assert_eq!(
            block_on(all),
            vec![Err(Unanswered::Failed), Ok(Some(20)), Ok(Some(40))]
        );
        assert_eq!(*source.log.borrow(), vec![vec![1], vec![2, 4]]);
    }

    #[test]
    fn nothing_is_kept_between_batches() {
        let source = Source::new();
        let lookup = source.lookup();
        assert_eq!(block_on(lookup.get(&2)), Ok(Some(20)));
        assert_eq!(block_on(lookup.get(&2)), Ok(Some(20)));
        assert_eq!(*source.log.borrow(), vec![vec![2], vec![2]]);
    }
}
