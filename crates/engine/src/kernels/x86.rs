//! AVX2 dot products between rows of quantized weights (GGUF block bytes, read in place) and
//! 8-bit activations.
//!
//! Every function here needs AVX2, FMA and F16C; [`available`] says whether the running CPU has
//! them, and the caller checks it once before calling any of them. The integer part of each
//! block's dot product is exact (unsigned codes times signed activations through `maddubs`, whose
//! pair sums stay far below `i16::MAX` for codes up to 31 and activations up to 127); only the
//! order of the f32 additions differs from the scalar path.

use std::arch::x86_64::*;

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
unsafe fn half(p: *const u8) -> f32 {
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

/// Byte `i` is 0x10 when bit `i` of the little-endian u32 at `p` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(p: *const u8) -> __m256i {
    let qh = (p as *const u32).read_unaligned() as i32;
    // Byte i of the result takes byte i/8 of qh, then tests its bit i%8.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Unsigned codes (< 128) times signed activations, summed in groups of four, as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn udot(q: __m256i, y: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(q, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// Signed codes times signed activations (activations in -127..=127), as [`udot`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sdot(w: __m256i, y: __m256i) -> __m256 {
    udot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Defines one row kernel over `N` tokens at once: each weight block is decoded once (`$decode`
/// turns the block at `$blk` into codes, weight scale and the weight of the block's `s` term) and
/// multiplied with every token's activations by `$dot`. Every token goes through the same
/// operations in the same order whatever `N` is, so a token's result is bit-for-bit the same
/// alone or in a group (the prefix cache relies on it).
macro_rules! row_kernel {
    ($name:ident, $bs:expr, |$blk:ident| $decode:block, $dot:ident) => {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name<const N: usize>(
            row: *const u8,
            nb: usize,
            xs: &[Q8Row<'_>; N],
            out: &mut [f32; N],
        ) {
            let mut acc0 = [_mm256_setzero_ps(); N];
            let mut acc1 = [_mm256_setzero_ps(); N];
            let mut off = [0f32; N];
            macro_rules! step {
                ($b:expr, $acc:ident) => {{
                    let b = $b;
                    let $blk = row.add(b * $bs);
                    let (q, dw, ow): (__m256i, f32, f32) = $decode;
                    for t in 0..N {
                        let x = &xs[t];
                        let y = _mm256_loadu_si256(x.qs.as_ptr().add(b * QK) as *const __m256i);
                        let p = $dot(q, y);
                        let scale = _mm256_set1_ps(dw * *x.d.get_unchecked(b));
                        $acc[t] = _mm256_fmadd_ps(scale, p, $acc[t]);
                        off[t] += ow * *x.s.get_unchecked(b);
                    }
                }};
            }
            let mut b = 0;
            while b + 2 <= nb {
                step!(b, acc0);
                step!(b + 1, acc1);
                b += 2;
            }
            if b < nb {
                step!(b, acc0);
            }
            for t in 0..N {
                out[t] = hsum(_mm256_add_ps(acc0[t], acc1[t])) + off[t];
            }
        }
    };
}

row_kernel!(
    row_q4_0,
    18,
    |blk| {
        let d = half(blk);
        (nibbles(blk.add(2)), d, -8.0 * d)
    },
    udot
);

row_kernel!(
    row_q4_1,
    20,
    |blk| { (nibbles(blk.add(4)), half(blk), half(blk.add(2))) },
    udot
);

row_kernel!(
    row_q5_0,
    22,
    |blk| {
        let d = half(blk);
        let q = _mm256_or_si256(nibbles(blk.add(6)), fifth_bits(blk.add(2)));
        (q, d, -16.0 * d)
    },
    udot
);

row_kernel!(
    row_q8_0,
    34,
    |blk| {
        let w = _mm256_loadu_si256(blk.add(2) as *const __m256i);
        (w, half(blk), 0.0)
    },
    sdot
);

/// Tokens handled together by one pass over a weight row.
const GROUP: usize = 4;

/// `out[t * n + r] = row r of data · xs.row(t)` for `r` in `rows` and every row `t` of `xs`.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C ([`available`]). `data` holds whole rows of `row_bytes`
/// (a multiple of the block size) covering `rows`, `xs` has `row_bytes / block_bytes` blocks per
/// row, and `out` is valid for writes at every index above.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_rows(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
) {
    let nb = row_bytes / ty.block_bytes();
    assert!(xs.blocks == nb && rows.end * row_bytes <= data.len());
    let m = xs.rows();
    macro_rules! each_row {
        ($kernel:ident) => {
            for r in rows {
                let row = data.as_ptr().add(r * row_bytes);
                let mut t = 0;
                while t + GROUP <= m {
                    let group: [Q8Row<'_>; GROUP] = std::array::from_fn(|i| xs.row(t + i));
                    let mut o = [0f32; GROUP];
                    $kernel::<GROUP>(row, nb, &group, &mut o);
                    for (i, v) in o.iter().enumerate() {
                        *out.add((t + i) * n + r) = *v;
                    }
                    t += GROUP;
                }
                while t < m {
                    let mut o = [0f32; 1];
                    $kernel::<1>(row, nb, &[xs.row(t)], &mut o);
                    *out.add(t * n + r) = o[0];
                    t += 1;
                }
            }
        };
    }
    match ty {
        BlockType::Q4_0 => each_row!(row_q4_0),
        BlockType::Q4_1 => each_row!(row_q4_1),
        BlockType::Q5_0 => each_row!(row_q5_0),
        BlockType::Q8_0 => each_row!(row_q8_0),
    }
}
