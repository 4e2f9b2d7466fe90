//! Strict request coalescing: concurrent callers with the same key share one call, but a caller
//! only ever takes the answer of a call that was *sent after it arrived*, so sharing never
//! answers from the past (it is not a cache).
//!
//! Per key there is at most one call in flight and one queued. A caller that arrives while a call
//! is in flight joins (or creates) the queued call, which is sent as soon as the in-flight one
//! ends. Calls run on a spawned task, so a caller that goes away (a dropped future, a client
//! deadline) does not cancel the call for the others. The map entry of a key is removed as soon
//! as its last call ends.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::watch;

type Call<V> = Pin<Box<dyn Future<Output = V> + Send + 'static>>;

/// One call: the future that makes it (not started until the driver polls it) and the channel
/// its callers wait on.
struct Pending<V> {
    call: Call<V>,
    answer: watch::Sender<Option<V>>,
}

/// A key with a call in flight. `queued` is the next call, if someone arrived during this one.
struct Entry<V> {
    queued: Option<Pending<V>>,
}

type Calls<K, V> = Arc<Mutex<HashMap<K, Entry<V>>>>;

/// Shares calls between concurrent callers with equal keys, under the rule above. Cheap to clone
/// (clones share the same calls).
///
/// The lock is a std `Mutex` held only for map operations, never across an `.await`.
pub struct Coalescer<K, V> {
    calls: Calls<K, V>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
        }
    }
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Self {
            calls: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys may be credentials (session cookies): only their number is shown.
        f.debug_struct("Coalescer")
            .field("keys", &self.keys_in_flight())
            .finish()
    }
}

/// What a caller got, and whether it shared a call that another caller triggered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<V> {
    /// The call's result.
    pub value: V,
    /// `false` when this caller triggered the call (sent at once, or queued by it); `true` when
    /// it joined a call another caller triggered.
    pub shared: bool,
}

/// The call this caller waited for ended without a result (its task panicked or the runtime is
/// shutting down). Callers must fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared upstream call ended without an answer")]
pub struct Abandoned;

impl<K, V> Coalescer<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A coalescer with no calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers with the result of a call for `key` sent after this caller arrived: a new call
    /// made with `make_call` if none is in flight; otherwise the queued call (joined, or made
    /// with `make_call` and queued), which is sent when the in-flight one ends.
    ///
    /// `make_call` is only invoked when this caller triggers a call. Its future runs on a spawned
    /// task and must not rely on the caller staying around.
    pub async fn call<F, Fut>(&self, key: K, make_call: F) -> Result<Answer<V>, Abandoned>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (mut answer, shared, start) = {
            let mut calls = self.lock();
            match calls.get_mut(&key) {
                None => {
                    let (pending, answer) = pending(make_call);
                    calls.insert(key.clone(), Entry { queued: None });
                    (answer, false, Some(pending))
                }
                Some(Entry {
                    queued: Some(queued),
                }) => (queued.answer.subscribe(), true, None),
                Some(entry) => {
                    let (queued, answer) = pending(make_call);
                    entry.queued = Some(queued);
                    (answer, false, None)
                }
            }
        };
        if let Some(pending) = start {
            tokio::spawn(drive(self.calls.clone(), key, pending));
        }
        let value = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Abandoned)?
            .clone()
            .ok_or(Abandoned)?;
        Ok(Answer { value, shared })
    }
}

impl<K, V> Coalescer<K, V> {
    /// How many keys have a call in flight (for tests and `Debug`).
    pub fn keys_in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        lock(&self.calls)
    }
}

// Nothing panics while the lock is held (no user code runs under it), so a poisoned map is
// still consistent.
fn lock<K, V>(calls: &Calls<K, V>) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
    calls.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pending<V, F, Fut>(make_call: F) -> (Pending<V>, watch::Receiver<Option<V>>)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = V> + Send + 'static,
{
    let (answer, receiver) = watch::channel(None);
    let pending = Pending {
        call: Box::pin(make_call()),
        answer,
    };
    (pending, receiver)
}

/// Runs the calls of one key, one after the other, until none is queued; then removes the key.
async fn drive<K, V>(calls: Calls<K, V>, key: K, mut pending: Pending<V>)
where
    K: Hash + Eq,
{
    // If this task dies (a panicking call, runtime shutdown), the key must not stay in the map:
    // later callers would queue behind a call that never ends.
    let mut cleanup = RemoveOnDrop {
        calls: &calls,
        key: Some(&key),
    };
    loop {
        let value = pending.call.await;
        pending.answer.send_replace(Some(value));
        let next = {
            let mut map = lock(&calls);
            let next = map.get_mut(&key).and_then(|entry| entry.queued.take());
            match next {
                // Every caller of the queued call went away: nobody would take its answer.
                Some(next) if next.answer.receiver_count() > 0 => Some(next),
                _ => {
                    map.remove(&key);
                    None
                }
            }
        };
        match next {
            Some(next) => pending = next,
            None => {
                cleanup.key = None;
                return;
            }
        }
    }
}

struct RemoveOnDrop<'a, K: Hash + Eq, V> {
    calls: &'a Calls<K, V>,
    key: Option<&'a K>,
}

impl<K: Hash + Eq, V> Drop for RemoveOnDrop<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Dropping the entry drops the queued call's sender: its callers get `Abandoned`.
            lock(self.calls).remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use tokio::{sync::Semaphore, time::sleep};

    use super::*;

    /// An upstream that counts calls, records the order they were sent in, and answers each
    /// with its own sequence number after `delay`.
    #[derive(Clone)]
    struct Upstream {
        sent: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Upstream {
        fn new(delay: Duration) -> Self {
            Self {
                sent: Arc::new(AtomicUsize::new(0)),
                delay,
            }
        }

        fn call(&self) -> impl Future<Output = usize> + Send + 'static {
            let sent = self.sent.clone();
            let delay = self.delay;
            async move {
                // Counted when sent (first polled), not when built.
                let number = sent.fetch_add(1, Ordering::SeqCst) + 1;
                sleep(delay).await;
                number
            }
        }

        fn sent(&self) -> usize {
            self.sent.load(Ordering::SeqCst)
        }
    }

    async fn settle() {
        // With the clock paused, sleeping lets every spawned task run until it waits on time.
        sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_call_and_the_map_empties() {
        let coalescer = Coalescer::<&str, usize>::new();
        let upstream = Upstream::new(Duration::from_millis(100));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
                tokio::spawn(async move { coalescer.call("k", || upstream.call()).await })
            })
            .collect();
        let mut answers = Vec::new();
        for caller in callers {
            answers.push(caller.await.expect("joined").expect("answered"));
        }
        // The first caller's call is in flight when the others arrive: they all share the next.
        assert_eq!(upstream.sent(), 2);
        assert_eq!(answers.iter().filter(|a| a.value == 1).count(), 1);
        assert_eq!(answers.iter().filter(|a| a.value == 2).count(), 49);
        assert_eq!(answers.iter().filter(|a| !a.shared).count(), 2);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_arriving_during_a_call_gets_the_next_call() {
        let coalescer = Coalescer::<&str, usize>::new();
        let upstream = Upstream::new(Duration::from_millis(100));
        let first = tokio::spawn({
            let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
            async move { coalescer.call("k", || upstream.call()).await }
        });
        settle().await;
        assert_eq!(upstream.sent(), 1);
        let second = tokio::spawn({
            let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
            async move { coalescer.call("k", || upstream.call()).await }
        });
        settle().await;
        // Queued, not sent, while the first is in flight.
        assert_eq!(upstream.sent(), 1);
        assert_eq!(
            first.await.expect("joined"),
            Ok(Answer {
                value: 1,
                shared: false
            })
        );
        assert_eq!(
            second.await.expect("joined"),
            Ok(Answer {
                value: 2,
                shared: false
            })
        );
        assert_eq!(upstream.sent(), 2);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_arriving_after_the_queued_call_was_sent_waits_for_a_third() {
        let coalescer = Coalescer::<&str, usize>::new();
        let upstream = Upstream::new(Duration::from_millis(100));
        let spawn_caller = || {
            let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
            tokio::spawn(async move { coalescer.call("k", || upstream.call()).await })
        };
        let first = spawn_caller();
        settle().await;
        let second = spawn_caller();
        let second_joiner = spawn_caller();
        sleep(Duration::from_millis(150)).await; // call 1 done, call 2 in flight
        assert_eq!(upstream.sent(), 2);
        let third = spawn_caller();
        let answer = |caller: tokio::task::JoinHandle<Result<Answer<usize>, Abandoned>>| async {
            caller.await.expect("joined").expect("answered").value
        };
        assert_eq!(answer(first).await, 1);
        assert_eq!(answer(second).await, 2);
        assert_eq!(answer(second_joiner).await, 2);
        assert_eq!(answer(third).await, 3);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_never_share() {
        let coalescer = Coalescer::<String, usize>::new();
        let upstream = Upstream::new(Duration::from_millis(10));
        let callers: Vec<_> = (0..10)
            .map(|i| {
                let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
                tokio::spawn(
                    async move { coalescer.call(format!("k{i}"), || upstream.call()).await },
                )
            })
            .collect();
        for caller in callers {
            let answer = caller.await.expect("joined").expect("answered");
            assert!(!answer.shared);
        }
        assert_eq!(upstream.sent(), 10);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_caller_does_not_cancel_the_call_for_others() {
        let coalescer = Coalescer::<&str, usize>::new();
        let upstream = Upstream::new(Duration::from_millis(100));
        let spawn_caller = || {
            let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
            tokio::spawn(async move { coalescer.call("k", || upstream.call()).await })
        };
        // The trigger of the in-flight call and the trigger of the queued call both go away.
        let first = spawn_caller();
        settle().await;
        let second = spawn_caller();
        settle().await;
        let joiner = spawn_caller();
        settle().await;
        first.abort();
        second.abort();
        assert_eq!(joiner.await.expect("joined").expect("answered").value, 2);
        assert_eq!(upstream.sent(), 2);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_call_nobody_waits_for_is_not_sent() {
        let coalescer = Coalescer::<&str, usize>::new();
        let upstream = Upstream::new(Duration::from_millis(100));
        let first = tokio::spawn({
            let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
            async move { coalescer.call("k", || upstream.call()).await }
        });
        settle().await;
        let queued = tokio::spawn({
            let (coalescer, upstream) = (coalescer.clone(), upstream.clone());
            async move { coalescer.call("k", || upstream.call()).await }
        });
        settle().await;
        queued.abort();
        assert_eq!(first.await.expect("joined").expect("answered").value, 1);
        settle().await;
        assert_eq!(upstream.sent(), 1);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_goes_only_to_the_callers_of_that_call() {
        let coalescer = Coalescer::<&str, Result<usize, &'static str>>::new();
        let gate = Arc::new(Semaphore::new(0));
        let failing = {
            let gate = gate.clone();
            move || async move {
                let _permit = gate.acquire().await;
                Err("unavailable")
            }
        };
        let first = tokio::spawn({
            let coalescer = coalescer.clone();
            async move { coalescer.call("k", failing).await }
        });
        settle().await;
        let later = tokio::spawn({
            let coalescer = coalescer.clone();
            async move { coalescer.call("k", || async { Ok(7) }).await }
        });
        settle().await;
        gate.add_permits(1);
        assert_eq!(
            first.await.expect("joined").expect("answered").value,
            Err("unavailable")
        );
        assert_eq!(later.await.expect("joined").expect("answered").value, Ok(7));
        assert_eq!(coalescer.keys_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_call_abandons_its_callers_and_frees_the_key() {
        let coalescer = Coalescer::<&str, usize>::new();
        let first = tokio::spawn({
            let coalescer = coalescer.clone();
            async move {
                coalescer
                    .call("k", || async {
                        sleep(Duration::from_millis(10)).await;
                        panic!("upstream client bug")
                    })
                    .await
            }
        });
        settle().await;
        let queued = tokio::spawn({
            let coalescer = coalescer.clone();
            async move { coalescer.call("k", || async { 1 }).await }
        });
        assert_eq!(
            first.await.expect("the caller itself did not panic"),
            Err(Abandoned)
        );
        assert_eq!(queued.await.expect("joined"), Err(Abandoned));
        assert_eq!(coalescer.keys_in_flight(), 0);
        // The key works again.
        assert_eq!(
            coalescer.call("k", || async { 5 }).await,
            Ok(Answer {
                value: 5,
                shared: false
            })
        );
    }
}
