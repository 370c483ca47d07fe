//! The compute pool Hearth's kernels and attention run on: persistent worker threads that share
//! the items of one call through a cursor, with the calling thread working too.
//!
//! Built for a desktop that shares its cores with everything else the user runs. A caller may
//! rely on these properties:
//! - [`Pool::run_chunked`] returns once every item has been processed, by whichever threads got
//!   to them. It never waits for a worker that has not started: a worker the operating system
//!   has not scheduled yet finds no items left when it wakes, so a busy core slows a call down
//!   to the speed of the threads that do run instead of stalling it (a barrier would wait).
//! - Workers spin briefly after a call (the next product of a decode step follows within
//!   microseconds), then sleep on a condition variable, so an idle app uses no CPU.
//! - A call made while another is running (another thread using the same pool), or from inside
//!   a worker, runs on the calling thread alone instead of waiting.
//! - The results do not depend on how items were split: each item is processed by exactly one
//!   call of the closure, and callers give each item its own output.

use std::cell::Cell;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Spins of a worker waiting for the next call before it sleeps (a few tens of microseconds).
const WORKER_SPINS: u32 = 20_000;
/// Spins of the caller waiting for a running chunk before it starts yielding its core.
const CALLER_SPINS: u32 = 2_000;

thread_local! {
    /// Set on the pool's own threads: nested calls run inline.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// One call's items, shared with the workers.
struct Job {
    /// The caller's closure with its lifetime erased. Dereferenced only after claiming items
    /// below `n`, and the caller does not return before every claimed item is done, so the
    /// closure outlives every use.
    f: *const (dyn Fn(Range<usize>) + Sync),
    n: usize,
    chunk: usize,
    cursor: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

// SAFETY: `f` points at a `Sync` closure and is only called while the caller waits (see above).
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Claims and processes chunks until none are left.
    fn work(&self) {
        loop {
            let start = self.cursor.fetch_add(self.chunk, Ordering::Relaxed);
            if start >= self.n {
                return;
            }
            let end = self.n.min(start + self.chunk);
            // SAFETY: items start..end were claimed, so the caller is still waiting for them.
            let f = unsafe { &*self.f };
            if catch_unwind(AssertUnwindSafe(|| f(start..end))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(end - start, Ordering::Release);
        }
    }
}

struct Shared {
    job: Mutex<Option<Arc<Job>>>,
    wake: Condvar,
    generation: AtomicU64,
    sleepers: AtomicUsize,
    stop: AtomicBool,
}

/// A pool of `threads - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
    /// Held for the length of a call; a second caller runs inline instead of waiting.
    calling: Mutex<()>,
}

impl Pool {
    /// A pool that computes with `threads` threads in all (at least 1).
    pub fn new(threads: usize) -> Self {
        let workers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let mut started = 0;
        for i in 0..workers {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hearth-compute-{i}"))
                .spawn(move || worker(s));
            if spawned.is_ok() {
                started += 1;
            }
        }
        Self {
            shared,
            workers: started,
            calling: Mutex::new(()),
        }
    }

    /// Threads that compute, the caller included.
    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Calls `f` on disjoint ranges covering `0..n`, spread over the pool (see the module
    /// header). Panics if `f` panicked.
    pub fn run_chunked<F: Fn(Range<usize>) + Sync>(&self, n: usize, f: F) {
        if n == 0 {
            return;
        }
        let threads = self.threads();
        // About 8 claims per thread: little cursor traffic, a small tail when one is late.
        let chunk = n.div_ceil(threads * 8).max(1);
        if threads == 1 || chunk >= n || IN_WORKER.with(|w| w.get()) {
            f(0..n);
            return;
        }
        let Ok(_calling) = self.calling.try_lock() else {
            f(0..n);
            return;
        };
        let f: &(dyn Fn(Range<usize>) + Sync) = &f;
        // SAFETY: only the lifetime is erased; see `Job::f`.
        let f: *const (dyn Fn(Range<usize>) + Sync + 'static) = unsafe { std::mem::transmute(f) };
        let job = Arc::new(Job {
            f,
            n,
            chunk,
            cursor: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        });
        {
            let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(job.clone());
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
            self.shared.wake.notify_all();
        }
        job.work();
        let mut spins = 0u32;
        while job.done.load(Ordering::Acquire) < n {
            if spins < CALLER_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                // A worker holds a chunk but may have lost its core: give it ours.
                std::thread::yield_now();
            }
        }
        self.shared
            .job
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if job.panicked.load(Ordering::Relaxed) {
            panic!("a compute task panicked");
        }
    }
}

fn worker(s: Arc<Shared>) {
    IN_WORKER.with(|w| w.set(true));
    let mut seen = s.generation.load(Ordering::SeqCst);
    loop {
        let mut spins = 0u32;
        while s.generation.load(Ordering::Acquire) == seen && spins < WORKER_SPINS {
            spins += 1;
            std::hint::spin_loop();
            if spins % 512 == 0 {
                std::thread::yield_now();
            }
        }
        let job = {
            let mut slot = s.job.lock().unwrap_or_else(|e| e.into_inner());
            if s.generation.load(Ordering::SeqCst) == seen {
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while s.generation.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst)
                {
                    slot = s
                        .wake
                        .wait_timeout(slot, Duration::from_secs(1))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            seen = s.generation.load(Ordering::SeqCst);
            slot.clone()
        };
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        if let Some(job) = job {
            job.work();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.wake.notify_all();
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();

/// The process-wide pool, sized by [`crate::loaded::compute_threads`] (its first call decides;
/// before any call, one thread per core).
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| Pool::new(crate::loaded::compute_threads(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_item_runs_exactly_once() {
        let pool = Pool::new(3);
        assert_eq!(pool.threads(), 3);
        for n in [1, 2, 7, 24, 1000, 4097] {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            pool.run_chunked(n, |r| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "n = {n}"
            );
        }
    }

    #[test]
    fn many_calls_in_a_row_and_from_several_threads() {
        let pool = Arc::new(Pool::new(2));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for round in 0..2000usize {
                        let n = 64 + round % 50;
                        let sum = AtomicUsize::new(0);
                        pool.run_chunked(n, |r| {
                            sum.fetch_add(r.map(|i| i + 1).sum::<usize>(), Ordering::Relaxed);
                        });
                        assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn a_sleeping_pool_wakes_for_the_next_call() {
        let pool = Pool::new(2);
        pool.run_chunked(100, |_| {});
        // Long enough for the worker to stop spinning and sleep.
        std::thread::sleep(Duration::from_millis(100));
        let ran_on = Mutex::new(std::collections::HashSet::new());
        for _ in 0..5 {
            pool.run_chunked(32, |_| {
                ran_on.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(Duration::from_millis(1));
            });
        }
        assert_eq!(ran_on.lock().unwrap().len(), 2, "the worker took part");
    }

    #[test]
    fn a_panic_in_a_task_reaches_the_caller_and_the_pool_still_works() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run_chunked(100, |r| {
                if r.contains(&50) {
                    panic!("task failed");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run_chunked(100, |r| {
            count.fetch_add(r.len(), Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 100);
    }
}
