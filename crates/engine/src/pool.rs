//! The compute pool Hearth's kernels and attention run on: persistent worker threads that share
//! the items of one call, with the calling thread working too.
//!
//! Built for a desktop that shares its cores with everything else the user runs. A caller may
//! rely on these properties:
//! - [`Pool::run_chunked`] returns once every item has been processed, by whichever threads got
//!   to them. It never waits for a worker that has not started: a worker the operating system
//!   has not scheduled yet finds its items taken by the others when it wakes, so a busy core
//!   slows a call down to the speed of the threads that do run instead of stalling it (a
//!   barrier would wait).
//! - Each thread starts on its own contiguous share of the items (the caller on the first,
//!   worker `k` on share `k + 1`) and takes chunks from its front; a thread whose share is done
//!   takes chunks from the back of the others'. So when every thread runs, each reads one
//!   stretch of a weight matrix from start to end, the order the memory prefetchers follow
//!   (taking chunks in turn from one cursor made two-thread decoding 12-24% slower on an AMD
//!   EPYC: every chunk started cold), and when one does not, the others still finish its share.
//! - Workers spin briefly after a call (the next product of a decode step follows within
//!   microseconds), then sleep on a condition variable, so an idle app uses no CPU.
//! - A call made while another is running (another thread using the same pool), or from inside
//!   a worker, runs on the calling thread alone instead of waiting.
//! - The results do not depend on how items were split: each item is processed by exactly one
//!   call of the closure, and callers give each item its own output.
//! - A call costs about a microsecond on top of its work: it is handed over without a lock or
//!   an allocation, and its chunks shrink towards the end of a share so that the threads finish
//!   together ([`Pool::run_aligned`] keeps them whole tiles of rows for the kernels).

use std::cell::Cell;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Spins of a worker waiting for the next call before it sleeps (a few tens of microseconds).
const WORKER_SPINS: u32 = 20_000;
/// Spins of the caller waiting for a running chunk before it starts yielding its core.
const CALLER_SPINS: u32 = 2_000;
/// Bits of a share's front and back in its word (see [`Shared::shares`]); a call of more items
/// is run in pieces.
const POS_BITS: u32 = 24;
const POS: u64 = (1 << POS_BITS) - 1;
/// The call's generation as a share's word holds it (its low 16 bits).
const GEN: u64 = 0xffff;

thread_local! {
    /// Set on the pool's own threads: nested calls run inline.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The caller's closure as the workers see it.
type Task<'a> = &'a (dyn Fn(Range<usize>) + Sync);

/// One share's word: `generation & GEN` in the top 16 bits, then its front and back.
fn share_word(generation: u64, front: usize, back: usize) -> u64 {
    (generation & GEN) << (2 * POS_BITS) | (front as u64) << POS_BITS | back as u64
}

/// A value alone on its cache lines (two: some CPUs fetch lines in pairs). The shares' words
/// are each on their own: when they shared a line, every claim of one thread took the line
/// from the other, and an empty two-thread call took 1.6 µs instead of 1.2 on an AMD EPYC.
#[repr(align(128))]
struct Line<T>(T);

/// What the caller and the workers share. A call is published without a lock or an allocation:
/// the caller writes its fields and each share's word, then starts a new generation in `state`.
/// A thread claims items by a compare-and-swap on a share's word that names the generation it
/// read the fields under, so a claim succeeds only while that call still has items, which is
/// while its caller waits and its fields are unchanged. A finished call's shares are all empty
/// (front = back), so no claim on it can succeed; the next call's words carry the next
/// generation. (Should a thread stall across exactly a multiple of 65,536 calls and find a word
/// equal to the one it read, its claim is still a valid unclaimed range of the running call,
/// which it then runs and counts like any other.)
struct Shared {
    /// `generation << 32`: workers watch it for the next call.
    state: AtomicU64,
    /// Per thread (the caller first): `generation & GEN << 48 | front << 24 | back`; the
    /// items `front..back` of that share are unclaimed. The owner claims from the front,
    /// others from the back.
    shares: Box<[Line<AtomicU64>]>,
    /// The current call's closure: points at a [`Task`] on the caller's stack. Dereferenced
    /// only after a successful claim.
    task: AtomicPtr<()>,
    n: AtomicUsize,
    /// Chunk sizes are multiples of this (but the last).
    align: AtomicUsize,
    /// Items processed in the current call; each thread adds its count when it runs out.
    done: AtomicUsize,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    /// Threads that compute, the caller included.
    threads: AtomicUsize,
}

impl Shared {
    /// Claims a chunk of share `share` of generation `generation`: from its front for its owner
    /// (`own`), from its back for anyone else, if it has items left. Owners' chunks shrink as
    /// the share nears its end (between 1/16 and 1/4 of a share), others take 1/16, so that the
    /// threads finish together and none holds much that a paused thread could hold up.
    fn claim(&self, generation: u64, share: usize, own: bool) -> Option<Range<usize>> {
        let word = &self.shares[share].0;
        let mut w = word.load(SeqCst);
        loop {
            if w >> (2 * POS_BITS) != generation & GEN {
                return None;
            }
            let (front, back) = (((w >> POS_BITS) & POS) as usize, (w & POS) as usize);
            if front >= back {
                return None;
            }
            let (n, align) = (self.n.load(SeqCst), self.align.load(SeqCst).max(1));
            let part = (n / self.threads.load(SeqCst).max(1)).max(1);
            let (lo, hi) = (part / 16, part / 4);
            let (start, end) = if own {
                let size = ((back - front) / 2)
                    .clamp(lo, hi)
                    .max(1)
                    .next_multiple_of(align);
                (front, back.min(front + size))
            } else {
                // Starts stay on the alignment: every share starts on it and chunks taken
                // from the front are whole multiples of it.
                let size = lo.max(1).next_multiple_of(align);
                let start = (back.saturating_sub(size) / align * align).max(front);
                (start, back)
            };
            let next = if own {
                share_word(generation, end, back)
            } else {
                share_word(generation, front, start)
            };
            match word.compare_exchange_weak(w, next, SeqCst, SeqCst) {
                Ok(_) => return Some(start..end),
                Err(now) => w = now,
            }
        }
    }

    /// Processes chunks of generation `generation`, its own share `me` first and then what is
    /// left of the others', until none are left, then reports them done.
    fn work(&self, generation: u64, me: usize) {
        let mut count = 0;
        let shares = self.threads.load(SeqCst);
        for k in 0..shares {
            let share = (me + k) % shares;
            while let Some(items) = self.claim(generation, share, k == 0) {
                count += items.len();
                // SAFETY: the claim succeeded, so the caller is waiting for these items and the
                // task it points at is alive (see `Shared`).
                let task: Task<'_> = unsafe { *(self.task.load(SeqCst) as *const Task<'_>) };
                if catch_unwind(AssertUnwindSafe(|| task(items))).is_err() {
                    self.panicked.store(true, SeqCst);
                }
            }
        }
        if count > 0 {
            self.done.fetch_add(count, SeqCst);
        }
    }
}

/// A pool of `threads - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
    /// Set for the length of a call; a second caller runs inline instead of waiting.
    calling: AtomicBool,
}

impl Pool {
    /// A pool that computes with `threads` threads in all (at least 1).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            shares: (0..threads).map(|_| Line(AtomicU64::new(0))).collect(),
            task: AtomicPtr::new(std::ptr::null_mut()),
            n: AtomicUsize::new(0),
            align: AtomicUsize::new(1),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            threads: AtomicUsize::new(threads),
        });
        let mut workers = 0;
        for i in 0..threads - 1 {
            let s = shared.clone();
            // Worker `k` (counting those that started) owns share `k + 1`.
            let me = workers + 1;
            let spawned = std::thread::Builder::new()
                .name(format!("hearth-compute-{i}"))
                .spawn(move || worker(s, me));
            if spawned.is_ok() {
                workers += 1;
            }
        }
        // Shares and chunk sizes count the threads that did start.
        shared.threads.store(workers + 1, SeqCst);
        Self {
            shared,
            workers,
            calling: AtomicBool::new(false),
        }
    }

    /// Threads that compute, the caller included.
    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Calls `f` on disjoint ranges covering `0..n`, spread over the pool (see the module
    /// header). Panics if `f` panicked.
    pub fn run_chunked<F: Fn(Range<usize>) + Sync>(&self, n: usize, f: F) {
        self.run_aligned(n, 1, f)
    }

    /// [`Pool::run_chunked`] with every range but the last starting at a multiple of `align`
    /// and holding a multiple of `align` items (for kernels that work on groups of rows).
    pub fn run_aligned<F: Fn(Range<usize>) + Sync>(&self, n: usize, align: usize, f: F) {
        let align = align.max(1);
        // More items than a share's word can count: in pieces of whole alignments.
        let piece = (POS as usize / align) * align;
        let mut base = 0;
        while base < n {
            let len = piece.min(n - base);
            if base == 0 && len == n {
                self.run_piece(n, align, &f);
            } else {
                self.run_piece(len, align, &|r: Range<usize>| {
                    f(base + r.start..base + r.end)
                });
            }
            base += len;
        }
    }

    /// [`Pool::run_aligned`] for at most [`POS`] items.
    fn run_piece(&self, n: usize, align: usize, f: Task<'_>) {
        if n == 0 {
            return;
        }
        if self.workers == 0
            || n <= align
            || IN_WORKER.with(|w| w.get())
            || self
                .calling
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_err()
        {
            f(0..n);
            return;
        }
        let s = &*self.shared;
        let task: Task<'_> = f;
        let generation = ((s.state.load(SeqCst) >> 32) + 1) & u32::MAX as u64;
        s.task.store(&task as *const Task<'_> as *mut (), SeqCst);
        s.n.store(n, SeqCst);
        s.align.store(align, SeqCst);
        s.done.store(0, SeqCst);
        s.panicked.store(false, SeqCst);
        // Share k: items from (k · n / shares) down to the alignment, up to the next share (a
        // share of a worker that did not start is left empty).
        let shares = s.threads.load(SeqCst);
        let bound = |k: usize| {
            if k >= shares {
                n
            } else {
                k * n / shares / align * align
            }
        };
        for (k, word) in s.shares.iter().enumerate() {
            word.0
                .store(share_word(generation, bound(k), bound(k + 1)), SeqCst);
        }
        s.state.store(generation << 32, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        s.work(generation, 0);
        let mut spins = 0u32;
        while s.done.load(SeqCst) < n {
            if spins < CALLER_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                // A worker holds a chunk but may have lost its core: give it ours.
                std::thread::yield_now();
            }
        }
        let panicked = s.panicked.load(SeqCst);
        self.calling.store(false, SeqCst);
        if panicked {
            panic!("a compute task panicked");
        }
    }
}

fn worker(s: Arc<Shared>, me: usize) {
    IN_WORKER.with(|w| w.set(true));
    let generation = |s: &Shared| s.state.load(SeqCst) >> 32;
    let mut seen = generation(&s);
    loop {
        let mut spins = 0u32;
        while generation(&s) == seen && spins < WORKER_SPINS {
            spins += 1;
            std::hint::spin_loop();
            if spins % 512 == 0 {
                std::thread::yield_now();
            }
        }
        if generation(&s) == seen {
            let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            while generation(&s) == seen && !s.stop.load(SeqCst) {
                guard = s
                    .wake
                    .wait_timeout(guard, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            s.sleepers.fetch_sub(1, SeqCst);
        }
        if s.stop.load(SeqCst) {
            return;
        }
        seen = generation(&s);
        s.work(seen, me);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, SeqCst);
        let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Every share of the last call is empty; a new generation wakes the workers to stop.
        let next = ((s.state.load(SeqCst) >> 32) + 1) & u32::MAX as u64;
        s.state.store(next << 32, SeqCst);
        s.wake.notify_all();
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
    use std::sync::atomic::{AtomicU32, Ordering};

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
    fn aligned_ranges_start_and_end_on_the_alignment() {
        let pool = Pool::new(2);
        for (n, align) in [
            (1000, 8),
            (2048, 16),
            (37, 8),
            (9, 8),
            (4096, 1),
            (100_000, 8),
        ] {
            let ranges = Mutex::new(Vec::new());
            pool.run_aligned(n, align, |r| ranges.lock().unwrap().push(r));
            let mut ranges = ranges.into_inner().unwrap();
            ranges.sort_by_key(|r| r.start);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(n));
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start, "n = {n}: gap or overlap");
            }
            for r in &ranges[..ranges.len() - 1] {
                assert!(
                    r.start % align == 0 && r.len() % align == 0,
                    "{r:?} of {n}/{align}"
                );
            }
            if n >= 1000 {
                assert!(
                    ranges.len() > 2,
                    "n = {n} was split into {} ranges",
                    ranges.len()
                );
            }
        }
    }

    #[test]
    fn each_thread_starts_on_its_own_share_and_reads_it_in_order() {
        // Two threads, 1,000 items in tiles of 8: the caller owns 0..496, the worker 496..1000.
        // Chunks are slow enough that both take part; whoever runs out takes from the back of
        // the other's share.
        let pool = Pool::new(2);
        for _ in 0..3 {
            let seen = Mutex::new(Vec::new());
            pool.run_aligned(1000, 8, |r| {
                seen.lock().unwrap().push((std::thread::current().id(), r));
                std::thread::sleep(Duration::from_millis(2));
            });
            let seen = seen.into_inner().unwrap();
            let me = std::thread::current().id();
            let mine: Vec<_> = seen
                .iter()
                .filter(|s| s.0 == me)
                .map(|s| s.1.clone())
                .collect();
            let theirs: Vec<_> = seen
                .iter()
                .filter(|s| s.0 != me)
                .map(|s| s.1.clone())
                .collect();
            // The caller reads its share front to back before anything else.
            let own: Vec<_> = mine.iter().take_while(|r| r.start < 496).collect();
            assert_eq!(own.first().map(|r| r.start), Some(0), "{mine:?}");
            for w in own.windows(2) {
                assert_eq!(w[0].end, w[1].start, "caller: {mine:?}");
            }
            // The worker, if it ran anything, started at the front of its own share and went on
            // from there.
            if let Some(first) = theirs.first() {
                assert_eq!(first.start, 496, "worker: {theirs:?}");
                let own: Vec<_> = theirs.iter().take_while(|r| r.start >= 496).collect();
                for w in own.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "worker: {theirs:?}");
                }
            }
            let mut all: Vec<_> = mine.into_iter().chain(theirs).collect();
            all.sort_by_key(|r| r.start);
            assert_eq!(all.first().map(|r| r.start), Some(0));
            assert_eq!(all.last().map(|r| r.end), Some(1000));
            for w in all.windows(2) {
                assert_eq!(w[0].end, w[1].start, "gap or overlap: {all:?}");
            }
        }
    }

    #[test]
    fn each_share_word_has_its_cache_lines_to_itself() {
        let pool = Pool::new(4);
        let words: Vec<usize> = pool
            .shared
            .shares
            .iter()
            .map(|w| &w.0 as *const AtomicU64 as usize)
            .collect();
        assert_eq!(words.len(), 4);
        for (i, a) in words.iter().enumerate() {
            assert_eq!(a % 128, 0, "share {i} at {a:#x}");
            for b in &words[i + 1..] {
                assert!(a.abs_diff(*b) >= 128, "{a:#x} and {b:#x} share a line");
            }
        }
    }

    #[test]
    fn a_late_worker_never_claims_from_a_finished_call() {
        // Thousands of back-to-back calls of different sizes: each must see exactly its own
        // items once, with the worker often arriving as a call ends and the next one begins.
        let pool = Pool::new(2);
        for round in 0..20_000usize {
            let n = 1 + round % 97;
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            pool.run_aligned(n, 1 + round % 3, |r| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "round {round}"
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
