//! Element-wise steps of a layer that Hearth computes itself instead of through candle: they run
//! on Hearth's compute pool (candle's own pool would compete with it for the same cores) and
//! with AVX2 where the CPU has it.
//!
//! Every element is computed by the same sequence of operations on every path (the AVX2 lanes,
//! the portable loop, the tail of an AVX2 run), so a result does not depend on where an element
//! falls in a call: a token gives the same bits inside a prompt or alone.

use candle_core::{DType, Tensor};

use crate::error::{EngineError, Result};

/// Below this many elements a step runs on the calling thread alone.
const PARALLEL_MIN: usize = 32 * 1024;

// exp(x) as 2^n · p(r), r = x - n·ln 2 (ln 2 in two parts), p a degree-7 polynomial (Cephes'
// single-precision coefficients); within 2 units in the last place over the clamped range.
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5.000_000_1e-1,
];

/// `e^x`, portable; the same operations as the AVX2 lanes of [`silu_mul_avx2`].
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.max(EXP_LO).min(EXP_HI);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    let z = r * r;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let y = p * z + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `silu(g) · u = g / (1 + e^-g) · u`, portable.
#[inline(always)]
fn silu_mul_one(g: f32, u: f32) -> f32 {
    g / (1.0 + exp(-g)) * u
}

fn silu_mul_portable(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
        *o = silu_mul_one(*g, *u);
    }
}

/// [`silu_mul_portable`] eight at a time.
///
/// # Safety
/// The CPU has AVX2; the three slices have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn silu_mul_avx2(g: &[f32], u: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len();
    let whole = n / 8 * 8;
    let (lo, hi) = (_mm256_set1_ps(EXP_LO), _mm256_set1_ps(EXP_HI));
    let (log2e, ln2_hi, ln2_lo) = (
        _mm256_set1_ps(LOG2E),
        _mm256_set1_ps(LN2_HI),
        _mm256_set1_ps(LN2_LO),
    );
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i < whole {
        let gv = _mm256_loadu_ps(g.as_ptr().add(i));
        let uv = _mm256_loadu_ps(u.as_ptr().add(i));
        // e^-g, as `exp` does it: max before min, a NaN becomes EXP_LO in both.
        let x = _mm256_sub_ps(_mm256_setzero_ps(), gv);
        let x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
        let nf = _mm256_round_ps(
            _mm256_mul_ps(x, log2e),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_sub_ps(x, _mm256_mul_ps(nf, ln2_hi));
        let r = _mm256_sub_ps(r, _mm256_mul_ps(nf, ln2_lo));
        let z = _mm256_mul_ps(r, r);
        let mut p = _mm256_set1_ps(P[0]);
        for c in &P[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(*c));
        }
        let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), one);
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)),
            23,
        ));
        let e = _mm256_mul_ps(y, scale);
        let s = _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), uv);
        _mm256_storeu_ps(out.as_mut_ptr().add(i), s);
        i += 8;
    }
    silu_mul_portable(&g[whole..], &u[whole..], &mut out[whole..]);
}

/// `silu(g) · u` element by element, `avx2` choosing the AVX2 loop (the caller has checked the
/// CPU has it).
fn silu_mul_slices(g: &[f32], u: &[f32], out: &mut [f32], avx2: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller checked AVX2; the lengths are equal (checked in `silu_mul`).
        unsafe { silu_mul_avx2(g, u, out) };
        return;
    }
    let _ = avx2;
    silu_mul_portable(g, u, out);
}

/// The output pointer shared by the pool's threads; each writes only its own range.
struct Out(*mut f32);
// SAFETY: ranges are disjoint and the pool returns only after all of them are written.
unsafe impl Sync for Out {}

/// `silu(g) · u` for two f32 tensors of the same shape (a gated feed-forward's gate and up
/// projections), on the compute pool when large (a prompt).
pub fn silu_mul(g: &Tensor, u: &Tensor, avx2: bool) -> Result<Tensor> {
    if g.dims() != u.dims() || g.dtype() != DType::F32 || u.dtype() != DType::F32 {
        return Err(EngineError::Compute(format!(
            "silu·mul of {:?} {:?} and {:?} {:?}",
            g.dims(),
            g.dtype(),
            u.dims(),
            u.dtype()
        )));
    }
    #[cfg(target_arch = "x86_64")]
    let avx2 = avx2 && std::arch::is_x86_feature_detected!("avx2");
    let (g, u) = (g.contiguous()?, u.contiguous()?);
    let out = with_f32(&g, |gv| {
        with_f32(&u, |uv| {
            let n = gv.len();
            let mut out = vec![0f32; n];
            if n < PARALLEL_MIN {
                silu_mul_slices(gv, uv, &mut out, avx2);
            } else {
                let o = Out(out.as_mut_ptr());
                let o = &o;
                crate::pool::global().run_aligned(n, 1024, |r| {
                    // SAFETY: the pool hands out disjoint ranges inside `0..n`.
                    let dst = unsafe { std::slice::from_raw_parts_mut(o.0.add(r.start), r.len()) };
                    silu_mul_slices(&gv[r.clone()], &uv[r], dst, avx2);
                });
            }
            out
        })
    })??;
    Ok(Tensor::from_vec(out, g.dims(), g.device())?)
}

/// Calls `f` with the elements of a contiguous f32 tensor in CPU memory, in place.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
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

    #[test]
    fn exp_is_close_to_the_exact_value() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let ours = exp(x) as f64;
            let exact = (x as f64).exp();
            worst = worst.max(((ours - exact) / exact).abs());
            x += 0.0137;
        }
        assert!(worst < 3.0 * f32::EPSILON as f64, "relative error {worst}");
        // Far outside the range: saturated, never infinite or NaN.
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn silu_mul_matches_f64_and_every_path_gives_the_same_bits() {
        let n = 100_003;
        let g: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 20_011) as f32 / 500.0 - 20.0)
            .collect();
        let u: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729) % 1_009) as f32 / 300.0 - 1.7)
            .collect();
        let dev = candle_core::Device::Cpu;
        let gt = Tensor::from_vec(g.clone(), (1, n), &dev).unwrap();
        let ut = Tensor::from_vec(u.clone(), (1, n), &dev).unwrap();
        let portable: Vec<f32> = silu_mul(&gt, &ut, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for i in 0..n {
            let (gd, ud) = (g[i] as f64, u[i] as f64);
            let exact = gd / (1.0 + (-gd).exp()) * ud;
            let err = (portable[i] as f64 - exact).abs();
            assert!(
                err <= 1e-6 * exact.abs() + 1e-30,
                "element {i}: {} vs {exact}",
                portable[i]
            );
        }
        // The AVX2 loop (where there is one), and any split into pieces, give the same bits.
        let wide: Vec<f32> = silu_mul(&gt, &ut, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(
            wide.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            portable.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        for start in [0, 3, 13, 4093] {
            let len = 29;
            let mut part = vec![0f32; len];
            silu_mul_slices(
                &g[start..start + len],
                &u[start..start + len],
                &mut part,
                true,
            );
            for k in 0..len {
                assert_eq!(
                    part[k].to_bits(),
                    portable[start + k].to_bits(),
                    "{start}+{k}"
                );
            }
        }
        let bad = Tensor::zeros((1, 5), DType::F32, &dev).unwrap();
        assert!(silu_mul(&gt, &bad, true).is_err());
    }
}
