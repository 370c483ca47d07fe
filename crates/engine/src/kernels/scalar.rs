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

/// `Σ_b d_w · d_x · Σ_i w_i x_i` (plus the type's offset term) over the whole row.
pub fn dot_row(ty: BlockType, row: &[u8], x: Q8Row<'_>) -> f32 {
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
        };
    }
    acc
}

/// The f32 values of one row of weights, for references and tests.
pub fn dequantize_row(ty: BlockType, row: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(row.len() / ty.block_bytes() * QK);
    for blk in row.chunks_exact(ty.block_bytes()) {
        let d = half_at(blk, 0);
        let mut v = [0f32; QK];
        match ty {
            BlockType::Q4_0 => {
                for j in 0..16 {
                    v[j] = ((blk[2 + j] & 0x0f) as f32 - 8.0) * d;
                    v[j + 16] = ((blk[2 + j] >> 4) as f32 - 8.0) * d;
                }
            }
            BlockType::Q4_1 => {
                let m = half_at(blk, 2);
                for j in 0..16 {
                    v[j] = (blk[4 + j] & 0x0f) as f32 * d + m;
                    v[j + 16] = (blk[4 + j] >> 4) as f32 * d + m;
                }
            }
            BlockType::Q5_0 => {
                let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                for j in 0..16 {
                    let lo = (blk[6 + j] & 0x0f) as u32 | ((qh >> j) & 1) << 4;
                    let hi = (blk[6 + j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
                    v[j] = (lo as f32 - 16.0) * d;
                    v[j + 16] = (hi as f32 - 16.0) * d;
                }
            }
            BlockType::Q8_0 => {
                for (j, o) in v.iter_mut().enumerate() {
                    *o = blk[2 + j] as i8 as f32 * d;
                }
            }
        }
        out.extend_from_slice(&v);
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
