//! Prompt products with AVX-512 and its 8-bit dot-product instruction (VNNI), for every covered
//! type: sixteen weight rows at a time, one row per 32-bit lane.
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
//!
//! The k-quants ([`TileK`]) are laid out the same way, 64 vectors per block of 256. Each
//! sub-block's integer sum (eight instructions for 32 codes) is multiplied by the rows' 6- or
//! 8-bit sub-block scales as integers, and the mins term `Σ_j m_j Σy_j` takes four 16-bit
//! dot-product instructions; Q6_K's signed codes take the instruction's signed side against the
//! activations plus 128, and the tile keeps what that bias adds (`128 · Σ_j sc_j Σ_i q_i`) to
//! subtract it again. The floating-point steps per block are the portable path's, in its order.

use std::arch::x86_64::*;

use super::q8::{Q8Row, Q8Rows, QK};
use super::x86::{half, k4_scales, k_bytes, k_codes, k_codes_chunks, k_type, K4, K5, K6};
use super::{interleave, BlockType};

/// Whether this CPU has the AVX-512 parts these functions and the AVX-512 single-token kernels
/// of [`super::x86`] use (F, BW, VNNI, and BMI2, which every AVX-512 CPU has); the caller also
/// checks AVX2, FMA and F16C ([`super::x86::available`]).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("bmi2")
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

/// Where a weight row's blocks are: a GGUF row, or row `i` of an interleaved group of eight
/// (see [`super::interleave`]).
#[derive(Clone, Copy)]
enum Src {
    Row(*const u8),
    Group(*const u8, usize),
}

/// Where row `row` of a matrix (`data`, rows of `row_bytes`) is when the rows below
/// `interleaved` are held in groups of eight.
unsafe fn src(data: &[u8], row_bytes: usize, row: usize, interleaved: usize) -> Src {
    if row < interleaved {
        Src::Group(data.as_ptr().add(row / 8 * 8 * row_bytes), row % 8)
    } else {
        Src::Row(data.as_ptr().add(row * row_bytes))
    }
}

/// Decodes row `r` of the tile: `nb` blocks of type `ty` from `src`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode(tile: &mut Tile16, ty: BlockType, r: usize, src: Src, nb: usize) {
    let mut put = |b: usize, (codes, d, o): (__m256i, f32, f32)| {
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
    };
    // One loop per layout, rather than a choice per block.
    match src {
        Src::Row(row) => {
            for b in 0..nb {
                put(b, super::x86::decode_block(ty, row, b));
            }
        }
        Src::Group(g, i) => {
            let bs8 = 8 * ty.block_bytes();
            for b in 0..nb {
                put(b, super::x86::decode_block_x8(ty, g.add(b * bs8), i));
            }
        }
    }
}

/// Rows `8h..8h + 8` of the tile from the whole interleaved group at `g` (`nb` blocks of `ty`,
/// a type with blocks of 32): each block's eight rows from one pass over its bytes
/// ([`super::x86::group_block32`]), transposed as 32-bit words into the tile's order, the
/// scales and offset weights stored as vectors. The same values as [`decode`] of each row.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_group(tile: &mut Tile16, ty: BlockType, h: usize, g: *const u8, nb: usize) {
    let bs8 = 8 * ty.block_bytes();
    macro_rules! each_block {
        ($ty:expr) => {
            for b in 0..nb {
                let gb = g.add(b * bs8);
                super::x86::prefetch_group_ahead(gb, bs8);
                let (mut rows, d, o) = super::x86::group_block32($ty, gb);
                if $ty == BlockType::Q8_0 {
                    for v in rows.iter_mut() {
                        *v = _mm256_xor_si256(*v, _mm256_set1_epi8(-128));
                    }
                }
                let words = super::x86::transpose8(&rows);
                for (k, w) in words.iter().enumerate() {
                    let at = tile.q.as_mut_ptr().add((b * 8 + k) * ROWS + 8 * h);
                    _mm256_storeu_si256(at as *mut __m256i, *w);
                }
                _mm256_storeu_ps(tile.d.as_mut_ptr().add(b * ROWS + 8 * h), d);
                _mm256_storeu_ps(tile.o.as_mut_ptr().add(b * ROWS + 8 * h), o);
            }
        };
    }
    // One loop per type, rather than a choice per block.
    match ty {
        BlockType::Q4_0 => each_block!(BlockType::Q4_0),
        BlockType::Q4_1 => each_block!(BlockType::Q4_1),
        BlockType::Q5_0 => each_block!(BlockType::Q5_0),
        _ => each_block!(BlockType::Q8_0),
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

/// Sixteen decoded k-quant rows, for [`product_k`]: codes interleaved four bytes per row in
/// value order (`q[(b * 64 + k) * 16 + r]` holds codes `4k..4k+4` of block `b` of row `r`),
/// sub-block scales `sc[(b * 16 + j) * 16 + r]` (eight sub-blocks of 32 for Q4_K and Q5_K,
/// sixteen of 16 for Q6_K), the mins of sub-blocks `2i` and `2i + 1` as two i16 in
/// `mp[(b * 4 + i) * 16 + r]`, the block scale `d` and `-dmin` (`nd`), and for Q6_K `corr`, what
/// its activations' bias of 128 adds to the block's integer sum.
#[derive(Default)]
struct TileK {
    q: Vec<u32>,
    sc: Vec<i32>,
    mp: Vec<i32>,
    d: Vec<f32>,
    nd: Vec<f32>,
    corr: Vec<i32>,
}

impl TileK {
    fn reserve(&mut self, nsb: usize) {
        if self.d.len() < nsb * ROWS {
            self.q.resize(nsb * 64 * ROWS, 0);
            self.sc.resize(nsb * 16 * ROWS, 0);
            self.mp.resize(nsb * 4 * ROWS, 0);
            self.d.resize(nsb * ROWS, 0.0);
            self.nd.resize(nsb * ROWS, 0.0);
            self.corr.resize(nsb * ROWS, 0);
        }
    }
}

thread_local! {
    static TILE_K: std::cell::RefCell<TileK> = std::cell::RefCell::new(TileK::default());
    /// The activations plus 128, as unsigned bytes (Q6_K's signed codes take the instruction's
    /// signed side).
    static BIASED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Transposes sixteen vectors of sixteen u32: afterwards `v[c]` lane `r` holds what `v[r]` lane
/// `c` held.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn transpose16(v: &mut [__m512i; 16]) {
    // Pairs of rows interleaved by 32 bits, then by 64 bits: u[4i + k], 128-bit lane L, holds
    // column 4L + k of rows 4i..4i + 4.
    let t: [__m512i; 16] = std::array::from_fn(|x| {
        let (a, b) = (v[x & !1], v[x | 1]);
        if x % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    let u: [__m512i; 16] = std::array::from_fn(|x| {
        let (i, k) = (x / 4, x % 4);
        let (a, b) = (t[4 * i + k / 2], t[4 * i + 2 + k / 2]);
        if k % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Then the 128-bit lanes of the four row groups, a 4 × 4 transpose for each k.
    for k in 0..4 {
        let (a, b, c, d) = (u[k], u[4 + k], u[8 + k], u[12 + k]);
        let ab_lo = _mm512_shuffle_i32x4::<0x44>(a, b);
        let ab_hi = _mm512_shuffle_i32x4::<0xee>(a, b);
        let cd_lo = _mm512_shuffle_i32x4::<0x44>(c, d);
        let cd_hi = _mm512_shuffle_i32x4::<0xee>(c, d);
        v[k] = _mm512_shuffle_i32x4::<0x88>(ab_lo, cd_lo);
        v[4 + k] = _mm512_shuffle_i32x4::<0xdd>(ab_lo, cd_lo);
        v[8 + k] = _mm512_shuffle_i32x4::<0x88>(ab_hi, cd_hi);
        v[12 + k] = _mm512_shuffle_i32x4::<0xdd>(ab_hi, cd_hi);
    }
}

/// Decodes block `b` of the sixteen rows at `rows` into the tile: each row's codes in value
/// order, then transposed sixteen words at a time into the interleaved layout.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn decode_k<const K: u8>(tile: &mut TileK, rows: &[Src; ROWS], b: usize) {
    let mut stage = [[0u32; 64]; ROWS];
    let bytes = k_bytes(K);
    let ty = k_type(K);
    for (r, src) in rows.iter().enumerate() {
        // Each GGUF row is its own stream, fetched a few blocks ahead; a group's rows share one,
        // each fetching its eighth two blocks ahead (a prefetch never faults). A group's row
        // is read where it is (`head`: the group block, `blk` here, and the row): its codes 32
        // bytes at a time from its pair, the rest from the group's fields.
        let (blk, ahead, head) = match *src {
            Src::Row(row) => {
                let blk = row.add(b * bytes);
                (blk, blk.wrapping_add(4 * bytes), None)
            }
            Src::Group(g, i) => {
                let block = g.add(b * 8 * bytes);
                (
                    block,
                    block.wrapping_add(2 * 8 * bytes + i * bytes),
                    Some(i),
                )
            }
        };
        for line in (0..bytes).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
        }
        let codes = match head {
            None => k_codes::<K>(blk),
            Some(i) => {
                let at = blk.add(interleave::k_pair_at(ty, i / 2) + 32 * (i % 2));
                k_codes_chunks::<K, 64>(at)
            }
        };
        for (j, c) in codes.iter().enumerate() {
            _mm256_storeu_si256(stage[r].as_mut_ptr().add(8 * j) as *mut __m256i, *c);
        }
        if K == K6 {
            let scales = match head {
                None => blk.add(192),
                Some(i) => blk.add(interleave::K6_SCALES_AT + 16 * i),
            } as *const i8;
            let mut corr = 0i32;
            for (j, c) in codes.iter().enumerate() {
                // Sums of bytes plus 128, eight at a time: the two halves' code sums.
                let s = _mm256_sad_epu8(
                    _mm256_xor_si256(*c, _mm256_set1_epi8(-128)),
                    _mm256_setzero_si256(),
                );
                let mut q = [0i64; 4];
                _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, s);
                for h in 0..2 {
                    let sc = *scales.add(2 * j + h) as i32;
                    *tile.sc.get_unchecked_mut((b * 16 + 2 * j + h) * ROWS + r) = sc;
                    corr += sc * ((q[2 * h] + q[2 * h + 1]) as i32 - 16 * 128);
                }
            }
            *tile.corr.get_unchecked_mut(b * ROWS + r) = 128 * corr;
            *tile.d.get_unchecked_mut(b * ROWS + r) = match head {
                None => half(blk.add(208)),
                Some(i) => half(blk.add(2 * i)),
            };
        } else {
            let (sc, m, d, dmin) = match head {
                None => {
                    let (sc, m) = k4_scales(blk.add(4));
                    (sc, m, blk, blk.add(2))
                }
                Some(i) => {
                    let group = std::slice::from_raw_parts(blk, 8 * bytes);
                    let (sc, m) = interleave::k4_scales_mins_packed(group, i);
                    let (sc, m) = (sc.to_le_bytes(), m.to_le_bytes());
                    (
                        sc,
                        m,
                        blk.add(2 * i),
                        blk.add(interleave::K_DMIN_AT + 2 * i),
                    )
                }
            };
            for j in 0..8 {
                *tile.sc.get_unchecked_mut((b * 16 + j) * ROWS + r) = sc[j] as i32;
            }
            for i in 0..4 {
                *tile.mp.get_unchecked_mut((b * 4 + i) * ROWS + r) =
                    m[2 * i] as i32 | (m[2 * i + 1] as i32) << 16;
            }
            *tile.d.get_unchecked_mut(b * ROWS + r) = half(d);
            *tile.nd.get_unchecked_mut(b * ROWS + r) = -half(dmin);
        }
    }
    for c in 0..4 {
        let mut v: [__m512i; 16] = std::array::from_fn(|r| {
            _mm512_loadu_si512(stage[r].as_ptr().add(16 * c) as *const __m512i)
        });
        transpose16(&mut v);
        for (k, x) in v.iter().enumerate() {
            _mm512_storeu_si512(
                tile.q.as_mut_ptr().add((b * 64 + 16 * c + k) * ROWS) as *mut __m512i,
                *x,
            );
        }
    }
}

/// The tile's sixteen k-quant rows (`K`) against `N` tokens, with the arithmetic of the AVX2
/// and portable paths per row: per block, the exact integer sum `Σ_j sc_j Σ_i q_i y_i`, then
/// `acc += (d · d_x) · sum` and, with mins, `off += (-dmin · d_x) · Σ_j m_j Σy_j`; the result is
/// `acc + off`. So the same bits as those paths. `biased`: each token's activations plus 128
/// (read for Q6_K only).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn product_k<const N: usize, const K: u8>(
    tile: &TileK,
    nsb: usize,
    xs: &[Q8Row<'_>; N],
    biased: &[*const u8; N],
    out: &mut [[f32; ROWS]; N],
) {
    let mut acc = [_mm512_setzero_ps(); N];
    let mut off = [_mm512_setzero_ps(); N];
    let q = tile.q.as_ptr();
    for b in 0..nsb {
        let mut isum = [_mm512_setzero_si512(); N];
        // Sub-blocks of 32 codes (eight words), or of 16 for Q6_K (four words).
        let (subs, words) = if K == K6 { (16, 4) } else { (8, 8) };
        for j in 0..subs {
            let mut s = [_mm512_setzero_si512(); N];
            for k in 0..words {
                let at = b * 64 + words * j + k;
                let w = _mm512_loadu_si512(q.add(at * ROWS) as *const __m512i);
                for t in 0..N {
                    s[t] = if K == K6 {
                        let a4 = (biased[t].add(4 * at) as *const i32).read_unaligned();
                        _mm512_dpbusd_epi32(s[t], _mm512_set1_epi32(a4), w)
                    } else {
                        let y4 = (xs[t].qs.as_ptr().add(4 * at) as *const i32).read_unaligned();
                        _mm512_dpbusd_epi32(s[t], w, _mm512_set1_epi32(y4))
                    };
                }
            }
            let sc =
                _mm512_loadu_si512(tile.sc.as_ptr().add((b * 16 + j) * ROWS) as *const __m512i);
            for t in 0..N {
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s[t], sc));
            }
        }
        if K == K6 {
            let corr = _mm512_loadu_si512(tile.corr.as_ptr().add(b * ROWS) as *const __m512i);
            for t in 0..N {
                isum[t] = _mm512_sub_epi32(isum[t], corr);
            }
        }
        let d = _mm512_loadu_ps(tile.d.as_ptr().add(b * ROWS));
        let nd = _mm512_loadu_ps(tile.nd.as_ptr().add(b * ROWS));
        for t in 0..N {
            let x = &xs[t];
            let dx = _mm512_set1_ps(*x.d.get_unchecked(b));
            let sum = _mm512_cvtepi32_ps(isum[t]);
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_mul_ps(d, dx), sum));
            if K != K6 {
                let sums = x.sums.as_ptr().add(b * 8);
                let mut msum = _mm512_setzero_si512();
                for i in 0..4 {
                    let pair = (*sums.add(2 * i) as u16 as u32
                        | (*sums.add(2 * i + 1) as u32) << 16)
                        as i32;
                    let m = _mm512_loadu_si512(
                        tile.mp.as_ptr().add((b * 4 + i) * ROWS) as *const __m512i
                    );
                    msum = _mm512_dpwssd_epi32(msum, m, _mm512_set1_epi32(pair));
                }
                let msum = _mm512_cvtepi32_ps(msum);
                off[t] = _mm512_add_ps(off[t], _mm512_mul_ps(_mm512_mul_ps(nd, dx), msum));
            }
        }
    }
    for t in 0..N {
        _mm512_storeu_ps(out[t].as_mut_ptr(), _mm512_add_ps(acc[t], off[t]));
    }
}

/// [`dot_rows`] for the k-quants, sixteen rows per tile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_rows_k<const K: u8>(
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    interleaved: usize,
) {
    let nsb = row_bytes / k_bytes(K);
    assert!(
        xs.block == 256
            && xs.blocks == nsb * 8
            && rows.end.max(interleaved) * row_bytes <= data.len()
            && interleaved.is_multiple_of(8)
    );
    let m = xs.rows();
    let cols = nsb * 256;
    let tokens: Vec<Q8Row<'_>> = (0..m).map(|t| xs.row(t)).collect();
    BIASED.with(|biased| {
        let mut biased = biased.borrow_mut();
        if K == K6 {
            biased.clear();
            biased.extend(xs.qs.iter().map(|v| *v as u8 ^ 0x80));
        }
        let biased: &[u8] = &biased;
        TILE_K.with(|tile| {
            let mut tile = tile.borrow_mut();
            tile.reserve(nsb);
            let mut r0 = rows.start;
            while r0 < rows.end {
                let valid = (rows.end - r0).min(ROWS);
                let ptrs: [Src; ROWS] = std::array::from_fn(|r| {
                    src(data, row_bytes, r0 + r.min(valid - 1), interleaved)
                });
                for b in 0..nsb {
                    decode_k::<K>(&mut tile, &ptrs, b);
                }
                let mut t = 0;
                while t < m {
                    let take = if t + GROUP <= m { GROUP } else { 1 };
                    let mut o = [[0f32; ROWS]; GROUP];
                    macro_rules! run {
                        ($n:expr) => {{
                            let group: [Q8Row<'_>; $n] = std::array::from_fn(|i| tokens[t + i]);
                            let ptrs: [*const u8; $n] = std::array::from_fn(|i| {
                                if K == K6 {
                                    biased.as_ptr().add((t + i) * cols)
                                } else {
                                    std::ptr::null()
                                }
                            });
                            let o: &mut [[f32; ROWS]; $n] = (&mut o[..$n]).try_into().unwrap();
                            product_k::<$n, K>(&tile, nsb, &group, &ptrs, o);
                        }};
                    }
                    if take == GROUP {
                        run!(GROUP);
                    } else {
                        run!(1);
                    }
                    for (i, orow) in o[..take].iter().enumerate() {
                        for (k, v) in orow[..valid].iter().enumerate() {
                            *out.add((t + i) * n + r0 + k) = *v;
                        }
                    }
                    t += take;
                }
                r0 += ROWS;
            }
        })
    });
}

/// Tokens taken together by one pass over a tile.
const GROUP: usize = 4;

/// `out[t * n + r] = row r of data · xs.row(t)` for `r` in `rows` and every row `t` of `xs`, for
/// a type with blocks of 32 or a k-quant. The rows below `interleaved` (a multiple of eight; 0
/// for a GGUF matrix) are held interleaved ([`super::interleave`]).
///
/// # Safety
/// The CPU has AVX2, FMA, F16C ([`super::x86::available`]) and [`available`]; `data` holds whole
/// rows of `row_bytes` covering `rows` (and the whole groups of eight rows below `interleaved`),
/// `xs` was quantized in blocks of 32 for rows of `row_bytes / ty.block_bytes() * 32` values, and
/// `out` is valid for writes at every index above.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    interleaved: usize,
) {
    match ty {
        BlockType::Q4_K => return dot_rows_k::<K4>(data, row_bytes, rows, xs, out, n, interleaved),
        BlockType::Q5_K => return dot_rows_k::<K5>(data, row_bytes, rows, xs, out, n, interleaved),
        BlockType::Q6_K => return dot_rows_k::<K6>(data, row_bytes, rows, xs, out, n, interleaved),
        _ => {}
    }
    let nb = row_bytes / ty.block_bytes();
    assert!(
        ty.block_values() == QK
            && xs.blocks == nb
            && rows.end.max(interleaved) * row_bytes <= data.len()
            && interleaved.is_multiple_of(8)
            && (interleaved == 0 || super::interleave::covers(ty))
    );
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
            for h in 0..ROWS / 8 {
                // A whole group where the tile's half is one (rows past `valid` are dropped).
                let at = r0 + 8 * h;
                if at.is_multiple_of(8) && at + 8 <= interleaved && at < r0 + valid {
                    let g = data.as_ptr().add(at * row_bytes);
                    decode_group(&mut tile, ty, h, g, nb);
                    continue;
                }
                for r in 8 * h..8 * h + 8 {
                    let row = src(data, row_bytes, r0 + r.min(valid - 1), interleaved);
                    decode(&mut tile, ty, r, row, nb);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_swaps_rows_and_lanes() {
        if !(available() && super::super::x86::available()) {
            eprintln!("no AVX-512 VNNI here: the transpose is not reached on this CPU");
            return;
        }
        let m: Vec<[u32; 16]> = (0..16u32)
            .map(|r| std::array::from_fn(|c| r * 1000 + c as u32))
            .collect();
        // SAFETY: the CPU's support was checked above.
        let out = unsafe {
            let mut v: [__m512i; 16] =
                std::array::from_fn(|r| _mm512_loadu_si512(m[r].as_ptr() as *const __m512i));
            transpose16(&mut v);
            v.map(|x| {
                let mut a = [0u32; 16];
                _mm512_storeu_si512(a.as_mut_ptr() as *mut __m512i, x);
                a
            })
        };
        for (c, lanes) in out.iter().enumerate() {
            for (r, x) in lanes.iter().enumerate() {
                assert_eq!(*x, m[r][c], "column {c}, row {r}");
            }
        }
    }
}
