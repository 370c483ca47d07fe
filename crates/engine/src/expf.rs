//! `e^x` for f32, eight at a time with AVX2 and FMA, giving for every input the bits the GNU C
//! library's `expf` gives on such a CPU.
//!
//! The softmax of attention and the silu of the feed-forward layers take an exponential per
//! element. A fast polynomial would round a few results differently from the C library, and a
//! rounding difference in one layer can flip which way an 8-bit activation rounds a few layers
//! later, changing a small model's greedy answer where two tokens are near a tie. So this runs
//! the C library's own method (published with its source): in double precision, `x · 32/ln 2`
//! rounded to an integer `k` and a remainder `r`, `2^(k/32)` from a 32-entry table and the
//! exponent bits, a cubic in `r`, one rounding to f32 at the end. On an x86-64 CPU with FMA the
//! library is built with fused multiply-adds, and so is this. Four lanes of doubles per
//! instruction make it several times faster than calling the library once per element.
//!
//! The test `matches_the_c_library_on_every_input` checks every f32 input in the range that is
//! not a special case, bit for bit, against the C library of the machine it runs on.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `2^(i/32)` rounded to the nearest double, minus `i << 47` (so that adding `k << 47` for
/// `k ≡ i mod 32` gives `2^(k/32)`'s bits).
#[cfg(target_arch = "x86_64")]
static TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// `32 / ln 2`.
#[cfg(target_arch = "x86_64")]
const INV_LN2_32: u64 = 0x40471547652b82fe;
/// `1.5 · 2^52`: adding it rounds a double below `2^51` in magnitude to an integer, which then
/// sits in the low bits.
#[cfg(target_arch = "x86_64")]
const SHIFT: u64 = 0x4338000000000000;
/// The cubic's coefficients for `r³`, `r²` and `r` (the constant is 1).
#[cfg(target_arch = "x86_64")]
const C: [u64; 3] = [0x3ebc6af84b912394, 0x3f2ebfce50fac4f3, 0x3f962e42ff0c52d6];
/// Below this the result is 0 (the library's underflow case).
#[cfg(target_arch = "x86_64")]
const UNDER: u32 = 0xc2cff1b4;
/// Above this the result is infinite (the library's overflow case).
#[cfg(target_arch = "x86_64")]
const OVER: u32 = 0x42b17217;

/// Whether [`exp8`] runs here (AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Four lanes of the method in double precision (finite inputs between the limits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp4(x: __m256d) -> __m256d {
    let inv = _mm256_set1_pd(f64::from_bits(INV_LN2_32));
    let shift = _mm256_set1_pd(f64::from_bits(SHIFT));
    // k = round(x · 32/ln 2) (in the low bits of `kd`), r = x · 32/ln 2 - k.
    let kd = _mm256_fmadd_pd(inv, x, shift);
    let r = _mm256_fmsub_pd(inv, x, _mm256_sub_pd(kd, shift));
    let ki = _mm256_castpd_si256(kd);
    let i = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    // SAFETY: every index is below 32, the table's length.
    let t = unsafe { _mm256_i64gather_epi64::<8>(TABLE.as_ptr() as *const i64, i) };
    let s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64::<47>(ki)));
    let [c0, c1, c2] = C.map(|c| _mm256_set1_pd(f64::from_bits(c)));
    let z = _mm256_fmadd_pd(c0, r, c1);
    let r2 = _mm256_mul_pd(r, r);
    let y = _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0));
    let y = _mm256_fmadd_pd(z, r2, y);
    _mm256_mul_pd(y, s)
}

/// `e^x` for eight floats, each with the bits the C library's `expf` gives (see the module
/// header), special cases included: 0 below about -103.97 (and for -∞), ∞ above about 88.72,
/// NaN for NaN.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
    let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(f32::from_bits(UNDER)));
    let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(f32::from_bits(OVER)));
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
    // Lanes outside the limits compute from 0 (their result is replaced below).
    let xs = _mm256_andnot_ps(_mm256_or_ps(_mm256_or_ps(under, over), nan), x);
    // SAFETY: the caller's contract (AVX2 and FMA).
    let (lo, hi) = unsafe {
        (
            exp4(_mm256_cvtps_pd(_mm256_castps256_ps128(xs))),
            exp4(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(xs))),
        )
    };
    let e = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    let e = _mm256_andnot_ps(under, e);
    let e = _mm256_blendv_ps(e, _mm256_set1_ps(f32::INFINITY), over);
    _mm256_blendv_ps(e, _mm256_add_ps(x, x), nan)
}

/// `x[i] = e^(x[i] - shift)` for every element, with [`exp8`] (the last few through a padded
/// vector), so every element gets the C library's bits whatever its position.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn exp_shifted(x: &mut [f32], shift: f32) {
    let sh = _mm256_set1_ps(shift);
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` holds eight floats; the caller's contract.
        unsafe {
            let v = _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), sh);
            _mm256_storeu_ps(c.as_mut_ptr(), exp8(v));
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0f32; 8];
        buf[..rest.len()].copy_from_slice(rest);
        // SAFETY: `buf` holds eight floats; the caller's contract.
        unsafe {
            let v = _mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), sh);
            _mm256_storeu_ps(buf.as_mut_ptr(), exp8(v));
        }
        rest.copy_from_slice(&buf[..rest.len()]);
    }
}

/// [`exp4`] on eight lanes of doubles with AVX-512: the same operations per lane (the table
/// looked up by two permutes instead of a gather), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
#[inline]
unsafe fn exp8d(x: __m512d) -> __m512d {
    let inv = _mm512_set1_pd(f64::from_bits(INV_LN2_32));
    let shift = _mm512_set1_pd(f64::from_bits(SHIFT));
    let kd = _mm512_fmadd_pd(inv, x, shift);
    let r = _mm512_fmsub_pd(inv, x, _mm512_sub_pd(kd, shift));
    let ki = _mm512_castpd_si512(kd);
    // Entries (k mod 32): the low four bits pick one of 16 in a pair of registers, the fifth
    // picks the pair.
    // SAFETY: the table holds 32 entries, read as four vectors of eight.
    let tab: [__m512i; 4] = std::array::from_fn(|q| unsafe {
        _mm512_loadu_si512(TABLE.as_ptr().add(8 * q) as *const _)
    });
    let low = _mm512_permutex2var_epi64(tab[0], ki, tab[1]);
    let high = _mm512_permutex2var_epi64(tab[2], ki, tab[3]);
    let upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
    let t = _mm512_mask_blend_epi64(upper, low, high);
    let s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64::<47>(ki)));
    let [c0, c1, c2] = C.map(|c| _mm512_set1_pd(f64::from_bits(c)));
    let z = _mm512_fmadd_pd(c0, r, c1);
    let r2 = _mm512_mul_pd(r, r);
    let y = _mm512_fmadd_pd(c2, r, _mm512_set1_pd(1.0));
    let y = _mm512_fmadd_pd(z, r2, y);
    _mm512_mul_pd(y, s)
}

/// [`exp8`] for sixteen floats with AVX-512: the same bits, special cases included.
///
/// # Safety
/// The CPU must have AVX2, FMA and AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
#[inline]
pub(crate) unsafe fn exp16(x: __m512) -> __m512 {
    let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(f32::from_bits(UNDER)));
    let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(f32::from_bits(OVER)));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    // Lanes outside the limits compute from 0 (their result is replaced below).
    let xs = _mm512_maskz_mov_ps(!(under | over | nan), x);
    let halves = _mm512_castps_pd(xs);
    let lo = _mm256_castpd_ps(_mm512_castpd512_pd256(halves));
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(halves));
    // SAFETY: the caller's contract.
    let (lo, hi) = unsafe {
        (
            _mm512_cvtpd_ps(exp8d(_mm512_cvtps_pd(lo))),
            _mm512_cvtpd_ps(exp8d(_mm512_cvtps_pd(hi))),
        )
    };
    let e = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
        _mm256_castps_pd(hi),
    ));
    let e = _mm512_maskz_mov_ps(!under, e);
    let e = _mm512_mask_mov_ps(e, over, _mm512_set1_ps(f32::INFINITY));
    _mm512_mask_mov_ps(e, nan, _mm512_add_ps(x, x))
}

/// [`exp_shifted`] sixteen at a time with [`exp16`]: the same bits.
///
/// # Safety
/// The CPU must have AVX2, FMA and AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
#[inline]
pub(crate) unsafe fn exp_shifted16(x: &mut [f32], shift: f32) {
    let sh = _mm512_set1_ps(shift);
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds sixteen floats; the caller's contract.
        unsafe {
            let v = _mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), sh);
            _mm512_storeu_ps(c.as_mut_ptr(), exp16(v));
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        // SAFETY: the caller's contract.
        unsafe { exp_shifted(rest, shift) };
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn exp8_of(x: [f32; 8]) -> [f32; 8] {
        let mut out = [0f32; 8];
        // SAFETY: checked by the callers (available()).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp8(_mm256_loadu_ps(x.as_ptr()))) };
        out
    }

    /// Every f32 between the limits (about two billion inputs), bit for bit against the C
    /// library this test runs with, on two threads (about ten seconds with optimizations).
    /// Where the library is not the GNU one built for FMA this reports the difference, which is
    /// what it is meant to do: the model's answers would then not be those of candle's steps.
    /// Every f32 between the limits (about two billion inputs) through `f`, `L` at a time, bit
    /// for bit against the C library this test runs with, on two threads: up to eight
    /// differences as (x, ours, expf).
    fn differences<const L: usize>(f: fn([f32; L]) -> [f32; L]) -> Vec<(f32, f32, f32)> {
        let ranges = [(0u32, OVER), (0x8000_0000u32, UNDER)];
        let workers: Vec<_> = ranges
            .into_iter()
            .map(|(a, b)| {
                std::thread::spawn(move || {
                    let mut bad = Vec::new();
                    let mut bits = a;
                    while bits <= b {
                        let x: [f32; L] =
                            std::array::from_fn(|k| f32::from_bits((bits + k as u32).min(b)));
                        let got = f(x);
                        for k in 0..L {
                            if got[k].to_bits() != x[k].exp().to_bits() && bad.len() < 8 {
                                bad.push((x[k], got[k], x[k].exp()));
                            }
                        }
                        bits = match bits.checked_add(L as u32) {
                            Some(n) => n,
                            None => break,
                        };
                    }
                    bad
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    }

    /// Every f32 between the limits, bit for bit against the C library (about ten seconds with
    /// optimizations). Where the library is not the GNU one built for FMA this reports the
    /// difference, which is what it is meant to do: the model's answers would then not be those
    /// of candle's steps.
    #[test]
    fn matches_the_c_library_on_every_input() {
        if !available() {
            return;
        }
        let bad = differences(exp8_of);
        assert!(bad.is_empty(), "differs from expf: (x, ours, expf) {bad:?}");
    }

    fn avx512() -> bool {
        available() && is_x86_feature_detected!("avx512f")
    }

    fn exp16_of(x: [f32; 16]) -> [f32; 16] {
        let mut out = [0f32; 16];
        // SAFETY: checked by the callers (avx512()).
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp16(_mm512_loadu_ps(x.as_ptr()))) };
        out
    }

    /// The AVX-512 build gives the C library's bits on every input between the limits too
    /// (where the CPU has AVX-512; about ten seconds with optimizations).
    #[test]
    fn the_avx512_build_matches_the_c_library_on_every_input() {
        if !avx512() {
            return;
        }
        let bad = differences(exp16_of);
        assert!(bad.is_empty(), "differs from expf: (x, ours, expf) {bad:?}");
    }

    #[test]
    fn the_avx512_build_special_cases_and_tails() {
        if !avx512() {
            return;
        }
        let mut x = [0.5f32; 16];
        x[..8].copy_from_slice(&[
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -1e30,
            1e30,
            f32::from_bits(UNDER),
            f32::from_bits(OVER),
            -0.0,
        ]);
        x[9] = -104.5;
        x[12] = 89.0;
        x[15] = f32::NAN;
        for (x, g) in x.iter().zip(exp16_of(x)) {
            let want = x.exp();
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "e^{x}: {g} vs {want}"
            );
        }
        for n in 0..40 {
            let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 3.0).collect();
            let want: Vec<f32> = v.iter().map(|x| (x - 1.5).exp()).collect();
            // SAFETY: avx512() was checked above.
            unsafe { exp_shifted16(&mut v, 1.5) };
            assert_eq!(v, want, "{n} elements");
        }
    }

    #[test]
    fn special_cases_and_tails() {
        if !available() {
            return;
        }
        let x = [
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -1e30,
            1e30,
            f32::from_bits(UNDER),
            f32::from_bits(OVER),
            -0.0,
        ];
        let got = exp8_of(x);
        for (x, g) in x.iter().zip(got) {
            let want = x.exp();
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "e^{x}: {g} vs {want}"
            );
        }
        // Every length, so the padded last vector is covered.
        for n in 0..20 {
            let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 3.0).collect();
            let want: Vec<f32> = v.iter().map(|x| (x - 1.5).exp()).collect();
            // SAFETY: available() was checked above.
            unsafe { exp_shifted(&mut v, 1.5) };
            assert_eq!(v, want, "{n} elements");
        }
    }
}
