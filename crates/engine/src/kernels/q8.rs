//! Activations quantized to 8 bits, the form the integer dot products read.
//!
//! Values are quantized in blocks of 32 (for the weight types with blocks of 32) or of 256 (for
//! the k-quants, whose kernels then sum integers over a whole weight block before one scaling,
//! as llama.cpp's do). Each block keeps its scale `d` (`x ≈ d · q`, `q` in -127..=127) and
//! `s = d · Σq`; every 32 values also keep `Σq` as an integer (`sums`), which the weight types
//! with an offset (Q4_1, the k-quants' mins) or a bias in their codes (Q4_0, Q5_0) need. A caller
//! may rely on: every value's rounding error is at most `d / 2` of its block, and a block of
//! zeros has `d = 0` and all codes 0.

/// Values per small block: the weight types' blocks, and the unit of the integer sums.
pub const QK: usize = 32;

/// One or more rows of activations quantized block by block.
#[derive(Debug, Default, Clone)]
pub struct Q8Rows {
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
    /// `Σq` of every 32 values.
    pub(crate) sums: Vec<i32>,
    /// Blocks of 32 per row.
    pub(crate) blocks: usize,
    /// Values per quantization block: 32 or 256.
    pub(crate) block: usize,
}

/// One quantized row, borrowed.
#[derive(Clone, Copy)]
pub struct Q8Row<'a> {
    pub(crate) qs: &'a [i8],
    /// One scale per quantization block.
    pub(crate) d: &'a [f32],
    /// `d · Σq` per quantization block.
    pub(crate) s: &'a [f32],
    /// `Σq` per 32 values.
    pub(crate) sums: &'a [i32],
}

impl Q8Rows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x`, made of rows of `cols` values each, in blocks of `block` values (32 or 256).
    /// `cols` must be a multiple of `block` and `x.len()` a multiple of `cols`; the callers check
    /// both.
    pub fn quantize(&mut self, x: &[f32], cols: usize, block: usize) {
        debug_assert!(block % QK == 0 && cols % block == 0 && cols > 0 && x.len() % cols == 0);
        let nb = x.len() / block;
        self.blocks = cols / QK;
        self.block = block;
        // Every element is written below: no need to clear them first.
        self.qs.resize(x.len(), 0);
        self.d.resize(nb, 0.0);
        self.s.resize(nb, 0.0);
        self.sums.resize(x.len() / QK, 0);
        let out = Blocks {
            qs: &mut self.qs,
            d: &mut self.d,
            s: &mut self.s,
            sums: &mut self.sums,
        };
        #[cfg(target_arch = "x86_64")]
        if wide() {
            // SAFETY: AVX2, FMA and F16C are available.
            return unsafe { quantize_avx2(x, block, out) };
        }
        quantize_with(x, block, out, amax, quantize_32_portable);
    }

    /// Number of rows held.
    pub fn rows(&self) -> usize {
        self.sums.len().checked_div(self.blocks).unwrap_or(0)
    }

    /// Every row, as [`RowList::as_slice`] gives them: a decoding step's one row without a list
    /// (which would cost an allocation per chunk of weight rows).
    pub fn row_list(&self) -> RowList<'_> {
        match self.rows() {
            1 => RowList::One([self.row(0)]),
            n => RowList::Many((0..n).map(|t| self.row(t)).collect()),
        }
    }

    /// Row `i` (`i < rows()`).
    pub fn row(&self, i: usize) -> Q8Row<'_> {
        let n32 = self.blocks;
        let nb = n32 * QK / self.block.max(QK);
        Q8Row {
            qs: &self.qs[i * n32 * QK..(i + 1) * n32 * QK],
            d: &self.d[i * nb..(i + 1) * nb],
            s: &self.s[i * nb..(i + 1) * nb],
            sums: &self.sums[i * n32..(i + 1) * n32],
        }
    }
}

/// The rows of a [`Q8Rows`], from [`Q8Rows::row_list`].
pub enum RowList<'a> {
    One([Q8Row<'a>; 1]),
    Many(Vec<Q8Row<'a>>),
}

impl<'a> RowList<'a> {
    pub fn as_slice(&self) -> &[Q8Row<'a>] {
        match self {
            RowList::One(one) => one,
            RowList::Many(many) => many,
        }
    }
}

/// Whether this CPU runs the AVX2 forms below (detected once).
#[cfg(target_arch = "x86_64")]
fn wide() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(super::x86::available)
}

/// Where [`Q8Rows::quantize`] writes: each exactly as long as the blocks need.
struct Blocks<'a> {
    qs: &'a mut [i8],
    d: &'a mut [f32],
    s: &'a mut [f32],
    sums: &'a mut [i32],
}

/// [`Q8Rows::quantize`]'s blocks of `block` values, with `amax` for each block's largest
/// magnitude and `quantize_32` for its codes, 32 at a time (see [`quantize_32_portable`]).
#[inline(always)]
fn quantize_with(
    x: &[f32],
    block: usize,
    out: Blocks<'_>,
    amax: impl Fn(&[f32]) -> f32,
    quantize_32: impl Fn(&[f32], f32, &mut [i8]) -> i32,
) {
    let per = block / QK;
    for (b, (xb, qb)) in x
        .chunks_exact(block)
        .zip(out.qs.chunks_exact_mut(block))
        .enumerate()
    {
        let d = amax(xb) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut total = 0i32;
        let sums = &mut out.sums[b * per..(b + 1) * per];
        for ((q32, x32), sum) in qb.chunks_exact_mut(QK).zip(xb.chunks_exact(QK)).zip(sums) {
            *sum = quantize_32(x32, id, q32);
            total += *sum;
        }
        out.d[b] = d;
        out.s[b] = d * total as f32;
    }
}

/// [`quantize_with`] with the AVX2 forms, in one function: a decoding step quantizes a few
/// hundred values per product, and calls per 32 of them cost more than the work.
///
/// # Safety
/// AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], block: usize, out: Blocks<'_>) {
    // SAFETY (both): the CPU has AVX2 (the caller's contract); the chunks hold 32 values.
    quantize_with(
        x,
        block,
        out,
        |xb| unsafe { super::x86::amax(xb) },
        |x32, id, q32| unsafe { super::x86::quantize_32(x32, id, q32) },
    );
}

/// The largest magnitude in `x` (0 for an empty or all-zero block).
fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Quantizes 32 values with the inverse step `id` into `q`; returns the sum of the codes. Codes
/// are `v · id` rounded to the nearest integer, ties to even, clamped to -127..=127 (the AVX2
/// form gives the same codes).
fn quantize_32_portable(x: &[f32], id: f32, q: &mut [i8]) -> i32 {
    let mut sum = 0i32;
    for (q, v) in q.iter_mut().zip(x) {
        // |v · id| <= 127 up to rounding; the clamp keeps a NaN-free input in range.
        let r = (v * id).round_ties_even().clamp(-127.0, 127.0) as i8;
        *q = r;
        sum += r as i32;
    }
    sum
}

impl Q8Row<'_> {
    /// The values this row stands for (`d · q`), for tests and references.
    pub fn dequantize(&self) -> Vec<f32> {
        let block = self.qs.len() / self.d.len().max(1);
        self.qs
            .chunks_exact(block.max(1))
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
        q.quantize(&x, 96, QK);
        assert_eq!(q.rows(), 1);
        let r = q.row(0);
        let back = r.dequantize();
        for (b, (xb, yb)) in x.chunks(QK).zip(back.chunks(QK)).enumerate() {
            let d = r.scale(b);
            for (a, c) in xb.iter().zip(yb) {
                assert!((a - c).abs() <= d / 2.0 + 1e-7, "{a} vs {c}, step {d}");
            }
            let sum: i32 = r.qs[b * QK..(b + 1) * QK].iter().map(|v| *v as i32).sum();
            assert_eq!(r.sums[b], sum);
            assert_eq!(r.s[b], d * sum as f32);
        }
    }

    #[test]
    fn blocks_of_256_share_one_scale_and_keep_sums_per_32() {
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 53 % 211) as f32 - 105.0) * 0.01)
            .collect();
        let mut q = Q8Rows::new();
        q.quantize(&x, 512, 256);
        assert_eq!(q.rows(), 1);
        let r = q.row(0);
        assert_eq!((r.d.len(), r.sums.len()), (2, 16));
        let back = r.dequantize();
        for (b, (xb, yb)) in x.chunks(256).zip(back.chunks(256)).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(r.d[b], amax / 127.0);
            for (a, c) in xb.iter().zip(yb) {
                assert!((a - c).abs() <= r.d[b] / 2.0 + 1e-7);
            }
        }
        for (k, s) in r.sums.iter().enumerate() {
            let sum: i32 = r.qs[k * QK..(k + 1) * QK].iter().map(|v| *v as i32).sum();
            assert_eq!(*s, sum);
        }
        // Two rows of 256: each its own scale.
        q.quantize(&x, 256, 256);
        assert_eq!(q.rows(), 2);
        assert_eq!(q.row(1).d.len(), 1);
        assert_eq!(q.row(1).sums.len(), 8);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_form_gives_the_same_codes() {
        if !wide() {
            return;
        }
        // Ties (x.5 after scaling), values past the range, zeros and ordinary values.
        let mut x: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
            .collect();
        x[3] = 0.5;
        x[4] = -2.5;
        x[5] = 3.5;
        for id in [1.0f32, 0.75, 2.0, 0.0] {
            for chunk in x.chunks(32) {
                let (mut a, mut b) = ([0i8; 32], [0i8; 32]);
                let sa = quantize_32_portable(chunk, id, &mut a);
                let sb = unsafe { crate::kernels::x86::quantize_32(chunk, id, &mut b) };
                assert_eq!((a, sa), (b, sb), "id {id}");
            }
        }
        let y: Vec<f32> = x.iter().map(|v| -v * 1.5).collect();
        assert_eq!(amax(&y), y.iter().fold(0f32, |m, v| m.max(v.abs())));
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let mut q = Q8Rows::new();
        q.quantize(&[0.0; 64], 32, QK);
        assert_eq!(q.rows(), 2);
        assert_eq!(q.row(1).d, &[0.0]);
        assert!(q.qs.iter().all(|v| *v == 0));
    }
}
