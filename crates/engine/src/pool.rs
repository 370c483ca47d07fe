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
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};
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
/// Most pieces of memory one hint names (see [`Pool::hint`]).
const HINT_SPANS: usize = 8;
/// Most bytes a worker asks for per hint: about half of a core's L2 cache (1-2 MiB on current
/// x86 cores), so that what it asks for first is still there when its share of the call reads
/// it.
const HINT_BYTES: usize = 512 << 10;
/// Lines a worker asks for between two looks at whether a call has started.
const HINT_LINES_PER_LOOK: usize = 32;

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
    /// The memory the next calls will read (see [`Pool::hint`]), on lines of its own.
    hints: Line<Hints>,
    /// Bytes the workers have asked the memory system for on hints, in all.
    prefetched: AtomicU64,
    /// The first address a worker asked for on the last hint it took (for the tests).
    #[cfg(test)]
    first_asked: AtomicUsize,
}

/// What [`Pool::hint`] publishes, read by the workers between calls. Written under a sequence
/// number (odd while it is being written) so that a worker uses only a whole hint; a torn read
/// is thrown away. Addresses are only ever prefetched, never read: a prefetch of memory that
/// has since been freed does nothing.
struct Hints {
    seq: AtomicU64,
    count: AtomicUsize,
    /// Per span: its address, its length and the call (0, 1, ...) whose items it holds.
    addr: [AtomicUsize; HINT_SPANS],
    len: [AtomicUsize; HINT_SPANS],
    call: [AtomicUsize; HINT_SPANS],
}

/// One span of a hint as a worker copied it.
#[derive(Clone, Copy, Default)]
struct Span {
    addr: usize,
    len: usize,
    call: usize,
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

impl Shared {
    /// The hint of sequence number `seq`, if it is whole and still the latest.
    fn read_hint(&self, seq: u64, spans: &mut [Span; HINT_SPANS]) -> Option<usize> {
        // A sequence lock's reader: `seq` was read with Acquire; the fields may be torn while a
        // hint is being written, which the second look at the number then tells.
        let h = &self.hints.0;
        let count = h.count.load(Relaxed).min(HINT_SPANS);
        for (k, sp) in spans.iter_mut().enumerate().take(count) {
            *sp = Span {
                addr: h.addr[k].load(Relaxed),
                len: h.len[k].load(Relaxed),
                call: h.call[k].load(Relaxed),
            };
        }
        fence(Acquire);
        (h.seq.load(Relaxed) == seq).then_some(count)
    }

    /// Worker `me`'s part of hint `seq`: for each call it names, the stretch of its spans that
    /// `me`'s share of that call's items will read (the shares of [`Pool::run_aligned`]: the
    /// call's bytes split evenly), asked for line by line from its front, at most
    /// [`HINT_BYTES`] in all. `done` holds, per call of the previous hint, the address of its
    /// first span and how far into `me`'s stretch that hint got: a call named again continues
    /// from there. Stops as soon as a call of a generation other than `generation` starts.
    fn prefetch_share(
        &self,
        seq: u64,
        me: usize,
        generation: u64,
        done: &mut [(usize, usize); HINT_SPANS],
    ) {
        let mut spans = [Span::default(); HINT_SPANS];
        let Some(count) = self.read_hint(seq, &mut spans) else {
            return;
        };
        let spans = &spans[..count];
        let threads = self.threads.load(SeqCst).max(1);
        let previous = *done;
        *done = [(0, 0); HINT_SPANS];
        let mut budget = HINT_BYTES;
        let mut asked = 0usize;
        let calls = spans.iter().map(|s| s.call + 1).max().unwrap_or(0);
        'calls: for (call, slot) in done.iter_mut().enumerate().take(calls) {
            let of_call = || spans.iter().filter(move |s| s.call == call);
            let Some(first) = of_call().next() else {
                continue;
            };
            let total: usize = of_call().map(|s| s.len).sum();
            let (lo, hi) = (total * me / threads, total * (me + 1) / threads);
            let resumed = previous
                .iter()
                .find(|(a, _)| *a == first.addr && *a != 0)
                .map_or(0, |d| d.1);
            let start = lo + resumed.min(hi - lo);
            let end = hi.min(start + budget);
            *slot = (first.addr, start - lo);
            // The call's spans as one run of bytes: span `sp` holds `base..base + sp.len`.
            let mut base = 0;
            for sp in of_call() {
                let mut off = start.max(base);
                let to = end.min(base + sp.len);
                #[cfg(test)]
                if asked == 0 && off < to {
                    self.first_asked.store(sp.addr + (off - base), SeqCst);
                }
                while off < to {
                    let stop = to.min(off + 64 * HINT_LINES_PER_LOOK);
                    let mut line = off;
                    while line < stop {
                        prefetch_line(sp.addr.wrapping_add(line - base));
                        line += 64;
                    }
                    asked += stop - off;
                    budget -= stop - off;
                    slot.1 += stop - off;
                    off = stop;
                    if self.state.load(SeqCst) >> 32 != generation {
                        break 'calls;
                    }
                }
                base += sp.len;
            }
            if budget == 0 {
                break;
            }
        }
        self.prefetched.fetch_add(asked as u64, SeqCst);
    }
}

/// Asks the memory system for the cache line at `addr`, to be read soon by this core. Never
/// faults, whatever the address.
#[inline(always)]
fn prefetch_line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and does not fault on any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
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
            hints: Line(Hints {
                seq: AtomicU64::new(0),
                count: AtomicUsize::new(0),
                addr: std::array::from_fn(|_| AtomicUsize::new(0)),
                len: std::array::from_fn(|_| AtomicUsize::new(0)),
                call: std::array::from_fn(|_| AtomicUsize::new(0)),
            }),
            prefetched: AtomicU64::new(0),
            #[cfg(test)]
            first_asked: AtomicUsize::new(0),
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

    /// Names the memory the next calls will read, so that the workers, idle while the caller
    /// works alone between calls (a norm, the attention), ask the memory system for it
    /// instead of only waiting: `calls[c]` lists the bytes call `c` from now reads, in the
    /// order of its items (a product's matrices, one after another), spread over its items
    /// evenly. Each worker asks for the part its own share of the items will read (up to
    /// [`HINT_BYTES`], from its front), so that the call finds it in the worker's cache: the
    /// weights stream in during work that reads none. A hint changes no result: nothing is read
    /// through it. Spans past the first [`HINT_SPANS`] are left out; a pool of one thread, or
    /// a hint given while another is being written, does nothing.
    pub fn hint(&self, calls: &[&[&[u8]]]) {
        if self.workers == 0 {
            return;
        }
        // A sequence lock's writer (odd while writing), with plain stores in between: a hint
        // costs the caller one atomic exchange, not one per field.
        let h = &self.shared.hints.0;
        let seq = h.seq.load(Relaxed);
        if !seq.is_multiple_of(2)
            || h.seq
                .compare_exchange(seq, seq + 1, Acquire, Relaxed)
                .is_err()
        {
            return;
        }
        fence(Release);
        let mut k = 0;
        for (c, spans) in calls.iter().enumerate() {
            for span in spans.iter().filter(|s| !s.is_empty()) {
                if k == HINT_SPANS {
                    break;
                }
                h.addr[k].store(span.as_ptr() as usize, Relaxed);
                h.len[k].store(span.len(), Relaxed);
                h.call[k].store(c, Relaxed);
                k += 1;
            }
        }
        h.count.store(k, Relaxed);
        h.seq.store(seq + 2, Release);
    }

    /// Bytes the workers have asked for on hints since the pool started.
    pub fn prefetched(&self) -> u64 {
        self.shared.prefetched.load(SeqCst)
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
    let mut hint_seen = s.hints.0.seq.load(SeqCst);
    let mut hint_done = [(0, 0); HINT_SPANS];
    loop {
        let mut spins = 0u32;
        while generation(&s) == seen && spins < WORKER_SPINS {
            let hint = s.hints.0.seq.load(Acquire);
            if hint != hint_seen && hint.is_multiple_of(2) {
                hint_seen = hint;
                s.prefetch_share(hint, me, seen, &mut hint_done);
            }
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

    /// Calls of 1 to 97 items, aligned to 1, 2 or 3, one after another, each checked to see
    /// every one of its items exactly once; `before(pool, round)` runs ahead of each.
    fn back_to_back_calls(pool: &Pool, rounds: usize, before: impl Fn(&Pool, usize)) {
        for round in 0..rounds {
            let n = 1 + round % 97;
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            before(pool, round);
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
    fn a_late_worker_never_claims_from_a_finished_call() {
        // Thousands of back-to-back calls of different sizes: each must see exactly its own
        // items once, with the worker often arriving as a call ends and the next one begins.
        back_to_back_calls(&Pool::new(2), 20_000, |_, _| {});
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

    /// Posts `calls` right after a call (while the workers spin), again until a worker has
    /// taken it (one may have gone to sleep first on a loaded machine); the bytes the workers
    /// asked for. Posting the same spans again never asks for a byte twice (a hint continues
    /// where the last one of the same spans stopped), so the count is the hint's, however
    /// often it was posted or interrupted.
    fn taken(pool: &Pool, calls: &[&[&[u8]]]) -> u64 {
        let before = pool.prefetched();
        for _ in 0..200 {
            pool.run_chunked(64, |_| {});
            pool.hint(calls);
            let until = std::time::Instant::now() + Duration::from_millis(200);
            while std::time::Instant::now() < until {
                if pool.prefetched() > before {
                    // Counted when a worker is done with it, or stopped by a call (a retry's),
                    // after which the repost right behind that call lets it finish: wait for
                    // the count to settle.
                    let mut last = pool.prefetched();
                    loop {
                        std::thread::sleep(Duration::from_millis(30));
                        let now = pool.prefetched();
                        if now == last {
                            return now - before;
                        }
                        last = now;
                    }
                }
                std::hint::spin_loop();
            }
        }
        panic!("no worker took the hint");
    }

    #[test]
    fn an_idle_worker_asks_for_its_share_of_each_hinted_call() {
        let pool = Pool::new(2);
        let (a, b, c) = (
            vec![1u8; 256 << 10],
            vec![2u8; 64 << 10],
            vec![3u8; 32 << 10],
        );
        // Worker 1 of 2: the second half of each call's bytes, the call's spans taken as one.
        assert_eq!(taken(&pool, &[&[&a], &[&b, &c]]), (128 + 48) << 10);
        let first = pool.shared.first_asked.load(SeqCst);
        assert_eq!(first, a.as_ptr() as usize + (128 << 10));
        // A call's share that starts in its second span.
        assert_eq!(taken(&pool, &[&[&c, &b]]), 48 << 10);
        let first = pool.shared.first_asked.load(SeqCst);
        assert_eq!(first, b.as_ptr() as usize + (16 << 10));
        // A hint over more than the budget stops at the budget.
        let big = vec![4u8; 4 * HINT_BYTES];
        assert_eq!(taken(&pool, &[&[&big]]), HINT_BYTES as u64);
        // With four threads, the last worker's quarter.
        let four = Pool::new(4);
        let d = vec![5u8; 64 << 10];
        let got = taken(&four, &[&[&d]]);
        assert_eq!(got % (16 << 10), 0, "{got}");
        assert!((16 << 10..=48 << 10).contains(&got), "{got}");
    }

    #[test]
    fn a_call_hinted_again_continues_where_the_worker_stopped() {
        let pool = Pool::new(2);
        let big = vec![4u8; 4 * HINT_BYTES];
        let small = vec![1u8; 64 << 10];
        assert_eq!(taken(&pool, &[&[&big]]), HINT_BYTES as u64);
        // The same call again, then another: the first goes on from where it stopped (its
        // budget spent on the rest of the share), so the second is not reached.
        let again = taken(&pool, &[&[&big], &[&small]]);
        assert_eq!(again, HINT_BYTES as u64);
        // A call whose share was asked for in full costs nothing the next time; the one after
        // it gets its share.
        let whole = vec![6u8; 128 << 10];
        assert_eq!(taken(&pool, &[&[&whole]]), 64 << 10);
        assert_eq!(taken(&pool, &[&[&whole], &[&small]]), 32 << 10);
    }

    #[test]
    fn hints_between_calls_change_no_call() {
        let weights = vec![7u8; 1 << 20];
        back_to_back_calls(&Pool::new(2), 5000, |pool, round| {
            pool.hint(&[&[&weights[..(round * 4096) % weights.len()]], &[&weights]]);
        });
        // A pool of one thread takes no hints.
        let one = Pool::new(1);
        one.hint(&[&[&weights]]);
        assert_eq!(one.prefetched(), 0);
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
