//! Prompt products for the types with blocks of 32 (Q4_0, Q4_1, Q5_0, Q8_0) with AVX-512 and its
//! 8-bit dot-product instruction (VNNI): sixteen weight rows at a time, one row per 32-bit lane.
//!
//! The rows of a tile are decoded once per call and stored interleaved: for block `b`, vector
//! `k` (0..8) holds bytes `4k..4k+4` of each of the sixteen rows. One `vpdpbusd` of that vector
//! with four activation bytes broadcast to every lane adds four products to each row's sum, so a
//! block costs eight instructions per token for sixteen rows, and each row's sum ends in its own
//! lane with no horizontal additions. Q8_0's signed codes are stored with 128 added (the
//! instruction multiplies unsigned by signed bytes) and `128 · Σy` is subtracted again.
//!
//! The arithmetic per row is exactly that of the AVX2 eight-row tiles in [`super::x86`]: the
//! block's integer sum (exact), then `acc += (d_w · d_x) · sum`, `off += o_w · s_x`, and
//! `acc + off` at the end. So this path gives the same bits as the AVX2 one, and a token's
//! result does not depend on which path or group of tokens computed it.

use std::arch::x86_64::*;

use super::q8::{Q8Row, Q8Rows, QK};
use super::BlockType;

/// Whether this CPU has the AVX-512 parts these functions use (F, BW, VNNI); the caller also
/// checks AVX2, FMA and F16C ([`super::x86::available`]).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

/// Rows per tile.
const ROWS: usize = 16;

/// Sixteen decoded rows: codes interleaved four bytes per row (`q[(b * 8 + k) * 16 + r]` holds
/// bytes `4k..4k+4` of block `b` of row `r`), scales `d[b * 16 + r]`, offset weights `o`.
#[derive(Default)]
struct Tile16 {
    q: Vec<u32>,
    d: Vec<f32>,
    o: Vec<f32>,
}

impl Tile16 {
    fn reserve(&mut self, nb: usize) {
        if self.q.len() < nb * 8 * ROWS {
            self.q.resize(nb * 8 * ROWS, 0);
            self.d.resize(nb * ROWS, 0.0);
            self.o.resize(nb * ROWS, 0.0);
        }
    }
}

thread_local! {
    static TILE: std::cell::RefCell<Tile16> = std::cell::RefCell::new(Tile16::default());
}

/// Decodes row `r` of the tile: `nb` blocks of type `ty` from `row`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode(tile: &mut Tile16, ty: BlockType, r: usize, row: *const u8, nb: usize) {
    for b in 0..nb {
        let (codes, d, o) = super::x86::decode_block(ty, row, b);
        let codes = if ty == BlockType::Q8_0 {
            _mm256_xor_si256(codes, _mm256_set1_epi8(-128))
        } else {
            codes
        };
        let mut words = [0u32; 8];
        _mm256_storeu_si256(words.as_mut_ptr() as *mut __m256i, codes);
        for (k, w) in words.iter().enumerate() {
            *tile.q.get_unchecked_mut((b * 8 + k) * ROWS + r) = *w;
        }
        *tile.d.get_unchecked_mut(b * ROWS + r) = d;
        *tile.o.get_unchecked_mut(b * ROWS + r) = o;
    }
}

/// The tile's sixteen rows against `N` tokens; `BIAS`: codes carry +128 (Q8_0); `OFFSET`: the
/// type has an offset weight.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn product<const N: usize, const BIAS: bool, const OFFSET: bool>(
    tile: &Tile16,
    nb: usize,
    xs: &[Q8Row<'_>; N],
    out: &mut [[f32; ROWS]; N],
) {
    let mut acc = [_mm512_setzero_ps(); N];
    let mut off = [_mm512_setzero_ps(); N];
    for b in 0..nb {
        let mut sums = [_mm512_setzero_si512(); N];
        for k in 0..8 {
            let w = _mm512_loadu_si512(tile.q.as_ptr().add((b * 8 + k) * ROWS) as *const __m512i);
            for t in 0..N {
                let y4 = (xs[t].qs.as_ptr().add(b * QK + 4 * k) as *const i32).read_unaligned();
                sums[t] = _mm512_dpbusd_epi32(sums[t], w, _mm512_set1_epi32(y4));
            }
        }
        let dw = _mm512_loadu_ps(tile.d.as_ptr().add(b * ROWS));
        let ow = _mm512_loadu_ps(tile.o.as_ptr().add(b * ROWS));
        for t in 0..N {
            let x = &xs[t];
            let mut s = sums[t];
            if BIAS {
                s = _mm512_sub_epi32(s, _mm512_set1_epi32(128 * *x.sums.get_unchecked(b)));
            }
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*x.d.get_unchecked(b)));
            acc[t] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc[t]);
            if OFFSET {
                off[t] = _mm512_fmadd_ps(ow, _mm512_set1_ps(*x.s.get_unchecked(b)), off[t]);
            }
        }
    }
    for t in 0..N {
        _mm512_storeu_ps(out[t].as_mut_ptr(), _mm512_add_ps(acc[t], off[t]));
    }
}

/// Tokens taken together by one pass over a tile.
const GROUP: usize = 4;

/// `out[t * n + r] = row r of data · xs.row(t)` for `r` in `rows` and every row `t` of `xs`, for
/// a type with blocks of 32.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C ([`super::x86::available`]) and [`available`]; `data` holds whole
/// rows of `row_bytes` covering `rows`, `xs` was quantized in blocks of 32 for rows of
/// `row_bytes / ty.block_bytes() * 32` values, and `out` is valid for writes at every index above.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
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
    assert!(ty.block_values() == QK && xs.blocks == nb && rows.end * row_bytes <= data.len());
    let m = xs.rows();
    let tokens: Vec<Q8Row<'_>> = (0..m).map(|t| xs.row(t)).collect();
    let (bias, offset) = match ty {
        BlockType::Q8_0 => (true, false),
        _ => (false, true),
    };
    macro_rules! run {
        ($tile:expr, $r0:expr, $valid:expr, $n_tok:expr, $t0:expr) => {{
            let group: [Q8Row<'_>; $n_tok] = std::array::from_fn(|i| tokens[$t0 + i]);
            let mut o = [[0f32; ROWS]; $n_tok];
            match (bias, offset) {
                (true, _) => product::<$n_tok, true, false>($tile, nb, &group, &mut o),
                (false, _) => product::<$n_tok, false, true>($tile, nb, &group, &mut o),
            }
            for (i, orow) in o.iter().enumerate() {
                for (k, v) in orow[..$valid].iter().enumerate() {
                    *out.add(($t0 + i) * n + $r0 + k) = *v;
                }
            }
        }};
    }
    TILE.with(|tile| {
        let mut tile = tile.borrow_mut();
        tile.reserve(nb);
        let mut r0 = rows.start;
        while r0 < rows.end {
            let valid = (rows.end - r0).min(ROWS);
            for r in 0..ROWS {
                let row = data.as_ptr().add((r0 + r.min(valid - 1)) * row_bytes);
                decode(&mut tile, ty, r, row, nb);
            }
            let mut t = 0;
            while t + GROUP <= m {
                run!(&tile, r0, valid, GROUP, t);
                t += GROUP;
            }
            while t < m {
                run!(&tile, r0, valid, 1, t);
                t += 1;
            }
            r0 += ROWS;
        }
    });
}
