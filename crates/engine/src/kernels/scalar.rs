//! Portable dot products between one row of quantized weights (GGUF block bytes) and one row of
//! 8-bit activations. This is the path every CPU can run and the one the SIMD paths are checked
//! against: each block's integer sum is exact, and the floating-point sum runs block by block in
//! order.

use super::q8::{Q8Row, QK};
use super::BlockType;

/// IEEE half precision to single precision, exact for every input (subnormals, infinities, NaN).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = man · 2^-24, exact in f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[inline]
fn half_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// One sub-block of 32 weights in a common form: `w_i = dw · sc[i / 16] · q[i] + ow`; for the
/// k-quants with mins, `ow = -dmin · m` with the integer min `m`.
struct Sub {
    q: [i16; QK],
    sc: [i32; 2],
    dw: f32,
    ow: f32,
    m: i32,
    dmin: f32,
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K or Q5_K block, from its 12 bytes.
#[inline]
pub(crate) fn k4_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Sub-block `b` (counted in 32s from the start of the row) of a row of type `ty`.
fn sub_block(ty: BlockType, row: &[u8], b: usize) -> Sub {
    let per = ty.block_values() / QK;
    let blk = &row[b / per * ty.block_bytes()..][..ty.block_bytes()];
    let j = b % per;
    let mut q = [0i16; QK];
    let (mut sc, mut dw, mut ow) = ([1, 1], half_at(blk, 0), 0.0);
    let (mut min, mut dmin) = (0, 0.0);
    match ty {
        BlockType::Q4_0 | BlockType::Q4_1 => {
            let at = if ty == BlockType::Q4_0 { 2 } else { 4 };
            for i in 0..16 {
                q[i] = (blk[at + i] & 0x0f) as i16;
                q[i + 16] = (blk[at + i] >> 4) as i16;
            }
            ow = if ty == BlockType::Q4_0 {
                -8.0 * dw
            } else {
                half_at(blk, 2)
            };
        }
        BlockType::Q5_0 => {
            let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
            for i in 0..16 {
                q[i] = ((blk[6 + i] & 0x0f) as u32 | ((qh >> i) & 1) << 4) as i16;
                q[i + 16] = ((blk[6 + i] >> 4) as u32 | ((qh >> (i + 16)) & 1) << 4) as i16;
            }
            ow = -16.0 * dw;
        }
        BlockType::Q8_0 => {
            for (i, v) in q.iter_mut().enumerate() {
                *v = blk[2 + i] as i8 as i16;
            }
        }
        BlockType::Q4_K | BlockType::Q5_K => {
            let (s, m) = k4_scale_min(j, &blk[4..16]);
            let codes = if ty == BlockType::Q4_K { 16 } else { 48 };
            let qs = &blk[codes + 32 * (j / 2)..][..32];
            for (i, v) in q.iter_mut().enumerate() {
                let nibble = if j % 2 == 0 { qs[i] & 0x0f } else { qs[i] >> 4 };
                *v = nibble as i16;
                if ty == BlockType::Q5_K {
                    *v |= (((blk[16 + i] >> j) & 1) as i16) << 4;
                }
            }
            sc = [s as i32; 2];
            (min, dmin) = (m as i32, half_at(blk, 2));
            ow = -dmin * m as f32;
        }
        BlockType::Q6_K => {
            let (n, k) = (j / 4, j % 4);
            let ql = &blk[64 * n + 32 * (k & 1)..][..32];
            let qh = &blk[128 + 32 * n..][..32];
            for (i, v) in q.iter_mut().enumerate() {
                let lo = if k < 2 { ql[i] & 0x0f } else { ql[i] >> 4 };
                let hi = (qh[i] >> (2 * k)) & 3;
                *v = (lo | hi << 4) as i16 - 32;
            }
            let scales = &blk[192..208];
            sc = [
                scales[8 * n + 2 * k] as i8 as i32,
                scales[8 * n + 2 * k + 1] as i8 as i32,
            ];
            dw = half_at(blk, 208);
        }
    }
    Sub {
        q,
        sc,
        dw,
        ow,
        m: min,
        dmin,
    }
}

/// Integer sums of one sub-block's codes times 32 activations, per half of 16.
#[inline]
fn half_sums(q: &[i16; QK], y: &[i8]) -> [i32; 2] {
    let mut sums = [0i32; 2];
    for (h, sum) in sums.iter_mut().enumerate() {
        for i in 16 * h..16 * h + 16 {
            *sum += q[i] as i32 * y[i] as i32;
        }
    }
    sums
}

/// The dot product of one decoded k-quant row (its sub-blocks of 32) with one row of
/// activations quantized in blocks of 256: per block of 256, the integer sum `Σ_j sc_j Σ_i q_i x_i` over its 8 sub-blocks (exact), then
/// `acc += (d · d_x) · sum` and, for the types with mins, `off += (-dmin · d_x) · Σ_j m_j Σq_j`;
/// the result is `acc + off`.
fn dot_subs(ty: BlockType, subs: &[Sub], x: Q8Row<'_>) -> f32 {
    let per = ty.block_values() / QK;
    let (mut acc, mut off) = (0f32, 0f32);
    for (sb, block) in subs.chunks_exact(per).enumerate() {
        let (mut isum, mut msum) = (0i32, 0i32);
        for (j, s) in block.iter().enumerate() {
            let b = sb * per + j;
            let [a, c] = half_sums(&s.q, &x.qs[b * QK..(b + 1) * QK]);
            isum += s.sc[0] * a + s.sc[1] * c;
            msum += s.m * x.sums[b];
        }
        let dx = x.d[sb];
        acc += block[0].dw * dx * isum as f32;
        off += -block[0].dmin * dx * msum as f32;
    }
    acc + off
}

/// A row of a type with blocks of 32 against one token: `Σ_b d_w · d_x · Σ_i w_i x_i` (plus the
/// type's offset term), block by block in order, decoding as it goes.
fn dot_row_32(ty: BlockType, row: &[u8], x: Q8Row<'_>) -> f32 {
    let bs = ty.block_bytes();
    let mut acc = 0f32;
    for (b, blk) in row.chunks_exact(bs).enumerate() {
        let y = &x.qs[b * QK..(b + 1) * QK];
        let (dx, sx) = (x.d[b], x.s[b]);
        acc += match ty {
            BlockType::Q4_0 => {
                let qs = &blk[2..18];
                let mut sum = 0i32;
                for j in 0..16 {
                    sum += (qs[j] & 0x0f) as i32 * y[j] as i32;
                    sum += (qs[j] >> 4) as i32 * y[j + 16] as i32;
                }
                // Codes carry a bias of 8: Σ(q-8)y·dx = dx·Σqy - 8·s.
                half_at(blk, 0) * (dx * sum as f32 - 8.0 * sx)
            }
            BlockType::Q4_1 => {
                let qs = &blk[4..20];
                let mut sum = 0i32;
                for j in 0..16 {
                    sum += (qs[j] & 0x0f) as i32 * y[j] as i32;
                    sum += (qs[j] >> 4) as i32 * y[j + 16] as i32;
                }
                half_at(blk, 0) * dx * sum as f32 + half_at(blk, 2) * sx
            }
            BlockType::Q5_0 => {
                let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                let qs = &blk[6..22];
                let mut sum = 0i32;
                for j in 0..16 {
                    let lo = (qs[j] & 0x0f) as u32 | ((qh >> j) & 1) << 4;
                    let hi = (qs[j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
                    sum += lo as i32 * y[j] as i32;
                    sum += hi as i32 * y[j + 16] as i32;
                }
                half_at(blk, 0) * (dx * sum as f32 - 16.0 * sx)
            }
            BlockType::Q8_0 => {
                let mut sum = 0i32;
                for j in 0..QK {
                    sum += blk[2 + j] as i8 as i32 * y[j] as i32;
                }
                half_at(blk, 0) * dx * sum as f32
            }
            // The k-quants go through `dot_subs`.
            _ => 0.0,
        };
    }
    acc
}

/// `out[t * n + r] = row r of data · xs.row(t)` for `r` in `rows` and every row `t` of `xs`.
/// Types with blocks of 32 are decoded as they are read; a k-quant row is decoded once into its
/// sub-blocks, then multiplied with every token.
///
/// # Safety
/// `data` holds whole rows of `row_bytes` covering `rows`, `xs` was quantized for `ty` with one
/// block of 32 per 32 values of a row, and `out` is valid for writes at every index above.
pub unsafe fn dot_rows(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &super::q8::Q8Rows,
    out: *mut f32,
    n: usize,
) {
    let list = xs.row_list();
    let tokens = list.as_slice();
    if ty.block_values() == QK {
        for r in rows {
            let row = &data[r * row_bytes..(r + 1) * row_bytes];
            for (t, x) in tokens.iter().enumerate() {
                *out.add(t * n + r) = dot_row_32(ty, row, *x);
            }
        }
        return;
    }
    let nsub = row_bytes / ty.block_bytes() * (ty.block_values() / QK);
    let mut subs = Vec::with_capacity(nsub);
    for r in rows {
        let row = &data[r * row_bytes..(r + 1) * row_bytes];
        subs.clear();
        subs.extend((0..nsub).map(|b| sub_block(ty, row, b)));
        for (t, x) in tokens.iter().enumerate() {
            *out.add(t * n + r) = dot_subs(ty, &subs, *x);
        }
    }
}

/// The f32 values of one row of weights, for references and tests.
pub fn dequantize_row(ty: BlockType, row: &[u8]) -> Vec<f32> {
    let nb = row.len() / ty.block_bytes() * (ty.block_values() / QK);
    let mut out = Vec::with_capacity(nb * QK);
    for b in 0..nb {
        let s = sub_block(ty, row, b);
        for (i, q) in s.q.iter().enumerate() {
            out.push(s.dw * (s.sc[i / 16] * *q as i32) as f32 + s.ow);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }
}
