//! The kernels for 64-bit Arm (aarch64), whose every CPU has NEON: weight blocks are decoded to
//! signed bytes in registers and multiplied with the 8-bit activations, 16 pairs at a time.
//!
//! Two forms of the 16-byte dot product: `vmull_s8` with pairwise widening adds, which every
//! aarch64 CPU runs ([`super::Isa::Neon`]), and the `sdot` instruction of the dot-product
//! extension (Armv8.2 and later: Apple M-series, Snapdragon X, Graviton 2+, Cortex-A76+;
//! [`super::Isa::NeonDot`]), written as inline assembly because its intrinsic is not stable
//! Rust yet. Both give exact integer sums, so the same bits.
//!
//! The floating-point steps are the portable path's ([`super::scalar`]), in its order, per row and
//! token: every result here has the same bits as the portable path (tested), however the rows
//! and tokens are grouped. Rows are taken several at a time (four for a single token, two rows
//! by four tokens for prompts) so that their independent sums overlap in the pipeline, and a
//! block is decoded once for all the tokens of a group.

use std::arch::aarch64::*;
use std::arch::asm;
use std::ops::Range;

use super::q8::{Q8Row, Q8Rows, QK};
use super::scalar::k4_scale_min;
use super::BlockType;

/// Whether this CPU has the dot-product extension (`sdot`).
pub fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// Type codes for the const parameter `K` below (a `BlockType` cannot be one).
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q8_0: u8 = 3;
const Q4_K: u8 = 4;
const Q5_K: u8 = 5;
const Q6_K: u8 = 6;

/// `acc + Σ a_i·b_i` over 16 signed bytes, in 4 lanes (which lane gets which product differs
/// between the two forms; only the total counts).
#[inline(always)]
unsafe fn dot16<const SDOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    if SDOT {
        let mut acc = acc;
        // Only ever inlined into `dot_rows_sdot`, which enables the extension.
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
        acc
    } else {
        // |a·b| <= 128·128 fits an i16 lane; pairs are widened into the i32 lanes.
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }
}

/// The half-precision number at `p` (a weight block's scale), converted by `fcvt`, which every
/// aarch64 CPU has and which gives [`super::scalar::f16_to_f32`]'s value for every input (FPCR as
/// Linux and macOS leave it: no flush to zero, no default NaN).
#[inline(always)]
unsafe fn half(p: *const u8) -> f32 {
    let v: f32;
    asm!(
        "ldr {v:h}, [{p}]",
        "fcvt {v:s}, {v:h}",
        p = in(reg) p,
        v = out(vreg) v,
        options(pure, readonly, nostack, preserves_flags)
    );
    v
}

/// 16 bits of `h` (bit `i` for byte `i`) as bytes of 16 where the bit is set, else 0.
#[inline(always)]
unsafe fn fifth_bits(h: u32) -> uint8x16_t {
    const SEL: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let v = vcombine_u8(vdup_n_u8(h as u8), vdup_n_u8((h >> 8) as u8));
    vandq_u8(vtstq_u8(v, vld1q_u8(SEL.as_ptr())), vdupq_n_u8(16))
}

/// The 32 codes of one block of a type with blocks of 32, as two vectors of 16: the unsigned
/// codes of Q4_0, Q4_1 and Q5_0 (their bias is taken off in [`finish32`], as the portable path
/// does), the signed ones of Q8_0.
#[inline(always)]
unsafe fn codes32<const K: u8>(blk: *const u8) -> (int8x16_t, int8x16_t) {
    let m4 = vdupq_n_u8(0x0f);
    match K {
        Q4_0 | Q4_1 => {
            let v = vld1q_u8(blk.add(if K == Q4_0 { 2 } else { 4 }));
            (
                vreinterpretq_s8_u8(vandq_u8(v, m4)),
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
            )
        }
        Q5_0 => {
            let qh = u32::from_le_bytes([*blk.add(2), *blk.add(3), *blk.add(4), *blk.add(5)]);
            let v = vld1q_u8(blk.add(6));
            (
                vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, m4), fifth_bits(qh))),
                vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8::<4>(v), fifth_bits(qh >> 16))),
            )
        }
        _ => (
            vld1q_s8(blk.add(2) as *const i8),
            vld1q_s8(blk.add(18) as *const i8),
        ),
    }
}

/// One block's term of the row's sum, exactly as [`super::scalar`] writes it.
#[inline(always)]
unsafe fn finish32<const K: u8>(blk: *const u8, sum: i32, dx: f32, sx: f32) -> f32 {
    match K {
        Q4_0 => half(blk) * (dx * sum as f32 - 8.0 * sx),
        Q4_1 => half(blk) * dx * sum as f32 + half(blk.add(2)) * sx,
        Q5_0 => half(blk) * (dx * sum as f32 - 16.0 * sx),
        _ => half(blk) * dx * sum as f32,
    }
}

/// `R` rows (types with blocks of 32) by `T` tokens.
#[inline(always)]
unsafe fn tile32<const SDOT: bool, const K: u8, const R: usize, const T: usize>(
    rows: [*const u8; R],
    blocks: usize,
    bs: usize,
    xs: [Q8Row<'_>; T],
) -> [[f32; T]; R] {
    let mut acc = [[0f32; T]; R];
    let zero = vdupq_n_s32(0);
    for b in 0..blocks {
        let ys: [(int8x16_t, int8x16_t); T] = std::array::from_fn(|t| {
            let p = xs[t].qs.as_ptr().add(b * QK);
            (vld1q_s8(p), vld1q_s8(p.add(16)))
        });
        for r in 0..R {
            let blk = rows[r].add(b * bs);
            let (c0, c1) = codes32::<K>(blk);
            for t in 0..T {
                let sum = vaddvq_s32(dot16::<SDOT>(dot16::<SDOT>(zero, c0, ys[t].0), c1, ys[t].1));
                let (dx, sx) = (*xs[t].d.get_unchecked(b), *xs[t].s.get_unchecked(b));
                acc[r][t] += finish32::<K>(blk, sum, dx, sx);
            }
        }
    }
    acc
}

/// Scale of each half of 16 and integer min of sub-block `j` of a k-quant block.
#[inline(always)]
unsafe fn k_scales<const K: u8>(blk: *const u8, j: usize) -> (i32, i32, i32) {
    if K == Q6_K {
        let s = blk.add(192 + 2 * j);
        (*s as i8 as i32, *s.add(1) as i8 as i32, 0)
    } else {
        let (s, m) = k4_scale_min(j, std::slice::from_raw_parts(blk.add(4), 12));
        (s as i32, s as i32, m as i32)
    }
}

/// The 32 codes of sub-block `j` of a k-quant block (Q6_K's with their bias of 32 taken off).
#[inline(always)]
unsafe fn codes_k<const K: u8>(blk: *const u8, j: usize) -> (int8x16_t, int8x16_t) {
    let m4 = vdupq_n_u8(0x0f);
    let nibbles = |p: *const u8, high: bool| {
        let (a, b) = (vld1q_u8(p), vld1q_u8(p.add(16)));
        if high {
            (vshrq_n_u8::<4>(a), vshrq_n_u8::<4>(b))
        } else {
            (vandq_u8(a, m4), vandq_u8(b, m4))
        }
    };
    match K {
        Q4_K | Q5_K => {
            let at = if K == Q4_K { 16 } else { 48 };
            let (mut a, mut b) = nibbles(blk.add(at + 32 * (j / 2)), j % 2 == 1);
            if K == Q5_K {
                let bit = vdupq_n_u8(1 << j);
                let sixteen = vdupq_n_u8(16);
                let (h0, h1) = (vld1q_u8(blk.add(16)), vld1q_u8(blk.add(32)));
                a = vorrq_u8(a, vandq_u8(vtstq_u8(h0, bit), sixteen));
                b = vorrq_u8(b, vandq_u8(vtstq_u8(h1, bit), sixteen));
            }
            (vreinterpretq_s8_u8(a), vreinterpretq_s8_u8(b))
        }
        _ => {
            let (n, k) = (j / 4, j % 4);
            let (lo0, lo1) = nibbles(blk.add(64 * n + 32 * (k & 1)), k >= 2);
            let qh = blk.add(128 + 32 * n);
            let shift = vdupq_n_s8(-2 * k as i8);
            let three = vdupq_n_u8(3);
            let hi0 = vandq_u8(vshlq_u8(vld1q_u8(qh), shift), three);
            let hi1 = vandq_u8(vshlq_u8(vld1q_u8(qh.add(16)), shift), three);
            let bias = vdupq_n_s8(32);
            (
                vsubq_s8(
                    vreinterpretq_s8_u8(vorrq_u8(lo0, vshlq_n_u8::<4>(hi0))),
                    bias,
                ),
                vsubq_s8(
                    vreinterpretq_s8_u8(vorrq_u8(lo1, vshlq_n_u8::<4>(hi1))),
                    bias,
                ),
            )
        }
    }
}

/// `R` k-quant rows by `T` tokens: per block of 256, `Σ_j sc_j Σ_i q_i x_i` and `Σ_j m_j Σq_j`
/// in integers, then the portable path's floating-point steps.
#[inline(always)]
unsafe fn tile_k<const SDOT: bool, const K: u8, const R: usize, const T: usize>(
    rows: [*const u8; R],
    blocks: usize,
    bs: usize,
    xs: [Q8Row<'_>; T],
) -> [[f32; T]; R] {
    let (mut acc, mut off) = ([[0f32; T]; R], [[0f32; T]; R]);
    let zero = vdupq_n_s32(0);
    for sb in 0..blocks {
        let blks: [*const u8; R] = std::array::from_fn(|r| rows[r].add(sb * bs));
        let mut isum = [[zero; T]; R];
        let mut msum = [[0i32; T]; R];
        for j in 0..8 {
            let b = sb * 8 + j;
            let ys: [(int8x16_t, int8x16_t); T] = std::array::from_fn(|t| {
                let p = xs[t].qs.as_ptr().add(b * QK);
                (vld1q_s8(p), vld1q_s8(p.add(16)))
            });
            for r in 0..R {
                let (s0, s1, m) = k_scales::<K>(blks[r], j);
                let (c0, c1) = codes_k::<K>(blks[r], j);
                for t in 0..T {
                    let (y0, y1) = ys[t];
                    isum[r][t] = if K == Q6_K {
                        let v = vmlaq_n_s32(isum[r][t], dot16::<SDOT>(zero, c0, y0), s0);
                        vmlaq_n_s32(v, dot16::<SDOT>(zero, c1, y1), s1)
                    } else {
                        let d = dot16::<SDOT>(dot16::<SDOT>(zero, c0, y0), c1, y1);
                        vmlaq_n_s32(isum[r][t], d, s0)
                    };
                    if K != Q6_K {
                        msum[r][t] += m * *xs[t].sums.get_unchecked(b);
                    }
                }
            }
        }
        for r in 0..R {
            let (dw, dmin) = if K == Q6_K {
                (half(blks[r].add(208)), 0.0f32)
            } else {
                (half(blks[r]), half(blks[r].add(2)))
            };
            for t in 0..T {
                let dx = *xs[t].d.get_unchecked(sb);
                acc[r][t] += dw * dx * vaddvq_s32(isum[r][t]) as f32;
                off[r][t] += -dmin * dx * msum[r][t] as f32;
            }
        }
    }
    std::array::from_fn(|r| std::array::from_fn(|t| acc[r][t] + off[r][t]))
}

/// Rows `r0..r0 + R` by tokens `t0..t0 + T`, written to `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run<const SDOT: bool, const K: u8, const R: usize, const T: usize>(
    data: &[u8],
    row_bytes: usize,
    bs: usize,
    r0: usize,
    tokens: &[Q8Row<'_>],
    t0: usize,
    out: *mut f32,
    n: usize,
) {
    let rows: [*const u8; R] = std::array::from_fn(|r| data.as_ptr().add((r0 + r) * row_bytes));
    let xs: [Q8Row<'_>; T] = std::array::from_fn(|t| tokens[t0 + t]);
    let blocks = row_bytes / bs;
    let res = if K >= Q4_K {
        tile_k::<SDOT, K, R, T>(rows, blocks, bs, xs)
    } else {
        tile32::<SDOT, K, R, T>(rows, blocks, bs, xs)
    };
    for (r, line) in res.iter().enumerate() {
        for (t, v) in line.iter().enumerate() {
            *out.add((t0 + t) * n + r0 + r) = *v;
        }
    }
}

/// Every row of `rows` by every token, in tiles.
#[inline(always)]
unsafe fn by_type<const SDOT: bool, const K: u8>(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    tokens: &[Q8Row<'_>],
    out: *mut f32,
    n: usize,
) {
    let bs = ty.block_bytes();
    let m = tokens.len();
    let mut r = rows.start;
    if m == 1 {
        while r + 4 <= rows.end {
            run::<SDOT, K, 4, 1>(data, row_bytes, bs, r, tokens, 0, out, n);
            r += 4;
        }
        while r < rows.end {
            run::<SDOT, K, 1, 1>(data, row_bytes, bs, r, tokens, 0, out, n);
            r += 1;
        }
        return;
    }
    while r < rows.end {
        let pair = r + 2 <= rows.end;
        let mut t = 0;
        while t + 4 <= m {
            if pair {
                run::<SDOT, K, 2, 4>(data, row_bytes, bs, r, tokens, t, out, n);
            } else {
                run::<SDOT, K, 1, 4>(data, row_bytes, bs, r, tokens, t, out, n);
            }
            t += 4;
        }
        while t < m {
            if pair {
                run::<SDOT, K, 2, 1>(data, row_bytes, bs, r, tokens, t, out, n);
            } else {
                run::<SDOT, K, 1, 1>(data, row_bytes, bs, r, tokens, t, out, n);
            }
            t += 1;
        }
        r += if pair { 2 } else { 1 };
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_rows_with<const SDOT: bool>(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    tokens: &[Q8Row<'_>],
    out: *mut f32,
    n: usize,
) {
    match ty {
        BlockType::Q4_0 => by_type::<SDOT, Q4_0>(ty, data, row_bytes, rows, tokens, out, n),
        BlockType::Q4_1 => by_type::<SDOT, Q4_1>(ty, data, row_bytes, rows, tokens, out, n),
        BlockType::Q5_0 => by_type::<SDOT, Q5_0>(ty, data, row_bytes, rows, tokens, out, n),
        BlockType::Q8_0 => by_type::<SDOT, Q8_0>(ty, data, row_bytes, rows, tokens, out, n),
        BlockType::Q4_K => by_type::<SDOT, Q4_K>(ty, data, row_bytes, rows, tokens, out, n),
        BlockType::Q5_K => by_type::<SDOT, Q5_K>(ty, data, row_bytes, rows, tokens, out, n),
        BlockType::Q6_K => by_type::<SDOT, Q6_K>(ty, data, row_bytes, rows, tokens, out, n),
    }
}

/// The `sdot` build: the assembly needs the extension enabled in the function it lands in.
#[target_feature(enable = "dotprod")]
unsafe fn dot_rows_sdot(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    tokens: &[Q8Row<'_>],
    out: *mut f32,
    n: usize,
) {
    dot_rows_with::<true>(ty, data, row_bytes, rows, tokens, out, n)
}

unsafe fn dot_rows_plain(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    tokens: &[Q8Row<'_>],
    out: *mut f32,
    n: usize,
) {
    dot_rows_with::<false>(ty, data, row_bytes, rows, tokens, out, n)
}

/// `out[t * n + r] = row r of data · xs.row(t)` for `r` in `rows` and every row `t` of `xs`,
/// with `sdot` when `sdot` is set: the same bits as [`super::scalar::dot_rows`] either way.
///
/// # Safety
/// With `sdot`, the CPU must have the dot-product extension ([`has_dotprod`]). `data` holds
/// whole rows of `row_bytes` (a multiple of the block size) covering `rows`, and `out` is valid
/// for writes at every index above.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    sdot: bool,
) {
    let nb = row_bytes / ty.block_bytes();
    assert!(
        xs.blocks == nb * (ty.block_values() / QK)
            && xs.block == ty.block_values()
            && row_bytes % ty.block_bytes() == 0
            && rows.end * row_bytes <= data.len()
    );
    let list = xs.row_list();
    let tokens = list.as_slice();
    if sdot {
        dot_rows_sdot(ty, data, row_bytes, rows, tokens, out, n)
    } else {
        dot_rows_plain(ty, data, row_bytes, rows, tokens, out, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_half_converts_as_the_portable_path_does() {
        for h in 0..=u16::MAX {
            let bytes = h.to_le_bytes();
            // SAFETY: two readable bytes.
            let got = unsafe { half(bytes.as_ptr()) };
            let want = super::super::scalar::f16_to_f32(h);
            assert_eq!(got.to_bits(), want.to_bits(), "half {h:#06x}");
        }
    }

    #[test]
    fn both_products_sum_alike() {
        let a: [i8; 16] = std::array::from_fn(|i| (i as i8 - 8) * 15);
        let b: [i8; 16] = std::array::from_fn(|i| 127 - 16 * i as i8);
        let want: i32 = a.iter().zip(&b).map(|(x, y)| *x as i32 * *y as i32).sum();
        // SAFETY: NEON is part of every aarch64 CPU; `sdot` only where the CPU has it.
        unsafe {
            let (va, vb) = (vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr()));
            // Five in each of the four lanes to start from.
            let plain = vaddvq_s32(dot16::<false>(vdupq_n_s32(5), va, vb));
            assert_eq!(plain, want + 20);
            if has_dotprod() {
                #[target_feature(enable = "dotprod")]
                unsafe fn with_sdot(a: int8x16_t, b: int8x16_t) -> i32 {
                    vaddvq_s32(dot16::<true>(vdupq_n_s32(5), a, b))
                }
                assert_eq!(with_sdot(va, vb), want + 20);
            }
        }
    }
}
