//! AVX2 dot products between rows of quantized weights (GGUF block bytes, read in place) and
//! 8-bit activations.
//!
//! Every function here needs AVX2, FMA and F16C; [`available`] says whether the running CPU has
//! them, and the caller checks it once before calling any of them. The integer part of each
//! block's dot product is exact (unsigned codes times signed activations through `maddubs`, whose
//! pair sums stay far below `i16::MAX` for codes up to 31 and activations up to 127); only the
//! order of the f32 additions differs from the scalar path.

use std::arch::x86_64::*;

use super::interleave;
use super::q8::{Q8Row, Q8Rows, QK};
use super::BlockType;

/// Whether this CPU can run the functions of this module.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn half(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// 16 bytes of packed 4-bit codes as 32 bytes: low nibbles first, then high nibbles (the order
/// GGUF's 32-value blocks use).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let v = _mm_loadu_si128(p as *const __m128i);
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(v, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
    _mm256_set_m128i(hi, lo)
}

/// Byte `i` of the result is 0x10 when bit `i % 8` of byte `from[i]` of `v`'s 128-bit half is
/// set, else 0 (`from` picks, per result byte, which byte of the half to test).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits_as_0x10(v: __m256i, from: __m256i) -> __m256i {
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let spread = _mm256_shuffle_epi8(v, from);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Byte `i` is 0x10 when bit `i` of the little-endian u32 at `p` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(p: *const u8) -> __m256i {
    let qh = (p as *const u32).read_unaligned() as i32;
    // Byte i of the result takes byte i/8 of qh.
    bits_as_0x10(
        _mm256_set1_epi32(qh),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    )
}

/// The largest magnitude in `x`.
///
/// # Safety
/// AVX2, FMA and F16C ([`available`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn amax(x: &[f32]) -> f32 {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = _mm256_setzero_ps();
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(c.as_ptr()), abs));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    let m = lanes.iter().fold(0f32, |a, b| a.max(*b));
    rest.iter().fold(m, |a, v| a.max(v.abs()))
}

/// 32 values times `id`, rounded to the nearest integer (ties to even), clamped to -127..=127,
/// into `q`; returns the sum of the codes.
///
/// # Safety
/// AVX2, FMA and F16C ([`available`]); `x` and `q` hold at least 32 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_32(x: &[f32], id: f32, q: &mut [i8]) -> i32 {
    assert!(x.len() >= 32 && q.len() >= 32);
    let s = _mm256_set1_ps(id);
    let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
    let code = |i: usize| {
        let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(8 * i)), s);
        // Round to nearest even (the default rounding mode), then clamp.
        _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), lo), hi)
    };
    let (a, b, c, d) = (code(0), code(1), code(2), code(3));
    let sum = _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
    let packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, ordered);
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let s2 = _mm_add_epi32(s4, _mm_shuffle_epi32::<0b01_00_11_10>(s4));
    let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32::<0b10_11_00_01>(s2));
    _mm_cvtsi128_si32(s1)
}

/// Sums each of eight vectors of 8 i32 into lane `r` of the result (`r` = the vector's index).
/// Exact: integer additions.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn reduce8(p: &[__m256i; 8]) -> __m256i {
    let s01 = _mm256_hadd_epi32(p[0], p[1]);
    let s23 = _mm256_hadd_epi32(p[2], p[3]);
    let s45 = _mm256_hadd_epi32(p[4], p[5]);
    let s67 = _mm256_hadd_epi32(p[6], p[7]);
    let s0123 = _mm256_hadd_epi32(s01, s23);
    let s4567 = _mm256_hadd_epi32(s45, s67);
    let lo = _mm256_permute2x128_si256::<0x20>(s0123, s4567);
    let hi = _mm256_permute2x128_si256::<0x31>(s0123, s4567);
    _mm256_add_epi32(lo, hi)
}

/// Eight weight rows of a type with blocks of 32, decoded block by block into the form the
/// product reads: for block `b`, the eight rows' codes (`q[b * 8 + r]`), scales (`d`) and offset
/// weights (`o`: Q4_0 `-8·d`, Q4_1 `m`, Q5_0 `-16·d`, Q8_0 none) side by side. Each row is read
/// from start to end in one pass (the order the memory prefetchers follow), once per call
/// however many tokens there are.
#[derive(Default)]
struct Tile8 {
    q: Vec<__m256i>,
    d: Vec<f32>,
    o: Vec<f32>,
}

thread_local! {
    /// Each compute thread's tile, reused from call to call.
    static TILE: std::cell::RefCell<Tile8> = std::cell::RefCell::new(Tile8::default());
}

impl Tile8 {
    fn reserve(&mut self, nb: usize) {
        let zero = unsafe { _mm256_setzero_si256() };
        if self.q.len() < nb * 8 {
            self.q.resize(nb * 8, zero);
            self.d.resize(nb * 8, 0.0);
            self.o.resize(nb * 8, 0.0);
        }
    }

    /// Rewrites the codes of the first `nb` blocks, decoded row by row (`q[b * 8 + r]`), in
    /// the order [`tile8_product`] reads: `q[b * 8 + k]` holds codes `4k..4k + 4` of block `b`
    /// of row `r` in its 32-bit word `r`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn interleave(&mut self, nb: usize) {
        for b in 0..nb {
            let q = self.q.as_mut_ptr().add(b * 8) as *mut [__m256i; 8];
            *q = transpose8(&*q);
        }
    }
}

/// Decodes row `r` of a tile: `nb` blocks of `$bs` bytes from `row`.
macro_rules! decode_rows8 {
    ($name:ident, $bs:expr, |$blk:ident| ($codes:expr, $d:expr, $o:expr)) => {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name(tile: &mut Tile8, r: usize, row: *const u8, nb: usize) {
            for b in 0..nb {
                let $blk = row.add(b * $bs);
                _mm_prefetch::<_MM_HINT_T0>($blk.add(4096) as *const i8);
                *tile.q.get_unchecked_mut(b * 8 + r) = $codes;
                let (d, o): (f32, f32) = ($d, $o);
                *tile.d.get_unchecked_mut(b * 8 + r) = d;
                *tile.o.get_unchecked_mut(b * 8 + r) = o;
            }
        }
    };
}

decode_rows8!(decode8_q4_0, 18, |blk| (
    nibbles(blk.add(2)),
    half(blk),
    -8.0 * half(blk)
));
decode_rows8!(decode8_q4_1, 20, |blk| (
    nibbles(blk.add(4)),
    half(blk),
    half(blk.add(2))
));
decode_rows8!(decode8_q5_0, 22, |blk| (
    _mm256_or_si256(nibbles(blk.add(6)), fifth_bits(blk.add(2))),
    half(blk),
    -16.0 * half(blk)
));
decode_rows8!(decode8_q8_0, 34, |blk| (
    _mm256_loadu_si256(blk.add(2) as *const __m256i),
    half(blk),
    0.0
));

/// Rows `k` and `k + 4` of a group of eight, one block each at `a` and `b` (16 bytes of packed
/// 4-bit codes), as the two vectors the single-token kernels multiply: `lo` holds the codes
/// that meet activations 0..16 (the low nibbles; row `k` in the low half, row `k + 4` in the
/// high half), `hi` the ones that meet activations 16..32 (the high nibbles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibble_pair(a: *const u8, b: *const u8) -> (__m256i, __m256i) {
    split_nibbles(_mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm_loadu_si128(a as *const __m128i)),
        _mm_loadu_si128(b as *const __m128i),
    ))
}

/// The low and the high nibbles of each byte of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn split_nibbles(v: __m256i) -> (__m256i, __m256i) {
    let m = _mm256_set1_epi8(0x0f);
    (
        _mm256_and_si256(v, m),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v), m),
    )
}

/// Q5_0's fifth bits for two rows laid out as [`nibble_pair`] lays out their codes: byte `i` of
/// `lo` (`hi`) is 0x10 when bit `i` (`16 + i`) of the row's little-endian u32 is set, with row
/// `k` (its u32 at `a`) in the low half and row `k + 4` (at `b`) in the high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bit_pair(a: *const u8, b: *const u8) -> (__m256i, __m256i) {
    let qa = _mm256_set1_epi32((a as *const i32).read_unaligned());
    let qb = _mm256_set1_epi32((b as *const i32).read_unaligned());
    let v = _mm256_blend_epi32::<0xF0>(qa, qb);
    // Byte j of a half takes byte j/8 of its u32 (lo) or byte 2 + j/8 (hi).
    let (b0, b1, b2, b3) = (
        0,
        0x0101_0101_0101_0101,
        0x0202_0202_0202_0202,
        0x0303_0303_0303_0303,
    );
    (
        bits_as_0x10(v, _mm256_set_epi64x(b1, b0, b1, b0)),
        bits_as_0x10(v, _mm256_set_epi64x(b3, b2, b3, b2)),
    )
}

/// Exact: lane `r` of the result is the sum of the four 32-bit lanes that belong to row `r` in
/// `p`, where `p[k]` holds row `k` in its low half and row `k + 4` in its high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn reduce_pairs(p: &[__m256i; 4]) -> __m256i {
    _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]))
}

/// Each 32-bit lane of the result: the four products of unsigned `lo` bytes with signed `ylo`
/// bytes of that lane plus the four of `hi` with `yhi`. Codes up to 31 times activations up to
/// 127: the pair sums of `maddubs` stay far below `i16::MAX`, so the sums are exact.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pair_sum(lo: __m256i, ylo: __m256i, hi: __m256i, yhi: __m256i) -> __m256i {
    let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_maddubs_epi16(hi, yhi));
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// [`pair_sum`] with two VEX-encoded `vpdpbusd` (AVX-VNNI): the same exact integers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn pair_sum_avxvnni(lo: __m256i, ylo: __m256i, hi: __m256i, yhi: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, ylo),
        hi,
        yhi,
    )
}

/// Asks for block `b` of the eight rows that start at `next` (8 · `bs` bytes, up to 176: three
/// or four lines), read as the in-place kernels read theirs. A prefetch never faults; the
/// addresses are formed with wrapping arithmetic.
#[inline(always)]
fn prefetch_group_block(next: *const u8, b: usize, bs: usize) {
    let ahead = next.wrapping_add(b * 8 * bs);
    // SAFETY: prefetching reads nothing the program sees and is part of SSE (every x86-64).
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(8 * bs) as *const i8);
    }
}

/// Asks for the k-quant block of `bytes` bytes at `at` (see [`prefetch_group_block`]).
#[inline(always)]
fn prefetch_k_block(at: *const u8, bytes: usize) {
    // SAFETY: as in `prefetch_group_block`.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(at as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(128) as *const i8);
        if bytes > 192 {
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(192) as *const i8);
        }
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(bytes - 1) as *const i8);
    }
}

/// Ends block `b` of eight rows read in place for one token: `acc += (d_w · d_x) · sum` and
/// `off += o_w · s_x`, per lane, the steps of [`tile8_product`] in its order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn close_block32(
    sum: __m256,
    dw: __m256,
    ow: __m256,
    x: &Q8Row<'_>,
    b: usize,
    acc: &mut __m256,
    off: &mut __m256,
) {
    let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.get_unchecked(b)));
    *acc = _mm256_fmadd_ps(scale, sum, *acc);
    *off = _mm256_fmadd_ps(ow, _mm256_set1_ps(*x.s.get_unchecked(b)), *off);
}

/// One token against eight rows of a type with blocks of 32, read straight from the rows: for a
/// single token (decoding), writing the codes into a tile and reading them back costs more than
/// the product itself. Each lane goes through the floating-point operations of
/// [`tile8_product`] with `N = 1` (unsigned codes, with offsets) in the same order, and its
/// block sums are the same exact integers, so the result is the same bits as the tile path gives
/// the same token inside a prompt. Two rows share each vector (`$codes` gives rows `k` and
/// `k + 4` as [`nibble_pair`] does), which halves the multiplies and leaves three horizontal
/// additions per block instead of seven. `next` is where the rows to prefetch start (see
/// `dot_rows`), read as these are. Each type gets two functions: `$name` for AVX2 and
/// `$avxvnni` for CPUs with AVX-VNNI, which makes each pair's sum with two `vpdpbusd` (the same
/// integers, fewer instructions: the 4-bit rows are partly bound by instructions, not memory).
/// CPUs with AVX-512 VNNI take [`direct_rows8_zmm`]'s kernels instead.
macro_rules! direct_rows8 {
    ($name:ident, $avxvnni:ident, $bs:expr, |$a:ident, $b:ident| $codes:expr, |$blocks:ident, $dw:ident| $ow:expr) => {
        direct_rows8!(@one $name, "avx2,fma,f16c", pair_sum, $bs, |$a, $b| $codes, |$blocks, $dw| $ow);
        direct_rows8!(
            @one $avxvnni, "avx2,fma,f16c,avxvnni", pair_sum_avxvnni, $bs,
            |$a, $b| $codes, |$blocks, $dw| $ow
        );
    };
    (@one $name:ident, $feat:literal, $sum:ident, $bs:expr, |$a:ident, $b:ident| $codes:expr, |$blocks:ident, $dw:ident| $ow:expr) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name(
            rows: &[*const u8; 8],
            next: *const u8,
            nb: usize,
            x: &Q8Row<'_>,
        ) -> [f32; 8] {
            let mut acc = _mm256_setzero_ps();
            let mut off = _mm256_setzero_ps();
            for b in 0..nb {
                let $blocks: [*const u8; 8] = std::array::from_fn(|r| rows[r].add(b * $bs));
                prefetch_group_block(next, b, $bs);
                let y = x.qs.as_ptr().add(b * QK) as *const __m128i;
                let ylo = _mm256_broadcastsi128_si256(_mm_loadu_si128(y));
                let yhi = _mm256_broadcastsi128_si256(_mm_loadu_si128(y.add(1)));
                let mut p = [_mm256_setzero_si256(); 4];
                for (k, p) in p.iter_mut().enumerate() {
                    let ($a, $b) = ($blocks[k], $blocks[k + 4]);
                    let (lo, hi): (__m256i, __m256i) = $codes;
                    *p = $sum(lo, ylo, hi, yhi);
                }
                let sum = _mm256_cvtepi32_ps(reduce_pairs(&p));
                let $dw = halves8(&$blocks, 0);
                let ow: __m256 = $ow;
                close_block32(sum, $dw, ow, x, b, &mut acc, &mut off);
            }
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, off));
            out
        }
    };
}

direct_rows8!(
    direct8_q4_0,
    direct8_q4_0_avxvnni,
    18,
    |a, b| nibble_pair(a.add(2), b.add(2)),
    |blocks, dw| _mm256_mul_ps(_mm256_set1_ps(-8.0), dw)
);
direct_rows8!(
    direct8_q4_1,
    direct8_q4_1_avxvnni,
    20,
    |a, b| nibble_pair(a.add(4), b.add(4)),
    |blocks, dw| halves8(&blocks, 2)
);
direct_rows8!(
    direct8_q5_0,
    direct8_q5_0_avxvnni,
    22,
    |a, b| {
        let (lo, hi) = nibble_pair(a.add(6), b.add(6));
        let (flo, fhi) = fifth_bit_pair(a.add(2), b.add(2));
        (_mm256_or_si256(lo, flo), _mm256_or_si256(hi, fhi))
    },
    |blocks, dw| _mm256_mul_ps(_mm256_set1_ps(-16.0), dw)
);

/// Rows `2j` and `2j + 1` of an interleaved group block of 4-bit codes (`codes`: where its
/// codes start), as [`nibble_pair`] gives rows `k` and `k + 4`: one 32-byte load holds both
/// rows' 16 bytes side by side.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles32(codes: *const u8, j: usize) -> (__m256i, __m256i) {
    split_nibbles(_mm256_loadu_si256(codes.add(32 * j) as *const __m256i))
}

/// Q5_0 codes of rows `2j` and `2j + 1` of an interleaved group block `g` laid out as
/// [`nibbles32`] lays them out: their half's two fifth-bit words (see [`super::interleave`])
/// broadcast to both 128-bit halves, each 64-bit lane shifted left (low nibbles) or right (high
/// nibbles) by its own amount, put every code byte's fifth bit at its bit 4: one load, two
/// shifts and two masks for 64 codes, where spreading a 32-bit mask over bytes took a shuffle,
/// a comparison and two masks for each 32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_codes32(g: *const u8, j: usize) -> (__m256i, __m256i) {
    let (lo, hi) = nibbles32(g.add(Q5_0_CODES), j);
    let words = g.add(interleave::SECOND_AT + 16 * (j / 2)) as *const __m128i;
    let w = _mm256_broadcastsi128_si256(_mm_loadu_si128(words));
    // Lane L holds word L % 2, its bytes' bits at 2p + L / 2 and 4 + 2p + L / 2 (p = j % 2).
    // (The shift counts are loaded, not built: where `j` is not a constant, building them
    // took more instructions than the shifts save.)
    const LEFT: [[i64; 4]; 2] = [[4, 4, 3, 3], [2, 2, 1, 1]];
    const RIGHT: [[i64; 4]; 2] = [[0, 0, 1, 1], [2, 2, 3, 3]];
    let left = _mm256_loadu_si256(LEFT[j % 2].as_ptr() as *const __m256i);
    let right = _mm256_loadu_si256(RIGHT[j % 2].as_ptr() as *const __m256i);
    let low = _mm256_sllv_epi64(w, left);
    let high = _mm256_srlv_epi64(w, right);
    let sixteen = _mm256_set1_epi8(16);
    (
        _mm256_or_si256(lo, _mm256_and_si256(low, sixteen)),
        _mm256_or_si256(hi, _mm256_and_si256(high, sixteen)),
    )
}

/// [`direct_rows8`]'s kernels for a group of eight rows in the interleaved layout
/// ([`super::interleave`]), for CPUs without AVX-512: each block's codes are four 32-byte
/// loads (rows `2j` and `2j + 1` to a vector) and its eight scales one 16-byte load instead of
/// eight 16-bit inserts. [`reduce_pairs`] then leaves row `2j` in lane `j` and row `2j + 1` in
/// lane `j + 4`, and one permute puts row `r` in lane `r`: the same exact integers and the same
/// floating-point steps in the same order, so the same bits as `direct_rows8`'s kernels.
macro_rules! x8_rows {
    ($name:ident, $avxvnni:ident, $bs:expr, |$g:ident, $j:ident| $codes:expr, |$dw:ident| $ow:expr) => {
        x8_rows!(@one $name, "avx2,fma,f16c", pair_sum, $bs, |$g, $j| $codes, |$dw| $ow);
        x8_rows!(
            @one $avxvnni, "avx2,fma,f16c,avxvnni", pair_sum_avxvnni, $bs,
            |$g, $j| $codes, |$dw| $ow
        );
    };
    (@one $name:ident, $feat:literal, $sum:ident, $bs:expr, |$g:ident, $j:ident| $codes:expr, |$dw:ident| $ow:expr) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name(group: *const u8, next: *const u8, nb: usize, x: &Q8Row<'_>) -> [f32; 8] {
            let mut acc = _mm256_setzero_ps();
            let mut off = _mm256_setzero_ps();
            let rows = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for b in 0..nb {
                let $g = group.add(b * 8 * $bs);
                prefetch_group_block(next, b, $bs);
                let y = x.qs.as_ptr().add(b * QK) as *const __m128i;
                let ylo = _mm256_broadcastsi128_si256(_mm_loadu_si128(y));
                let yhi = _mm256_broadcastsi128_si256(_mm_loadu_si128(y.add(1)));
                let mut p = [_mm256_setzero_si256(); 4];
                for ($j, p) in p.iter_mut().enumerate() {
                    let (lo, hi): (__m256i, __m256i) = $codes;
                    *p = $sum(lo, ylo, hi, yhi);
                }
                let sum = _mm256_permutevar8x32_epi32(reduce_pairs(&p), rows);
                let sum = _mm256_cvtepi32_ps(sum);
                let $dw = _mm256_cvtph_ps(_mm_loadu_si128($g as *const __m128i));
                let ow: __m256 = $ow;
                close_block32(sum, $dw, ow, x, b, &mut acc, &mut off);
            }
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, off));
            out
        }
    };
}

x8_rows!(
    x8_q4_0_avx2,
    x8_q4_0_avxvnni,
    18,
    |g, j| nibbles32(g.add(Q4_0_CODES), j),
    |dw| _mm256_mul_ps(_mm256_set1_ps(-8.0), dw)
);
x8_rows!(
    x8_q4_1_avx2,
    x8_q4_1_avxvnni,
    20,
    |g, j| nibbles32(g.add(Q4_1_CODES), j),
    |dw| _mm256_cvtph_ps(_mm_loadu_si128(
        g.add(interleave::SECOND_AT) as *const __m128i
    ))
);
x8_rows!(
    x8_q5_0_avx2,
    x8_q5_0_avxvnni,
    22,
    |g, j| q5_0_codes32(g, j),
    |dw| _mm256_mul_ps(_mm256_set1_ps(-16.0), dw)
);

/// [`q8_0_rows8`] with one token for a group of eight interleaved Q8_0 rows, for CPUs without
/// AVX-512: the rows' codes where `q8_0_rows8` finds them in the GGUF rows, the eight scales
/// from one 16-byte load: the same operations in the same order, so the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn x8_q8_0_avx2(group: *const u8, next: *const u8, nb: usize, x: &Q8Row<'_>) -> [f32; 8] {
    let mut acc = _mm256_setzero_ps();
    let ones = _mm256_set1_epi16(1);
    for b in 0..nb {
        let g = group.add(b * 8 * 34);
        prefetch_group_block(next, b, 34);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34 + 192) as *const i8);
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(g as *const __m128i));
        let y = _mm256_loadu_si256(x.qs.as_ptr().add(b * QK) as *const __m256i);
        let p: [__m256i; 8] = std::array::from_fn(|r| {
            let w = _mm256_loadu_si256(g.add(Q8_0_CODES + 32 * r) as *const __m256i);
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
            _mm256_madd_epi16(pairs, ones)
        });
        let sum = _mm256_cvtepi32_ps(reduce8(&p));
        let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.get_unchecked(b)));
        acc = _mm256_fmadd_ps(scale, sum, acc);
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, _mm256_setzero_ps()));
    out
}

/// Block `gb` of an interleaved group ([`super::interleave`]) of a type with blocks of 32
/// (`ty`): its eight rows' codes as [`decode_block`] gives each row's (vector `r` for row `r`),
/// their scales and their offset weights (lane `r`), from one pass over the block's bytes: the
/// scales (and Q4_1's minimums) one load each, and each load of 32 4-bit code bytes (rows `2j`
/// and `2j + 1`, as [`x8_rows`] reads them) split into the two rows' codes (Q8_0's rows are
/// loaded whole).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn group_block32(ty: BlockType, gb: *const u8) -> ([__m256i; 8], __m256, __m256) {
    let d = _mm256_cvtph_ps(_mm_loadu_si128(gb as *const __m128i));
    // Rows 2j and 2j + 1 from their pair: the low nibbles' halves, then the high nibbles'.
    let split = |pairs: [(__m256i, __m256i); 4]| -> [__m256i; 8] {
        std::array::from_fn(|r| {
            let (lo, hi) = pairs[r / 2];
            if r % 2 == 0 {
                _mm256_permute2x128_si256::<0x20>(lo, hi)
            } else {
                _mm256_permute2x128_si256::<0x31>(lo, hi)
            }
        })
    };
    match ty {
        BlockType::Q4_0 => (
            split(std::array::from_fn(|j| nibbles32(gb.add(Q4_0_CODES), j))),
            d,
            _mm256_mul_ps(_mm256_set1_ps(-8.0), d),
        ),
        BlockType::Q4_1 => (
            split(std::array::from_fn(|j| nibbles32(gb.add(Q4_1_CODES), j))),
            d,
            _mm256_cvtph_ps(_mm_loadu_si128(
                gb.add(interleave::SECOND_AT) as *const __m128i
            )),
        ),
        BlockType::Q5_0 => (
            split(std::array::from_fn(|j| q5_0_codes32(gb, j))),
            d,
            _mm256_mul_ps(_mm256_set1_ps(-16.0), d),
        ),
        // Q8_0's rows are whole 32-byte runs already.
        _ => (
            std::array::from_fn(|r| {
                _mm256_loadu_si256(gb.add(Q8_0_CODES + 32 * r) as *const __m256i)
            }),
            d,
            _mm256_setzero_ps(),
        ),
    }
}

/// Asks for the lines of the `bytes` bytes at `at` + 4 KiB (a group's block, ahead of the tile
/// decoders that read groups front to back).
#[inline(always)]
pub(crate) fn prefetch_group_ahead(at: *const u8, bytes: usize) {
    for line in (0..bytes).step_by(64) {
        // SAFETY: as in `prefetch_group_block`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(4096 + line) as *const i8) };
    }
}

/// A whole AVX2 tile ([`Tile8`]) from the interleaved group at `g` (`nb` blocks of `ty`, a type
/// with blocks of 32), block by block through [`group_block32`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode8_group(tile: &mut Tile8, ty: BlockType, g: *const u8, nb: usize) {
    let bs8 = 8 * ty.block_bytes();
    macro_rules! each_block {
        ($ty:expr) => {
            for b in 0..nb {
                let gb = g.add(b * bs8);
                prefetch_group_ahead(gb, bs8);
                let (rows, d, o) = group_block32($ty, gb);
                _mm256_storeu_ps(tile.d.as_mut_ptr().add(b * 8), d);
                _mm256_storeu_ps(tile.o.as_mut_ptr().add(b * 8), o);
                (tile.q.as_mut_ptr().add(b * 8) as *mut [__m256i; 8]).write(rows);
            }
        };
    }
    // One loop per type, rather than a choice per block.
    match ty {
        BlockType::Q4_0 => each_block!(BlockType::Q4_0),
        BlockType::Q4_1 => each_block!(BlockType::Q4_1),
        BlockType::Q5_0 => each_block!(BlockType::Q5_0),
        _ => each_block!(BlockType::Q8_0),
    }
}

/// Row `r` of an AVX2 tile ([`Tile8`]) from row `i` of the interleaved groups at `g` (`nb`
/// blocks of `ty`, a type with blocks of 32): the codes, scale and offset weight
/// [`decode_block_x8`] gives, which are the ones the GGUF row's decoders give. The first row of
/// a group asks for the group's blocks 4 KiB ahead (the other seven read them from the cache).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode8_grouped(
    tile: &mut Tile8,
    ty: BlockType,
    r: usize,
    g: *const u8,
    i: usize,
    nb: usize,
) {
    let bs8 = 8 * ty.block_bytes();
    macro_rules! each_block {
        ($ty:expr) => {
            for b in 0..nb {
                let gb = g.add(b * bs8);
                if i == 0 {
                    prefetch_group_ahead(gb, bs8);
                }
                let (q, d, o) = decode_block_x8($ty, gb, i);
                *tile.q.get_unchecked_mut(b * 8 + r) = q;
                *tile.d.get_unchecked_mut(b * 8 + r) = d;
                *tile.o.get_unchecked_mut(b * 8 + r) = o;
            }
        };
    }
    match ty {
        BlockType::Q4_0 => each_block!(BlockType::Q4_0),
        BlockType::Q4_1 => each_block!(BlockType::Q4_1),
        BlockType::Q5_0 => each_block!(BlockType::Q5_0),
        _ => each_block!(BlockType::Q8_0),
    }
}

/// Sixteen bytes at `at` of each of four blocks, block `r` in the 128-bit lane `r`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bytes16x4(b: &[*const u8], at: usize) -> __m512i {
    let lane = |r: usize| _mm_loadu_si128(b[r].add(at) as *const __m128i);
    let v = _mm512_castsi128_si512(lane(0));
    let v = _mm512_inserti32x4::<1>(v, lane(1));
    let v = _mm512_inserti32x4::<2>(v, lane(2));
    _mm512_inserti32x4::<3>(v, lane(3))
}

/// The low and high nibbles of [`bytes16x4`]: codes `0..16` and `16..32` of four 4-bit blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nibbles4(b: &[*const u8], at: usize) -> (__m512i, __m512i) {
    let v = bytes16x4(b, at);
    let m = _mm512_set1_epi8(0x0f);
    (
        _mm512_and_si512(v, m),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), m),
    )
}

/// Q5_0 codes of four blocks laid out as [`nibbles4`] lays them out: the fifth bits of block
/// `r` (its little-endian u32 at byte 2) become byte masks straight away, bit `j` of the low
/// (high) 16 selecting byte `16r + j` of the low (high) codes, which gain 16 (the nibbles are
/// below 16, so that is setting bit 4).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,bmi2")]
unsafe fn q5_0_codes4(b: &[*const u8]) -> (__m512i, __m512i) {
    let (lo, hi) = nibbles4(b, 6);
    let q = |r: usize| (b[r].add(2) as *const u32).read_unaligned() as u64;
    // Two blocks' u32 side by side; the low (high) 16 bits of each, packed, are the masks of
    // their low (high) codes. Integer instructions: the vector ones are the busy ones here.
    let (x01, x23) = (q(0) | q(1) << 32, q(2) | q(3) << 32);
    let (low, high) = (0x0000_ffff_0000_ffff, 0xffff_0000_ffff_0000);
    let ml = _pext_u64(x01, low) | _pext_u64(x23, low) << 32;
    let mh = _pext_u64(x01, high) | _pext_u64(x23, high) << 32;
    let sixteen = _mm512_set1_epi8(16);
    (
        _mm512_mask_add_epi8(lo, ml, lo, sixteen),
        _mm512_mask_add_epi8(hi, mh, hi, sixteen),
    )
}

/// Lanes `2i` and `2i + 1` of `a` then of `b`, added: sixteen 32-bit sums, `a`'s pairs in the
/// low eight lanes, `b`'s in the high eight.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair_halves(a: __m512i, b: __m512i) -> __m512i {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    _mm512_add_epi32(
        _mm512_permutex2var_epi32(a, even, b),
        _mm512_permutex2var_epi32(a, odd, b),
    )
}

/// Eight rows' sums, row `r` in lane `r`, from four partial sums per row: lanes `4r..4r + 4` of
/// `p[h]` belong to row `4h + r`. Two rounds of pairwise additions (the same integers in any
/// order: they are exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn quad_sums(p: &[__m512i; 2]) -> __m256i {
    // Row r's partial sums: lanes 2r and 2r + 1 of e, then lane r of the result.
    let e = pair_halves(p[0], p[1]);
    _mm512_castsi512_si256(pair_halves(e, e))
}

/// One token against eight rows of a type with blocks of 32, read in place, for CPUs with
/// AVX-512 VNNI, BW and VL: [`direct_rows8`]'s kernel with four rows to a 512-bit vector (row
/// `r` of a half in 128-bit lane `r`), so a block of eight rows takes four `vpdpbusd` and half
/// the decoding instructions of two rows to a 256-bit vector; the 4-bit kernels are bound by
/// instructions more than by memory on a core that reads 35 GB/s. Each row's block sum is the
/// same exact integer, gathered into lane `r` by two rounds of pairwise additions, and the
/// floating-point steps per lane are [`direct_rows8`]'s in its order: the same bits.
macro_rules! direct_rows8_zmm {
    ($name:ident, $bs:expr, |$b4:ident| $codes:expr, |$blocks:ident, $dw:ident| $ow:expr) => {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,bmi2")]
        unsafe fn $name(
            rows: &[*const u8; 8],
            next: *const u8,
            nb: usize,
            x: &Q8Row<'_>,
        ) -> [f32; 8] {
            let mut acc = _mm256_setzero_ps();
            let mut off = _mm256_setzero_ps();
            for b in 0..nb {
                let $blocks: [*const u8; 8] = std::array::from_fn(|r| rows[r].add(b * $bs));
                prefetch_group_block(next, b, $bs);
                let y = x.qs.as_ptr().add(b * QK) as *const __m128i;
                let ylo = _mm512_broadcast_i32x4(_mm_loadu_si128(y));
                let yhi = _mm512_broadcast_i32x4(_mm_loadu_si128(y.add(1)));
                // Lanes 4r..4r + 4 of p[h]: row 4h + r's four partial sums. (A loop, not a
                // closure, which the compiler may leave uninlined in this hot loop.)
                let mut p = [_mm512_setzero_si512(); 2];
                for (h, p) in p.iter_mut().enumerate() {
                    let $b4 = &$blocks[4 * h..4 * h + 4];
                    let (lo, hi): (__m512i, __m512i) = $codes;
                    *p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(*p, lo, ylo), hi, yhi);
                }
                let sum = _mm256_cvtepi32_ps(quad_sums(&p));
                let $dw = halves8(&$blocks, 0);
                let ow: __m256 = $ow;
                close_block32(sum, $dw, ow, x, b, &mut acc, &mut off);
            }
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, off));
            out
        }
    };
}

direct_rows8_zmm!(direct8_q4_0_zmm, 18, |b4| nibbles4(b4, 2), |blocks, dw| {
    _mm256_mul_ps(_mm256_set1_ps(-8.0), dw)
});
direct_rows8_zmm!(direct8_q4_1_zmm, 20, |b4| nibbles4(b4, 4), |blocks, dw| {
    halves8(&blocks, 2)
});
direct_rows8_zmm!(direct8_q5_0_zmm, 22, |b4| q5_0_codes4(b4), |blocks, dw| {
    _mm256_mul_ps(_mm256_set1_ps(-16.0), dw)
});

/// Groups of eight rows the kernels prefetch ahead of the ones they read: at least 8 KiB (see
/// `dot_rows`).
fn ahead_groups(row_bytes: usize) -> usize {
    8192usize.div_ceil(8 * row_bytes).max(1)
}

/// Where to prefetch for byte `want` of a matrix `data` read front to back: there, or past the
/// matrix's end on into `then` (the next matrix of the same call), or the matrix's end when
/// there is none. Prefetching reads nothing wrong (a prefetch never faults; the address is
/// formed with wrapping arithmetic and never dereferenced).
fn prefetch_at(data: &[u8], then: &[u8], want: usize) -> *const u8 {
    if want <= data.len() || then.is_empty() {
        data.as_ptr()
            .wrapping_add(want)
            .min(data.as_ptr_range().end)
    } else {
        then.as_ptr()
            .wrapping_add((want - data.len()).min(then.len()))
    }
}

/// Where the codes start in an interleaved group block ([`interleave::codes_at`]).
const Q4_0_CODES: usize = interleave::codes_at(BlockType::Q4_0);
const Q4_1_CODES: usize = interleave::codes_at(BlockType::Q4_1);
const Q5_0_CODES: usize = interleave::codes_at(BlockType::Q5_0);
const Q8_0_CODES: usize = interleave::codes_at(BlockType::Q8_0);

/// Whether [`dot_rows_x8`]'s kernels run here (their feature beyond the AVX-512 instruction
/// set's: VL).
pub fn x8_available() -> bool {
    is_x86_feature_detected!("avx512vl")
}

/// The low and high nibbles of the 64 bytes at `at`: codes `0..16` and `16..32` of four rows'
/// blocks, row `r` in the 128-bit lane `r` (as [`nibbles4`] gives them).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nibbles64(at: *const u8) -> (__m512i, __m512i) {
    let v = _mm512_loadu_si512(at as *const _);
    let m = _mm512_set1_epi8(0x0f);
    (
        _mm512_and_si512(v, m),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), m),
    )
}

/// Q5_0 codes of half `h` of an interleaved group block `g` (see [`super::interleave`]): the
/// nibbles, plus 16 where the fifth-bit words stored beside them say so ([`q5_0_codes4`]'s
/// codes): [`q5_0_codes32`]'s shifts for pairs `2h` and `2h + 1` at once (the half's 16 bytes
/// of words broadcast to all four 128-bit quarters), the bit added in with the nibbles' mask by
/// one ternary logic.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_0_codes_x8(g: *const u8, h: usize) -> (__m512i, __m512i) {
    let v = _mm512_loadu_si512(g.add(Q5_0_CODES + 64 * h) as *const _);
    // The half's two words in every 128 bits: lane l (pair l / 4, lane l % 4 of its vector)
    // holds word l % 2, as `q5_0_codes32` has them.
    let w = _mm512_broadcast_i32x4(_mm_loadu_si128(
        g.add(interleave::SECOND_AT + 16 * h) as *const __m128i
    ));
    let low = _mm512_sllv_epi64(w, _mm512_setr_epi64(4, 4, 3, 3, 2, 2, 1, 1));
    let high = _mm512_srlv_epi64(w, _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3));
    let m = _mm512_set1_epi8(0x0f);
    let sixteen = _mm512_set1_epi8(16);
    // The fifth bit masked first, then `bit | (codes & 0x0f)` as one ternary logic (0xf8: a |
    // (b & c)).
    let low = _mm512_and_si512(low, sixteen);
    let high = _mm512_and_si512(high, sixteen);
    (
        _mm512_ternarylogic_epi32::<0xF8>(low, v, m),
        _mm512_ternarylogic_epi32::<0xF8>(high, _mm512_srli_epi16::<4>(v), m),
    )
}

/// [`direct_rows8_zmm`]'s kernels for a group of eight rows in the interleaved layout
/// ([`super::interleave`]): each block's codes are two 64-byte loads and its scales one 16-byte
/// load. The same integers and the same floating-point steps in the same order: the same bits.
macro_rules! x8_rows_zmm {
    ($name:ident, $bs:expr, |$g:ident, $h:ident| $codes:expr, |$dw:ident| $ow:expr) => {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name(group: *const u8, next: *const u8, nb: usize, x: &Q8Row<'_>) -> [f32; 8] {
            let mut acc = _mm256_setzero_ps();
            let mut off = _mm256_setzero_ps();
            for b in 0..nb {
                let $g = group.add(b * 8 * $bs);
                prefetch_group_block(next, b, $bs);
                let y = x.qs.as_ptr().add(b * QK) as *const __m128i;
                let ylo = _mm512_broadcast_i32x4(_mm_loadu_si128(y));
                let yhi = _mm512_broadcast_i32x4(_mm_loadu_si128(y.add(1)));
                let mut p = [_mm512_setzero_si512(); 2];
                for ($h, p) in p.iter_mut().enumerate() {
                    let (lo, hi): (__m512i, __m512i) = $codes;
                    *p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(*p, lo, ylo), hi, yhi);
                }
                let sum = _mm256_cvtepi32_ps(quad_sums(&p));
                let $dw = _mm256_cvtph_ps(_mm_loadu_si128($g as *const __m128i));
                let ow: __m256 = $ow;
                close_block32(sum, $dw, ow, x, b, &mut acc, &mut off);
            }
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, off));
            out
        }
    };
}

x8_rows_zmm!(
    x8_q4_0,
    18,
    |g, h| nibbles64(g.add(Q4_0_CODES + 64 * h)),
    |dw| { _mm256_mul_ps(_mm256_set1_ps(-8.0), dw) }
);
x8_rows_zmm!(
    x8_q4_1,
    20,
    |g, h| nibbles64(g.add(Q4_1_CODES + 64 * h)),
    |dw| {
        _mm256_cvtph_ps(_mm_loadu_si128(
            g.add(interleave::SECOND_AT) as *const __m128i
        ))
    }
);
x8_rows_zmm!(x8_q5_0, 22, |g, h| q5_0_codes_x8(g, h), |dw| {
    _mm256_mul_ps(_mm256_set1_ps(-16.0), dw)
});

/// [`q8_0_rows8`] with one token for a group of eight interleaved Q8_0 rows
/// ([`super::interleave`]), two rows to a 512-bit vector: each row's block sum is one
/// `vpdpbusd` of its codes made unsigned (+128) with the token's, less 128 times the token's
/// block sum, the same exact integer as `q8_0_rows8`'s, gathered into lane `r` by three rounds
/// of pairwise additions; then its floating-point steps in its order: the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn x8_q8_0(group: *const u8, next: *const u8, nb: usize, x: &Q8Row<'_>) -> [f32; 8] {
    let mut acc = _mm256_setzero_ps();
    let bias = _mm512_set1_epi8(-128);
    for b in 0..nb {
        let g = group.add(b * 8 * 34);
        prefetch_group_block(next, b, 34);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34 + 192) as *const i8);
        let y = _mm256_loadu_si256(x.qs.as_ptr().add(b * QK) as *const __m256i);
        let y = _mm512_broadcast_i64x4(y);
        // Lanes 0..8 of p[h]: row 2h's eight partial sums, lanes 8..16 row 2h + 1's.
        let p: [__m512i; 4] = std::array::from_fn(|h| {
            let w = _mm512_loadu_si512(g.add(Q8_0_CODES + 64 * h) as *const _);
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(w, bias), y)
        });
        // Rows 4k..4k + 4, four partial sums each, in lanes 4r..4r + 4 of q[k].
        let q: [__m512i; 2] = std::array::from_fn(|k| pair_halves(p[2 * k], p[2 * k + 1]));
        let isum = _mm256_sub_epi32(
            quad_sums(&q),
            _mm256_set1_epi32(128 * *x.sums.get_unchecked(b)),
        );
        let sum = _mm256_cvtepi32_ps(isum);
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(g as *const __m128i));
        let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.get_unchecked(b)));
        acc = _mm256_fmadd_ps(scale, sum, acc);
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, _mm256_setzero_ps()));
    out
}

/// One token (`xs` has one row) against rows `rows` of an interleaved matrix of `n` rows of
/// `row_bytes` bytes ([`super::interleave`]), with the instructions `dot` names: row `r`'s
/// result to `out[r]`. Whole groups of eight go through the kernels for that layout (AVX-512:
/// `x8_rows_zmm`'s, `x8_q8_0` or `x8_k`; otherwise `x8_rows`'s, `x8_q8_0_avx2` or
/// `x8_k_ymm`'s; a group only partly in `rows` is computed whole and only its rows in `rows`
/// stored), the rows after the last whole group, which keep the GGUF layout, through
/// [`dot_rows`]. Prefetches as `dot_rows` does, `then` included.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C and what `dot` names, with AVX-512 also what
/// [`x8_available`] asks for; `data` must hold `n` rows in that layout, `xs` the blocks of one
/// token matching them, `out` `n` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows_x8(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    dot: Dot,
    then: &[u8],
) {
    let bs = ty.block_bytes();
    let nb = row_bytes / bs;
    assert!(
        xs.rows() == 1
            && xs.blocks == nb * (ty.block_values() / QK)
            && xs.block == ty.block_values()
            && n * row_bytes <= data.len()
            && rows.end <= n
            && super::interleave::covers(ty)
    );
    let full = n / 8 * 8;
    let x = xs.row(0);
    let ahead = ahead_groups(row_bytes) * 8 * row_bytes;
    let mut r0 = rows.start / 8 * 8;
    while r0 < rows.end.min(full) {
        let group = data.as_ptr().add(r0 * row_bytes);
        let next = prefetch_at(data, then, r0 * row_bytes + ahead);
        let o = match (dot, ty) {
            (Dot::Avx512Vnni, BlockType::Q4_0) => x8_q4_0(group, next, nb, &x),
            (Dot::Avx512Vnni, BlockType::Q4_1) => x8_q4_1(group, next, nb, &x),
            (Dot::Avx512Vnni, BlockType::Q8_0) => x8_q8_0(group, next, nb, &x),
            (Dot::Avx512Vnni, BlockType::Q5_0) => x8_q5_0(group, next, nb, &x),
            (Dot::Avx512Vnni, BlockType::Q4_K) => x8_k::<K4>(group, next, nb, &x),
            (Dot::Avx512Vnni, BlockType::Q5_K) => x8_k::<K5>(group, next, nb, &x),
            (Dot::Avx512Vnni, _) => x8_k::<K6>(group, next, nb, &x),
            (Dot::AvxVnni, BlockType::Q4_0) => x8_q4_0_avxvnni(group, next, nb, &x),
            (Dot::AvxVnni, BlockType::Q4_1) => x8_q4_1_avxvnni(group, next, nb, &x),
            (Dot::AvxVnni, BlockType::Q5_0) => x8_q5_0_avxvnni(group, next, nb, &x),
            (Dot::AvxVnni, BlockType::Q4_K) => x8_k_avxvnni::<K4>(group, next, nb, &x),
            (Dot::AvxVnni, BlockType::Q5_K) => x8_k_avxvnni::<K5>(group, next, nb, &x),
            (Dot::AvxVnni, BlockType::Q6_K) => x8_k_avxvnni::<K6>(group, next, nb, &x),
            (_, BlockType::Q4_K) => x8_k_avx2::<K4>(group, next, nb, &x),
            (_, BlockType::Q5_K) => x8_k_avx2::<K5>(group, next, nb, &x),
            (_, BlockType::Q6_K) => x8_k_avx2::<K6>(group, next, nb, &x),
            (_, BlockType::Q4_0) => x8_q4_0_avx2(group, next, nb, &x),
            (_, BlockType::Q4_1) => x8_q4_1_avx2(group, next, nb, &x),
            (_, BlockType::Q5_0) => x8_q5_0_avx2(group, next, nb, &x),
            _ => x8_q8_0_avx2(group, next, nb, &x),
        };
        for r in r0.max(rows.start)..(r0 + 8).min(rows.end) {
            *out.add(r) = o[r - r0];
        }
        r0 += 8;
    }
    if rows.end > full {
        let tail = rows.start.max(full)..rows.end;
        dot_rows(ty, data, row_bytes, tail, xs, out, n, dot, then);
    }
}

/// [`dot_rows`] for a matrix held interleaved ([`super::interleave`]: its whole groups of
/// eight rows, the rest in the GGUF layout): one token through [`dot_rows_x8`]; a prompt
/// through the same tiles as GGUF rows, decoded a whole group at a time ([`group_block32`], or
/// row by row through [`decode_block_x8`] where a tile starts off a group; the k-quants row by
/// row through [`decode_k8_grouped`]: the same codes, scales and offsets), or with AVX-512
/// through [`super::avx512::dot_rows`].
///
/// # Safety
/// As [`dot_rows_x8`], for any number of tokens.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows_grouped(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    dot: Dot,
    then: &[u8],
) {
    if xs.rows() == 1 {
        return dot_rows_x8(ty, data, row_bytes, rows, xs, out, n, dot, then);
    }
    if dot == Dot::Avx512Vnni {
        return super::avx512::dot_rows(ty, data, row_bytes, rows, xs, out, n, n / 8 * 8);
    }
    assert!(n * row_bytes <= data.len() && super::interleave::covers(ty));
    dot_rows_in(ty, data, row_bytes, rows, xs, out, n, dot, then, n / 8 * 8);
}

/// The f16 at byte `at` of each of eight blocks, as f32, built in a register (writing the
/// values to memory and reading them back as one vector would stall on store forwarding).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn halves8(blocks: &[*const u8; 8], at: usize) -> __m256 {
    let h = |r: usize| (blocks[r].add(at) as *const u16).read_unaligned() as i32;
    let mut v = _mm_cvtsi32_si128(h(0));
    v = _mm_insert_epi16::<1>(v, h(1));
    v = _mm_insert_epi16::<2>(v, h(2));
    v = _mm_insert_epi16::<3>(v, h(3));
    v = _mm_insert_epi16::<4>(v, h(4));
    v = _mm_insert_epi16::<5>(v, h(5));
    v = _mm_insert_epi16::<6>(v, h(6));
    v = _mm_insert_epi16::<7>(v, h(7));
    _mm256_cvtph_ps(v)
}

/// [`tile8_product`] for Q8_0 read straight from the eight rows (its codes need no decoding, so
/// copying them into a tile first would only cost time): the same operations in the same order
/// per lane, so the same bits. `next` is where the rows to prefetch start (see `dot_rows`), read
/// as these are.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_rows8<const N: usize>(
    rows: &[*const u8; 8],
    next: *const u8,
    nb: usize,
    xs: &[Q8Row<'_>; N],
    out: &mut [[f32; 8]; N],
) {
    let mut acc = [_mm256_setzero_ps(); N];
    let ones = _mm256_set1_epi16(1);
    for b in 0..nb {
        let blocks: [*const u8; 8] = std::array::from_fn(|r| rows[r].add(b * 34));
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34 + 64) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34 + 128) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34 + 192) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 8 * 34 + 256) as *const i8);
        let dw = halves8(&blocks, 0);
        for t in 0..N {
            let x = &xs[t];
            let y = _mm256_loadu_si256(x.qs.as_ptr().add(b * QK) as *const __m256i);
            let mut p = [_mm256_setzero_si256(); 8];
            for r in 0..8 {
                let w = _mm256_loadu_si256(blocks[r].add(2) as *const __m256i);
                let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
                p[r] = _mm256_madd_epi16(pairs, ones);
            }
            let sum = _mm256_cvtepi32_ps(reduce8(&p));
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.get_unchecked(b)));
            acc[t] = _mm256_fmadd_ps(scale, sum, acc[t]);
        }
    }
    let zero = _mm256_setzero_ps();
    for t in 0..N {
        _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_add_ps(acc[t], zero));
    }
}

/// Block `b` of a row of a type with blocks of 32: its codes (as the AVX2 tiles store them), its
/// scale and its offset weight (see [`Tile8`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn decode_block(ty: BlockType, row: *const u8, b: usize) -> (__m256i, f32, f32) {
    match ty {
        BlockType::Q4_0 => {
            let blk = row.add(b * 18);
            (nibbles(blk.add(2)), half(blk), -8.0 * half(blk))
        }
        BlockType::Q4_1 => {
            let blk = row.add(b * 20);
            (nibbles(blk.add(4)), half(blk), half(blk.add(2)))
        }
        BlockType::Q5_0 => {
            let blk = row.add(b * 22);
            let q = _mm256_or_si256(nibbles(blk.add(6)), fifth_bits(blk.add(2)));
            (q, half(blk), -16.0 * half(blk))
        }
        BlockType::Q8_0 => {
            let blk = row.add(b * 34);
            (
                _mm256_loadu_si256(blk.add(2) as *const __m256i),
                half(blk),
                0.0,
            )
        }
        _ => (_mm256_setzero_si256(), 0.0, 0.0),
    }
}

/// [`decode_block`] for row `i` of an interleaved group block `g` ([`super::interleave`]): the
/// same codes, scale and offset weight.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn decode_block_x8(ty: BlockType, g: *const u8, i: usize) -> (__m256i, f32, f32) {
    let d = half(g.add(2 * i));
    let codes = g.add(interleave::codes_at(ty));
    let second = g.add(interleave::SECOND_AT);
    match ty {
        BlockType::Q4_0 => (nibbles(codes.add(16 * i)), d, -8.0 * d),
        BlockType::Q4_1 => (nibbles(codes.add(16 * i)), d, half(second.add(2 * i))),
        BlockType::Q5_0 => {
            // Row i's fifth bits from the words of its half, broadcast to both 128-bit
            // halves: byte b of the codes (element b) is in lane b / 8, which holds word
            // (b / 8) % 2 with the bit at i % 4 (elements 0-15) or 4 + i % 4 (16-31).
            let w = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                second.add(16 * (i / 4)) as *const __m128i
            ));
            let r = (i % 4) as i64;
            let up = _mm256_sllv_epi64(w, _mm256_set1_epi64x(4 - r));
            let down = _mm256_srlv_epi64(w, _mm256_set1_epi64x(r));
            let bits = _mm256_and_si256(_mm256_blend_epi32::<0xF0>(up, down), _mm256_set1_epi8(16));
            (
                _mm256_or_si256(nibbles(codes.add(16 * i)), bits),
                d,
                -16.0 * d,
            )
        }
        BlockType::Q8_0 => (
            _mm256_loadu_si256(codes.add(32 * i) as *const __m256i),
            d,
            0.0,
        ),
        _ => (_mm256_setzero_si256(), 0.0, 0.0),
    }
}

/// Eight rows' vectors of 32 bytes (`v[r]`) transposed as 32-bit words: word `r` of result `k`
/// is word `k` of `v[r]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn transpose8(v: &[__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(v[0], v[1]);
    let t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    let t2 = _mm256_unpacklo_epi32(v[2], v[3]);
    let t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    let t4 = _mm256_unpacklo_epi32(v[4], v[5]);
    let t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    let t6 = _mm256_unpacklo_epi32(v[6], v[7]);
    let t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    // u0: word 0 of rows 0-3 | word 4 of rows 0-3, u1: words 1 | 5, u2: 2 | 6, u3: 3 | 7.
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

/// Four activations (bytes `at..at + 4` of a token's codes) in every 32-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quad(x: &Q8Row<'_>, at: usize) -> __m256i {
    _mm256_set1_epi32((x.qs.as_ptr().add(at) as *const i32).read_unaligned())
}

/// The eight interleaved rows of `tile` (see [`Tile8::interleave`]) against `N` tokens: lane
/// `r` of each vector belongs to row `r`, and word `k` of a block meets the token's four
/// activations `4k..4k + 4` broadcast to every lane, so a row's block sum builds up in its own
/// lane with no horizontal additions. The 16-bit sums of `maddubs` are added as 16-bit values
/// before they are widened: eight of them for 4-bit codes (at most 8 · 2 · 15 · 127 = 30,480),
/// four at a time for Q5_0's 5-bit codes (`FIVE`: 4 · 2 · 31 · 127 = 31,496), so the integers
/// stay exact. Per block and token, `acc += (d_w · d_x) · sum` and `off += o_w · s_x` for the
/// eight rows at once; the result is `acc + off`. A row's result goes through the same
/// operations whichever lane or group of tokens it is in, so a token's result is bit-for-bit the
/// same alone or in a group (the prefix cache relies on it). `SIGNED`: Q8_0's signed codes,
/// through `maddubs` as |w| times y with w's sign, each sum widened at once (two could exceed
/// `i16::MAX`), and no offset (the result is `acc + 0`, as [`q8_0_rows8`] gives it).
/// Two functions: `tile8_product` for AVX2 and `tile8_product_avxvnni` for AVX-VNNI, where one
/// `vpdpbusd` multiplies a word's four codes by the four activations and adds them to the row's
/// sum (the same integers, in a third of the instructions).
macro_rules! tile8_product {
    ($name:ident, $feat:literal, $vnni:literal) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const N: usize, const FIVE: bool, const SIGNED: bool>(
            tile: &Tile8,
            nb: usize,
            xs: &[Q8Row<'_>; N],
            out: &mut [[f32; 8]; N],
        ) {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut off = [_mm256_setzero_ps(); N];
            let ones = _mm256_set1_epi16(1);
            for b in 0..nb {
                let q = tile.q.as_ptr().add(b * 8);
                let mut sum = [_mm256_setzero_si256(); N];
                let mut s16 = [_mm256_setzero_si256(); N];
                for k in 0..8 {
                    let w = *q.add(k);
                    if SIGNED {
                        let aw = _mm256_sign_epi8(w, w);
                        for t in 0..N {
                            let y = _mm256_sign_epi8(quad(&xs[t], b * QK + 4 * k), w);
                            sum[t] = if $vnni {
                                _mm256_dpbusd_avx_epi32(sum[t], aw, y)
                            } else {
                                let pairs = _mm256_maddubs_epi16(aw, y);
                                _mm256_add_epi32(sum[t], _mm256_madd_epi16(pairs, ones))
                            };
                        }
                        continue;
                    }
                    if $vnni {
                        for t in 0..N {
                            let y = quad(&xs[t], b * QK + 4 * k);
                            sum[t] = _mm256_dpbusd_avx_epi32(sum[t], w, y);
                        }
                        continue;
                    }
                    for t in 0..N {
                        let y = quad(&xs[t], b * QK + 4 * k);
                        s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, y));
                    }
                    if k == 7 || (FIVE && k == 3) {
                        for t in 0..N {
                            sum[t] = _mm256_add_epi32(sum[t], _mm256_madd_epi16(s16[t], ones));
                            s16[t] = _mm256_setzero_si256();
                        }
                    }
                }
                let dw = _mm256_loadu_ps(tile.d.as_ptr().add(b * 8));
                let ow = _mm256_loadu_ps(tile.o.as_ptr().add(b * 8));
                for t in 0..N {
                    let x = &xs[t];
                    let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.get_unchecked(b)));
                    acc[t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum[t]), acc[t]);
                    if !SIGNED {
                        off[t] = _mm256_fmadd_ps(ow, _mm256_set1_ps(*x.s.get_unchecked(b)), off[t]);
                    }
                }
            }
            for t in 0..N {
                _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_add_ps(acc[t], off[t]));
            }
        }
    };
}

tile8_product!(tile8_product, "avx2,fma,f16c", false);
tile8_product!(tile8_product_avxvnni, "avx2,fma,f16c,avxvnni", true);

/// The 8 scales and 8 mins of a Q4_K/Q5_K block from its 12 bytes at `p`, as the bytes of two
/// u64 (scale or min `j` in byte `j`): [`super::scalar::k4_scale_min`] on whole 32-bit words.
#[inline]
pub(crate) unsafe fn k4_scales_packed(p: *const u8) -> (u64, u64) {
    let w = |i: usize| (p.add(4 * i) as *const u32).read_unaligned();
    let (u0, u1, u2) = (w(0), w(1), w(2));
    let (low6, low4, top2) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x0303_0303);
    // Sub-blocks 0-3: the low six bits of bytes 0-3 (scales) and 4-7 (mins); 4-7: the nibbles of
    // bytes 8-11 with the top two bits of bytes 0-3 (scales) or 4-7 (mins) above them.
    let sc_hi = (u2 & low4) | (((u0 >> 6) & top2) << 4);
    let m_hi = ((u2 >> 4) & low4) | (((u1 >> 6) & top2) << 4);
    (
        (u0 & low6) as u64 | (sc_hi as u64) << 32,
        (u1 & low6) as u64 | (m_hi as u64) << 32,
    )
}

/// The 8 scales and 8 mins of a Q4_K/Q5_K block from its 12 bytes at `p`.
#[inline]
pub(crate) unsafe fn k4_scales(p: *const u8) -> ([u8; 8], [u8; 8]) {
    let (sc, m) = k4_scales_packed(p);
    (sc.to_le_bytes(), m.to_le_bytes())
}

/// 0x10 in each byte whose bit `j` (0..8) is set in `qh`, else 0: one shift of the 16-bit
/// lanes by a constant (once `j` is one) and a mask, as no bit crosses into the masked place
/// from the lane's other byte.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bit(qh: __m256i, j: usize) -> __m256i {
    let at4 = bit_to_4!(qh, j, _mm256_slli_epi16, _mm256_srli_epi16);
    _mm256_and_si256(at4, _mm256_set1_epi8(0x10))
}

/// `$qh`'s 16-bit lanes shifted so that bit `$j` (0..8) of each byte lands on bit 4 (left by
/// `4 - j`, or right by `j - 4`), with the vector width's shifts `$left` and `$right`: a shift
/// by a constant once `$j` is one.
macro_rules! bit_to_4 {
    ($qh:expr, $j:expr, $left:ident, $right:ident) => {
        match $j {
            0 => $left::<4>($qh),
            1 => $left::<3>($qh),
            2 => $left::<2>($qh),
            3 => $left::<1>($qh),
            4 => $qh,
            5 => $right::<1>($qh),
            6 => $right::<2>($qh),
            _ => $right::<3>($qh),
        }
    };
}
use bit_to_4;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn and_bytes(v: __m256i, mask: i8) -> __m256i {
    _mm256_and_si256(v, _mm256_set1_epi8(mask))
}

/// The k-quant types, as const parameters.
pub(crate) const K4: u8 = 0;
pub(crate) const K5: u8 = 1;
pub(crate) const K6: u8 = 2;

/// The 256 codes of the k-quant block at `blk` (`K`: [`K4`], [`K5`] or [`K6`]) as eight vectors
/// of 32 in value order (vector `j` holds values `32j..32j + 32`): Q4_K and Q5_K codes unsigned
/// (0..16, 0..32), Q6_K codes signed (`q - 32`, -32..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn k_codes<const K: u8>(blk: *const u8) -> [__m256i; 8] {
    k_codes_chunks::<K, 32>(blk.add(interleave::k_code_start(k_type(K))))
}

/// [`k_codes`] from a block's code bytes read 32 at a time, chunk `c` (GGUF's code bytes
/// `32c..32c + 32`) at `first + STRIDE · c`: 32 for a GGUF block (`first` its first code byte),
/// 64 for a row of an interleaved group, whose pair's two rows alternate by 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn k_codes_chunks<const K: u8, const STRIDE: usize>(
    first: *const u8,
) -> [__m256i; 8] {
    k_codes_chunks_by::<K, STRIDE, true>(first)
}

/// [`k_codes_chunks`] with Q6_K's codes signed (`q - 32`) when `SIGNED`, else as stored (0..64).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_codes_chunks_by<const K: u8, const STRIDE: usize, const SIGNED: bool>(
    first: *const u8,
) -> [__m256i; 8] {
    let chunk = |c: usize| _mm256_loadu_si256(first.add(STRIDE * c) as *const __m256i);
    let low4 = _mm256_set1_epi8(0x0f);
    let mut out = [_mm256_setzero_si256(); 8];
    if K == K6 {
        let m32 = _mm256_set1_epi8(32);
        for n in 0..2 {
            let ql0 = chunk(2 * n);
            let ql1 = chunk(2 * n + 1);
            let qh = chunk(4 + n);
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, low4),
                    _mm256_slli_epi16::<4>(and_bytes(qh, 0x03)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, low4),
                    _mm256_slli_epi16::<2>(and_bytes(qh, 0x0c)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low4),
                    and_bytes(qh, 0x30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low4),
                    _mm256_srli_epi16::<2>(and_bytes(qh, 0xc0_u8 as i8)),
                ),
            ];
            for (k, qk) in q.into_iter().enumerate() {
                out[4 * n + k] = if SIGNED { _mm256_sub_epi8(qk, m32) } else { qk };
            }
        }
        return out;
    }
    // Q5_K's fifth bits are its first chunk, its nibbles the next four.
    let nibbles = if K == K5 { 1 } else { 0 };
    let qh = if K == K5 {
        chunk(0)
    } else {
        _mm256_setzero_si256()
    };
    for p in 0..4 {
        let v = chunk(nibbles + p);
        let mut lo = _mm256_and_si256(v, low4);
        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low4);
        if K == K5 {
            lo = _mm256_or_si256(lo, fifth_bit(qh, 2 * p));
            hi = _mm256_or_si256(hi, fifth_bit(qh, 2 * p + 1));
        }
        out[2 * p] = lo;
        out[2 * p + 1] = hi;
    }
    out
}

/// Bytes per block of a k-quant type.
pub(crate) const fn k_bytes(k: u8) -> usize {
    match k {
        K4 => 144,
        K5 => 176,
        _ => 210,
    }
}

/// Lane `r` = `Σ_j m[r][j] · y[j]` for eight rows' mins (eight u16 each) and one token's eight
/// sub-block sums `y` (i16). Exact: integer products and sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mins8(m: &[__m128i; 8], y: __m128i) -> __m256i {
    let y = _mm256_set_m128i(y, y);
    let v = |a: usize| _mm256_madd_epi16(_mm256_set_m128i(m[a + 1], m[a]), y);
    // Lanes of h: rows 0, 2, 4, 6 in the low half, 1, 3, 5, 7 in the high half.
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v(0), v(2)), _mm256_hadd_epi32(v(4), v(6)));
    _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// The eight multipliers of a k-quant block's sub-blocks of 32 for `madd` (each 16-bit lane
/// holds the scale of the code pair it multiplies: one scale per 32 codes, or per 16 for Q6_K)
/// and, for Q4_K and Q5_K, the eight mins as u16. The scales are widened to 16 bits in one
/// vector and each multiplier picked from it with one shuffle.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_muls<const K: u8>(blk: *const u8) -> ([__m256i; 8], __m128i) {
    let mut muls = [_mm256_setzero_si256(); 8];
    // Bytes `i` and `i + 1` of each 128-bit half in every 16-bit lane of that half.
    let pick = |lo: i16, hi: i16| {
        _mm256_set_m128i(
            _mm_set1_epi16(hi | (hi + 1) << 8),
            _mm_set1_epi16(lo | (lo + 1) << 8),
        )
    };
    if K == K6 {
        let s = _mm_loadu_si128(blk.add(192) as *const __m128i);
        return (k6_muls(_mm256_cvtepi8_epi16(s)), _mm_setzero_si128());
    }
    let (sc, m) = k4_scales_packed(blk.add(4));
    let s = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
    for (j, mul) in muls.iter_mut().enumerate() {
        let i = 2 * j as i16;
        *mul = _mm256_shuffle_epi8(s, pick(i, i));
    }
    (muls, _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64)))
}
/// Q6_K's eight `madd` multipliers from its sixteen signed scales widened to i16 (`w`, scale k
/// in lane k; one per 16 codes): sub-block j's first half takes scale 2j (the multiplier's low
/// 128 bits), its second half 2j + 1, each picked by one shuffle.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k6_muls(w: __m256i) -> [__m256i; 8] {
    let first = _mm256_permute2x128_si256::<0x00>(w, w);
    let second = _mm256_permute2x128_si256::<0x11>(w, w);
    std::array::from_fn(|j| {
        let i = 4 * (j % 4) as i16;
        let (lo, hi) = (i | (i + 1) << 8, (i + 2) | (i + 3) << 8);
        let pick = _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo));
        _mm256_shuffle_epi8(if j < 4 { first } else { second }, pick)
    })
}

/// Row `r`'s block `sb` against `N` tokens: `p[t][r] += Σ_j (codes_j · y_tj) · mul_j` in 32-bit
/// lanes, exact. Q6_K's signed codes go through `maddubs` as |w| times y with w's sign. Two
/// functions: `k_row_block` for AVX2 (the 16-bit products widened and added by `madd` and
/// `add`) and `k_row_block_avxvnni` for AVX-VNNI, where one `vpdpwssd` does both (the same
/// integers). CPUs with AVX-512 VNNI take [`k_rows8_zmm`], two rows to a vector.
macro_rules! k_row_block {
    ($name:ident, $feat:literal, |$p:ident, $pairs:ident, $mul:ident| $step:expr) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const N: usize, const K: u8>(
            codes: &[__m256i; 8],
            muls: &[__m256i; 8],
            xs: &[Q8Row<'_>; N],
            sb: usize,
            p: &mut [[__m256i; 8]; N],
            r: usize,
        ) {
            for j in 0..8 {
                let w = codes[j];
                let aw = if K == K6 { _mm256_sign_epi8(w, w) } else { w };
                for t in 0..N {
                    let y = _mm256_loadu_si256(
                        xs[t].qs.as_ptr().add(sb * 256 + 32 * j) as *const __m256i
                    );
                    let y = if K == K6 { _mm256_sign_epi8(y, w) } else { y };
                    let $pairs = _mm256_maddubs_epi16(aw, y);
                    let ($p, $mul) = (p[t][r], muls[j]);
                    p[t][r] = $step;
                }
            }
        }
    };
}

k_row_block!(k_row_block, "avx2,fma,f16c", |p, pairs, mul| {
    _mm256_add_epi32(p, _mm256_madd_epi16(pairs, mul))
});
k_row_block!(
    k_row_block_avxvnni,
    "avx2,fma,f16c,avxvnni",
    |p, pairs, mul| _mm256_dpwssd_avx_epi32(p, pairs, mul)
);

/// Ends block `sb` of eight k-quant rows for `N` tokens: lane `r` of `reduce8(p[t])` is row
/// `r`'s exact integer sum, then `acc += (d · d_x) · sum` and, for Q4_K and Q5_K,
/// `off += (-dmin · d_x) · Σ_j m_j Σy_j` (`nd` holds `-dmin`). These are the portable path's
/// operations in its order (separate multiplies and adds, no fused ones), so every path gives
/// the same bits, and a token's result does not depend on the tokens computed with it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn k_close8<const N: usize, const K: u8>(
    p: &[[__m256i; 8]; N],
    mins: &[__m128i; 8],
    d: __m256,
    nd: __m256,
    xs: &[Q8Row<'_>; N],
    sb: usize,
    acc: &mut [__m256; N],
    off: &mut [__m256; N],
) {
    let sums: [__m256i; N] = std::array::from_fn(|t| reduce8(&p[t]));
    k_close::<N, K>(&sums, mins, d, nd, xs, sb, acc, off);
}

/// [`k_close8`] with each row's integer sum already in its lane (`sums[t]`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn k_close<const N: usize, const K: u8>(
    sums: &[__m256i; N],
    mins: &[__m128i; 8],
    d: __m256,
    nd: __m256,
    xs: &[Q8Row<'_>; N],
    sb: usize,
    acc: &mut [__m256; N],
    off: &mut [__m256; N],
) {
    for t in 0..N {
        let (a, o) = (&mut acc[t], &mut off[t]);
        k_close_one::<K>(sums[t], |y| mins8(mins, y), d, nd, &xs[t], sb, a, o);
    }
}

/// One token's end of block `sb` for eight k-quant rows, the steps [`k_close`] names: `sums`
/// each row's integer sum in its lane, `msums(y)` each row's `Σ_j m_j Σy_j` from the token's
/// eight sub-block sums `y` (i16; not asked for Q6_K).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn k_close_one<const K: u8>(
    sums: __m256i,
    msums: impl FnOnce(__m128i) -> __m256i,
    d: __m256,
    nd: __m256,
    x: &Q8Row<'_>,
    sb: usize,
    acc: &mut __m256,
    off: &mut __m256,
) {
    let dx = _mm256_set1_ps(*x.d.get_unchecked(sb));
    let isum = _mm256_cvtepi32_ps(sums);
    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_mul_ps(d, dx), isum));
    if K != K6 {
        let s = x.sums.as_ptr().add(sb * 8);
        let y = _mm_packs_epi32(
            _mm_loadu_si128(s as *const __m128i),
            _mm_loadu_si128(s.add(4) as *const __m128i),
        );
        let msum = _mm256_cvtepi32_ps(msums(y));
        *off = _mm256_add_ps(*off, _mm256_mul_ps(_mm256_mul_ps(nd, dx), msum));
    }
}

/// Eight k-quant rows (`K`) against `N` tokens quantized in blocks of 256, read in place (for a
/// single token, where decoding into a tile would cost more than it saves): lane `r` of each
/// vector belongs to row `r`, and each block ends in [`k_close8`]. `next` is where the rows to
/// prefetch start (see `dot_rows`), read as these are. One function per instruction set, as
/// for [`k_row_block`].
macro_rules! k_rows8 {
    ($name:ident, $feat:literal, $block:ident) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const N: usize, const K: u8>(
            rows: &[*const u8; 8],
            next: *const u8,
            nsb: usize,
            xs: &[Q8Row<'_>; N],
            out: &mut [[f32; 8]; N],
        ) {
            let bytes = k_bytes(K);
            let mut acc = [_mm256_setzero_ps(); N];
            let mut off = [_mm256_setzero_ps(); N];
            let sign = _mm256_set1_ps(-0.0);
            for sb in 0..nsb {
                let blocks: [*const u8; 8] = std::array::from_fn(|r| rows[r].add(sb * bytes));
                let ahead = next.wrapping_add(sb * 8 * bytes);
                let mut p = [[_mm256_setzero_si256(); 8]; N];
                let mut mins = [_mm_setzero_si128(); 8];
                for r in 0..8 {
                    let blk = blocks[r];
                    // An eighth of the next rows' share, spread over the rows' work.
                    prefetch_k_block(ahead.wrapping_add(r * bytes), bytes);
                    let codes = k_codes::<K>(blk);
                    let (muls, m) = k_muls::<K>(blk);
                    mins[r] = m;
                    $block::<N, K>(&codes, &muls, xs, sb, &mut p, r);
                }
                let d = halves8(&blocks, if K == K6 { 208 } else { 0 });
                let nd = _mm256_xor_ps(halves8(&blocks, 2), sign);
                k_close8::<N, K>(&p, &mins, d, nd, xs, sb, &mut acc, &mut off);
            }
            for t in 0..N {
                _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_add_ps(acc[t], off[t]));
            }
        }
    };
}

k_rows8!(k_rows8, "avx2,fma,f16c", k_row_block);
k_rows8!(
    k_rows8_avxvnni,
    "avx2,fma,f16c,avxvnni",
    k_row_block_avxvnni
);

/// The eight rows' `d` and `-dmin` of a k-quant group block `g` ([`super::interleave`]), as f32
/// (`-dmin` is not a value for Q6_K, which has none).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_group_d_nd(g: *const u8) -> (__m256, __m256) {
    let halves = |at: usize| _mm256_cvtph_ps(_mm_loadu_si128(g.add(at) as *const __m128i));
    (
        halves(0),
        _mm256_xor_ps(halves(interleave::K_DMIN_AT), _mm256_set1_ps(-0.0)),
    )
}

/// Q6_K: a token's sums of each 16 activations of a block (`ys`: its eight vectors of 32), as
/// i16 in value order (sum `k` in 16-bit lane `k`). Exact: at most 16 · 127 in magnitude.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sums16(ys: &[__m256i; 8]) -> __m256i {
    let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
    // Vector j: lanes 0-3 the four quarters of sum 2j, lanes 4-7 those of sum 2j + 1.
    let q: [__m256i; 8] =
        std::array::from_fn(|j| _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, ys[j]), ones16));
    let h = |a: __m256i, b: __m256i| _mm256_hadd_epi32(a, b);
    // Low halves: sums 0, 2, 4, 6 (then 8, 10, 12, 14); high halves: the odd ones.
    let even_odd = _mm256_packs_epi32(
        h(h(q[0], q[1]), h(q[2], q[3])),
        h(h(q[4], q[5]), h(q[6], q[7])),
    );
    // Sums 0-7's evens and odds in the low half, 8-15's in the high half, then interleaved.
    let halves = _mm256_permute4x64_epi64::<0b11_01_10_00>(even_odd);
    let order = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
    _mm256_shuffle_epi8(halves, _mm256_broadcastsi128_si256(order))
}

/// [`k_rows8`] with one token for a group of eight interleaved k-quant rows
/// ([`super::interleave`]), for CPUs without AVX-512 (what [`x8_k`] is for those with it): each
/// row's codes are read 32 bytes at a time from its pair, the eight `d` and `dmin` are two
/// 16-byte loads where `k_rows8` gathers sixteen halves, and Q4_K's and Q5_K's scales and mins
/// of all eight rows come out of the two planes with a dozen vector instructions where
/// `k_rows8` unpacks each row's with integer arithmetic. Q6_K's codes go in unsigned (0..64)
/// and `32 · Σ_k sc_k · Σy_k` is taken off each row's sum once per block, as `x8_k` does, where
/// `k_rows8` takes each code's sign with two instructions per vector. The same exact integer
/// sums, then [`k_close_one`]'s floating-point steps in its order: the same bits. One function
/// per instruction set, as for [`k_row_block`].
macro_rules! x8_k_ymm {
    ($name:ident, $feat:literal, |$p:ident, $pairs:ident, $mul:ident| $step:expr) => {
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const K: u8>(
            group: *const u8,
            next: *const u8,
            nsb: usize,
            x: &Q8Row<'_>,
        ) -> [f32; 8] {
            let ty = k_type(K);
            let bytes = k_bytes(K);
            let mut acc = _mm256_setzero_ps();
            let mut off = _mm256_setzero_ps();
            let (low4, top2) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
            for sb in 0..nsb {
                let g = group.add(sb * 8 * bytes);
                let ahead = next.wrapping_add(sb * 8 * bytes);
                let ys: [__m256i; 8] = std::array::from_fn(|j| {
                    _mm256_loadu_si256(x.qs.as_ptr().add(sb * 256 + 32 * j) as *const __m256i)
                });
                let y16 = if K == K6 {
                    sums16(&ys)
                } else {
                    _mm256_setzero_si256()
                };
                // Q4_K, Q5_K: scale / min j of row r in byte 8(r % 4) + j of vector r / 4.
                let (sc, mn) = if K == K6 {
                    ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2])
                } else {
                    let plane = |at: usize| _mm256_loadu_si256(g.add(at) as *const __m256i);
                    let (low0, low1) = (
                        plane(interleave::K_LOW_AT),
                        plane(interleave::K_LOW_AT + 32),
                    );
                    let high = plane(interleave::K_HIGH_AT);
                    let nib = |v: __m256i| _mm256_and_si256(v, low4);
                    let top = |v: __m256i| _mm256_and_si256(v, top2);
                    (
                        [
                            _mm256_or_si256(nib(low0), top(_mm256_slli_epi16::<4>(high))),
                            _mm256_or_si256(nib(low1), top(_mm256_slli_epi16::<2>(high))),
                        ],
                        [
                            _mm256_or_si256(nib(_mm256_srli_epi16::<4>(low0)), top(high)),
                            _mm256_or_si256(
                                nib(_mm256_srli_epi16::<4>(low1)),
                                top(_mm256_srli_epi16::<2>(high)),
                            ),
                        ],
                    )
                };
                // Q4_K, Q5_K: every scale as a `madd` multiplier (zero-extended to 16 bits,
                // twice) in a 32-bit word, so that each row's eight multipliers below are
                // broadcast loads rather than shuffles. Rows 2q and 2q + 1's scales j < 4 at
                // 16q + 4(r % 2) + j, scales j >= 4 eight words on.
                let twice: [__m256i; 8] = if K == K6 {
                    [_mm256_setzero_si256(); 8]
                } else {
                    std::array::from_fn(|i| {
                        let (q, v) = (i / 2, sc[i / 4]);
                        let half = if q % 2 == 0 {
                            _mm256_castsi256_si128(v)
                        } else {
                            _mm256_extracti128_si256::<1>(v)
                        };
                        let w = _mm256_cvtepu8_epi16(half);
                        if i % 2 == 0 {
                            _mm256_unpacklo_epi16(w, w)
                        } else {
                            _mm256_unpackhi_epi16(w, w)
                        }
                    })
                };
                let mut p = [_mm256_setzero_si256(); 8];
                for (r, pr) in p.iter_mut().enumerate() {
                    // An eighth of the next rows' share per row, spread over the rows' work.
                    prefetch_k_block(ahead.wrapping_add(r * bytes), bytes);
                    let first = g.add(interleave::k_pair_at(ty, r / 2) + 32 * (r % 2));
                    // Q6_K's codes unsigned (0..64): 32 times each 16 activations' sum times
                    // their scale is taken off below.
                    let codes = k_codes_chunks_by::<K, 64, false>(first);
                    // Q6_K: the row's 16 scales as i16 too, for the correction below.
                    let (w, muls): (__m256i, [__m256i; 8]) = if K == K6 {
                        let s6 = _mm_loadu_si128(
                            g.add(interleave::K6_SCALES_AT + 16 * r) as *const __m128i
                        );
                        let w = _mm256_cvtepi8_epi16(s6);
                        (w, k6_muls(w))
                    } else {
                        let words = twice.as_ptr() as *const i32;
                        let row = words.add(16 * (r / 2) + 4 * (r % 2));
                        let muls = std::array::from_fn(|j| {
                            _mm256_set1_epi32(*row.add(8 * (j / 4) + j % 4))
                        });
                        (_mm256_setzero_si256(), muls)
                    };
                    let mut s = _mm256_setzero_si256();
                    for j in 0..8 {
                        let ($p, $pairs, $mul) =
                            (s, _mm256_maddubs_epi16(codes[j], ys[j]), muls[j]);
                        s = $step;
                    }
                    if K == K6 {
                        // Σ_k sc_k · 32 · (sum of the 16 activations of scale k), in lanes.
                        s = _mm256_sub_epi32(s, _mm256_slli_epi32::<5>(_mm256_madd_epi16(w, y16)));
                    }
                    *pr = s;
                }
                let isum = reduce8(&p);
                let (d, nd) = k_group_d_nd(g);
                // Each row's mins as u16 against the token's eight sums, as `mins8` does.
                let msums = |y: __m128i| {
                    let y = _mm256_broadcastsi128_si256(y);
                    let v = |m: __m128i| _mm256_madd_epi16(_mm256_cvtepu8_epi16(m), y);
                    let (v01, v23) = (
                        v(_mm256_castsi256_si128(mn[0])),
                        v(_mm256_extracti128_si256::<1>(mn[0])),
                    );
                    let (v45, v67) = (
                        v(_mm256_castsi256_si128(mn[1])),
                        v(_mm256_extracti128_si256::<1>(mn[1])),
                    );
                    let h =
                        _mm256_hadd_epi32(_mm256_hadd_epi32(v01, v23), _mm256_hadd_epi32(v45, v67));
                    _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
                };
                k_close_one::<K>(isum, msums, d, nd, x, sb, &mut acc, &mut off);
            }
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, off));
            out
        }
    };
}

x8_k_ymm!(x8_k_avx2, "avx2,fma,f16c", |p, pairs, mul| {
    _mm256_add_epi32(p, _mm256_madd_epi16(pairs, mul))
});
x8_k_ymm!(x8_k_avxvnni, "avx2,fma,f16c,avxvnni", |p, pairs, mul| {
    _mm256_dpwssd_avx_epi32(p, pairs, mul)
});

/// Two 256-bit loads at `at` of blocks `a` and `b`: `a`'s in the low half, `b`'s in the high.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load2(a: *const u8, b: *const u8, at: usize) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_loadu_si256(a.add(at) as *const __m256i)),
        _mm256_loadu_si256(b.add(at) as *const __m256i),
    )
}

/// [`k_codes`] of two k-quant blocks at once: vector `j` holds block `a`'s vector `j` in its
/// low 256 bits and block `b`'s in its high 256 bits (the same codes, half the instructions).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k_codes2<const K: u8>(a: *const u8, b: *const u8) -> [__m512i; 8] {
    k_codes2_by::<K, true>(|at| load2(a, b, at))
}

/// [`k_codes2`] with its 512-bit vectors of the two blocks' bytes at each GGUF offset `at` (a
/// multiple of 32) given by `load2`. Q6_K's codes are signed (`q - 32`) when `SIGNED`, else as
/// stored (0..64).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k_codes2_by<const K: u8, const SIGNED: bool>(
    load2: impl Fn(usize) -> __m512i,
) -> [__m512i; 8] {
    let low4 = _mm512_set1_epi8(0x0f);
    let bits = |v: __m512i, m: u8| _mm512_and_si512(v, _mm512_set1_epi8(m as i8));
    let mut out = [_mm512_setzero_si512(); 8];
    if K == K6 {
        let m32 = _mm512_set1_epi8(32);
        for n in 0..2 {
            let ql0 = load2(64 * n);
            let ql1 = load2(64 * n + 32);
            let qh = load2(128 + 32 * n);
            let q = [
                _mm512_or_si512(
                    _mm512_and_si512(ql0, low4),
                    _mm512_slli_epi16::<4>(bits(qh, 0x03)),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(ql1, low4),
                    _mm512_slli_epi16::<2>(bits(qh, 0x0c)),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(ql0), low4),
                    bits(qh, 0x30),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(ql1), low4),
                    _mm512_srli_epi16::<2>(bits(qh, 0xc0)),
                ),
            ];
            for (k, qk) in q.into_iter().enumerate() {
                out[4 * n + k] = if SIGNED { _mm512_sub_epi8(qk, m32) } else { qk };
            }
        }
        return out;
    }
    let codes = if K == K5 { 48 } else { 16 };
    let qh = if K == K5 {
        load2(16)
    } else {
        _mm512_setzero_si512()
    };
    // 0x10 in each byte whose bit `j` is set in `qh` (as `fifth_bit`).
    let fifth = |j: usize| {
        let at4 = bit_to_4!(qh, j, _mm512_slli_epi16, _mm512_srli_epi16);
        _mm512_and_si512(at4, _mm512_set1_epi8(0x10))
    };
    for p in 0..4 {
        let v = load2(codes + 32 * p);
        let mut lo = _mm512_and_si512(v, low4);
        let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low4);
        if K == K5 {
            lo = _mm512_or_si512(lo, fifth(2 * p));
            hi = _mm512_or_si512(hi, fifth(2 * p + 1));
        }
        out[2 * p] = lo;
        out[2 * p + 1] = hi;
    }
    out
}

/// [`k_muls`] of two k-quant blocks at once, laid out as [`k_codes2`] lays out their codes, and
/// the mins of `a` and of `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k_muls2<const K: u8>(a: *const u8, b: *const u8) -> ([__m512i; 8], __m128i, __m128i) {
    // `x` in both quarters of the low half, `y` in both of the high half.
    let both = |x: __m128i, y: __m128i| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_broadcastsi128_si256(x)),
            _mm256_broadcastsi128_si256(y),
        )
    };
    if K == K6 {
        let w = _mm512_cvtepi8_epi16(_mm256_set_m128i(
            _mm_loadu_si128(b.add(192) as *const __m128i),
            _mm_loadu_si128(a.add(192) as *const __m128i),
        ));
        return (k6_muls2(w), _mm_setzero_si128(), _mm_setzero_si128());
    }
    let (sca, ma) = k4_scales_packed(a.add(4));
    let (scb, mb) = k4_scales_packed(b.add(4));
    let widen = |v: u64| _mm_cvtepu8_epi16(_mm_cvtsi64_si128(v as i64));
    let s = both(widen(sca), widen(scb));
    let muls = std::array::from_fn(|j| {
        let i = 2 * j as i16;
        _mm512_shuffle_epi8(s, quarter_pick(i, i))
    });
    (muls, widen(ma), widen(mb))
}

/// Q6_K's multipliers for two rows sharing each 512-bit vector as [`k_codes2`] lays them out,
/// from their sixteen scales as i16 (`w`: the first row's in the low half, the second's in the
/// high half): sub-block `j`'s first 16 codes take scale `2j`, its last 16 scale `2j + 1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k6_muls2(w: __m512i) -> [__m512i; 8] {
    // Scales 0-7 of each row in both quarters of its half, then scales 8-15.
    let first = _mm512_shuffle_i32x4::<0b10_10_00_00>(w, w);
    let second = _mm512_shuffle_i32x4::<0b11_11_01_01>(w, w);
    std::array::from_fn(|j| {
        let i = 4 * (j % 4) as i16;
        let src = if j < 4 { first } else { second };
        _mm512_shuffle_epi8(src, quarter_pick(i, i + 2))
    })
}

/// Bytes `i` and `i + 1` of each 128-bit quarter in every 16-bit lane of that quarter: `lo` in
/// the first and third quarters, `hi` in the second and fourth.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn quarter_pick(lo: i16, hi: i16) -> __m512i {
    _mm512_broadcast_i64x4(_mm256_set_m128i(
        _mm_set1_epi16(hi | (hi + 1) << 8),
        _mm_set1_epi16(lo | (lo + 1) << 8),
    ))
}

/// [`k_rows8`] for CPUs with AVX-512 VNNI, BW and VL: rows `k` and `k + 4` share each 512-bit
/// vector, so decoding the codes and scales and the products take half the instructions; the
/// k-quant rows are bound by instructions more than by memory on a core that reads 35 GB/s.
/// Each row's block sum is the same exact integer (Q6_K's signs taken by a mask, as AVX-512
/// has no byte `sign`), closed by [`k_close8`]: the same bits as every other path.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k_rows8_zmm<const N: usize, const K: u8>(
    rows: &[*const u8; 8],
    next: *const u8,
    nsb: usize,
    xs: &[Q8Row<'_>; N],
    out: &mut [[f32; 8]; N],
) {
    let bytes = k_bytes(K);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut off = [_mm256_setzero_ps(); N];
    let sign = _mm256_set1_ps(-0.0);
    for sb in 0..nsb {
        let blocks: [*const u8; 8] = std::array::from_fn(|r| rows[r].add(sb * bytes));
        let ahead = next.wrapping_add(sb * 8 * bytes);
        // Each token's activations for sub-block j in both halves.
        let ys: [[__m512i; 8]; N] = std::array::from_fn(|t| {
            std::array::from_fn(|j| {
                _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    xs[t].qs.as_ptr().add(sb * 256 + 32 * j) as *const __m256i
                ))
            })
        });
        let mut p = [[_mm256_setzero_si256(); 8]; N];
        let mut mins = [_mm_setzero_si128(); 8];
        for k in 0..4 {
            // An eighth of the next rows' share per row, spread over the rows' work.
            for r in [k, k + 4] {
                prefetch_k_block(ahead.wrapping_add(r * bytes), bytes);
            }
            let codes = k_codes2::<K>(blocks[k], blocks[k + 4]);
            let (muls, ma, mb) = k_muls2::<K>(blocks[k], blocks[k + 4]);
            (mins[k], mins[k + 4]) = (ma, mb);
            for t in 0..N {
                let mut s = _mm512_setzero_si512();
                for j in 0..8 {
                    let w = codes[j];
                    let (aw, y) = if K == K6 {
                        // |w| times y with w's sign (w is 0 where |w| is, so its product too).
                        let negative = _mm512_movepi8_mask(w);
                        let y = ys[t][j];
                        (
                            _mm512_abs_epi8(w),
                            _mm512_mask_sub_epi8(y, negative, _mm512_setzero_si512(), y),
                        )
                    } else {
                        (w, ys[t][j])
                    };
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(aw, y), muls[j]);
                }
                p[t][k] = _mm512_castsi512_si256(s);
                p[t][k + 4] = _mm512_extracti64x4_epi64::<1>(s);
            }
        }
        let d = halves8(&blocks, if K == K6 { 208 } else { 0 });
        let nd = _mm256_xor_ps(halves8(&blocks, 2), sign);
        k_close8::<N, K>(&p, &mins, d, nd, xs, sb, &mut acc, &mut off);
    }
    for t in 0..N {
        _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_add_ps(acc[t], off[t]));
    }
}

/// The block type of a k-quant kernel's `K`.
pub(crate) const fn k_type(k: u8) -> BlockType {
    match k {
        K4 => BlockType::Q4_K,
        K5 => BlockType::Q5_K,
        _ => BlockType::Q6_K,
    }
}

/// `a` in every 16-bit lane of the low half, `b` in every one of the high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn halves16(a: i16, b: i16) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi16(a)),
        _mm256_set1_epi16(b),
    )
}

/// [`k_rows8_zmm`] with one token for a group of eight interleaved k-quant rows
/// ([`super::interleave`]). Rows `2h` and `2h + 1` share each 512-bit vector (as rows `k` and
/// `k + 4` do there), but their codes are one 64-byte load where that kernel makes two and an
/// insert, the eight `d` and `dmin` two loads where it gathers sixteen halves, and Q4_K's and
/// Q5_K's scales and mins of all eight rows come out of two planes with a few vector
/// instructions where that kernel unpacks each row's with integer arithmetic. Q6_K's codes go
/// in unsigned (0..64, so `maddubs` takes them as they are) and `32 · Σ_k sc_k · Σy_k` (`y_k`
/// the 16 activations of scale `k`) is taken off each row's sum once per block, rather than
/// each code's sign handled with three instructions per vector. The same exact integer sums,
/// then [`k_close`]'s floating-point steps in its order: the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn x8_k<const K: u8>(
    group: *const u8,
    next: *const u8,
    nsb: usize,
    x: &Q8Row<'_>,
) -> [f32; 8] {
    let ty = k_type(K);
    let bytes = k_bytes(K);
    let start = interleave::k_code_start(ty);
    let mut acc = _mm256_setzero_ps();
    let mut off = _mm256_setzero_ps();
    let (low4, top2) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    // Per 16-bit lane, the shifts that bring a plane byte's top bits to bits 4-5: for the scales
    // bits 0-1 (first 32 bytes) or 2-3 (last 32) left, for the mins bits 4-5 or 6-7 right.
    let (sc_shift, mn_shift) = (halves16(4, 2), halves16(0, 2));
    for sb in 0..nsb {
        let g = group.add(sb * 8 * bytes);
        let ahead = next.wrapping_add(sb * 8 * bytes);
        let ys: [__m512i; 8] = std::array::from_fn(|j| {
            _mm512_broadcast_i64x4(_mm256_loadu_si256(
                x.qs.as_ptr().add(sb * 256 + 32 * j) as *const __m256i
            ))
        });
        // Q6_K: the token's sums of each 16 activations (i16, in both halves): four bytes at a
        // time, then adjacent sums paired twice.
        let y16 = if K == K6 {
            let ones = _mm512_set1_epi8(1);
            let q: [__m512i; 4] = std::array::from_fn(|i| {
                let y = _mm512_loadu_si512(x.qs.as_ptr().add(sb * 256 + 64 * i) as *const _);
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, y)
            });
            let sums = pair_halves(pair_halves(q[0], q[1]), pair_halves(q[2], q[3]));
            _mm512_broadcast_i64x4(_mm512_cvtepi32_epi16(sums))
        } else {
            _mm512_setzero_si512()
        };
        // Q4_K, Q5_K: scale / min j of row r in byte 8r + j (rows 2h, 2h + 1 in lane h).
        let (sc, mn) = if K == K6 {
            (_mm512_setzero_si512(), _mm512_setzero_si512())
        } else {
            let low = _mm512_loadu_si512(g.add(interleave::K_LOW_AT) as *const _);
            let high = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                g.add(interleave::K_HIGH_AT) as *const __m256i
            ));
            (
                _mm512_or_si512(
                    _mm512_and_si512(low, low4),
                    _mm512_and_si512(_mm512_sllv_epi16(high, sc_shift), top2),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(low), low4),
                    _mm512_and_si512(_mm512_srlv_epi16(high, mn_shift), top2),
                ),
            )
        };
        let mut p = [_mm512_setzero_si512(); 4];
        for (h, ph) in p.iter_mut().enumerate() {
            // An eighth of the next rows' share per row, spread over the rows' work.
            for r in [2 * h, 2 * h + 1] {
                prefetch_k_block(ahead.wrapping_add(r * bytes), bytes);
            }
            let pair = g.add(interleave::k_pair_at(ty, h));
            // Q6_K's codes unsigned (0..64): 32 times each 16 activations' sum times their
            // scale is taken off below, rather than each code's sign handled here.
            let codes = k_codes2_by::<K, false>(|at| {
                _mm512_loadu_si512(pair.add(2 * (at - start)) as *const _)
            });
            // Q6_K: the pair's 16 scales as i16, row 2h's in the low half.
            let w = if K == K6 {
                _mm512_cvtepi8_epi16(_mm256_loadu_si256(
                    g.add(interleave::K6_SCALES_AT + 32 * h) as *const __m256i
                ))
            } else {
                _mm512_setzero_si512()
            };
            let muls: [__m512i; 8] = if K == K6 {
                k6_muls2(w)
            } else {
                // Lane h (rows 2h, 2h + 1) in every lane; scale j of row 2h (byte j) in the low
                // half, of row 2h + 1 (byte 8 + j) in the high half, zero-extended.
                let two = _mm512_set1_epi64(2 * h as i64);
                let lane = _mm512_add_epi64(two, _mm512_setr_epi64(0, 1, 0, 1, 0, 1, 0, 1));
                let both = _mm512_permutexvar_epi64(lane, sc);
                let zero_high = |i: usize| i as i16 | 0x8000u16 as i16;
                std::array::from_fn(|j| {
                    _mm512_shuffle_epi8(both, halves16(zero_high(j), zero_high(8 + j)))
                })
            };
            let mut s = _mm512_setzero_si512();
            for j in 0..8 {
                s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(codes[j], ys[j]), muls[j]);
            }
            if K == K6 {
                // Σ_k sc_k · 32 · (sum of the 16 activations of scale k), in the same lanes.
                s = _mm512_sub_epi32(s, _mm512_slli_epi32::<5>(_mm512_madd_epi16(w, y16)));
            }
            *ph = s;
        }
        let isum = quad_sums(&[pair_halves(p[0], p[1]), pair_halves(p[2], p[3])]);
        let (d, nd) = k_group_d_nd(g);
        // Rows 0-3's mins as u16, then 4-7's: four pair sums per row, summed.
        let msums = |y: __m128i| {
            let y = _mm512_broadcast_i32x4(y);
            quad_sums(&[
                _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm512_castsi512_si256(mn)), y),
                _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(mn)), y),
            ])
        };
        k_close_one::<K>(isum, msums, d, nd, x, sb, &mut acc, &mut off);
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, off));
    out
}

/// Eight k-quant rows decoded for a prompt, once per call. Row by row, [`decode_k8`] writes
/// the codes to `raw` (`raw[(b * 8 + r) * 8 + j]`: sub-block `j` of block `b` of row `r`);
/// [`TileK8::interleave`] then moves them to `q` in the order [`k_tile8`] reads. `mul[(b * 16
/// + i) * 8 + r]`: row `r`'s scale for codes `16i..16i + 16` of block `b`, twice as i16 (the
/// multiplier of a `madd`); the mins, `d` and `-dmin` (`nd`) at `b * 8 + r`.
#[derive(Default)]
struct TileK8 {
    raw: Vec<__m256i>,
    q: Vec<__m256i>,
    mul: Vec<i32>,
    mins: Vec<__m128i>,
    d: Vec<f32>,
    nd: Vec<f32>,
}

impl TileK8 {
    fn reserve(&mut self, nsb: usize) {
        // SAFETY: zero vectors need no CPU feature beyond the baseline.
        let (zero, zero128) = unsafe { (_mm256_setzero_si256(), _mm_setzero_si128()) };
        if self.d.len() < nsb * 8 {
            self.raw.resize(nsb * 64, zero);
            self.q.resize(nsb * 64, zero);
            self.mul.resize(nsb * 128, 0);
            self.mins.resize(nsb * 8, zero128);
            self.d.resize(nsb * 8, 0.0);
            self.nd.resize(nsb * 8, 0.0);
        }
    }

    /// `q[(b * 8 + j) * 8 + k]` holds codes `4k..4k + 4` of sub-block `j` of block `b` of row
    /// `r` in its 32-bit word `r`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn interleave(&mut self, nsb: usize) {
        for b in 0..nsb {
            for j in 0..8 {
                let rows: [__m256i; 8] =
                    std::array::from_fn(|r| *self.raw.get_unchecked((b * 8 + r) * 8 + j));
                let q = self.q.as_mut_ptr().add((b * 8 + j) * 8) as *mut [__m256i; 8];
                *q = transpose8(&rows);
            }
        }
    }
}

thread_local! {
    static TILE_K8: std::cell::RefCell<TileK8> = std::cell::RefCell::new(TileK8::default());
}

/// Decodes row `r` of a k-quant tile: `nsb` blocks of type `K` from `row`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_k8<const K: u8>(tile: &mut TileK8, r: usize, row: *const u8, nsb: usize) {
    let bytes = k_bytes(K);
    for b in 0..nsb {
        let blk = row.add(b * bytes);
        _mm_prefetch::<_MM_HINT_T0>(blk.add(4096) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(blk.add(4096 + 64) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(blk.add(4096 + 128) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(blk.add(4096 + bytes - 1) as *const i8);
        let scales = if K == K6 {
            K8Scales::Signed(blk.add(192) as *const i8)
        } else {
            let (sc, m) = k4_scales(blk.add(4));
            K8Scales::WithMins(sc, m)
        };
        let (d, dmin) = (blk.add(if K == K6 { 208 } else { 0 }), blk.add(2));
        put_k8::<K>(tile, r, b, &k_codes::<K>(blk), scales, d, dmin);
    }
}

/// [`decode_k8`] for row `i` of the interleaved group at `g` ([`super::interleave`]): the same
/// codes, scales, mins, `d` and `-dmin`, read where the group keeps them.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_k8_grouped<const K: u8>(
    tile: &mut TileK8,
    r: usize,
    g: *const u8,
    i: usize,
    nsb: usize,
) {
    let bytes = k_bytes(K);
    let ty = k_type(K);
    for b in 0..nsb {
        let blk = g.add(b * 8 * bytes);
        // The group's rows share one stream: each fetches its eighth two blocks ahead.
        let ahead = blk.wrapping_add(2 * 8 * bytes + i * bytes);
        for line in (0..bytes).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
        }
        let codes =
            k_codes_chunks::<K, 64>(blk.add(interleave::k_pair_at(ty, i / 2) + 32 * (i % 2)));
        let scales = if K == K6 {
            K8Scales::Signed(blk.add(interleave::K6_SCALES_AT + 16 * i) as *const i8)
        } else {
            let group = std::slice::from_raw_parts(blk, bytes * 8);
            let (sc, m) = interleave::k4_scales_mins(group, i);
            K8Scales::WithMins(sc, m)
        };
        let (d, dmin) = (blk.add(2 * i), blk.add(interleave::K_DMIN_AT + 2 * i));
        put_k8::<K>(tile, r, b, &codes, scales, d, dmin);
    }
}

/// A k-quant block's scales for [`put_k8`]: Q6_K's sixteen signed ones, or Q4_K's and Q5_K's
/// eight scales and eight mins.
enum K8Scales {
    Signed(*const i8),
    WithMins([u8; 8], [u8; 8]),
}

/// Writes block `b` of row `r` of a k-quant tile: its codes, scales, mins and the f16 `d` and
/// `dmin` at the addresses given (any readable address for Q6_K's `dmin`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn put_k8<const K: u8>(
    tile: &mut TileK8,
    r: usize,
    b: usize,
    codes: &[__m256i; 8],
    scales: K8Scales,
    d: *const u8,
    dmin: *const u8,
) {
    // A scale as the two equal i16 of a `madd` multiplier.
    let twice = |s: i16| (s as u16 as u32 * 0x1_0001) as i32;
    let at = (b * 8 + r) * 8;
    tile.raw
        .get_unchecked_mut(at..at + 8)
        .copy_from_slice(codes);
    let mul = tile.mul.as_mut_ptr().add(b * 128 + r);
    match scales {
        K8Scales::Signed(scales) => {
            for i in 0..16 {
                *mul.add(i * 8) = twice(*scales.add(i) as i16);
            }
            *tile.mins.get_unchecked_mut(b * 8 + r) = _mm_setzero_si128();
        }
        K8Scales::WithMins(sc, m) => {
            for i in 0..16 {
                *mul.add(i * 8) = twice(sc[i / 2] as i16);
            }
            *tile.mins.get_unchecked_mut(b * 8 + r) =
                _mm_cvtepu8_epi16(_mm_loadl_epi64(m.as_ptr() as *const __m128i));
        }
    }
    *tile.d.get_unchecked_mut(b * 8 + r) = half(d);
    // (Q6_K's is never read: its blocks have no mins.)
    *tile.nd.get_unchecked_mut(b * 8 + r) = -half(dmin);
}

/// The eight interleaved rows of a k-quant tile against `N` tokens, as [`tile8_product`] does
/// for blocks of 32: each row's block sum builds up in its own lane. The 16-bit sums of
/// `maddubs` are added as 16-bit values, then multiplied by their scale with `madd`: eight at a
/// time for Q4_K's 4-bit codes (at most 8 · 2 · 15 · 127 = 30,480), four for Q5_K's 5-bit codes
/// (4 · 2 · 31 · 127 = 31,496) and Q6_K's 16-code sub-blocks (signed codes through `maddubs`
/// as |w| times y with w's sign: 4 · 2 · 32 · 127 = 32,512), so the integers are exact and each
/// block ends in [`k_close`] with the same sums [`k_rows8`] makes: the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_tile8<const N: usize, const K: u8>(
    tile: &TileK8,
    nsb: usize,
    xs: &[Q8Row<'_>; N],
    out: &mut [[f32; 8]; N],
) {
    let mut acc = [_mm256_setzero_ps(); N];
    let mut off = [_mm256_setzero_ps(); N];
    for b in 0..nsb {
        let mut p = [_mm256_setzero_si256(); N];
        for j in 0..8 {
            let q = tile.q.as_ptr().add((b * 8 + j) * 8);
            let mut s16 = [_mm256_setzero_si256(); N];
            for k in 0..8 {
                let w = *q.add(k);
                let aw = if K == K6 { _mm256_sign_epi8(w, w) } else { w };
                for t in 0..N {
                    let y = quad(&xs[t], b * 256 + 32 * j + 4 * k);
                    let y = if K == K6 { _mm256_sign_epi8(y, w) } else { y };
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(aw, y));
                }
                if k == 7 || (K != K4 && k == 3) {
                    let i = 2 * j + k / 4;
                    let mul = _mm256_loadu_si256(
                        tile.mul.as_ptr().add((b * 16 + i) * 8) as *const __m256i
                    );
                    for t in 0..N {
                        p[t] = _mm256_add_epi32(p[t], _mm256_madd_epi16(s16[t], mul));
                        s16[t] = _mm256_setzero_si256();
                    }
                }
            }
        }
        let d = _mm256_loadu_ps(tile.d.as_ptr().add(b * 8));
        let nd = _mm256_loadu_ps(tile.nd.as_ptr().add(b * 8));
        let mins = &*(tile.mins.as_ptr().add(b * 8) as *const [__m128i; 8]);
        k_close::<N, K>(&p, mins, d, nd, xs, b, &mut acc, &mut off);
    }
    for t in 0..N {
        _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_add_ps(acc[t], off[t]));
    }
}

/// Tokens handled together by one pass over a weight row.
const GROUP: usize = 4;

/// The dot-product instructions [`dot_rows`] may use beyond AVX2.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dot {
    /// AVX2 alone.
    Avx2,
    /// AVX-VNNI: single tokens' block sums with the VEX-encoded `vpdpbusd` and `vpdpwssd`.
    AvxVnni,
    /// AVX-512 ([`super::avx512::available`]): prompts (four tokens or more) go through
    /// [`super::avx512::dot_rows`], single tokens' block sums through the EVEX-encoded
    /// instructions (with VL).
    Avx512Vnni,
}

/// `out[t * n + r] = row r of data · xs.row(t)` for `r` in `rows` and every row `t` of `xs`,
/// with the instructions `dot` names: the same bits whichever it is.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C ([`available`]), and the instructions `dot` names.
/// `data` holds whole rows of `row_bytes`
/// (a multiple of the block size) covering `rows`, `xs` has `row_bytes / block_bytes` blocks per
/// row, and `out` is valid for writes at every index above.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    dot: Dot,
    then: &[u8],
) {
    dot_rows_in(ty, data, row_bytes, rows, xs, out, n, dot, then, 0)
}

/// [`dot_rows`] where the rows below `grouped` (a multiple of eight) are held interleaved
/// ([`dot_rows_grouped`]); with one token, none may be.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_rows_in(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    dot: Dot,
    then: &[u8],
    grouped: usize,
) {
    if dot == Dot::Avx512Vnni && xs.rows() >= GROUP {
        return super::avx512::dot_rows(ty, data, row_bytes, rows, xs, out, n, grouped);
    }
    // Blocks of the row's type; the activations were quantized in blocks of the same size.
    let nb = row_bytes / ty.block_bytes();
    assert!(
        xs.blocks == nb * (ty.block_values() / QK)
            && xs.block == ty.block_values()
            && rows.end.max(grouped) * row_bytes <= data.len()
            && grouped.is_multiple_of(8)
            && (grouped == 0 || xs.rows() > 1)
    );
    let m = xs.rows();
    // The tokens' rows, looked up once per call rather than once per weight row.
    let groups: Vec<[Q8Row<'_>; GROUP]> = (0..m / GROUP)
        .map(|g| std::array::from_fn(|i| xs.row(g * GROUP + i)))
        .collect();
    // The tokens after the last whole group, one at a time (looked up where they are used: a
    // decoding step has only this one, and a list of it would cost an allocation per chunk).
    let single = |j: usize| [xs.row(m / GROUP * GROUP + j)];
    // Eight rows at a time (the last ones padded by repeating the last row, whose extra
    // results are dropped): decoded once into the thread's tile `$tls` by `$decode`, then
    // multiplied by `$product` with each group of tokens and each single token.
    // Rows below `grouped` are decoded from their groups: by `decode8_grouped` or, a whole
    // group at once, `decode8_group` (types with blocks of 32), or by the k-quant tile's
    // `$grouped`.
    macro_rules! each_8_rows {
        ($tls:ident, $decode:path, $product:ident $(, $gen:tt)*) => {
            each_8_rows!(@ $tls, |tile, r, ri| {
                let row = data.as_ptr().add(ri * row_bytes);
                $decode(tile, r, row, nb)
            }, $product $(, $gen)*)
        };
        (k $tls:ident, $decode:path, $grouped:path, $product:ident $(, $gen:tt)*) => {
            each_8_rows!(@ $tls, |tile, r, ri| {
                if ri < grouped {
                    let g = data.as_ptr().add(ri / 8 * 8 * row_bytes);
                    $grouped(tile, r, g, ri % 8, nb)
                } else {
                    $decode(tile, r, data.as_ptr().add(ri * row_bytes), nb)
                }
            }, $product $(, $gen)*)
        };
        (grouped $tls:ident, $decode:path, $product:ident $(, $gen:tt)*) => {
            each_8_rows!(@ $tls, |tile, r, ri, at_group| {
                if at_group {
                    // A whole group (rows past `valid` are dropped).
                    let g = data.as_ptr().add(ri * row_bytes);
                    decode8_group(tile, ty, g, nb);
                    break;
                }
                if ri < grouped {
                    let g = data.as_ptr().add(ri / 8 * 8 * row_bytes);
                    decode8_grouped(tile, ty, r, g, ri % 8, nb)
                } else {
                    $decode(tile, r, data.as_ptr().add(ri * row_bytes), nb)
                }
            }, $product $(, $gen)*)
        };
        (@ $tls:ident, |$t:ident, $r:ident, $ri:ident $(, $at:ident)?| $decode:block, $product:ident $(, $gen:tt)*) => {
            $tls.with(|tile| {
                let mut tile = tile.borrow_mut();
                tile.reserve(nb);
                let mut r0 = rows.start;
                while r0 < rows.end {
                    let valid = (rows.end - r0).min(8);
                    $(let $at = r0 % 8 == 0 && r0 + 8 <= grouped;)?
                    for $r in 0..8 {
                        let $ri = r0 + $r.min(valid - 1);
                        let $t = &mut *tile;
                        $decode
                    }
                    tile.interleave(nb);
                    for (g, group) in groups.iter().enumerate() {
                        let mut o = [[0f32; 8]; GROUP];
                        $product::<GROUP $(, $gen)*>(&tile, nb, group, &mut o);
                        for (i, orow) in o.iter().enumerate() {
                            for (k, v) in orow[..valid].iter().enumerate() {
                                *out.add((g * GROUP + i) * n + r0 + k) = *v;
                            }
                        }
                    }
                    for j in 0..m % GROUP {
                        let mut o = [[0f32; 8]; 1];
                        $product::<1 $(, $gen)*>(&tile, nb, &single(j), &mut o);
                        for (k, v) in o[0][..valid].iter().enumerate() {
                            *out.add((m / GROUP * GROUP + j) * n + r0 + k) = *v;
                        }
                    }
                    r0 += 8;
                }
            })
        };
    }
    // Eight rows at a time read in place (the last ones padded by repeating the last row, whose
    // extra results are dropped); `next` is where the following eight start, and `store(t, o)`
    // writes token `t`'s results for these rows.
    // The kernels prefetch the rows at least 8 KiB ahead of the ones they read (whole groups of
    // eight rows): on a core that takes in 35 GB/s (an AMD EPYC), 4 KiB was too close for the
    // rows read in place, 3-13% slower per token in kernel_bench (1B shape Q4_0 to SmolLM2
    // Q4_0), and 20 KiB too far for Q8_0's long rows; with the interleaved rows, 12 KiB lost to
    // 8 in 33 of 48 alternated `hearth bench` pairs (1B shape Q4_0 with two threads in all 7).
    // They prefetch on past the end of their chunk, up to the matrix's end:
    // the pool hands a thread the chunks of its share in order (see `crate::pool`), so what
    // follows a chunk is usually the thread's next one. At the matrix's end they go on into
    // `then`, the matrix the same call takes next (a layer's key rows after its query rows).
    let ahead_groups = ahead_groups(row_bytes);
    macro_rules! walk_8_rows {
        (|$ptrs:ident, $next:ident, $store:ident| $body:block) => {{
            let mut r0 = rows.start;
            while r0 < rows.end {
                let valid = (rows.end - r0).min(8);
                let $ptrs: [*const u8; 8] = std::array::from_fn(|i| {
                    data.as_ptr().add((r0 + i.min(valid - 1)) * row_bytes)
                });
                let $next = prefetch_at(data, then, (r0 + 8 * ahead_groups) * row_bytes);
                let $store = |t: usize, o: &[f32; 8]| {
                    for (k, v) in o[..valid].iter().enumerate() {
                        *out.add(t * n + r0 + k) = *v;
                    }
                };
                $body
                r0 += 8;
            }
        }};
    }
    // An eight-row kernel that reads rows in place, with each group of tokens and each single
    // token.
    macro_rules! in_place_8_rows {
        ($kernel:ident $(, $k:ident)?) => {
            walk_8_rows!(|ptrs, next, store| {
                for (g, group) in groups.iter().enumerate() {
                    let mut o = [[0f32; 8]; GROUP];
                    $kernel::<GROUP $(, $k)?>(&ptrs, next, nb, group, &mut o);
                    for (i, orow) in o.iter().enumerate() {
                        store(g * GROUP + i, orow);
                    }
                }
                for j in 0..m % GROUP {
                    let mut o = [[0f32; 8]; 1];
                    $kernel::<1 $(, $k)?>(&ptrs, next, nb, &single(j), &mut o);
                    store(m / GROUP * GROUP + j, &o[0]);
                }
            })
        };
    }
    // AVX-512 VNNI CPUs all have VL so far, but ask.
    let vnni = dot == Dot::Avx512Vnni && is_x86_feature_detected!("avx512vl");
    let avxvnni = dot == Dot::AvxVnni;
    // One token (decoding): Q4_0, Q4_1 and Q5_0 rows are read in place too.
    if m == 1 && matches!(ty, BlockType::Q4_0 | BlockType::Q4_1 | BlockType::Q5_0) {
        let x = xs.row(0);
        walk_8_rows!(|ptrs, next, store| {
            let o = match (ty, vnni, avxvnni) {
                (BlockType::Q4_0, true, _) => direct8_q4_0_zmm(&ptrs, next, nb, &x),
                (BlockType::Q4_1, true, _) => direct8_q4_1_zmm(&ptrs, next, nb, &x),
                (_, true, _) => direct8_q5_0_zmm(&ptrs, next, nb, &x),
                (BlockType::Q4_0, _, true) => direct8_q4_0_avxvnni(&ptrs, next, nb, &x),
                (BlockType::Q4_1, _, true) => direct8_q4_1_avxvnni(&ptrs, next, nb, &x),
                (_, _, true) => direct8_q5_0_avxvnni(&ptrs, next, nb, &x),
                (BlockType::Q4_0, ..) => direct8_q4_0(&ptrs, next, nb, &x),
                (BlockType::Q4_1, ..) => direct8_q4_1(&ptrs, next, nb, &x),
                _ => direct8_q5_0(&ptrs, next, nb, &x),
            };
            store(0, &o);
        });
        return;
    }
    match ty {
        BlockType::Q8_0 if m == 1 => in_place_8_rows!(q8_0_rows8),
        BlockType::Q4_0 if avxvnni => {
            each_8_rows!(grouped TILE, decode8_q4_0, tile8_product_avxvnni, false, false)
        }
        BlockType::Q4_1 if avxvnni => {
            each_8_rows!(grouped TILE, decode8_q4_1, tile8_product_avxvnni, false, false)
        }
        BlockType::Q5_0 if avxvnni => {
            each_8_rows!(grouped TILE, decode8_q5_0, tile8_product_avxvnni, true, false)
        }
        BlockType::Q8_0 if avxvnni => {
            each_8_rows!(grouped TILE, decode8_q8_0, tile8_product_avxvnni, false, true)
        }
        BlockType::Q4_0 => each_8_rows!(grouped TILE, decode8_q4_0, tile8_product, false, false),
        BlockType::Q4_1 => each_8_rows!(grouped TILE, decode8_q4_1, tile8_product, false, false),
        BlockType::Q5_0 => each_8_rows!(grouped TILE, decode8_q5_0, tile8_product, true, false),
        BlockType::Q8_0 => each_8_rows!(grouped TILE, decode8_q8_0, tile8_product, false, true),
        BlockType::Q4_K if m == 1 && vnni => in_place_8_rows!(k_rows8_zmm, K4),
        BlockType::Q5_K if m == 1 && vnni => in_place_8_rows!(k_rows8_zmm, K5),
        BlockType::Q6_K if m == 1 && vnni => in_place_8_rows!(k_rows8_zmm, K6),
        BlockType::Q4_K if m == 1 && avxvnni => in_place_8_rows!(k_rows8_avxvnni, K4),
        BlockType::Q5_K if m == 1 && avxvnni => in_place_8_rows!(k_rows8_avxvnni, K5),
        BlockType::Q6_K if m == 1 && avxvnni => in_place_8_rows!(k_rows8_avxvnni, K6),
        BlockType::Q4_K if m == 1 => in_place_8_rows!(k_rows8, K4),
        BlockType::Q5_K if m == 1 => in_place_8_rows!(k_rows8, K5),
        BlockType::Q6_K if m == 1 => in_place_8_rows!(k_rows8, K6),
        BlockType::Q4_K => {
            each_8_rows!(k TILE_K8, decode_k8::<K4>, decode_k8_grouped::<K4>, k_tile8, K4)
        }
        BlockType::Q5_K => {
            each_8_rows!(k TILE_K8, decode_k8::<K5>, decode_k8_grouped::<K5>, k_tile8, K5)
        }
        BlockType::Q6_K => {
            each_8_rows!(k TILE_K8, decode_k8::<K6>, decode_k8_grouped::<K6>, k_tile8, K6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed Q4_K/Q5_K scales and mins are the portable path's, bit patterns chosen so that
    /// every byte position and both halves of each six-bit value are exercised.
    #[test]
    fn packed_k4_scales_match_the_portable_path() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut s = [0u8; 12];
            for b in s.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            // SAFETY: `s` holds the 12 bytes read; no CPU feature is needed.
            let (sc, m) = unsafe { k4_scales(s.as_ptr()) };
            for j in 0..8 {
                assert_eq!(
                    (sc[j], m[j]),
                    super::super::scalar::k4_scale_min(j, &s),
                    "{s:?} {j}"
                );
            }
        }
    }
}
