//! Activations quantized to 8 bits in blocks of 32 values, the form the integer dot products
//! read.
//!
//! Each block keeps its scale `d` (`x ≈ d · q`, `q` in -127..=127) and `s = d · Σq`, which the
//! weight types with an offset (Q4_1) or a bias in their codes (Q4_0, Q5_0) need. A caller may
//! rely on: every value's rounding error is at most `d / 2` of its block, and a block of zeros
//! has `d = 0` and all codes 0.

/// Values per block, for the activations and for every weight type this module serves.
pub const QK: usize = 32;

/// One or more rows of activations quantized block by block.
#[derive(Debug, Default, Clone)]
pub struct Q8Rows {
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
    /// Blocks per row.
    pub(crate) blocks: usize,
}

/// One quantized row, borrowed.
#[derive(Clone, Copy)]
pub struct Q8Row<'a> {
    pub(crate) qs: &'a [i8],
    pub(crate) d: &'a [f32],
    pub(crate) s: &'a [f32],
}

impl Q8Rows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x`, made of rows of `cols` values each. `cols` must be a multiple of [`QK`]
    /// and `x.len()` a multiple of `cols`; the callers check both.
    pub fn quantize(&mut self, x: &[f32], cols: usize) {
        debug_assert!(cols % QK == 0 && cols > 0 && x.len() % cols == 0);
        let nb = x.len() / QK;
        self.blocks = cols / QK;
        self.qs.clear();
        self.qs.resize(x.len(), 0);
        self.d.clear();
        self.d.resize(nb, 0.0);
        self.s.clear();
        self.s.resize(nb, 0.0);
        for (b, (xb, qb)) in x
            .chunks_exact(QK)
            .zip(self.qs.chunks_exact_mut(QK))
            .enumerate()
        {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in qb.iter_mut().zip(xb) {
                // |v · id| <= 127 up to rounding; the clamp keeps a NaN-free input in range.
                let r = (v * id).round().clamp(-127.0, 127.0) as i8;
                *q = r;
                sum += r as i32;
            }
            self.d[b] = d;
            self.s[b] = d * sum as f32;
        }
    }

    /// Number of rows held.
    pub fn rows(&self) -> usize {
        self.d.len().checked_div(self.blocks).unwrap_or(0)
    }

    /// Row `i` (`i < rows()`).
    pub fn row(&self, i: usize) -> Q8Row<'_> {
        let nb = self.blocks;
        Q8Row {
            qs: &self.qs[i * nb * QK..(i + 1) * nb * QK],
            d: &self.d[i * nb..(i + 1) * nb],
            s: &self.s[i * nb..(i + 1) * nb],
        }
    }
}

impl Q8Row<'_> {
    /// The values this row stands for (`d · q`), for tests and references.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs
            .chunks_exact(QK)
            .zip(self.d)
            .flat_map(|(qb, d)| qb.iter().map(move |q| *q as f32 * d))
            .collect()
    }

    /// Scale of block `b`.
    pub fn scale(&self, b: usize) -> f32 {
        self.d[b]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_error_is_at_most_half_a_step() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let mut q = Q8Rows::new();
        q.quantize(&x, 96);
        assert_eq!(q.rows(), 1);
        let r = q.row(0);
        let back = r.dequantize();
        for (b, (xb, yb)) in x.chunks(QK).zip(back.chunks(QK)).enumerate() {
            let d = r.scale(b);
            for (a, c) in xb.iter().zip(yb) {
                assert!((a - c).abs() <= d / 2.0 + 1e-7, "{a} vs {c}, step {d}");
            }
            let sum: i32 = r.qs[b * QK..(b + 1) * QK].iter().map(|v| *v as i32).sum();
            assert_eq!(r.s[b], d * sum as f32);
        }
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let mut q = Q8Rows::new();
        q.quantize(&[0.0; 64], 32);
        assert_eq!(q.rows(), 2);
        assert_eq!(q.row(1).d, &[0.0]);
        assert!(q.qs.iter().all(|v| *v == 0));
    }
}
