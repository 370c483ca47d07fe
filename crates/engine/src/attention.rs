//! Causal attention over the key/value cache, computed one query row at a time.
//!
//! [`attend`] takes the queries of the tokens being run and the whole cache (keys and values of
//! every earlier position plus these tokens) and returns each query's weighted sum of values,
//! already laid out as `[1, t, heads × head_dim]` for the output projection.
//!
//! A caller may rely on this: the result for one query depends only on that query, the cached
//! keys and values it can see, and its position, never on how many other tokens ran in the same
//! call or how the work was split across threads. Every query row runs the same code in the same
//! order of additions. That is what makes a follow-up turn that reuses the cache give exactly the
//! logits that re-reading the whole conversation would (the matrix kernels have the same
//! property, see [`crate::kernels`]). It also needs no mask tensor and no copy of the cache.
//!
//! Keys and values may be f32 or f16 (the model keeps its cache in f16: half the memory, and
//! half the bytes each decoded token reads at long context). f16 rows are widened to f32 one row
//! at a time, exactly, so the arithmetic is the same either way.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use half::f16;

use crate::error::Result;

/// What a query may see besides the causal rule.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Sliding window: a query at position `p` sees keys at `p - w + 1 ..= p`; `None`: all
    /// earlier positions.
    pub size: Option<usize>,
}

/// `q`: `[1, n_head, t, hd]` (the last `t` positions of the cache); `k`, `v`: `[1, n_kv, total,
/// hd]` with unit stride in the last dimension (views of the cache are fine). Query heads that
/// share a key/value head are adjacent. Returns `[1, t, n_head × hd]`.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, window: Window) -> Result<Tensor> {
    let q = q.contiguous()?;
    Ok(q.apply_op3_no_bwd(k, v, &Attend { scale, window })?)
}

struct Attend {
    scale: f32,
    window: Window,
}

/// A tensor's elements: f32, or f16 (keys and values only).
#[derive(Clone, Copy)]
enum Data<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl Data<'_> {
    fn len(&self) -> usize {
        match self {
            Data::F32(d) => d.len(),
            Data::F16(d) => d.len(),
        }
    }
}

/// Where one tensor's elements are: `[1, heads, len, hd]` with unit stride in `hd`.
struct View<'a> {
    data: Data<'a>,
    offset: usize,
    head_stride: usize,
    row_stride: usize,
    heads: usize,
    len: usize,
    hd: usize,
}

impl<'a> View<'a> {
    fn new(name: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<Self> {
        let data = match s {
            CpuStorage::F32(v) => Data::F32(v.as_slice()),
            CpuStorage::F16(v) => Data::F16(v.as_slice()),
            _ => candle_core::bail!("attention: {name} must be f32 or f16"),
        };
        let (dims, strides) = (l.dims(), l.stride());
        if dims.len() != 4 || dims[0] != 1 || strides[3] != 1 {
            candle_core::bail!(
                "attention: {name} has shape {dims:?} and strides {strides:?}, expected [1, heads, len, hd] with unit stride in hd"
            );
        }
        let v = Self {
            data,
            offset: l.start_offset(),
            head_stride: strides[1],
            row_stride: strides[2],
            heads: dims[1],
            len: dims[2],
            hd: dims[3],
        };
        // The last element must be inside the storage.
        if v.heads > 0 && v.len > 0 && v.hd > 0 {
            let last = v.offset + (v.heads - 1) * v.head_stride + (v.len - 1) * v.row_stride + v.hd;
            if last > data.len() {
                candle_core::bail!("attention: {name} view is outside its storage");
            }
        }
        Ok(v)
    }

    /// Row `i` of head `h` in f32: the row itself, or (f16) `buf` with the row widened into it
    /// (with F16C when `AVX`, which the caller must then have checked the CPU has).
    #[inline(always)]
    fn row<'b, const AVX: bool>(&'b self, h: usize, i: usize, buf: &'b mut [f32]) -> &'b [f32] {
        let at = self.offset + h * self.head_stride + i * self.row_stride;
        match self.data {
            Data::F32(d) => &d[at..at + self.hd],
            Data::F16(d) => {
                let (src, dst) = (&d[at..at + self.hd], &mut buf[..self.hd]);
                #[cfg(target_arch = "x86_64")]
                if AVX {
                    // SAFETY: `AVX` is set only where the CPU has AVX2, FMA and F16C.
                    unsafe { widen_f16c(src, dst) };
                    return &buf[..self.hd];
                }
                widen_portable(src, dst);
                &buf[..self.hd]
            }
        }
    }
}

/// f16 to f32 (exact), portable: the `half` crate's slice conversion.
#[inline(always)]
fn widen_portable(src: &[f16], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(dst);
}

/// f16 to f32 (exact) with F16C, eight at a time.
///
/// # Safety
/// The CPU must have F16C and AVX; `dst` at least as long as `src`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
#[inline]
unsafe fn widen_f16c(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len();
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    for j in i..n {
        dst[j] = src[j].to_f32();
    }
}

/// The eight running sums of [`dot`] and [`sum`] added up, always in this order.
#[inline(always)]
fn reduce8(a: &[f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// Dot product with eight running sums: lane `l` adds up the products of elements `8c + l`
/// (fused with `F`, see [`madd`]), then [`reduce8`].
#[inline(always)]
fn dot<const F: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = madd::<F>(x[l], y[l], acc[l]);
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] = madd::<F>(*x, *y, acc[l]);
    }
    reduce8(&acc)
}

/// `acc + x · y`: with `F` one fused multiply-add (one rounding), as the AVX loops do every
/// product and sum, else the product rounded, then the sum. A process runs one or the other
/// everywhere (`F` is set exactly where the AVX loops run: see [`Run::items_with`]), so a row
/// gets the same bits whichever loop computes it.
#[inline(always)]
fn madd<const F: bool>(x: f32, y: f32, acc: f32) -> f32 {
    if F {
        x.mul_add(y, acc)
    } else {
        acc + x * y
    }
}

/// [`dot`] in AVX registers: the same products added in the same order, so the same bits.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma")]
#[inline]
unsafe fn dot_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, the length of both slices.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc = _mm256_fmadd_ps(x, y, acc);
        i += 8;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds eight floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    for (l, j) in (i..n).enumerate() {
        lanes[l] = a[j].mul_add(b[j], lanes[l]);
    }
    reduce8(&lanes)
}

/// The largest element (eight running maxima; the result does not depend on the order).
#[inline(always)]
fn max(a: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let c = a.chunks_exact(8);
    let r = c.remainder();
    for x in c {
        for l in 0..8 {
            m[l] = if x[l] > m[l] { x[l] } else { m[l] };
        }
    }
    for (l, x) in r.iter().enumerate() {
        m[l] = if *x > m[l] { *x } else { m[l] };
    }
    m.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Sum with eight running sums added in a fixed order.
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = a.chunks_exact(8);
    let r = c.remainder();
    for x in c {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    for (l, x) in r.iter().enumerate() {
        acc[l] += x;
    }
    reduce8(&acc)
}

/// `s = e^(s - max)` for every element (the C library's `expf`, correctly rounded or within an
/// ulp of it). The AVX2 build uses [`crate::expf::exp_shifted`] instead, eight at a time with
/// the same bits.
///
/// A vectorized polynomial would be faster here, but it rounds a few results differently, and a
/// rounding difference in one layer changes which way an 8-bit activation rounds a few layers
/// later: greedy answers of small models would change where two tokens are near a tie.
#[inline(always)]
fn exp_shifted(s: &mut [f32], max: f32) {
    for x in s.iter_mut() {
        *x = (*x - max).exp();
    }
}

/// `out += w · x`.
#[inline(always)]
fn axpy<const F: bool>(out: &mut [f32], w: f32, x: &[f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = madd::<F>(w, *v, *o);
    }
}

/// A row of scores made weights in place: `e^(s - max)` for each ([`max`]; the exponentials
/// of [`exp_shifted`], or its AVX2 or AVX-512 builds with the same bits), then each times
/// `1 / `[`sum`] of them (one product per weight, which the weighted values then add as they
/// are). The tiles and the split passes both call this: the same bits either way.
///
/// # Safety
/// With `AVX` the CPU must have AVX2 and FMA; with `Z`, AVX-512 F too.
#[inline(always)]
unsafe fn softmax<const AVX: bool, const Z: bool>(row: &mut [f32]) {
    let m = max(row);
    #[cfg(target_arch = "x86_64")]
    if AVX && Z {
        // SAFETY: the caller's contract.
        unsafe { crate::expf::exp_shifted16(row, m) };
    } else if AVX {
        // SAFETY: the caller's contract.
        unsafe { crate::expf::exp_shifted(row, m) };
    } else {
        exp_shifted(row, m);
    }
    #[cfg(not(target_arch = "x86_64"))]
    exp_shifted(row, m);
    let inv = 1.0 / sum(row);
    for w in row.iter_mut() {
        *w *= inv;
    }
}

/// An element type of the rows the AVX loops read in place: f32, or f16 widened exactly (F16C).
#[cfg(target_arch = "x86_64")]
trait Elem: Copy {
    /// Eight elements from `p` as f32.
    ///
    /// # Safety
    /// Eight elements must be readable at `p`; the CPU must have AVX and F16C.
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;

    /// Eight elements from `a` in the low half and eight from `b` in the high half, as f32.
    ///
    /// # Safety
    /// As [`Elem::load8`] at both; the CPU must have AVX-512 F.
    unsafe fn load8x2(a: *const Self, b: *const Self) -> std::arch::x86_64::__m512;

    /// Sixteen elements from `p` as f32.
    ///
    /// # Safety
    /// Sixteen elements must be readable at `p`; the CPU must have AVX-512 F.
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
}

#[cfg(target_arch = "x86_64")]
impl Elem for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load8x2(a: *const f32, b: *const f32) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe {
            let lo = _mm512_castps256_ps512(_mm256_loadu_ps(a));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castps_pd(lo),
                _mm256_castps_pd(_mm256_loadu_ps(b)),
            ))
        }
    }

    #[inline(always)]
    unsafe fn load16(p: *const f32) -> std::arch::x86_64::__m512 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Elem for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }

    #[inline(always)]
    unsafe fn load8x2(a: *const f16, b: *const f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe {
            _mm512_cvtph_ps(_mm256_set_m128i(
                _mm_loadu_si128(b as *const __m128i),
                _mm_loadu_si128(a as *const __m128i),
            ))
        }
    }

    #[inline(always)]
    unsafe fn load16(p: *const f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
}

/// Four [`dot`]s of `n`-long rows: each of the four rows at `rows` with the row at `other`, in
/// AVX registers: `other` is loaded once for the four, and each sum runs lane by lane and is
/// reduced as [`reduce8`] does, so every result has the bits `dot` gives (the rows may be four
/// queries against one key, or four keys read in place against one query: products commute).
///
/// # Safety
/// The CPU must have AVX2, F16C and FMA; `n` a multiple of 8, with `n` elements at each pointer.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn dot4_avx<A: Elem, B: Elem>(rows: [*const A; 4], other: *const B, n: usize) -> [f32; 4] {
    use std::arch::x86_64::*;
    debug_assert!(n % 8 == 0);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < n {
        // SAFETY: i + 8 <= n, and every pointer has n elements.
        unsafe {
            let y = B::load8(other.add(i));
            for (a, row) in acc.iter_mut().zip(rows) {
                let x = A::load8(row.add(i));
                *a = _mm256_fmadd_ps(x, y, *a);
            }
        }
        i += 8;
    }
    reduce4_avx(acc)
}

/// Four lane-by-lane sums, each reduced in [`reduce8`]'s order: lane l + lane l+4, then pairs,
/// then the two pair sums.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn reduce4_avx(acc: [std::arch::x86_64::__m256; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let half = acc.map(|a| _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a)));
    let sums = _mm_hadd_ps(_mm_hadd_ps(half[0], half[1]), _mm_hadd_ps(half[2], half[3]));
    let mut out = [0f32; 4];
    // SAFETY: `out` holds four floats.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
    out
}

/// The running sums of [`dot`] for `P` key rows against each of `R` query rows, in AVX
/// registers: every key vector is loaded (and widened) once for all the queries, and each of the
/// `P·R` sums runs lane by lane (lane `l` adding the products of elements `8c + l` in order of
/// `c`, as `dot` does). Result `[r][p]` holds query `r`'s sums for key `p`, to be reduced in
/// [`reduce8`]'s order.
///
/// # Safety
/// The CPU must have AVX2, F16C and FMA; `n` a multiple of 8, with `n` elements at each pointer.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn row_sums_avx<K: Elem, const P: usize, const R: usize>(
    keys: [*const K; P],
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [[std::arch::x86_64::__m256; P]; R] {
    use std::arch::x86_64::*;
    debug_assert!(n.is_multiple_of(8));
    let mut acc = [[_mm256_setzero_ps(); P]; R];
    // The rows AHEAD further on, asked for now (see `weighted_rows_avx`).
    for p in keys {
        prefetch_row(p.wrapping_add(AHEAD * stride), n);
    }
    let mut i = 0;
    while i < n {
        // SAFETY: i + 8 <= n, and every pointer has n elements.
        unsafe {
            let k = keys.map(|p| K::load8(p.add(i)));
            for (a, q) in acc.iter_mut().zip(queries) {
                let y = _mm256_loadu_ps(q.add(i));
                for (a, x) in a.iter_mut().zip(k) {
                    *a = _mm256_fmadd_ps(x, y, *a);
                }
            }
        }
        i += 8;
    }
    acc
}

/// [`dot4_avx`] of four key rows with each of `R` query rows at once ([`row_sums_avx`]), each
/// query's four sums reduced as `dot4_avx` reduces them, so every result has the bits [`dot`]
/// gives.
///
/// # Safety
/// As [`row_sums_avx`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn dot4_rows_avx<K: Elem, const R: usize>(
    keys: [*const K; 4],
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [[f32; 4]; R] {
    // SAFETY: the caller's contract.
    let acc = unsafe { row_sums_avx::<K, 4, R>(keys, stride, queries, n) };
    // SAFETY: the caller's contract (AVX).
    acc.map(|a| unsafe { reduce4_avx(a) })
}

/// Two key rows against each of `R` query rows (4 to 7: the query heads that share a
/// key/value head, all in one pass) with [`row_sums_avx`]: each key vector loaded and widened
/// once for all of them, where groups of three widened each key once per group. The `2·R`
/// running sums and the query vector fill the sixteen registers (the query vector may be read as
/// an operand of the multiply-add); four queries' pairs are reduced together by
/// [`reduce8_avx`], so every result has the bits [`dot`] gives.
///
/// # Safety
/// As [`row_sums_avx`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn dot2_rows_avx<K: Elem, const R: usize>(
    keys: [*const K; 2],
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [[f32; 2]; R] {
    // SAFETY: the caller's contract.
    let acc = unsafe { row_sums_avx::<K, 2, R>(keys, stride, queries, n) };
    let mut out = [[0f32; 2]; R];
    // Four queries' pairs at a time (the last query again where fewer are left).
    for r in (0..R).step_by(4) {
        let u: [usize; 4] = std::array::from_fn(|i| (r + i).min(R - 1));
        // SAFETY: the caller's contract (AVX).
        let sums = unsafe { reduce8_avx(std::array::from_fn(|i| acc[u[i / 2]][i % 2])) };
        for (i, u) in u.iter().enumerate() {
            out[*u] = [sums[2 * i], sums[2 * i + 1]];
        }
    }
    out
}

/// Eight lane-by-lane sums reduced at once, each in [`reduce8`]'s order as [`reduce4_avx`]
/// reduces it (lane l + lane l+4, then pairs, then the two pair sums): element `i` is sum `i`'s.
/// One shuffle pair and addition per two sums, then three horizontal additions for all eight,
/// where `reduce4_avx` takes an extraction and addition per sum and three horizontal additions
/// per four.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn reduce8_avx(acc: [std::arch::x86_64::__m256; 8]) -> [f32; 8] {
    use std::arch::x86_64::*;
    // Sum i's four half sums in the low 128 bits, sum i + 4's in the high.
    let half: [__m256; 4] = std::array::from_fn(|i| {
        let (a, b) = (acc[i], acc[i + 4]);
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(a, b),
            _mm256_permute2f128_ps::<0x31>(a, b),
        )
    });
    let pairs = [
        _mm256_hadd_ps(half[0], half[1]),
        _mm256_hadd_ps(half[2], half[3]),
    ];
    let sums = _mm256_hadd_ps(pairs[0], pairs[1]);
    let mut out = [0f32; 8];
    // SAFETY: `out` holds eight floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sums) };
    out
}

/// The scores of two key rows (`keys`, `keys + ks`) against `rows` (4 to 7) query rows of `hd`
/// at `q` with [`dot2_rows_avx`]; rows past `rows` are left zero.
///
/// # Safety
/// As [`dot2_rows_avx`], with `hd` elements at each key row and `rows · hd` at `q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn key_scores_many<K: Elem>(
    keys: *const K,
    ks: usize,
    q: *const f32,
    rows: usize,
    hd: usize,
) -> [[f32; 2]; 7] {
    let k = [keys, keys.wrapping_add(ks)];
    let qs = |u: usize| q.wrapping_add(u * hd);
    let mut out = [[0f32; 2]; 7];
    // SAFETY: the caller's contract.
    unsafe {
        match rows {
            4 => {
                out[..4].copy_from_slice(&dot2_rows_avx::<K, 4>(k, ks, std::array::from_fn(qs), hd))
            }
            5 => {
                out[..5].copy_from_slice(&dot2_rows_avx::<K, 5>(k, ks, std::array::from_fn(qs), hd))
            }
            6 => {
                out[..6].copy_from_slice(&dot2_rows_avx::<K, 6>(k, ks, std::array::from_fn(qs), hd))
            }
            _ => out.copy_from_slice(&dot2_rows_avx::<K, 7>(k, ks, std::array::from_fn(qs), hd)),
        }
    }
    out
}

/// `out += w[j] · row j` for each row `j` of `vals` in turn (row `j` at `vals + j · stride`,
/// read in place; the row of [`axpy`] calls the fused portable build makes, the same
/// multiply-adds), with the `8·N`-wide output row kept in registers throughout. The weights
/// come already multiplied by their row's `1 / sum` (the product the portable build passes to
/// `axpy`), so each is one broadcast from memory here.
///
/// # Safety
/// The CPU must have AVX2, F16C and FMA; `out` must point at `8·N` writable floats no one else
/// touches, and `vals` hold `w.len()` rows of `8·N` elements, `stride` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn weighted_avx<const N: usize, V: Elem>(
    out: *mut f32,
    w: &[f32],
    vals: *const V,
    stride: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract: `out` holds 8·N floats, `vals` w.len() rows of 8·N.
    unsafe {
        let mut o = [_mm256_setzero_ps(); N];
        for (c, o) in o.iter_mut().enumerate() {
            *o = _mm256_loadu_ps(out.add(8 * c));
        }
        for (j, w) in w.iter().enumerate() {
            let f = _mm256_broadcast_ss(w);
            let row = vals.add(j * stride);
            for (c, o) in o.iter_mut().enumerate() {
                let v = V::load8(row.add(8 * c));
                *o = _mm256_fmadd_ps(f, v, *o);
            }
        }
        for (c, o) in o.iter().enumerate() {
            _mm256_storeu_ps(out.add(8 * c), *o);
        }
    }
}

/// [`weighted_avx`] for `R` output rows that take the same value rows (the heads of one token
/// that share a key/value head), each value vector loaded (and widened) once for all of them:
/// the output rows are walked `8·C` columns at a time, each column block kept in registers
/// while every position's weight is added, so each output element gets the same products and
/// additions in the same order as in `weighted_avx`: the same bits.
///
/// # Safety
/// As [`weighted_avx`] for each `(outs[r], ws[r])`, with `hd` a multiple of `8·C` and
/// every `ws[r]` as long as `ws[0]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn weighted_rows_avx<const C: usize, const R: usize, V: Elem>(
    hd: usize,
    outs: [*mut f32; R],
    ws: [&[f32]; R],
    vals: *const V,
    stride: usize,
) {
    use std::arch::x86_64::*;
    let n = ws[0].len();
    debug_assert!(hd.is_multiple_of(8 * C) && ws.iter().all(|w| w.len() == n));
    // SAFETY: the caller's contract: each `outs[r]` holds hd floats, `vals` n rows of hd.
    unsafe {
        for c0 in (0..hd).step_by(8 * C) {
            let mut o = [[_mm256_setzero_ps(); C]; R];
            for (o, out) in o.iter_mut().zip(outs) {
                for (c, o) in o.iter_mut().enumerate() {
                    *o = _mm256_loadu_ps(out.add(c0 + 8 * c));
                }
            }
            for j in 0..n {
                let f: [__m256; R] =
                    std::array::from_fn(|r| _mm256_broadcast_ss(ws[r].get_unchecked(j)));
                let row = vals.add(j * stride + c0);
                // The cache rows come from memory (the weights read since the last token have
                // pushed them out of the caches): ask for whole rows a few rows ahead on the
                // first pass. A prefetch never faults; the address is formed with wrapping
                // arithmetic.
                if c0 == 0 {
                    prefetch_row(vals.wrapping_add((j + AHEAD) * stride), hd);
                }
                for c in 0..C {
                    let v = V::load8(row.add(8 * c));
                    for (o, f) in o.iter_mut().zip(f) {
                        o[c] = _mm256_fmadd_ps(f, v, o[c]);
                    }
                }
            }
            for (o, out) in o.iter().zip(outs) {
                for (c, o) in o.iter().enumerate() {
                    _mm256_storeu_ps(out.add(c0 + 8 * c), *o);
                }
            }
        }
    }
}

/// The scores of two key rows (`hd` floats each, a multiple of 8) against up to eight query
/// rows held transposed: `qt` holds `hd` vectors of eight floats, vector `d` holding element `d`
/// of each row (the rows in the lanes). Lane `r` of each result has the bits [`dot`] gives for
/// row `r` and that key: accumulator `l`, a vector over the rows, adds the products of elements
/// `8c + l` in order of `c`, as dot's running sum `l` does, and the eight are then added up in
/// [`reduce8`]'s order, lane by lane. A key row costs one broadcast and one fused multiply-add
/// per element for all the rows together, with no horizontal sums; each query vector is loaded
/// once for both keys (with one key at a time, each multiply-add took two loads, the broadcast
/// and the query vector, and the loads set the pace). The sums go in two halves, sums 0, 4, 1,
/// 5 and then 2, 6, 3, 7, each half reduced as far as `reduce8`'s order allows before the next
/// starts, so that the accumulators fit in the sixteen registers: each sum still adds its
/// products in order of `c`, and the eight are added up in `reduce8`'s order.
///
/// # Safety
/// The CPU must have AVX2 and FMA; each key must hold `hd` floats, `qt` `8·hd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn query_scores_avx(
    keys: [*const f32; 2],
    qt: *const f32,
    hd: usize,
) -> [std::arch::x86_64::__m256; 2] {
    use std::arch::x86_64::*;
    debug_assert!(hd.is_multiple_of(8));
    let mut halves = [[_mm256_setzero_ps(); 2]; 2];
    for (half, lanes) in [[0, 4, 1, 5], [2, 6, 3, 7]].into_iter().enumerate() {
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut c = 0;
        while c < hd {
            // SAFETY: c + 8 <= hd: elements c..c+8 of each key, vectors c..c+8 of `qt`.
            unsafe {
                for (u, l) in lanes.into_iter().enumerate() {
                    let q = _mm256_loadu_ps(qt.add((c + l) * 8));
                    for (a, key) in acc.iter_mut().zip(keys) {
                        let k = _mm256_set1_ps(*key.add(c + l));
                        a[u] = _mm256_fmadd_ps(q, k, a[u]);
                    }
                }
            }
            c += 8;
        }
        for (h, a) in halves.iter_mut().zip(acc) {
            // (a_l + a_{l+4}) + (a_{l+1} + a_{l+5}), for l = 0, then for l = 2.
            h[half] = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
        }
    }
    [
        _mm256_add_ps(halves[0][0], halves[0][1]),
        _mm256_add_ps(halves[1][0], halves[1][1]),
    ]
}

/// [`query_scores_avx`] with AVX-512 for `N` key rows (up to three: eight sums each in
/// registers) and up to sixteen query rows (`qt` holds `hd` vectors of sixteen floats): each
/// query vector is loaded once for all the keys. The same
/// operations per lane in the same order: the same bits.
///
/// # Safety
/// The CPU must have AVX-512 F; each key must hold `hd` floats (a multiple of 8), `qt` `16·hd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn query_scores_zmm<const N: usize>(
    keys: [*const f32; N],
    qt: *const f32,
    hd: usize,
) -> [std::arch::x86_64::__m512; N] {
    use std::arch::x86_64::*;
    debug_assert!(hd.is_multiple_of(8));
    let mut acc = [[_mm512_setzero_ps(); 8]; N];
    let mut c = 0;
    while c < hd {
        // SAFETY: c + 8 <= hd: elements c..c+8 of each key, vectors c..c+8 of `qt`.
        unsafe {
            for l in 0..8 {
                let q = _mm512_loadu_ps(qt.add((c + l) * 16));
                for (a, key) in acc.iter_mut().zip(keys) {
                    let k = _mm512_set1_ps(*key.add(c + l));
                    a[l] = _mm512_fmadd_ps(q, k, a[l]);
                }
            }
        }
        c += 8;
    }
    // SAFETY: the caller's contract (AVX-512 F). (Not through a closure: one has no AVX-512
    // and would take the vectors through memory.)
    let mut out = [_mm512_setzero_ps(); N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = unsafe { reduce8_zmm(a) };
    }
    out
}

/// [`reduce8`] lane by lane: eight vectors of running sums added up in its order.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn reduce8_zmm(a: [std::arch::x86_64::__m512; 8]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let add = |a, b| _mm512_add_ps(a, b);
    add(
        add(add(a[0], a[4]), add(a[1], a[5])),
        add(add(a[2], a[6]), add(a[3], a[7])),
    )
}

/// The softmax and the weighted values of a tile whose scores are held with the rows in the
/// lanes (`st` holds `span` vectors of sixteen: the scores of position `lo + j` for every row),
/// with AVX-512, for rows that all see positions from `lo` on (no window) up to their own last
/// (`last[r] - lo` in lane `r`; -1 in a lane with no row). Writes row `r`'s `hd` outputs to
/// `outs[r]` (only lanes with a row are written).
///
/// Each row gets the bits [`max`], `expf::exp_shifted16`, [`sum`] and [`weighted_rows_zmm`]
/// give it: the largest score, `exp(score - max)` element by element, eight running sums by
/// position (position `lo + j` in sum `j mod 8`), reduced as [`reduce8`] does, `1 / sum`, then
/// `out += (w · inv) · value` position by position from zero (the output rows the row-major
/// loops add into start at zero: [`compute`] requires it). The softmax runs with the rows in the
/// lanes (a position past a row's last is masked out of its lane); the weights `w · inv` are
/// then kept in `st`, and the values run with the columns in the lanes: sixteen columns of a
/// value row, widened in a register, times each row's weight broadcast from `st`, added to that
/// row's sixteen outputs (one fused multiply-add per row for sixteen columns, the operands of
/// the row-major loops' multiply-add, so the same bits). A row stops at its last position.
///
/// # Safety
/// The CPU must have AVX-512 F (and AVX2, FMA, F16C); `st` must hold `16 · span` floats, `vals`
/// `span` rows of `hd` (a multiple of 16) elements `stride` apart, and every `outs[r]` for a
/// lane with a row `hd` writable floats no one else touches.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn softmax_values_zmm<V: Elem>(
    st: &mut [f32],
    span: usize,
    last: &[i32; 16],
    vals: *const V,
    stride: usize,
    hd: usize,
    outs: &[*mut f32; 16],
) {
    use std::arch::x86_64::*;
    debug_assert!(st.len() >= 16 * span && hd.is_multiple_of(16));
    // SAFETY: the caller's contract; `st` holds `span` vectors of sixteen.
    unsafe {
        let lastv = _mm512_loadu_si512(last.as_ptr() as *const _);
        let sees = |j: usize| _mm512_cmple_epi32_mask(_mm512_set1_epi32(j as i32), lastv);
        let p = st.as_mut_ptr();
        let rows = _mm512_cmpge_epi32_mask(lastv, _mm512_setzero_si512());
        let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
        for j in 0..span {
            m = _mm512_mask_max_ps(m, sees(j), m, _mm512_loadu_ps(p.add(16 * j)));
        }
        let mut acc = [_mm512_setzero_ps(); 8];
        for j in 0..span {
            let e = crate::expf::exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(16 * j)), m));
            _mm512_storeu_ps(p.add(16 * j), e);
            let a = &mut acc[j % 8];
            *a = _mm512_mask_add_ps(*a, sees(j), *a, e);
        }
        let inv = _mm512_div_ps(_mm512_set1_ps(1.0), reduce8_zmm(acc));
        for j in 0..span {
            _mm512_storeu_ps(
                p.add(16 * j),
                _mm512_mul_ps(_mm512_loadu_ps(p.add(16 * j)), inv),
            );
        }
        // Positions 0..all are seen by every row.
        let all = (0..span).take_while(|&j| sees(j) == rows).count();
        let w = p as *const f32;
        for c0 in (0..hd).step_by(16) {
            let mut o = [_mm512_setzero_ps(); 16];
            for j in 0..all {
                let x = V::load16(vals.add(j * stride + c0));
                for (r, o) in o.iter_mut().enumerate() {
                    *o = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(16 * j + r)), x, *o);
                }
            }
            for j in all..span {
                let x = V::load16(vals.add(j * stride + c0));
                for (r, o) in o.iter_mut().enumerate() {
                    if j as i32 <= last[r] {
                        *o = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(16 * j + r)), x, *o);
                    }
                }
            }
            for (r, o) in o.iter().enumerate() {
                if rows & (1 << r) != 0 {
                    _mm512_storeu_ps(outs[r].add(c0), *o);
                }
            }
        }
    }
}

/// A function giving the scores of four key rows (`keys`, `keys + ks`, ...) against `rows` (1
/// to 3) query rows of `hd` at `q` with `$dot4` for that many rows; rows past `rows` are left
/// zero.
macro_rules! key_scores_with {
    ($(#[$doc:meta])* $name:ident, $dot4:ident, $feat:literal) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn $name<K: Elem>(
            keys: *const K,
            ks: usize,
            q: *const f32,
            rows: usize,
            hd: usize,
        ) -> [[f32; 4]; 3] {
            // SAFETY: the caller's contract.
            unsafe {
                let k = [keys, keys.add(ks), keys.add(2 * ks), keys.add(3 * ks)];
                let mut out = [[0f32; 4]; 3];
                match rows {
                    1 => out[..1].copy_from_slice(&$dot4::<K, 1>(k, ks, [q], hd)),
                    2 => out[..2].copy_from_slice(&$dot4::<K, 2>(k, ks, [q, q.add(hd)], hd)),
                    _ => out.copy_from_slice(&$dot4::<K, 3>(
                        k,
                        ks,
                        [q, q.add(hd), q.add(2 * hd)],
                        hd,
                    )),
                }
                out
            }
        }
    };
}

key_scores_with!(
    /// The scores of four key rows against 1 to 3 query rows with [`dot4_rows_avx`].
    ///
    /// # Safety
    /// As [`dot4_rows_avx`], with `hd` elements at each key row and `rows · hd` at `q`.
    key_scores,
    dot4_rows_avx,
    "avx,f16c,fma"
);

/// [`weighted_rows_avx`] for the first `n` (1 to 3) of three output rows, with a head width of
/// 16, 32 or 64 (one row: [`weighted_hd`], which keeps a whole row of 64 in registers).
///
/// # Safety
/// As [`weighted_rows_avx`] for those rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn weighted_few<V: Elem>(
    hd: usize,
    n: usize,
    outs: [*mut f32; 3],
    ws: [&[f32]; 3],
    vals: *const V,
    stride: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        match n {
            1 => weighted_hd(hd, outs[0], ws[0], vals, stride),
            2 => weighted_rows_hd::<2, V>(hd, [outs[0], outs[1]], [ws[0], ws[1]], vals, stride),
            _ => weighted_rows_hd::<3, V>(hd, outs, ws, vals, stride),
        }
    }
}

/// [`weighted_rows_avx`] with column blocks of 16 for a head width of 16, else 32.
///
/// # Safety
/// As [`weighted_rows_avx`], with `hd` 16, 32 or 64.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn weighted_rows_hd<const R: usize, V: Elem>(
    hd: usize,
    outs: [*mut f32; R],
    ws: [&[f32]; R],
    vals: *const V,
    stride: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if hd == 16 {
            weighted_rows_avx::<2, R, V>(hd, outs, ws, vals, stride)
        } else {
            weighted_rows_avx::<4, R, V>(hd, outs, ws, vals, stride)
        }
    }
}

/// [`weighted_avx`] for a head width of 16, 32 or 64.
///
/// # Safety
/// As [`weighted_avx`] with `8·N = hd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma")]
#[inline]
unsafe fn weighted_hd<V: Elem>(hd: usize, out: *mut f32, w: &[f32], vals: *const V, stride: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match hd {
            16 => weighted_avx::<2, V>(out, w, vals, stride),
            32 => weighted_avx::<4, V>(out, w, vals, stride),
            _ => weighted_avx::<8, V>(out, w, vals, stride),
        }
    }
}

/// [`dot4_rows_avx`] with AVX-512: keys 0 and 1 share a 512-bit vector, as do keys 2 and 3
/// ([`pair_sums_zmm`] with two pairs), so every product and addition of the AVX2
/// build happens in the same lane order with half the instructions; the sums are then reduced
/// as there. The same bits.
///
/// # Safety
/// As [`dot4_rows_avx`]; the CPU must have AVX-512 F too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn dot4_rows_zmm<K: Elem, const R: usize>(
    keys: [*const K; 4],
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [[f32; 4]; R] {
    use std::arch::x86_64::*;
    let pairs = [[keys[0], keys[1]], [keys[2], keys[3]]];
    // SAFETY: the caller's contract.
    let acc = unsafe { pair_sums_zmm::<K, 2, R>(pairs, stride, queries, n) };
    let halves = |a: __m512| {
        (
            _mm512_castps512_ps256(a),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a))),
        )
    };
    let mut out = [[0f32; 4]; R];
    for (o, a) in out.iter_mut().zip(acc) {
        let ((k0, k1), (k2, k3)) = (halves(a[0]), halves(a[1]));
        // SAFETY: the caller's contract (AVX).
        *o = unsafe { reduce4_avx([k0, k1, k2, k3]) };
    }
    out
}

/// The scores of four key rows (`keys + e · stride`, `e` in 0..4) against each of `R` query
/// rows (5 to 8: the query heads that share a key/value head, all in one pass) with AVX-512:
/// [`pair_sums_zmm`] with two pairs, each key vector loaded and widened once for all the
/// queries, then two queries' sums at a time reduced together by [`reduce_keys8`] (lanes 0-3 the
/// first query's four keys, 4-7 the second's). Every result has the bits [`dot`] gives.
///
/// # Safety
/// As [`pair_sums_zmm`] for the four key rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn dot4_many_zmm<K: Elem, const R: usize>(
    keys: *const K,
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [[f32; 4]; R] {
    let key = |e: usize| keys.wrapping_add(e * stride);
    let pairs = [[key(0), key(1)], [key(2), key(3)]];
    // SAFETY: the caller's contract.
    let acc = unsafe { pair_sums_zmm::<K, 2, R>(pairs, stride, queries, n) };
    let mut out = [[0f32; 4]; R];
    for r in (0..R).step_by(2) {
        let u = (r + 1).min(R - 1);
        // SAFETY: the caller's contract (AVX-512 F).
        let sums = unsafe { reduce_keys8([acc[r][0], acc[r][1], acc[u][0], acc[u][1]]) };
        let mut v = [0f32; 8];
        // SAFETY: `v` holds eight floats.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(v.as_mut_ptr(), sums) };
        out[r].copy_from_slice(&v[..4]);
        out[u].copy_from_slice(&v[4..]);
    }
    out
}

/// [`dot4_many_zmm`] for `rows` (5 to 8) query rows of `hd` at `q`; rows past `rows` are left
/// zero.
///
/// # Safety
/// As [`dot4_many_zmm`], with `hd` elements at each key row and `rows · hd` at `q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn key_scores_many_zmm<K: Elem>(
    keys: *const K,
    ks: usize,
    q: *const f32,
    rows: usize,
    hd: usize,
) -> [[f32; 4]; 8] {
    let qs = |u: usize| q.wrapping_add(u * hd);
    let mut out = [[0f32; 4]; 8];
    // SAFETY: the caller's contract.
    unsafe {
        match rows {
            5 => out[..5].copy_from_slice(&dot4_many_zmm::<K, 5>(
                keys,
                ks,
                std::array::from_fn(qs),
                hd,
            )),
            6 => out[..6].copy_from_slice(&dot4_many_zmm::<K, 6>(
                keys,
                ks,
                std::array::from_fn(qs),
                hd,
            )),
            7 => out[..7].copy_from_slice(&dot4_many_zmm::<K, 7>(
                keys,
                ks,
                std::array::from_fn(qs),
                hd,
            )),
            _ => out.copy_from_slice(&dot4_many_zmm::<K, 8>(
                keys,
                ks,
                std::array::from_fn(qs),
                hd,
            )),
        }
    }
    out
}

key_scores_with!(
    /// [`key_scores`] with [`dot4_rows_zmm`].
    ///
    /// # Safety
    /// As [`key_scores`]; the CPU must have AVX-512 F too.
    key_scores_zmm,
    dot4_rows_zmm,
    "avx,f16c,avx2,fma,avx512f"
);

/// [`weighted_rows_avx`] with AVX-512 for a head width of `16·C` (16, 32 or 64): each output
/// row in `C` 512-bit registers throughout (one pass over the value rows), every element getting
/// the same products and additions in the same order: the same bits.
///
/// # Safety
/// As [`weighted_rows_avx`]; the CPU must have AVX-512 F too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn weighted_rows_zmm<const C: usize, const R: usize, V: Elem>(
    outs: [*mut f32; R],
    ws: [&[f32]; R],
    vals: *const V,
    stride: usize,
) {
    use std::arch::x86_64::*;
    let n = ws[0].len();
    debug_assert!(ws.iter().all(|w| w.len() == n));
    // SAFETY: the caller's contract: each `outs[r]` holds 16·C floats, `vals` n rows of them.
    unsafe {
        let mut o = [[_mm512_setzero_ps(); C]; R];
        for (o, out) in o.iter_mut().zip(outs) {
            for (c, o) in o.iter_mut().enumerate() {
                *o = _mm512_loadu_ps(out.add(16 * c));
            }
        }
        for j in 0..n {
            let f: [__m512; R] = std::array::from_fn(|r| _mm512_set1_ps(*ws[r].get_unchecked(j)));
            let row = vals.add(j * stride);
            // Whole rows a few rows ahead (see `weighted_rows_avx`).
            prefetch_row(vals.wrapping_add((j + AHEAD) * stride), 16 * C);
            for c in 0..C {
                let v = V::load16(row.add(16 * c));
                for (o, f) in o.iter_mut().zip(f) {
                    o[c] = _mm512_fmadd_ps(f, v, o[c]);
                }
            }
        }
        for (o, out) in o.iter().zip(outs) {
            for (c, o) in o.iter().enumerate() {
                _mm512_storeu_ps(out.add(16 * c), *o);
            }
        }
    }
}

/// [`weighted_few`] with [`weighted_rows_zmm`].
///
/// # Safety
/// As [`weighted_few`]; the CPU must have AVX-512 F too.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn weighted_few_zmm<V: Elem>(
    hd: usize,
    n: usize,
    outs: [*mut f32; 3],
    ws: [&[f32]; 3],
    vals: *const V,
    stride: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        macro_rules! rows {
            ($c:literal) => {
                match n {
                    1 => weighted_rows_zmm::<$c, 1, V>([outs[0]], [ws[0]], vals, stride),
                    2 => weighted_rows_zmm::<$c, 2, V>(
                        [outs[0], outs[1]],
                        [ws[0], ws[1]],
                        vals,
                        stride,
                    ),
                    _ => weighted_rows_zmm::<$c, 3, V>(outs, ws, vals, stride),
                }
            };
        }
        match hd {
            16 => rows!(1),
            32 => rows!(2),
            _ => rows!(4),
        }
    }
}

/// The running sums of [`dot`] for `P` pairs of key rows against each of `R` query rows, with
/// AVX-512: the keys of a pair share a 512-bit vector (each key's eight running sums in its own
/// half, lane `l` adding the products of elements `8c + l` in order of `c`, as `dot` does),
/// every query vector loaded once for all the pairs. Result `[r][p]` holds query `r`'s sums
/// for pair `p`, to be reduced in [`reduce8`]'s order.
///
/// # Safety
/// The CPU must have AVX-512 F (and AVX2, FMA, F16C); `n` a multiple of 8, with `n` elements
/// at each key row and each query pointer.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn pair_sums_zmm<K: Elem, const P: usize, const R: usize>(
    pairs: [[*const K; 2]; P],
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [[std::arch::x86_64::__m512; P]; R] {
    use std::arch::x86_64::*;
    debug_assert!(n.is_multiple_of(8));
    let mut acc = [[_mm512_setzero_ps(); P]; R];
    // The rows AHEAD further on, asked for now (see `weighted_rows_avx`).
    for p in pairs.iter().flatten() {
        prefetch_row(p.wrapping_add(AHEAD * stride), n);
    }
    let mut i = 0;
    while i < n {
        // SAFETY: i + 8 <= n, and every pointer has n elements.
        unsafe {
            let k = pairs.map(|[a, b]| K::load8x2(a.add(i), b.add(i)));
            for (a, q) in acc.iter_mut().zip(queries) {
                let y = _mm256_castps_pd(_mm256_loadu_ps(q.add(i)));
                let y = _mm512_castpd_ps(_mm512_broadcast_f64x4(y));
                for (a, x) in a.iter_mut().zip(k) {
                    *a = _mm512_fmadd_ps(x, y, *a);
                }
            }
        }
        i += 8;
    }
    acc
}

/// Eight [`dot`]s at once per query row with AVX-512: key rows `keys + u · stride` (`u` in
/// 0..8) against each of `R` query rows ([`pair_sums_zmm`] with four pairs), reduced across the
/// keys together by [`reduce_keys8`]. Lane `u` of result `r` has the bits `dot` gives for query
/// `r` and key `u`.
///
/// # Safety
/// As [`pair_sums_zmm`] for the eight key rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c,avx2,fma,avx512f")]
#[inline]
unsafe fn dot8_rows_zmm<K: Elem, const R: usize>(
    keys: *const K,
    stride: usize,
    queries: [*const f32; R],
    n: usize,
) -> [std::arch::x86_64::__m256; R] {
    let key = |u: usize| keys.wrapping_add(u * stride);
    let pairs = [
        [key(0), key(1)],
        [key(2), key(3)],
        [key(4), key(5)],
        [key(6), key(7)],
    ];
    // SAFETY: the caller's contract.
    let acc = unsafe { pair_sums_zmm::<K, 4, R>(pairs, stride, queries, n) };
    // SAFETY: the caller's contract (AVX-512 F).
    acc.map(|a| unsafe { reduce_keys8(a) })
}

/// The running sums of eight keys reduced in [`reduce8`]'s order: `a[p]` holds key `2p`'s
/// eight sums in its low half and key `2p + 1`'s in its high half; lane `u` of the result is
/// key `u`'s `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))`. Three steps of shuffles and
/// additions serve all eight keys, where reducing each key alone takes a horizontal sum.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn reduce_keys8(a: [std::arch::x86_64::__m512; 4]) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // Lanes 0-3 of a key plus its lanes 4-7: block b of `lo` is key b's four sums s_l + s_l+4
    // (keys 0-3), of `hi` key 4 + b's.
    let halves = |x: __m512, y: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        )
    };
    let (lo, hi) = (halves(a[0], a[1]), halves(a[2], a[3]));
    // Block b: key b's (s0 + s4) + (s1 + s5) and (s2 + s6) + (s3 + s7), then key 4 + b's.
    let pairs = _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(lo, hi),
        _mm512_shuffle_ps::<0b11_01_11_01>(lo, hi),
    );
    // Lane 4b: key b's whole sum; lane 4b + 2: key 4 + b's.
    let sums = _mm512_add_ps(pairs, _mm512_shuffle_ps::<0b10_11_00_01>(pairs, pairs));
    let order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castps512_ps256(_mm512_permutexvar_ps(order, sums))
}

/// The output pointer shared by the workers; each writes only its own (head, query) rows.
struct Out(*mut f32);
// SAFETY: workers write disjoint `hd`-long slices, and the caller waits for all of them before
// reading.
unsafe impl Sync for Out {}

/// Asks for the `n` elements at `p` (a cache row). A prefetch never faults; callers form `p`
/// with wrapping arithmetic.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_row<T>(p: *const T, n: usize) {
    use std::arch::x86_64::*;
    let p = p as *const i8;
    for at in (0..n * std::mem::size_of::<T>()).step_by(64) {
        // SAFETY: prefetching reads nothing the program sees and is part of SSE (every x86-64).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at)) };
    }
}

/// How many rows ahead the single-token loops ask for key and value rows. While decoding, the
/// cache rows come from memory (the layer's weights have pushed them out of the caches), so
/// they are asked for well ahead: 32 rows (4 KiB at a head width of 64) took SmolLM2's
/// attention inside a decoding step from 12.7 to 11.2 us per layer with one thread and from
/// 9.5 to 7.6 with two on an AMD EPYC (8 rows ahead: the old value; 64: slower again); with the
/// rows already in cache (attention_bench) the distance makes no difference.
#[cfg(target_arch = "x86_64")]
const AHEAD: usize = 32;

/// Query rows a tile holds at most (scores for each are kept while the tile runs).
const TILE_ROWS: usize = 16;

/// One call's inputs, shared by the workers.
///
/// The work is cut into tiles: some query heads that share one key/value head, times a block of
/// consecutive queries. A tile reads (and widens, for an f16 cache) each key and value row once
/// for all its queries. Each query row still runs exactly the arithmetic it would run alone (the
/// same dot products, the same softmax, its values added in the same order), so the tiling never
/// changes a result: it is chosen for speed only.
struct Run<'a> {
    q: View<'a>,
    k: View<'a>,
    v: View<'a>,
    nh: usize,
    t: usize,
    rep: usize,
    start: usize,
    scale: f32,
    window: Option<usize>,
    /// Query heads per tile (of the `rep` sharing a key/value head).
    tile_heads: usize,
    /// Consecutive queries per tile.
    tile_queries: usize,
    out: Out,
}

/// Scratch space a worker reuses from tile to tile.
#[derive(Default)]
struct Scratch {
    q: Vec<f32>,
    /// The tile's query rows transposed, in groups of 8 or 16 (see [`query_scores_avx`]).
    qt: Vec<f32>,
    /// The tile's scores with its rows in the lanes (see [`softmax_values_zmm`]).
    st: Vec<f32>,
    row: Vec<f32>,
    scores: Vec<f32>,
    first: Vec<usize>,
    last: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

impl Run<'_> {
    /// Tile sizes for `threads` workers: up to [`TILE_ROWS`] rows, all the heads of a group
    /// where possible, smaller tiles when there would be too few to keep every thread busy.
    fn tiling(nkv: usize, rep: usize, t: usize, threads: usize) -> (usize, usize) {
        let mut heads = rep.clamp(1, TILE_ROWS);
        let mut queries = (TILE_ROWS / heads).clamp(1, t.max(1));
        while nkv * rep.div_ceil(heads) * t.div_ceil(queries) < 2 * threads
            && (queries > 1 || heads > 1)
        {
            if queries > 1 {
                queries = queries.div_ceil(2);
            } else {
                heads = heads.div_ceil(2);
            }
        }
        (heads, queries)
    }

    /// How many tiles the call has.
    fn tiles(&self) -> usize {
        self.k.heads * self.rep.div_ceil(self.tile_heads) * self.t.div_ceil(self.tile_queries)
    }

    /// The tiles in `tiles` (the last query blocks first: they see the most keys), with AVX
    /// instructions when `AVX` (the caller has checked for AVX2, FMA and F16C) or portable code:
    /// the same operations in the same order either way, every multiply-add fused when `F`
    /// (always with `AVX`: a product and its sum are one instruction there, half the work of a
    /// product then a sum; the portable build fuses them only when told, as the test of the
    /// AVX builds against it does).
    #[inline(always)]
    fn items_with<const AVX: bool, const Z: bool, const F: bool>(
        &self,
        tiles: std::ops::Range<usize>,
    ) {
        debug_assert!(F || !AVX, "the AVX loops fuse every multiply-add");
        let (t, nh, hd) = (self.t, self.nh, self.q.hd);
        let parts = self.rep.div_ceil(self.tile_heads);
        let blocks = t.div_ceil(self.tile_queries);
        // The thread's scratch from its last call (sizes only grow; a decoding step would
        // otherwise allocate it anew on every thread for every layer).
        let mut s = SCRATCH.with(|c| c.take());
        s.row.resize(3 * hd, 0.0);
        for tile in tiles {
            let part = tile % parts;
            let kh = (tile / parts) % self.k.heads;
            let block = blocks - 1 - tile / (parts * self.k.heads);
            let h0 = kh * self.rep + part * self.tile_heads;
            let h1 = (h0 + self.tile_heads).min((kh + 1) * self.rep);
            let i0 = block * self.tile_queries;
            let i1 = (i0 + self.tile_queries).min(t);
            let rows = (h1 - h0) * (i1 - i0);
            // The rows: queries (made f32), and the keys each one sees.
            s.q.resize(rows * hd, 0.0);
            s.first.clear();
            s.last.clear();
            for h in h0..h1 {
                for i in i0..i1 {
                    let r = s.first.len();
                    let row = self.q.row::<AVX>(h, i, &mut s.row);
                    s.q[r * hd..(r + 1) * hd].copy_from_slice(row);
                    s.first.push(self.first_seen(i));
                    s.last.push(self.start + i);
                }
            }
            let lo = s.first.iter().copied().min().unwrap_or(0);
            let hi = self.start + i1 - 1;
            let span = hi + 1 - lo;
            s.scores.resize(rows * span, 0.0);
            // Scores: each key row once, against every row of the tile that sees it.
            // With AVX and a width of whole vectors, four rows at a time share each load of
            // the key row (their sums still run lane by lane in the portable order). Fewer
            // than four rows (a single token's heads), or any number with AVX-512: four key
            // rows at a time instead, read in place, against up to three rows at a time, so
            // that independent sums run side by side (each still in its own order; with
            // AVX-512 two key rows share each vector, half the instructions).
            // With many rows (a prompt's tile), the rows go in the lanes instead: the tile's
            // queries transposed once, then each key row (widened once) against all of them
            // at a time, with no horizontal sums (`query_scores_avx`).
            let lanes = if Z { 16 } else { 8 };
            let by_queries = AVX && hd % 8 == 0 && rows >= if Z { 8 } else { 6 };
            let fours = if AVX && hd % 8 == 0 && !by_queries {
                rows / 4 * 4
            } else {
                0
            };
            #[allow(unused_mut)]
            let mut j0 = lo;
            #[cfg(target_arch = "x86_64")]
            if by_queries {
                let groups = rows.div_ceil(lanes);
                s.qt.clear();
                s.qt.resize(groups * hd * lanes, 0.0);
                for r in 0..rows {
                    let (g, u) = (r / lanes, r % lanes);
                    for d in 0..hd {
                        s.qt[(g * hd + d) * lanes + u] = s.q[r * hd + d];
                    }
                }
                // With AVX-512, one group, and every row seeing the keys from `lo` on (no
                // window), the softmax and the values run with the rows in the lanes too
                // (`softmax_values_zmm`): the scores stay as they come, a vector per key.
                let in_lanes = Z && groups == 1 && hd % 16 == 0 && s.first.iter().all(|&f| f == lo);
                if in_lanes {
                    s.st.resize(16 * span, 0.0);
                }
                let mut lane_out = [0f32; 48];
                while j0 <= hi {
                    // Three keys at a time with AVX-512, two with AVX2 (the last one again
                    // where fewer are left).
                    let n = (hi + 1 - j0).min(if Z { 3 } else { 2 });
                    let mut keys = [std::ptr::null::<f32>(); 3];
                    for (u, buf) in s.row.chunks_exact_mut(hd).take(n).enumerate() {
                        keys[u] = self.k.row::<AVX>(kh, j0 + u, buf).as_ptr();
                    }
                    for u in n..3 {
                        keys[u] = keys[n - 1];
                    }
                    for g in 0..groups {
                        let qt = s.qt[g * hd * lanes..].as_ptr();
                        // SAFETY: `AVX` (and `Z`) mean the CPU has AVX2 (and AVX-512 F); each
                        // key row holds `hd` floats, a multiple of 8, and `qt` `lanes · hd`;
                        // `lane_out` holds 48 floats; keys j0..j0 + n are at most `hi`, so with
                        // `in_lanes` their vectors lie inside `s.st`.
                        unsafe {
                            use std::arch::x86_64::*;
                            if Z {
                                let r = query_scores_zmm(keys, qt, hd);
                                let sc = _mm512_set1_ps(self.scale);
                                for (u, r) in r.into_iter().enumerate().take(n) {
                                    let r = _mm512_mul_ps(r, sc);
                                    if in_lanes {
                                        _mm512_storeu_ps(
                                            s.st.as_mut_ptr().add(16 * (j0 + u - lo)),
                                            r,
                                        );
                                    } else {
                                        _mm512_storeu_ps(lane_out.as_mut_ptr().add(16 * u), r);
                                    }
                                }
                            } else {
                                let [a, b] = query_scores_avx([keys[0], keys[1]], qt, hd);
                                let sc = _mm256_set1_ps(self.scale);
                                _mm256_storeu_ps(lane_out.as_mut_ptr(), _mm256_mul_ps(a, sc));
                                _mm256_storeu_ps(
                                    lane_out.as_mut_ptr().add(16),
                                    _mm256_mul_ps(b, sc),
                                );
                            }
                        }
                        if in_lanes {
                            continue;
                        }
                        // Every row of the tile sees keys lo..=hi or fewer: the scores of keys
                        // a row does not see are written but never read.
                        let m = (rows - g * lanes).min(lanes);
                        for u in 0..m {
                            let r = g * lanes + u;
                            for e in 0..n {
                                s.scores[r * span + j0 + e - lo] = lane_out[16 * e + u];
                            }
                        }
                    }
                    j0 += n;
                }
                if in_lanes {
                    // Row r of the tile is (head h0 + r / queries, query i0 + r % queries).
                    let queries = i1 - i0;
                    let mut last = [-1i32; 16];
                    let mut outs = [std::ptr::null_mut::<f32>(); 16];
                    for r in 0..rows {
                        last[r] = (s.last[r] - lo) as i32;
                        let (h, i) = (h0 + r / queries, i0 + r % queries);
                        outs[r] = self.out.0.wrapping_add((i * nh + h) * hd);
                    }
                    let vb = self.v.offset + kh * self.v.head_stride + lo * self.v.row_stride;
                    let vs = self.v.row_stride;
                    // SAFETY: `Z` means the CPU has AVX-512 F, AVX2 and FMA; `s.st` holds `span`
                    // vectors; value rows lo..=hi of head kh lie inside the storage (View::new
                    // checked the last one); rows (h, i) of this tile are its alone (tiles are
                    // disjoint and the pool returns only after every worker is done).
                    unsafe {
                        match self.v.data {
                            Data::F16(v) => softmax_values_zmm(
                                &mut s.st,
                                span,
                                &last,
                                v.as_ptr().add(vb),
                                vs,
                                hd,
                                &outs,
                            ),
                            Data::F32(v) => softmax_values_zmm(
                                &mut s.st,
                                span,
                                &last,
                                v.as_ptr().add(vb),
                                vs,
                                hd,
                                &outs,
                            ),
                        }
                    }
                    continue;
                }
            } else if AVX && hd % 8 == 0 && (Z || fours == 0) {
                let kb = self.k.offset + kh * self.k.head_stride;
                let ks = self.k.row_stride;
                while j0 + 4 <= hi + 1 {
                    // The four key rows, read in place, against up to three rows of the tile
                    // at a time (the same sums as one key row against four query rows).
                    for r0 in (0..rows).step_by(3) {
                        let n = (rows - r0).min(3);
                        // SAFETY: `AVX` means the CPU has AVX2, FMA and F16C (and `Z` AVX-512 F);
                        // `hd` is a multiple of 8; key rows j0..j0+4 of head kh lie inside the
                        // storage (View::new checked the last one); `s.q` holds `rows` rows of
                        // `hd`, of which rows r0..r0+n are read.
                        let d = unsafe {
                            let q = s.q.as_ptr().add(r0 * hd);
                            match self.k.data {
                                Data::F16(k) if Z => {
                                    key_scores_zmm(k.as_ptr().add(kb + j0 * ks), ks, q, n, hd)
                                }
                                Data::F32(k) if Z => {
                                    key_scores_zmm(k.as_ptr().add(kb + j0 * ks), ks, q, n, hd)
                                }
                                Data::F16(k) => {
                                    key_scores(k.as_ptr().add(kb + j0 * ks), ks, q, n, hd)
                                }
                                Data::F32(k) => {
                                    key_scores(k.as_ptr().add(kb + j0 * ks), ks, q, n, hd)
                                }
                            }
                        };
                        for (r, d) in (r0..r0 + n).zip(d) {
                            for (u, d) in d.iter().enumerate() {
                                let j = j0 + u;
                                if s.first[r] <= j && j <= s.last[r] {
                                    s.scores[r * span + j - lo] = d * self.scale;
                                }
                            }
                        }
                    }
                    j0 += 4;
                }
            }
            for j in j0..=hi {
                let krow = self.k.row::<AVX>(kh, j, &mut s.row);
                #[cfg(target_arch = "x86_64")]
                for r in (0..fours).step_by(4) {
                    // SAFETY: `fours` is nonzero only when `AVX` (the CPU has AVX2); the four
                    // rows are inside `s.q`, and `hd` is a multiple of 8.
                    let d = unsafe {
                        let q = s.q.as_ptr().add(r * hd);
                        dot4_avx(std::array::from_fn(|u| q.add(u * hd)), krow.as_ptr(), hd)
                    };
                    for (u, d) in d.into_iter().enumerate() {
                        if s.first[r + u] <= j && j <= s.last[r + u] {
                            s.scores[(r + u) * span + j - lo] = d * self.scale;
                        }
                    }
                }
                for r in fours..rows {
                    if s.first[r] <= j && j <= s.last[r] {
                        let qrow = &s.q[r * hd..(r + 1) * hd];
                        #[cfg(target_arch = "x86_64")]
                        let d = if AVX {
                            // SAFETY: `AVX` is set only where the CPU has AVX2 and FMA.
                            unsafe { dot_avx(qrow, krow) }
                        } else {
                            dot::<F>(qrow, krow)
                        };
                        #[cfg(not(target_arch = "x86_64"))]
                        let d = dot::<F>(qrow, krow);
                        s.scores[r * span + j - lo] = d * self.scale;
                    }
                }
            }
            // Softmax, row by row over the keys that row sees: the rows become weights.
            for r in 0..rows {
                let row = &mut s.scores[r * span + s.first[r] - lo..r * span + s.last[r] + 1 - lo];
                // SAFETY: `AVX` (and `Z`) are set only where the CPU has AVX2 and FMA (and
                // AVX-512 F).
                unsafe { softmax::<AVX, Z>(row) };
            }
            // Weighted sum of values: each value row once, added to every row that sees it, in
            // the order of positions.
            #[cfg(target_arch = "x86_64")]
            if AVX && matches!(hd, 16 | 32 | 64) {
                // Each output row stays in registers while its weights are added, position
                // after position, with the value rows read in place.
                let vb = self.v.offset + kh * self.v.head_stride;
                let vs = self.v.row_stride;
                // The rows of one query (its heads) see the same positions, so up to three of
                // them at a time share each load of a value row. Row `(h, i)` of the tile is
                // scores row `(h - h0) · queries + (i - i0)`.
                let queries = i1 - i0;
                let heads = h1 - h0;
                for i in i0..i1 {
                    let row_of = |hh: usize| hh * queries + (i - i0);
                    let (a, b) = (s.first[row_of(0)], s.last[row_of(0)] + 1);
                    let mut hh = 0;
                    while hh < heads {
                        let n = (heads - hh).min(3);
                        let outs: [*mut f32; 3] = std::array::from_fn(|u| {
                            self.out
                                .0
                                .wrapping_add((i * nh + h0 + hh + u.min(n - 1)) * hd)
                        });
                        let ws: [&[f32]; 3] = std::array::from_fn(|u| {
                            let r = row_of(hh + u.min(n - 1));
                            &s.scores[r * span + a - lo..r * span + b - lo]
                        });
                        // SAFETY: rows (h0 + hh .. h0 + hh + n, i) are this tile's alone (tiles
                        // are disjoint and the pool returns only after every worker is done);
                        // `AVX` means the CPU has AVX and F16C (and `Z` AVX-512 F); `hd` is 16,
                        // 32 or 64; value rows a..b of head kh lie inside the storage
                        // (View::new checked the last one).
                        unsafe {
                            match self.v.data {
                                Data::F16(v) if Z => {
                                    let p = v.as_ptr().add(vb + a * vs);
                                    weighted_few_zmm(hd, n, outs, ws, p, vs)
                                }
                                Data::F32(v) if Z => {
                                    let p = v.as_ptr().add(vb + a * vs);
                                    weighted_few_zmm(hd, n, outs, ws, p, vs)
                                }
                                Data::F16(v) => {
                                    let p = v.as_ptr().add(vb + a * vs);
                                    weighted_few(hd, n, outs, ws, p, vs)
                                }
                                Data::F32(v) => {
                                    let p = v.as_ptr().add(vb + a * vs);
                                    weighted_few(hd, n, outs, ws, p, vs)
                                }
                            }
                        }
                        hh += n;
                    }
                }
                continue;
            }
            for j in lo..=hi {
                let vrow = self.v.row::<AVX>(kh, j, &mut s.row);
                let mut r = 0;
                for h in h0..h1 {
                    for i in i0..i1 {
                        if s.first[r] <= j && j <= s.last[r] {
                            // SAFETY: row (h, i) owns out[i][h·hd .. (h+1)·hd]; tiles are
                            // disjoint and the pool returns only after every worker is done.
                            let o = unsafe {
                                std::slice::from_raw_parts_mut(
                                    self.out.0.add((i * nh + h) * hd),
                                    hd,
                                )
                            };
                            axpy::<F>(o, s.scores[r * span + j - lo], vrow);
                        }
                        r += 1;
                    }
                }
            }
        }
        SCRATCH.with(|c| c.replace(s));
    }

    /// [`Run::items_with`], portable, each product rounded before its sum (fused multiply-adds
    /// in software would be slow where the CPU has none).
    fn items(&self, tiles: std::ops::Range<usize>) {
        self.items_with::<false, false, false>(tiles)
    }

    /// [`Run::items_with`], portable, with the multiply-adds fused as the AVX builds fuse them:
    /// the bits those give.
    #[cfg(test)]
    fn items_fused(&self, tiles: std::ops::Range<usize>) {
        self.items_with::<false, false, true>(tiles)
    }

    /// [`Run::items_with`] compiled for AVX2: the operations of the fused portable build in the
    /// same order, in wider registers, so the results are the same bits.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn items_avx2(&self, tiles: std::ops::Range<usize>) {
        self.items_with::<true, false, true>(tiles)
    }

    /// [`Run::items_avx2`] with a single token's loops (keys four at a time, values to up to
    /// three rows) in 512-bit registers: the same operations per lane in the same order, so the
    /// same bits.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA, F16C and AVX-512 F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    unsafe fn items_avx512(&self, tiles: std::ops::Range<usize>) {
        self.items_with::<true, true, true>(tiles)
    }
}

/// Query rows × positions × head width below which [`Run::split_passes`] runs its passes
/// on the calling thread alone, unless it gives threads whole heads (see
/// [`SPLIT_BY_HEAD_FROM`]): there three calls of the pool cost more than the other threads
/// save. Microseconds per layer with two threads, alone / split on both (30 or 24 layers in
/// turn, the caches in memory): SmolLM2's shape (9 heads over 3, width 64) at 96 positions
/// 5.1-7.0 / 8.4-10.0, at 192 9.6-10.2 / 10.9-11.9, at 256 12.3-12.8 / 13.0-13.3; Qwen2.5's
/// (14 over 2) at 128 10.7-12.1 / 12.9-15.1, at 160 13.0-15.2 / 13.0-16.1, at 192 13.2-14.4 /
/// 12.9-13.2, at 256 18.2-19.8 / 14.4-15.4. (In tiles on both threads, as before the split:
/// SmolLM2's shape at 32 positions 6.6-7.6, at 128 13.5-17.3.)
#[cfg(target_arch = "x86_64")]
const SPLIT_ALONE_BELOW: usize = 9 * 256 * 64;

/// Queries up to which a call with AVX-512 is split ([`Run::split_passes`]) instead of tiled,
/// from [`SPLIT_QUERIES_FROM`] positions: speculative decoding checks up to eight guessed
/// tokens and the one before them in one call. `decode_attn`, two threads, us per layer, tiles
/// / split, two runs each: SmolLM2's shape (9 heads over 3) with 9 queries at 1,000 positions
/// 255-327 / 230-235, at 2,000 533-623 / 482-500, at 200 53-54 / 61-63; with 5 at 1,000 198-199
/// / 134-136; with 2 at 1,000 93-112 / 80-82; Qwen2.5's (14 over 2) with 9 at 1,000 405-425 /
/// 349-380; with 18 (a chat's next message) tiles and split were even, so longer prompts keep
/// the tiles (their rows in the lanes share each key row among more queries).
#[cfg(target_arch = "x86_64")]
const SPLIT_QUERIES: usize = 9;

/// Positions the last query sees from which a few queries are split (see [`SPLIT_QUERIES`]).
#[cfg(target_arch = "x86_64")]
const SPLIT_QUERIES_FROM: usize = 512;

/// Keys per item of [`Run::split_passes`]'s first pass.
#[cfg(target_arch = "x86_64")]
const SPLIT_KEYS: usize = 256;

/// Output columns per item of [`Run::split_passes`]'s last pass.
#[cfg(target_arch = "x86_64")]
const SPLIT_COLUMNS: usize = 32;

/// Query rows × positions × head width from which [`Run::split_passes`] gives the pool's
/// threads whole key/value heads, in one call (below [`SPLIT_BY_HEAD_BELOW`] positions): a
/// call per pass cost more than it saved there, one call does not. `decode_attn`, two threads,
/// µs per layer, alone / by head / by pass: SmolLM2's shape (9 heads over 3) at 128 positions
/// 7.2-9.9 / 8.1-9.8 / 11.7-11.9, at 192 14.6-15.1 / 12.6 / 14.0-16.0, at 255 18.4-18.5 /
/// 12.1-12.4 / 14.5-15.8, at 96 7.0-7.7 / 8.2 / 9.9-11.0; Qwen2.5's (14 over 2) at 96 8.6-9.3 /
/// 7.9 / 9.9-10.1, at 192 16.4-16.8 / 12.0-12.4 / 14.6-14.8, at 64 4.5-5.3 / 5.7-6.6 / 8.5-9.0;
/// a 1B Llama's (32 over 4) at 128 19.3-20.3 / 16.2-17.7 / 17.9-25.6, at 64 10.1 / 10.5-11.0 /
/// 13.2.
#[cfg(target_arch = "x86_64")]
const SPLIT_BY_HEAD_FROM: usize = 9 * 160 * 64;

/// Positions from which [`Run::split_passes`] makes a call of the pool per pass (from
/// [`SPLIT_ALONE_BELOW`]) rather than giving threads whole heads: heads are few (three for
/// SmolLM2, two threads take two and one), blocks of keys are not. `decode_attn`, two threads,
/// by head / by pass: SmolLM2's shape at 384 positions 20.6-20.8 / 17.5-21.5, at 512 22.3-25.4
/// / 21.6-25.4, at 2,000 81-88 / 70-74; a 1B Llama's at 384 30-32 / 38-41, at 1,000 89-94 /
/// 79-82.
#[cfg(target_arch = "x86_64")]
const SPLIT_BY_HEAD_BELOW: usize = 512;

/// How [`Run::split_passes`] spreads its passes over the pool.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spread {
    /// All on the calling thread.
    Alone,
    /// One call of the pool, whole key/value heads per item: each item runs the three passes'
    /// items of its head.
    ByHead,
    /// A call of the pool per pass.
    ByPass,
}

/// The passes of [`Run::split_passes`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Pass {
    Scores,
    Softmax,
    Values,
}

/// What the passes of [`Run::split_passes`] share: the query rows (`t · nh` rows of `hd`, row
/// `(i, h)` at `i · nh + h`) and the scores (as many rows of `span`, for the positions
/// `lo..lo + span`; after the softmax, the weights, each times its row's `1 / sum`).
#[cfg(target_arch = "x86_64")]
struct Split {
    q: *const f32,
    scores: *mut f32,
    lo: usize,
    span: usize,
    chunks: usize,
}

// SAFETY: the items of a pass write disjoint parts (a chunk of some score rows, one row's
// weights, a block of some output columns), and read only what earlier passes
// wrote; the pool returns only after every item of a pass is done.
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Split {}

/// The calling thread's buffers for [`Split`], kept from call to call.
#[cfg(target_arch = "x86_64")]
#[derive(Default)]
struct SplitBuffers {
    q: Vec<f32>,
    scores: Vec<f32>,
    /// A row to widen an f16 query into.
    row: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    static SPLIT: std::cell::RefCell<SplitBuffers> = std::cell::RefCell::new(Default::default());
}

#[cfg(target_arch = "x86_64")]
impl Run<'_> {
    /// A decoding step's query, or a few queries (speculative decoding's guesses checked in one
    /// pass), in three passes instead of tiles of query heads: the scores by blocks of keys
    /// (each key row read once per query, for all the query heads that share it; eight keys
    /// reduced together with AVX-512), the softmax row by row, then the weighted values by
    /// blocks of output columns (each value row read once per query, a block of columns per
    /// item). Spread as [`Run::spread`] says (or as `spread` says): on the calling thread
    /// alone, whole key/value heads per thread in one call of the pool (each running the three
    /// passes' items of its head), or a call of the pool per pass. Tiles
    /// split a key/value head's query rows between threads, and each tile read that head's keys
    /// and values: twice over with two threads. Every row gets the operations the tiles give it,
    /// in the same order: each score is [`dot`] times the scale, the softmax [`max`], the
    /// exponentials of `Run::items_with`, `1 / `[`sum`], and each output column the same
    /// multiply-adds position by position, over the positions that row sees. The same bits.
    ///
    /// # Safety
    /// [`wide`] must hold (and [`wide512`] with `z`); `self.q.hd` must be a multiple of
    /// [`SPLIT_COLUMNS`], and the output zero.
    unsafe fn split_passes(&self, pool: &crate::pool::Pool, z: bool, spread: Option<Spread>) {
        let (nh, hd, t) = (self.nh, self.q.hd, self.t);
        let lo = self.first_seen(0);
        let span = self.start + t - lo;
        SPLIT.with(|c| {
            let mut b = c.borrow_mut();
            let SplitBuffers { q, scores, row } = &mut *b;
            q.resize(t * nh * hd, 0.0);
            row.resize(hd, 0.0);
            for i in 0..t {
                for h in 0..nh {
                    let at = (i * nh + h) * hd;
                    q[at..at + hd].copy_from_slice(self.q.row::<true>(h, i, row));
                }
            }
            scores.resize(t * nh * span, 0.0);
            let sp = Split {
                q: q.as_ptr(),
                scores: scores.as_mut_ptr(),
                lo,
                span,
                chunks: span.div_ceil(SPLIT_KEYS),
            };
            let passes = [
                (Pass::Scores, self.k.heads * sp.chunks),
                (Pass::Softmax, t * nh),
                (Pass::Values, self.k.heads * (hd / SPLIT_COLUMNS)),
            ];
            let f = |pass, items| {
                // SAFETY: the caller's contract: the CPU has what `z` asks for.
                unsafe {
                    if z {
                        self.split_avx512(pass, items, &sp)
                    } else {
                        self.split_avx2(pass, items, &sp)
                    }
                }
            };
            match spread.unwrap_or_else(|| self.spread(pool.threads(), span)) {
                Spread::Alone => {
                    for (pass, n) in passes {
                        f(pass, 0..n);
                    }
                }
                Spread::ByPass => {
                    for (pass, n) in passes {
                        pool.run_chunked(n, |items| f(pass, items));
                    }
                }
                Spread::ByHead => {
                    let (rep, blocks) = (self.rep, hd / SPLIT_COLUMNS);
                    pool.run_chunked(self.k.heads, |heads| {
                        for kh in heads {
                            f(Pass::Scores, kh * sp.chunks..(kh + 1) * sp.chunks);
                            for i in 0..t {
                                let r = i * nh + kh * rep;
                                f(Pass::Softmax, r..r + rep);
                            }
                            f(Pass::Values, kh * blocks..(kh + 1) * blocks);
                        }
                    });
                }
            }
        });
    }

    /// How [`Run::split_passes`] spreads its work over `threads` threads when the queries see
    /// `span` positions.
    fn spread(&self, threads: usize, span: usize) -> Spread {
        let size = self.t * self.nh * span * self.q.hd;
        if threads < 2 || size < SPLIT_BY_HEAD_FROM {
            Spread::Alone
        } else if self.k.heads >= 2 && span < SPLIT_BY_HEAD_BELOW {
            Spread::ByHead
        } else if size >= SPLIT_ALONE_BELOW {
            Spread::ByPass
        } else {
            Spread::Alone
        }
    }

    /// The first position query `i` of this call sees.
    fn first_seen(&self, i: usize) -> usize {
        first_visible(self.start + i, self.window)
    }

    /// The positions query `i` sees, as score columns `a..b` of [`Split`]'s rows.
    fn seen_columns(&self, i: usize, sp: &Split) -> (usize, usize) {
        (self.first_seen(i) - sp.lo, self.start + i + 1 - sp.lo)
    }

    /// Items of one pass of [`Run::split_passes`] with AVX2.
    ///
    /// # Safety
    /// As `split_passes` without `z`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn split_avx2(&self, pass: Pass, items: std::ops::Range<usize>, sp: &Split) {
        // SAFETY: the caller's contract.
        unsafe { self.split_with::<false>(pass, items, sp) }
    }

    /// Items of one pass of [`Run::split_passes`] with AVX-512.
    ///
    /// # Safety
    /// As `split_passes` with `z`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f")]
    unsafe fn split_avx512(&self, pass: Pass, items: std::ops::Range<usize>, sp: &Split) {
        // SAFETY: the caller's contract.
        unsafe { self.split_with::<true>(pass, items, sp) }
    }

    /// # Safety
    /// As [`Run::split_passes`], with `Z` for `z`.
    #[inline(always)]
    unsafe fn split_with<const Z: bool>(
        &self,
        pass: Pass,
        items: std::ops::Range<usize>,
        sp: &Split,
    ) {
        // SAFETY (all passes): `sp` holds the buffers `split_passes` sized (t · nh query rows
        // of hd, as many score rows of span; row (i, h) at i · nh + h); the cache rows
        // lo..lo + span of every head lie inside the storage (View::new checked the last one);
        // each item touches only its own scores or output columns.
        unsafe {
            match pass {
                Pass::Scores => match self.k.data {
                    Data::F16(k) => self.split_scores::<f16, Z>(k.as_ptr(), items, sp),
                    Data::F32(k) => self.split_scores::<f32, Z>(k.as_ptr(), items, sp),
                },
                Pass::Softmax => {
                    for r in items {
                        let (a, b) = self.seen_columns(r / self.nh, sp);
                        let row =
                            std::slice::from_raw_parts_mut(sp.scores.add(r * sp.span + a), b - a);
                        softmax::<true, Z>(row);
                    }
                }
                Pass::Values => match self.v.data {
                    Data::F16(v) => self.split_values::<f16, Z>(v.as_ptr(), items, sp),
                    Data::F32(v) => self.split_values::<f32, Z>(v.as_ptr(), items, sp),
                },
            }
        }
    }

    /// The first pass: item `i` scores keys `lo + c · SPLIT_KEYS ..` (a block of up to
    /// `SPLIT_KEYS`, `c = i mod chunks`) of key/value head `i / chunks` against its query
    /// heads, each query's heads in groups (see [`groups`]), over the keys that query sees;
    /// with AVX-512 eight keys at a time (four for groups of five to eight heads), then four,
    /// then one; with AVX2 four keys at a time (two for groups of four to seven), then one.
    ///
    /// # Safety
    /// As [`Run::split_with`]; `keys` is the storage of `self.k`.
    #[inline(always)]
    unsafe fn split_scores<K: Elem, const Z: bool>(
        &self,
        keys: *const K,
        items: std::ops::Range<usize>,
        sp: &Split,
    ) {
        use std::arch::x86_64::*;
        let hd = self.q.hd;
        let ks = self.k.row_stride;
        for item in items {
            let (kh, c) = (item / sp.chunks, item % sp.chunks);
            let j0 = c * SPLIT_KEYS;
            let j1 = (j0 + SPLIT_KEYS).min(sp.span);
            // Key `lo + j` of head kh.
            // SAFETY: the caller's contract (see `split_with`).
            let key = |j: usize| unsafe {
                keys.add(self.k.offset + kh * self.k.head_stride + (sp.lo + j) * ks)
            };
            for (i, (r0, n)) in (0..self.t).flat_map(|i| groups::<Z>(self.rep).map(move |g| (i, g)))
            {
                let h0 = kh * self.rep + r0;
                let (a, b) = self.seen_columns(i, sp);
                let (from, to) = (j0.max(a), j1.min(b));
                // Row (i, h) of the scores.
                let r0 = i * self.nh + h0;
                // SAFETY: as above; rows (i, h0..h0 + n) are of this head and this item's alone
                // for scores j0..j1.
                unsafe {
                    let q = sp.q.add(r0 * hd);
                    let out = |u: usize, j: usize| sp.scores.add((r0 + u) * sp.span + j);
                    let mut j = from;
                    let j1 = to;
                    // AVX-512 with five to eight query rows: four keys, then one (four times
                    // the same row: stride 0), against all of them.
                    while Z && n > 4 && j < j1 {
                        let (step, stride) = if j + 4 <= j1 { (4, ks) } else { (1, 0) };
                        let d = key_scores_many_zmm(key(j), stride, q, n, hd);
                        for (u, d) in d.iter().enumerate().take(n) {
                            for (e, d) in d.iter().enumerate().take(step) {
                                *out(u, j + e) = d * self.scale;
                            }
                        }
                        j += step;
                    }
                    if Z {
                        let scale = _mm256_set1_ps(self.scale);
                        let qs = |u: usize| q.add(u.min(n - 1) * hd);
                        while j + 8 <= j1 {
                            let k = key(j);
                            let d: [__m256; 4] = match n {
                                1 => {
                                    let [a] = dot8_rows_zmm::<K, 1>(k, ks, [q], hd);
                                    [a; 4]
                                }
                                2 => {
                                    let [a, b] = dot8_rows_zmm::<K, 2>(k, ks, [q, qs(1)], hd);
                                    [a, b, b, b]
                                }
                                3 => {
                                    let [a, b, c] =
                                        dot8_rows_zmm::<K, 3>(k, ks, [q, qs(1), qs(2)], hd);
                                    [a, b, c, c]
                                }
                                _ => dot8_rows_zmm::<K, 4>(k, ks, [q, qs(1), qs(2), qs(3)], hd),
                            };
                            for (u, d) in d.iter().enumerate().take(n) {
                                _mm256_storeu_ps(out(u, j), _mm256_mul_ps(*d, scale));
                            }
                            j += 8;
                        }
                    }
                    // AVX2 with four to seven query rows: two keys, then one (twice the same
                    // row: stride 0), against all of them.
                    while !Z && n > 3 && j < j1 {
                        let (step, stride) = if j + 2 <= j1 { (2, ks) } else { (1, 0) };
                        let d = key_scores_many(key(j), stride, q, n, hd);
                        for (u, d) in d.iter().enumerate().take(n) {
                            for (e, d) in d.iter().enumerate().take(step) {
                                *out(u, j + e) = d * self.scale;
                            }
                        }
                        j += step;
                    }
                    // Four keys, then one (four times the same row: stride 0), against up to
                    // three query rows at a time.
                    while j < j1 {
                        let (step, stride) = if j + 4 <= j1 { (4, ks) } else { (1, 0) };
                        for u0 in (0..n).step_by(3) {
                            let m = (n - u0).min(3);
                            let q = q.add(u0 * hd);
                            let d = if Z {
                                key_scores_zmm(key(j), stride, q, m, hd)
                            } else {
                                key_scores(key(j), stride, q, m, hd)
                            };
                            for (u, d) in d.iter().enumerate().take(m) {
                                for (e, d) in d.iter().enumerate().take(step) {
                                    *out(u0 + u, j + e) = d * self.scale;
                                }
                            }
                        }
                        j += step;
                    }
                }
            }
        }
    }

    /// The last pass: item `i` adds up, for output columns `32 · (i mod blocks)..` of the
    /// query heads of key/value head `i / blocks` (each query's in groups, see [`groups`]),
    /// each position's weight times its value row, position by position over the positions
    /// that query sees.
    ///
    /// # Safety
    /// As [`Run::split_with`]; `vals` is the storage of `self.v`, the scores the weights the
    /// softmax pass wrote.
    #[inline(always)]
    unsafe fn split_values<V: Elem, const Z: bool>(
        &self,
        vals: *const V,
        items: std::ops::Range<usize>,
        sp: &Split,
    ) {
        let hd = self.q.hd;
        let blocks = hd / SPLIT_COLUMNS;
        let vs = self.v.row_stride;
        for item in items {
            let (kh, b) = (item / blocks, item % blocks);
            let c0 = b * SPLIT_COLUMNS;
            // SAFETY: the caller's contract (see `split_with`): rows lo.. of head kh, from
            // column c0.
            let p = unsafe { vals.add(self.v.offset + kh * self.v.head_stride + sp.lo * vs + c0) };
            for (i, (r0, n)) in (0..self.t).flat_map(|i| groups::<Z>(self.rep).map(move |g| (i, g)))
            {
                let (a, b) = self.seen_columns(i, sp);
                // Row (i, h) of the scores and of the output, for the group's heads.
                let h0 = i * self.nh + kh * self.rep + r0;
                let h = |u: usize| h0 + u.min(n - 1);
                // SAFETY: output row (i, h) owns out[(i·nh + h)·hd..][..hd], of which this
                // item alone writes columns c0..c0 + 32; the score rows are the softmax pass's
                // weights, finished; value rows lo + a..lo + b lie inside the storage.
                unsafe {
                    let p = p.add(a * vs);
                    let outs: [*mut f32; 8] =
                        std::array::from_fn(|u| self.out.0.add(h(u) * hd + c0));
                    let ws: [&[f32]; 8] = std::array::from_fn(|u| {
                        std::slice::from_raw_parts(sp.scores.add(h(u) * sp.span + a), b - a)
                    });
                    if Z {
                        match n {
                            1 => weighted_rows_zmm::<2, 1, V>(firsts(outs), firsts(ws), p, vs),
                            2 => weighted_rows_zmm::<2, 2, V>(firsts(outs), firsts(ws), p, vs),
                            3 => weighted_rows_zmm::<2, 3, V>(firsts(outs), firsts(ws), p, vs),
                            4 => weighted_rows_zmm::<2, 4, V>(firsts(outs), firsts(ws), p, vs),
                            5 => weighted_rows_zmm::<2, 5, V>(firsts(outs), firsts(ws), p, vs),
                            6 => weighted_rows_zmm::<2, 6, V>(firsts(outs), firsts(ws), p, vs),
                            7 => weighted_rows_zmm::<2, 7, V>(firsts(outs), firsts(ws), p, vs),
                            _ => weighted_rows_zmm::<2, 8, V>(outs, ws, p, vs),
                        }
                    } else {
                        // Blocks of columns as wide as the sixteen registers allow for the
                        // group's rows (each value vector widened once for all of them).
                        let c = SPLIT_COLUMNS;
                        match n {
                            1 => weighted_avx::<4, V>(outs[0], ws[0], p, vs),
                            2 => weighted_rows_avx::<4, 2, V>(c, firsts(outs), firsts(ws), p, vs),
                            3 => weighted_rows_avx::<4, 3, V>(c, firsts(outs), firsts(ws), p, vs),
                            4 => weighted_rows_avx::<2, 4, V>(c, firsts(outs), firsts(ws), p, vs),
                            5 => weighted_rows_avx::<2, 5, V>(c, firsts(outs), firsts(ws), p, vs),
                            6 => weighted_rows_avx::<2, 6, V>(c, firsts(outs), firsts(ws), p, vs),
                            _ => weighted_rows_avx::<1, 7, V>(c, firsts(outs), firsts(ws), p, vs),
                        }
                    }
                }
            }
        }
    }
}

/// The first `M` of `N`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn firsts<const M: usize, const N: usize, T: Copy>(a: [T; N]) -> [T; M] {
    std::array::from_fn(|u| a[u])
}

/// The query heads of a key/value head (`rep` of them) in groups that [`Run::split_passes`]
/// runs together, `(first, count)`: up to eight with AVX-512 (`Z`), up to seven with AVX2, as
/// even as they go. Qwen2.5's seven go in one group either way: each key and value row is
/// loaded and widened once for all of them (it was once per group of three with AVX2, of four
/// and three with AVX-512).
#[cfg(target_arch = "x86_64")]
fn groups<const Z: bool>(rep: usize) -> impl Iterator<Item = (usize, usize)> {
    let most = if Z { 8 } else { 7 };
    let size = rep.div_ceil(rep.div_ceil(most).max(1)).max(1);
    (0..rep)
        .step_by(size)
        .map(move |r0| (r0, size.min(rep - r0)))
}

/// Whether the AVX-512 build of the single-token loops runs here (given [`wide`]): where the
/// kernels run their AVX-512 instruction set.
fn wide512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::kernels::selected() == Some(crate::kernels::Isa::Avx512Vnni)
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the AVX2 build of the inner loops runs here.
fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(
            crate::kernels::selected(),
            Some(
                crate::kernels::Isa::Avx2
                    | crate::kernels::Isa::AvxVnni
                    | crate::kernels::Isa::Avx512Vnni
            )
        ) && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl CustomOp3 for Attend {
    fn name(&self) -> &'static str {
        "hearth-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let q = View::new("queries", s1, l1)?;
        let k = View::new("keys", s2, l2)?;
        let v = View::new("values", s3, l3)?;
        let (nh, t, hd) = (q.heads, q.len, q.hd);
        let mut out = vec![0f32; t * nh * hd];
        compute(q, k, v, self.scale, self.window, &mut out)?;
        Ok((CpuStorage::F32(out), Shape::from((1, t, nh * hd))))
    }
}

/// The attention of the queries `q` over the keys `k` and values `v` (see [`attend`]) into
/// `out` (`[t, n_head × hd]`, zeroed: each row's weighted values are added to it).
fn compute(
    q: View<'_>,
    k: View<'_>,
    v: View<'_>,
    scale: f32,
    window: Window,
    out: &mut [f32],
) -> candle_core::Result<()> {
    let (nh, t, hd) = (q.heads, q.len, q.hd);
    let (nkv, total) = (k.heads, k.len);
    if nkv == 0 || nh % nkv != 0 || v.heads != nkv || v.len != total || k.hd != hd {
        candle_core::bail!(
            "attention: {nh} query heads over {nkv} key heads of {total} x {} and {} value heads of {} x {}",
            k.hd,
            v.heads,
            v.len,
            v.hd
        );
    }
    if v.hd != hd || t > total {
        candle_core::bail!("attention: {t} queries of width {hd} over {total} positions");
    }
    if out.len() != t * nh * hd {
        candle_core::bail!(
            "attention: {} outputs for {t} queries of {nh} x {hd}",
            out.len()
        );
    }
    let pool = crate::pool::global();
    let rep = nh / nkv;
    let (tile_heads, tile_queries) = Run::tiling(nkv, rep, t, pool.threads());
    let wide = wide();
    let wide512 = wide && wide512();
    // Positions the last query sees.
    let visible = total - first_visible(total.saturating_sub(1), window.size);
    let split = wide
        && hd % SPLIT_COLUMNS == 0
        && ((t == 1 && (wide512 || nh * visible * hd >= 2 * SPLIT_ALONE_BELOW))
            || (wide512 && (2..=SPLIT_QUERIES).contains(&t) && visible >= SPLIT_QUERIES_FROM));
    // Tiles that share a key/value head each widen its f16 key rows again (a prompt of 256
    // tokens over SmolLM2's heads: every key row 52 times). Where that is at least four times
    // over, the rows are widened once here instead, into a buffer the tiles read as f32 keys
    // (the same values: widening is exact), unless the buffer would be large.
    let tiles_per_head = rep.div_ceil(tile_heads) * t.div_ceil(tile_queries);
    let mut wide_keys = WIDE_KEYS.with(|c| c.take());
    let k = match k.data {
        Data::F16(_)
            if !split && hd > 0 && tiles_per_head >= 4 && nkv * total * hd <= WIDE_KEYS_MAX =>
        {
            wide_keys.clear();
            wide_keys.resize(nkv * total * hd, 0.0);
            for (r, dst) in wide_keys.chunks_exact_mut(hd).enumerate() {
                // `wide()` holds only on a CPU with AVX2, FMA and F16C.
                if wide {
                    k.row::<true>(r / total, r % total, dst);
                } else {
                    k.row::<false>(r / total, r % total, dst);
                }
            }
            View {
                data: Data::F32(&wide_keys),
                offset: 0,
                head_stride: total * hd,
                row_stride: hd,
                heads: nkv,
                len: total,
                hd,
            }
        }
        _ => k,
    };
    let run = Run {
        q,
        k,
        v,
        nh,
        t,
        rep: nh / nkv,
        start: total - t,
        scale,
        window: window.size,
        tile_heads,
        tile_queries,
        out: Out(out.as_mut_ptr()),
    };
    #[cfg(target_arch = "x86_64")]
    if split {
        // SAFETY: `wide()` (and `wide512()`) checked the CPU; the width checked; the output
        // starts at zero (see the loops' contract above).
        unsafe { run.split_passes(pool, wide512, None) };
        return Ok(());
    }
    pool.run_chunked(run.tiles(), |items| {
        #[cfg(target_arch = "x86_64")]
        if wide512 {
            // SAFETY: `wide512()` holds only on a CPU with AVX-512 F, and `wide()` on one
            // with AVX2, FMA and F16C.
            unsafe { run.items_avx512(items) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: `wide()` holds only on a CPU with AVX2, FMA and F16C.
            unsafe { run.items_avx2(items) };
            return;
        }
        let _ = (wide, wide512);
        run.items(items);
    });
    WIDE_KEYS.with(|c| c.replace(wide_keys));
    Ok(())
}

/// The first position the query at position `pos` sees with `window` (none, or 0: all).
fn first_visible(pos: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) if w > 0 => (pos + 1).saturating_sub(w),
        _ => 0,
    }
}

/// Floats of keys [`compute`] widens up front at most (16 MiB).
const WIDE_KEYS_MAX: usize = 4 << 20;

thread_local! {
    /// The calling thread's buffer of widened keys, kept from call to call (see [`compute`]).
    static WIDE_KEYS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`attend`] for a single query position (a decoding step) on plain buffers, without a
/// tensor for the query or the result: `q` holds the `n_head` query rows of `hd` values each;
/// `k` and `v` are a key/value cache `[1, n_kv, capacity, hd]` (contiguous) whose first `len`
/// positions hold the sequence, the query's own position last. Writes `[n_head × hd]` to `out`:
/// the same bits [`attend`] returns for that query over those positions.
pub fn attend_one(
    q: &[f32],
    k: &Tensor,
    v: &Tensor,
    len: usize,
    scale: f32,
    window: Window,
    out: &mut [f32],
) -> Result<()> {
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (candle_core::Storage::Cpu(ks), candle_core::Storage::Cpu(vs)) = (&*ks, &*vs) else {
        return Err(crate::error::EngineError::Compute(
            "attention: the key/value cache is not in CPU memory".into(),
        ));
    };
    let mut kv = View::new("keys", ks, kl)?;
    let mut vv = View::new("values", vs, vl)?;
    if len == 0 || len > kv.len || len > vv.len {
        return Err(crate::error::EngineError::Compute(format!(
            "attention over {len} positions of a cache of {}",
            kv.len
        )));
    }
    // The view's last element moves back: still inside the storage View::new checked.
    kv.len = len;
    vv.len = len;
    let hd = kv.hd;
    if hd == 0 || q.len() % hd != 0 {
        return Err(crate::error::EngineError::Compute(format!(
            "attention: a query of {} values over heads of {hd}",
            q.len()
        )));
    }
    let qv = View {
        data: Data::F32(q),
        offset: 0,
        head_stride: hd,
        row_stride: q.len(),
        heads: q.len() / hd,
        len: 1,
        hd,
    };
    out.fill(0.0);
    compute(qv, kv, vv, scale, window, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn tensor(seed: u32, shape: (usize, usize, usize, usize)) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap()
    }

    /// Softmax attention in f64 with an explicit causal (and window) rule: `[t][nh·hd]`.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, w: Option<usize>) -> Vec<f32> {
        let (_, nh, t, hd) = q.dims4().unwrap();
        let (_, nkv, total, _) = k.dims4().unwrap();
        let (q, k, v) = (
            q.squeeze(0).unwrap().to_vec3::<f32>().unwrap(),
            k.squeeze(0).unwrap().to_vec3::<f32>().unwrap(),
            v.squeeze(0).unwrap().to_vec3::<f32>().unwrap(),
        );
        let rep = nh / nkv;
        let start = total - t;
        let mut out = vec![0f32; t * nh * hd];
        for h in 0..nh {
            for i in 0..t {
                let pos = start + i;
                let visible: Vec<usize> = (0..total)
                    .filter(|&j| j <= pos && w.map_or(true, |w| pos - j < w))
                    .collect();
                let s: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        (0..hd)
                            .map(|d| q[h][i][d] as f64 * k[h / rep][j][d] as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    let y: f64 = visible
                        .iter()
                        .zip(&e)
                        .map(|(&j, e)| e / z * v[h / rep][j][d] as f64)
                        .sum();
                    out[(i * nh + h) * hd + d] = y as f32;
                }
            }
        }
        out
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn matches_a_reference_with_grouped_heads_and_odd_widths() {
        // 6 query heads over 2 key/value heads, width 20 (not a multiple of 8), 4 new tokens
        // after 7 cached ones.
        let q = tensor(1, (1, 6, 4, 20));
        let k = tensor(2, (1, 2, 11, 20));
        let v = tensor(3, (1, 2, 11, 20));
        for w in [None, Some(3)] {
            let y = attend(&q, &k, &v, 0.3, Window { size: w }).unwrap();
            assert_eq!(y.dims(), &[1, 4, 120]);
            let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let d = max_diff(&y, &reference(&q, &k, &v, 0.3, w));
            assert!(d < 1e-5, "window {w:?}: off by {d}");
        }
    }

    #[test]
    fn reads_a_view_of_a_larger_cache() {
        let cache_k = tensor(4, (1, 2, 16, 8));
        let cache_v = tensor(5, (1, 2, 16, 8));
        let (k, v) = (
            cache_k.narrow(2, 0, 9).unwrap(),
            cache_v.narrow(2, 0, 9).unwrap(),
        );
        let q = tensor(6, (1, 4, 2, 8));
        let y = attend(&q, &k, &v, 0.5, Window { size: None }).unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (kc, vc) = (k.contiguous().unwrap(), v.contiguous().unwrap());
        assert!(max_diff(&y, &reference(&q, &kc, &vc, 0.5, None)) < 1e-5);
    }

    #[test]
    fn a_query_gives_the_same_bits_alone_or_with_others() {
        let k = tensor(7, (1, 3, 12, 64));
        let v = tensor(8, (1, 3, 12, 64));
        let q = tensor(9, (1, 9, 5, 64));
        let all = attend(&q, &k, &v, 0.125, Window { size: None }).unwrap();
        // The last query alone, over the same cache.
        let last = q.narrow(2, 4, 1).unwrap();
        let one = attend(&last, &k, &v, 0.125, Window { size: None }).unwrap();
        let a = all
            .narrow(1, 4, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = one.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
    }

    /// The AVX2 build of the inner loops, and the AVX-512 one where the CPU has it, give the
    /// same bits as the portable one with its multiply-adds fused (every loop a process can
    /// pick for a row, a prompt's or a single token's, must give it the same bits: the prefix
    /// cache's exactness depends on it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_build_gives_the_same_bits_as_the_portable_one() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            return;
        }
        let (nh, t) = (6, 5);
        let storage = |x: &Tensor| -> (CpuStorage, Layout) {
            let (s, l) = x.storage_and_layout();
            match &*s {
                candle_core::Storage::Cpu(c) => (c.clone(), l.clone()),
                _ => unreachable!("CPU tensors"),
            }
        };
        // The outputs of the portable and the AVX2 build for these inputs and tiles.
        let both = |q: &Tensor, k: &Tensor, v: &Tensor, window, tile_heads, tile_queries| {
            let ((sq, lq), (sk, lk), (sv, lv)) = (storage(q), storage(k), storage(v));
            let (hd, total) = (q.dim(3).unwrap(), k.dim(2).unwrap());
            let mut outs = Vec::new();
            // Portable, AVX2, and AVX-512 where this CPU has it.
            let builds = if is_x86_feature_detected!("avx512f") {
                3
            } else {
                2
            };
            for build in 0..builds {
                let mut out = vec![0f32; t * nh * hd];
                let run = Run {
                    q: View::new("q", &sq, &lq).unwrap(),
                    k: View::new("k", &sk, &lk).unwrap(),
                    v: View::new("v", &sv, &lv).unwrap(),
                    nh,
                    t,
                    rep: nh / 2,
                    start: total - t,
                    scale: 0.125,
                    window,
                    tile_heads,
                    tile_queries,
                    out: Out(out.as_mut_ptr()),
                };
                match build {
                    0 => run.items_fused(0..run.tiles()),
                    1 => unsafe { run.items_avx2(0..run.tiles()) },
                    _ => unsafe { run.items_avx512(0..run.tiles()) },
                }
                outs.push(out);
            }
            outs
        };
        let (hd, total) = (64, 37);
        let (q, k, v) = (
            tensor(11, (1, nh, t, hd)),
            tensor(12, (1, 2, total, hd)),
            tensor(13, (1, 2, total, hd)),
        );
        // Tiles of 2 x 2 rows, and one query's heads (3, or 2 then 1), whose keys and values
        // the AVX build reads once for all the tile's rows; tiles of 8 and 15 rows, whose
        // scores the AVX builds compute with the rows in the lanes.
        for (window, tile_heads, tile_queries) in [
            (None, 2, 2),
            (Some(9), 2, 2),
            (None, 3, 1),
            (Some(9), 2, 1),
            (None, 3, 5),
            (Some(9), 3, 5),
            (None, 2, 4),
        ] {
            let outs = both(&q, &k, &v, window, tile_heads, tile_queries);
            for o in &outs[1..] {
                assert_eq!(
                    &outs[0], o,
                    "window {window:?}, {tile_heads} x {tile_queries}"
                );
            }
            assert!(outs[0].iter().any(|v| *v != 0.0));
        }
        // And with an f16 cache, whose rows each build widens its own way (the AVX build
        // reads them in place), for widths the AVX build runs four rows at a time and keeps in
        // registers (16, 32, 64), only four rows at a time (40, 128) or neither (36), tiles of
        // 4, 6, 8, 9, 12 and 15 rows, and up to 101 positions; and tiles of fewer than four rows (a single token's
        // heads), whose keys go four at a time, with key counts that leave one to three over,
        // and whose values go to up to three rows at a time.
        for (hd, total, tile_heads, tile_queries, window) in [
            (64, 37, 1, 1, None),
            (64, 70, 3, 1, Some(30)),
            (32, 45, 1, 2, None),
            (40, 50, 1, 3, None),
            (36, 45, 1, 1, None),
            (64, 37, 3, 4, None),
            (64, 100, 3, 3, None),
            (64, 100, 3, 4, Some(40)),
            (32, 70, 2, 2, None),
            (16, 70, 3, 3, Some(5)),
            (40, 50, 3, 4, None),
            (128, 45, 3, 3, None),
            (36, 45, 2, 2, None),
            (32, 45, 2, 1, None),
            (16, 40, 3, 1, None),
            (16, 41, 2, 1, Some(7)),
            (64, 100, 3, 5, None),
            (64, 101, 3, 5, Some(40)),
            (32, 70, 2, 4, None),
            (40, 51, 3, 2, None),
            (16, 40, 3, 5, Some(5)),
            (128, 45, 3, 5, None),
        ] {
            let f16 = |x: Tensor| x.to_dtype(candle_core::DType::F16).unwrap();
            let q = tensor(21, (1, nh, t, hd));
            let k16 = f16(tensor(22, (1, 2, total, hd)));
            let v16 = f16(tensor(23, (1, 2, total, hd)));
            let outs = both(&q, &k16, &v16, window, tile_heads, tile_queries);
            for o in &outs[1..] {
                assert_eq!(&outs[0], o, "f16 cache, width {hd}, {total} positions");
            }
            assert!(outs[0].iter().all(|v| v.is_finite()) && outs[0].iter().any(|v| *v != 0.0));
        }
    }

    /// However the work is cut into tiles (heads × queries), every query row gets the same bits.
    #[test]
    fn the_tiling_never_changes_a_result() {
        let (nh, nkv, t, hd, total) = (6, 2, 7, 24, 30);
        let q = tensor(31, (1, nh, t, hd));
        let k = tensor(32, (1, nkv, total, hd))
            .to_dtype(candle_core::DType::F16)
            .unwrap();
        let v = tensor(33, (1, nkv, total, hd));
        let storage = |x: &Tensor| -> (CpuStorage, Layout) {
            let (s, l) = x.storage_and_layout();
            match &*s {
                candle_core::Storage::Cpu(c) => (c.clone(), l.clone()),
                _ => unreachable!("CPU tensors"),
            }
        };
        let ((sq, lq), (sk, lk), (sv, lv)) = (storage(&q), storage(&k), storage(&v));
        for window in [None, Some(4)] {
            let mut first: Option<Vec<f32>> = None;
            for (tile_heads, tile_queries) in [(1, 1), (3, 1), (1, 7), (2, 3), (3, 5), (3, 7)] {
                let mut out = vec![0f32; t * nh * hd];
                let run = Run {
                    q: View::new("q", &sq, &lq).unwrap(),
                    k: View::new("k", &sk, &lk).unwrap(),
                    v: View::new("v", &sv, &lv).unwrap(),
                    nh,
                    t,
                    rep: nh / nkv,
                    start: total - t,
                    scale: 0.2,
                    window,
                    tile_heads,
                    tile_queries,
                    out: Out(out.as_mut_ptr()),
                };
                // Tiles in any order, in several calls, as the pool's workers take them.
                let n = run.tiles();
                for r in (0..n).rev() {
                    run.items(r..r + 1);
                }
                match &first {
                    None => first = Some(out),
                    Some(f) => assert_eq!(
                        f, &out,
                        "tiles of {tile_heads} heads × {tile_queries} queries, window {window:?}"
                    ),
                }
            }
            let kc = k.to_dtype(candle_core::DType::F32).unwrap();
            let d = max_diff(
                first.as_ref().unwrap(),
                &reference(&q, &kc, &v, 0.2, window),
            );
            assert!(d < 1e-5, "off by {d}");
        }
    }

    /// A decoding step's query, or a few queries, split three ways (scores by blocks of keys,
    /// the softmax by rows, the values by blocks of columns), gets the bits the portable build
    /// gives it in tiles, with AVX2 and with AVX-512 where the CPU has it: SmolLM2's and
    /// Qwen2.5's head shapes and others, key counts that leave one to seven over eight, with
    /// and without a sliding window, f16 and f32 caches, one to nine queries. And through
    /// `attend`, the last queries of a prompt run as a call of their own (a decoding step, a
    /// speculative check) get the bits they get inside the prompt.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn queries_split_three_ways_give_the_bits_of_their_tiles() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            return;
        }
        let storage = |x: &Tensor| -> (CpuStorage, Layout) {
            let (s, l) = x.storage_and_layout();
            match &*s {
                candle_core::Storage::Cpu(c) => (c.clone(), l.clone()),
                _ => unreachable!("CPU tensors"),
            }
        };
        // Three threads: shares of the pool's items that fall unevenly on the heads.
        let pool = crate::pool::Pool::new(3);
        let spreads = [Spread::Alone, Spread::ByHead, Spread::ByPass];
        let cases = [
            (9, 3, 64, 300, None, true, 1),
            (9, 3, 64, 161, None, true, 1),
            (9, 3, 64, 1, None, false, 1),
            (9, 3, 64, 611, Some(300), false, 1),
            (14, 2, 64, 517, None, true, 1),
            (14, 2, 64, 263, Some(100), true, 1),
            (4, 2, 32, 259, None, false, 1),
            (8, 1, 128, 262, Some(257), true, 1),
            (6, 3, 96, 333, None, true, 1),
            (9, 3, 64, 300, None, true, 5),
            (9, 3, 64, 9, None, true, 9),
            (9, 3, 64, 611, Some(300), true, 9),
            (14, 2, 64, 517, None, true, 3),
            (14, 2, 64, 263, Some(100), false, 2),
            (8, 1, 128, 270, Some(257), true, 7),
            (16, 4, 64, 300, Some(200), false, 1),
            (10, 2, 32, 333, None, true, 1),
            (12, 2, 64, 517, None, true, 1),
            (14, 1, 64, 290, None, true, 1),
        ];
        for (nh, nkv, hd, total, window, f16, t) in cases {
            let cast = |x: Tensor| {
                if f16 {
                    x.to_dtype(candle_core::DType::F16).unwrap()
                } else {
                    x
                }
            };
            let q = tensor(41, (1, nh, t, hd));
            let k = cast(tensor(42, (1, nkv, total, hd)));
            let v = cast(tensor(43, (1, nkv, total, hd)));
            let ((sq, lq), (sk, lk), (sv, lv)) = (storage(&q), storage(&k), storage(&v));
            // The tiles, then each spread of the passes with AVX2 and (where the CPU has it)
            // AVX-512.
            let builds = if is_x86_feature_detected!("avx512f") {
                7
            } else {
                4
            };
            let mut outs = Vec::new();
            for build in 0..builds {
                let mut out = vec![0f32; t * nh * hd];
                let rep = nh / nkv;
                let run = Run {
                    q: View::new("q", &sq, &lq).unwrap(),
                    k: View::new("k", &sk, &lk).unwrap(),
                    v: View::new("v", &sv, &lv).unwrap(),
                    nh,
                    t,
                    rep,
                    start: total - t,
                    scale: 0.125,
                    window,
                    tile_heads: rep.min(3),
                    tile_queries: 1,
                    out: Out(out.as_mut_ptr()),
                };
                match build {
                    0 => run.items_fused(0..run.tiles()),
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked above), and AVX-512 F for
                    // builds 4 to 6; widths multiples of 32; a zero output.
                    b => unsafe { run.split_passes(&pool, b > 3, Some(spreads[(b - 1) % 3])) },
                }
                outs.push(out);
            }
            let bits = |o: &[f32]| o.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (build, o) in outs.iter().enumerate().skip(1) {
                assert_eq!(
                    bits(&outs[0]),
                    bits(o),
                    "build {build}: {nh} heads over {nkv}, width {hd}, {total} positions, {t} queries, window {window:?}, f16 {f16}"
                );
            }
            assert!(outs[0].iter().all(|x| x.is_finite()) && outs[0].iter().any(|x| *x != 0.0));
        }
        // Through `attend`: the last one and the last five of forty queries, alone and in the
        // prompt.
        let k = tensor(51, (1, 3, 400, 64))
            .to_dtype(candle_core::DType::F16)
            .unwrap();
        let v = tensor(52, (1, 3, 400, 64))
            .to_dtype(candle_core::DType::F16)
            .unwrap();
        let q = tensor(53, (1, 9, 40, 64));
        for w in [None, Some(300)] {
            let all = attend(&q, &k, &v, 0.125, Window { size: w }).unwrap();
            for n in [1, 5] {
                let last = q.narrow(2, 40 - n, n).unwrap();
                let alone = attend(&last, &k, &v, 0.125, Window { size: w }).unwrap();
                let a = all.narrow(1, 40 - n, n).unwrap().flatten_all().unwrap();
                assert_eq!(
                    a.to_vec1::<f32>().unwrap(),
                    alone.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    "window {w:?}, the last {n}"
                );
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_decoding_step_gives_threads_whole_heads_at_moderate_depths() {
        let (sq, lq) = (
            CpuStorage::F32(vec![0.0; 9 * 64]),
            Layout::contiguous((1, 9, 1, 64)),
        );
        let kv = |len: usize| {
            (
                CpuStorage::F32(vec![0.0; 3 * len * 64]),
                Layout::contiguous((1, 3, len, 64)),
            )
        };
        for (len, threads, want) in [
            (100, 2, Spread::Alone),
            (200, 1, Spread::Alone),
            (200, 2, Spread::ByHead),
            (511, 4, Spread::ByHead),
            (1000, 2, Spread::ByPass),
        ] {
            let (sk, lk) = kv(len);
            let run = Run {
                q: View::new("q", &sq, &lq).unwrap(),
                k: View::new("k", &sk, &lk).unwrap(),
                v: View::new("v", &sk, &lk).unwrap(),
                nh: 9,
                t: 1,
                rep: 3,
                start: len - 1,
                scale: 0.125,
                window: None,
                tile_heads: 3,
                tile_queries: 1,
                out: Out(std::ptr::null_mut()),
            };
            assert_eq!(
                run.spread(threads, len),
                want,
                "{len} positions, {threads} threads"
            );
        }
    }

    #[test]
    fn tiles_cover_every_query_once_for_any_thread_count() {
        for (nkv, rep, t) in [(2, 7, 1), (3, 3, 1), (2, 7, 64), (1, 1, 5), (5, 3, 17)] {
            for threads in [1, 2, 3, 16] {
                let (h, q) = Run::tiling(nkv, rep, t, threads);
                assert!(h >= 1 && h <= rep && q >= 1 && q <= t.max(1));
                assert!(h * q <= TILE_ROWS.max(rep));
            }
        }
        // Decoding one token with 2 kv heads of 7 on one thread: one tile per kv head.
        assert_eq!(Run::tiling(2, 7, 1, 1), (7, 1));
        // A prompt: whole groups, several queries each.
        assert_eq!(Run::tiling(2, 7, 64, 2), (7, 2));
        // Many threads: heads are split so that every thread has work.
        let (h, _) = Run::tiling(2, 7, 1, 16);
        assert!(2 * 7usize.div_ceil(h) >= 8);
    }

    /// An f16 cache gives the same bits as an f32 cache holding the same (f16) values: the rows
    /// are widened exactly and the arithmetic is the f32 one.
    #[test]
    fn an_f16_cache_is_read_exactly() {
        use candle_core::DType;
        let q = tensor(21, (1, 6, 3, 40));
        let k16 = tensor(22, (1, 2, 19, 40)).to_dtype(DType::F16).unwrap();
        let v16 = tensor(23, (1, 2, 19, 40)).to_dtype(DType::F16).unwrap();
        let (k32, v32) = (
            k16.to_dtype(DType::F32).unwrap(),
            v16.to_dtype(DType::F32).unwrap(),
        );
        for w in [None, Some(5)] {
            let a = attend(&q, &k16, &v16, 0.2, Window { size: w }).unwrap();
            let b = attend(&q, &k32, &v32, 0.2, Window { size: w }).unwrap();
            let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(a, b, "window {w:?}");
            assert!(max_diff(&a, &reference(&q, &k32, &v32, 0.2, w)) < 1e-5);
        }
    }

    /// A decoding step on plain buffers over the first positions of a larger f16 cache gives
    /// the bits `attend` gives for that query over a view of those positions, with and without
    /// a sliding window, SmolLM2's and Qwen2.5's head shapes; bad sizes are refused.
    #[test]
    fn one_position_on_buffers_gives_the_bits_of_attend() {
        use candle_core::DType;
        for (nh, nkv, hd, cap, len) in
            [(9, 3, 64, 256, 161), (14, 2, 64, 64, 1), (6, 2, 40, 32, 20)]
        {
            let kc = tensor(31, (1, nkv, cap, hd)).to_dtype(DType::F16).unwrap();
            let vc = tensor(32, (1, nkv, cap, hd)).to_dtype(DType::F16).unwrap();
            let q = values(nh * hd, 33);
            let qt = Tensor::from_slice(&q, (1, nh, 1, hd), &Device::Cpu).unwrap();
            let (k, v) = (kc.narrow(2, 0, len).unwrap(), vc.narrow(2, 0, len).unwrap());
            for w in [None, Some(7)] {
                let want = attend(&qt, &k, &v, 0.125, Window { size: w }).unwrap();
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                // Whatever the buffer held before is overwritten.
                let mut got = vec![f32::NAN; nh * hd];
                attend_one(&q, &kc, &vc, len, 0.125, Window { size: w }, &mut got).unwrap();
                assert_eq!(
                    got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "{nh} heads over {nkv}, width {hd}, {len} positions, window {w:?}"
                );
            }
            let mut out = vec![0f32; nh * hd];
            let w = Window { size: None };
            assert!(attend_one(&q, &kc, &vc, 0, 0.125, w, &mut out).is_err());
            assert!(attend_one(&q, &kc, &vc, cap + 1, 0.125, w, &mut out).is_err());
            assert!(
                attend_one(&q[..hd * (nh - 1) + 1], &kc, &vc, len, 0.125, w, &mut out).is_err()
            );
            let mut short = vec![0f32; nh * hd - 1];
            assert!(attend_one(&q, &kc, &vc, len, 0.125, w, &mut short).is_err());
        }
    }

    #[test]
    fn refuses_mismatched_heads() {
        let q = tensor(1, (1, 5, 1, 8));
        let k = tensor(2, (1, 2, 3, 8));
        assert!(attend(&q, &k, &k, 1.0, Window { size: None }).is_err());
    }
}
