//! Element-wise steps of a layer that Hearth computes itself instead of through candle: they run
//! on Hearth's compute pool (candle's own pool would compete with it for the same cores), fused
//! into one pass where candle makes two.
//!
//! Each element gets exactly the bits candle's steps would give (same operations, and an
//! exponential with the C library's bits: [`crate::expf`], eight at a time where the CPU has AVX2
//! and FMA): a faster exp would round a few results differently, and a rounding difference in
//! one layer can flip which way an 8-bit activation rounds a few layers later, changing a small
//! model's greedy answer where two tokens are near a tie.

use candle_core::{DType, Tensor};

use crate::error::{EngineError, Result};

/// Below this many elements a step runs on the calling thread alone.
const PARALLEL_MIN: usize = 32 * 1024;

/// `silu(g) · u` as candle computes `silu(g) * u`: `g / (1 + e^-g)` rounded, times `u`.
#[inline(always)]
fn silu_mul_one(g: f32, u: f32) -> f32 {
    let s = g / (1.0 + (-g).exp());
    s * u
}

fn silu_mul_slices(g: &[f32], u: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::expf::available() && wide512() {
        // SAFETY: the CPU has AVX2, FMA and AVX-512 F.
        unsafe { silu_mul_zmm(g, u, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::expf::available() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { silu_mul_avx(g, u, out) };
        return;
    }
    for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
        *o = silu_mul_one(*g, *u);
    }
}

/// [`silu_mul_one`] eight at a time: the same operations (negation, exp with the C library's
/// bits, add, divide, multiply), so the same bits; the last few through a padded vector.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`crate::expf::available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx(g: &[f32], u: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len().min(g.len()).min(u.len());
    let one = _mm256_set1_ps(1.0);
    let sign = _mm256_set1_ps(-0.0);
    // SAFETY (both): eight floats are read from `g` and `u` and written to `o`, each of which
    // holds them; the caller's contract covers exp8.
    let eight = |g: *const f32, u: *const f32, o: *mut f32| unsafe {
        let gv = _mm256_loadu_ps(g);
        let e = crate::expf::exp8(_mm256_xor_ps(gv, sign));
        let s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(o, _mm256_mul_ps(s, _mm256_loadu_ps(u)));
    };
    let mut i = 0;
    while i + 8 <= n {
        eight(g[i..].as_ptr(), u[i..].as_ptr(), out[i..].as_mut_ptr());
        i += 8;
    }
    if i < n {
        let (mut gb, mut ub, mut ob) = ([0f32; 8], [0f32; 8], [0f32; 8]);
        gb[..n - i].copy_from_slice(&g[i..n]);
        ub[..n - i].copy_from_slice(&u[i..n]);
        eight(gb.as_ptr(), ub.as_ptr(), ob.as_mut_ptr());
        out[i..n].copy_from_slice(&ob[..n - i]);
    }
}

/// Whether the AVX-512 build of the exponential runs here: where the kernels run their AVX-512
/// instruction set (so `HEARTH_KERNELS=avx2` keeps to AVX2 here too).
#[cfg(target_arch = "x86_64")]
fn wide512() -> bool {
    crate::kernels::selected() == Some(crate::kernels::Isa::Avx512Vnni)
        && is_x86_feature_detected!("avx512f")
}

/// [`silu_mul_avx`] sixteen at a time with [`crate::expf::exp16`]: the same operations per
/// element, so the same bits; the last few through [`silu_mul_avx`].
///
/// # Safety
/// The CPU must have AVX2, FMA and AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn silu_mul_zmm(g: &[f32], u: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len().min(g.len()).min(u.len());
    let one = _mm512_set1_ps(1.0);
    let sign = _mm512_set1_epi32(i32::MIN);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: sixteen floats are read from `g` and `u` and written to `out` at `i`, each of
        // which holds them; the caller's contract covers exp16.
        unsafe {
            let gv = _mm512_loadu_ps(g.as_ptr().add(i));
            let neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gv), sign));
            let e = crate::expf::exp16(neg);
            let s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
            let uv = _mm512_loadu_ps(u.as_ptr().add(i));
            _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_mul_ps(s, uv));
        }
        i += 16;
    }
    if i < n {
        // SAFETY: the caller's contract (AVX2 and FMA).
        unsafe { silu_mul_avx(&g[i..n], &u[i..n], &mut out[i..n]) };
    }
}

/// The output pointer shared by the pool's threads; each writes only its own range.
struct Out(*mut f32);
// SAFETY: ranges are disjoint and the pool returns only after all of them are written.
unsafe impl Sync for Out {}

/// `silu(g) · u` for two f32 tensors of the same shape (a gated feed-forward's gate and up
/// projections), on the compute pool when large (a prompt).
pub fn silu_mul(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    if g.dims() != u.dims() || g.dtype() != DType::F32 || u.dtype() != DType::F32 {
        return Err(EngineError::Compute(format!(
            "silu·mul of {:?} {:?} and {:?} {:?}",
            g.dims(),
            g.dtype(),
            u.dims(),
            u.dtype()
        )));
    }
    let (g, u) = (g.contiguous()?, u.contiguous()?);
    let out = with_f32(&g, |gv| {
        with_f32(&u, |uv| {
            let mut out = vec![0f32; gv.len()];
            silu_mul_into(gv, uv, &mut out);
            out
        })
    })??;
    Ok(Tensor::from_vec(out, g.dims(), g.device())?)
}

/// [`silu_mul`] on slices of the same length: `out[i] = silu(g[i]) · u[i]`.
pub(crate) fn silu_mul_into(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    if n < PARALLEL_MIN {
        silu_mul_slices(&g[..n], &u[..n], &mut out[..n]);
    } else {
        let o = Out(out.as_mut_ptr());
        let o = &o;
        crate::pool::global().run_aligned(n, 1024, |r| {
            // SAFETY: the pool hands out disjoint ranges inside `0..n`, and `out` holds `n`.
            let dst = unsafe { std::slice::from_raw_parts_mut(o.0.add(r.start), r.len()) };
            silu_mul_slices(&g[r.clone()], &u[r], dst);
        });
    }
}

/// Calls `f` with the elements of a contiguous f32 tensor in CPU memory, in place.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) => {
            Ok(f(&v[a..b]))
        }
        _ => Err(EngineError::Compute(
            "an element-wise step takes contiguous f32 tensors in CPU memory".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same bits as candle's `silu(g) * u`, for a decode-sized step and a prompt-sized one
    /// (split over the pool), with values from deep negative to large positive.
    #[test]
    fn silu_mul_gives_candles_bits() {
        let dev = candle_core::Device::Cpu;
        for n in [1536, 1539, 100_003] {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 20_011) as f32 / 500.0 - 20.0)
                .collect();
            let u: Vec<f32> = (0..n)
                .map(|i| ((i * 104_729) % 1_009) as f32 / 300.0 - 1.7)
                .collect();
            let gt = Tensor::from_vec(g, (1, n), &dev).unwrap();
            let ut = Tensor::from_vec(u, (1, n), &dev).unwrap();
            let ours: Vec<f32> = silu_mul(&gt, &ut)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let theirs: Vec<f32> = (candle_nn::ops::silu(&gt).unwrap() * &ut)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(
                ours.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                theirs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{n} elements"
            );
        }
        let gt = Tensor::zeros((1, 4), DType::F32, &dev).unwrap();
        let bad = Tensor::zeros((1, 5), DType::F32, &dev).unwrap();
        assert!(silu_mul(&gt, &bad).is_err());
    }
}
