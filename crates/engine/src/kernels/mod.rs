//! Hearth's own quantized matrix products on the CPU, for the weight types candle serves slowly.
//!
//! [`QMatrix`] reads a weight's GGUF block bytes in place (no copy: it shares candle's
//! [`QTensor`]), or where the single-token kernels run AVX-512 from a copy made at load in the
//! layout those kernels read fastest ([`interleave`]; the tensor is
//! then freed), and computes `y = W·x` row by row: the activations are quantized once to 8-bit
//! blocks ([`q8`]), then every weight row is an integer dot product per block, the rows split
//! across Hearth's compute pool ([`crate::pool`]). Covered types: Q4_0, Q4_1, Q5_0, Q8_0 and the
//! k-quants Q4_K, Q5_K, Q6_K ([`BlockType`]); a k-quant block of 256 values is read as eight
//! sub-blocks of 32 against eight activation blocks.
//!
//! The instruction set is chosen at run time ([`Isa::best`]): on x86-64, AVX-512 with VNNI (for
//! prompts and single tokens) where the CPU has it, else AVX2+FMA+F16C with AVX-VNNI (single
//! tokens) where it has that, else AVX2+FMA+F16C; on aarch64, NEON with the dot-product
//! extension where the CPU has it, else NEON ([`neon`]); else the portable scalar path, which
//! every build has and which the SIMD paths are tested against.
//!
//! The model uses these kernels wherever they cover a weight's type, with the best instruction
//! set the CPU has. The environment variable `HEARTH_KERNELS` overrides that for diagnosis:
//! `scalar` forces the portable path, `avx2` AVX2 alone, `avxvnni` AVX2 with AVX-VNNI, `neon`
//! NEON without the dot-product extension, `candle` uses candle's kernels everywhere. It is read once
//! per process; [`crate::model::Transformer::set_kernels`] overrides it per model.
//!
//! Each output row is computed by the same code whatever the number of tokens in the call, so a
//! token's result is bit-for-bit the same inside a prompt or alone (tested); with the attention
//! in [`crate::attention`], that keeps the prefix cache exact.

#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod interleave;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod q8;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use crate::error::{EngineError, Result};
use q8::{Q8Rows, QK};

/// GGUF weight types these kernels cover: blocks of 32 values, or of 256 for the k-quants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(non_camel_case_types)] // GGML's names
pub enum BlockType {
    /// `f16 d`, 16 bytes of 4-bit codes; `w = d·(q-8)`.
    Q4_0,
    /// `f16 d, f16 m`, 16 bytes of 4-bit codes; `w = d·q + m`.
    Q4_1,
    /// `f16 d`, 32 fifth bits, 16 bytes of low nibbles; `w = d·(q-16)`.
    Q5_0,
    /// `f16 d`, 32 signed bytes; `w = d·q`.
    Q8_0,
    /// 256 values: `f16 d, f16 dmin`, 12 bytes of 6-bit scales and mins for 8 sub-blocks, 128
    /// bytes of 4-bit codes; `w = d·sc·q - dmin·m`.
    Q4_K,
    /// As Q4_K with a fifth bit per value (32 bytes after the scales, before the codes).
    Q5_K,
    /// 256 values: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales (one
    /// per 16 values), `f16 d`; `w = d·sc·(q-32)`.
    Q6_K,
}

impl BlockType {
    /// The covered type for a GGML type, if any.
    pub fn from_ggml(t: GgmlDType) -> Option<Self> {
        match t {
            GgmlDType::Q4_0 => Some(Self::Q4_0),
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            GgmlDType::Q5_0 => Some(Self::Q5_0),
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            GgmlDType::Q4K => Some(Self::Q4_K),
            GgmlDType::Q5K => Some(Self::Q5_K),
            GgmlDType::Q6K => Some(Self::Q6_K),
            _ => None,
        }
    }

    /// The bytes of a row of `cols` values: `None` unless `cols` is a positive whole number of
    /// blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        (cols > 0 && cols.is_multiple_of(self.block_values()))
            .then(|| cols / self.block_values() * self.block_bytes())
    }

    /// The GGML type.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q5_0 => GgmlDType::Q5_0,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_K => GgmlDType::Q4K,
            Self::Q5_K => GgmlDType::Q5K,
            Self::Q6_K => GgmlDType::Q6K,
        }
    }

    /// Values in one block: 32, or 256 for the k-quants.
    pub fn block_values(self) -> usize {
        match self {
            Self::Q4_K | Self::Q5_K | Self::Q6_K => 256,
            _ => QK,
        }
    }

    /// Bytes of one block of [`BlockType::block_values`] values.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q5_K => 176,
            Self::Q6_K => 210,
        }
    }
}

/// An instruction set the kernels can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isa {
    /// Portable Rust, any CPU.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX2 and AVX-VNNI (the 256-bit `vpdpbusd`/`vpdpwssd` of recent laptop and
    /// desktop CPUs, most without AVX-512): as [`Isa::Avx2`], with single tokens' block sums
    /// made by those instructions. Gives the same bits as [`Isa::Avx2`].
    AvxVnni,
    /// x86-64 with AVX2 and AVX-512 (F, BW, VNNI): prompts (four tokens or more) go through
    /// 16-row tiles and 8-bit dot-product instructions; single tokens as with [`Isa::Avx2`].
    /// Gives the same bits as [`Isa::Avx2`].
    Avx512Vnni,
    /// aarch64 (NEON, which every 64-bit Arm CPU has): 16-byte products by `vmull_s8`. Gives
    /// the same bits as [`Isa::Scalar`].
    Neon,
    /// aarch64 with the dot-product extension (`sdot`; Armv8.2 and later). Gives the same bits
    /// as [`Isa::Neon`].
    NeonDot,
}

impl Isa {
    /// Whether the running CPU can use this instruction set.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::available(),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => x86::available() && std::arch::is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => x86::available() && avx512::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => false,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDot => neon::has_dotprod(),
            #[cfg(not(target_arch = "aarch64"))]
            Isa::Neon | Isa::NeonDot => false,
        }
    }

    /// The fastest instruction set this CPU supports (detected once).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            if Isa::Avx512Vnni.is_supported() {
                Isa::Avx512Vnni
            } else if Isa::AvxVnni.is_supported() {
                Isa::AvxVnni
            } else if Isa::Avx2.is_supported() {
                Isa::Avx2
            } else if Isa::NeonDot.is_supported() {
                Isa::NeonDot
            } else if Isa::Neon.is_supported() {
                Isa::Neon
            } else {
                Isa::Scalar
            }
        })
    }

    /// Every instruction set the running CPU supports, the scalar one first.
    pub fn supported() -> Vec<Isa> {
        [
            Isa::Scalar,
            Isa::Avx2,
            Isa::AvxVnni,
            Isa::Avx512Vnni,
            Isa::Neon,
            Isa::NeonDot,
        ]
        .into_iter()
        .filter(|i| i.is_supported())
        .collect()
    }
}

/// The kernels the model uses: the best this CPU supports, unless `HEARTH_KERNELS` says
/// otherwise (see the module header); `None` means candle's kernels only.
pub fn selected() -> Option<Isa> {
    static SELECTED: OnceLock<Option<Isa>> = OnceLock::new();
    *SELECTED.get_or_init(|| match std::env::var("HEARTH_KERNELS").as_deref() {
        Ok("scalar") => Some(Isa::Scalar),
        Ok("avx2") if Isa::Avx2.is_supported() => Some(Isa::Avx2),
        Ok("avxvnni") if Isa::AvxVnni.is_supported() => Some(Isa::AvxVnni),
        Ok("neon") if Isa::Neon.is_supported() => Some(Isa::Neon),
        Ok("candle") => None,
        _ => Some(Isa::best()),
    })
}

/// A quantized weight matrix `[rows, cols]` of a covered type, read in place from its tensor.
#[derive(Clone)]
pub struct QMatrix {
    bytes: Bytes,
    ty: BlockType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

/// Where a matrix's bytes are.
#[derive(Clone)]
enum Bytes {
    /// Read in place from candle's tensor, in the GGUF layout.
    Tensor(Arc<QTensor>),
    /// Hearth's interleaved copy ([`interleave`]); the tensor is gone.
    Interleaved(Arc<[u8]>),
}

thread_local! {
    /// The calling thread's quantized activations, reused from call to call.
    static ACTIVATIONS: RefCell<Q8Rows> = RefCell::new(Q8Rows::new());
    /// GGUF rows of an interleaved matrix for the kernels that read that layout, reused.
    static STANDARD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// An output pointer shared by the workers; each writes only its own elements.
struct Out<T = f32>(*mut T);
// SAFETY: workers write disjoint elements (one row range each) and the caller waits for all of
// them before reading.
unsafe impl<T> Sync for Out<T> {}

impl QMatrix {
    /// Wraps a 2-D tensor of a covered type held in CPU memory. `None` when the type is not
    /// covered or the tensor's layout is not whole blocks per row.
    pub fn new(tensor: Arc<QTensor>) -> Option<Self> {
        let ty = BlockType::from_ggml(tensor.dtype())?;
        let (rows, cols) = match tensor.shape().dims() {
            [r, c] => (*r, *c),
            _ => return None,
        };
        let row_bytes = ty.row_bytes(cols)?;
        match tensor.data() {
            Ok(Cow::Borrowed(d)) if d.len() == rows * row_bytes => {}
            _ => return None,
        }
        Some(Self {
            bytes: Bytes::Tensor(tensor),
            ty,
            rows,
            cols,
            row_bytes,
        })
    }

    /// [`QMatrix::new`], with matrices of eight rows or more copied into the interleaved layout
    /// ([`interleave`]) that the x86 single-token kernels read fastest (see
    /// [`prefers_interleaved`]); the tensor is let go (pass the only handle to it and its memory
    /// is freed). Every instruction set still gives the same bits as from [`QMatrix::new`].
    pub fn interleaved(tensor: Arc<QTensor>) -> Option<Self> {
        let m = Self::new(tensor)?;
        let own = Self::interleaved_from(m.ty, m.rows, m.cols, &m.data().ok()?);
        Some(own.unwrap_or(m))
    }

    /// The interleaved copy ([`QMatrix::interleaved`]) of a `[rows, cols]` matrix of type `ty`
    /// whose rows are `data` in the GGUF layout (a tensor's bytes as the file holds them, read
    /// in place), made with no copy in between. `None` when the type has no interleaved
    /// layout, the matrix has fewer than eight rows, or `data` is not whole rows of whole
    /// blocks.
    pub fn interleaved_from(ty: BlockType, rows: usize, cols: usize, data: &[u8]) -> Option<Self> {
        if !interleave::covers(ty) || rows < interleave::GROUP_ROWS {
            return None;
        }
        let rb = ty.row_bytes(cols)?;
        if rows.checked_mul(rb) != Some(data.len()) {
            return None;
        }
        // Zeroed by the allocator (fresh pages from the system for a matrix this size), not
        // written twice.
        // SAFETY: zero bytes are valid `u8`.
        let mut bytes = unsafe { Arc::<[u8]>::new_zeroed_slice(data.len()).assume_init() };
        let out = Arc::get_mut(&mut bytes)?;
        // The rows after the last whole group as they are; the groups spread over the pool.
        let (groups, group_bytes) = (rows / interleave::GROUP_ROWS, interleave::GROUP_ROWS * rb);
        let packed = groups * group_bytes;
        out[packed..].copy_from_slice(&data[packed..]);
        let dst = &Out(out.as_mut_ptr());
        crate::pool::global().run_chunked(groups, |g| {
            // SAFETY: each call writes only the bytes of its own groups, inside `out`.
            let part = unsafe {
                std::slice::from_raw_parts_mut(
                    dst.0.add(g.start * group_bytes),
                    g.len() * group_bytes,
                )
            };
            interleave::interleave_groups(ty, data, rb, g, part);
        });
        Some(Self {
            bytes: Bytes::Interleaved(bytes),
            ty,
            rows,
            cols,
            row_bytes: rb,
        })
    }

    /// Whether the bytes are held interleaved (see [`QMatrix::interleaved`]).
    pub fn is_interleaved(&self) -> bool {
        matches!(self.bytes, Bytes::Interleaved(_))
    }

    /// A candle tensor of the matrix in the GGUF layout: the one it was made from, or for an
    /// interleaved matrix a new one (a copy of the weights).
    pub fn to_tensor(&self) -> Result<Arc<QTensor>> {
        match &self.bytes {
            Bytes::Tensor(t) => Ok(t.clone()),
            Bytes::Interleaved(b) => {
                let mut gguf = Vec::new();
                interleave::standard_rows(
                    self.ty,
                    b,
                    self.rows,
                    self.row_bytes,
                    0..self.rows,
                    &mut gguf,
                );
                Ok(Arc::new(
                    candle_core::quantized::ggml_file::qtensor_from_ggml(
                        self.ty.ggml(),
                        &gguf,
                        vec![self.rows, self.cols],
                        &Device::Cpu,
                    )?,
                ))
            }
        }
    }

    pub fn block_type(&self) -> BlockType {
        self.ty
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The tensor the bytes are read from (`None` once they were interleaved).
    pub fn tensor(&self) -> Option<&Arc<QTensor>> {
        match &self.bytes {
            Bytes::Tensor(t) => Some(t),
            Bytes::Interleaved(_) => None,
        }
    }

    /// The bytes as held (see [`QMatrix::is_interleaved`]).
    fn data(&self) -> Result<Cow<'_, [u8]>> {
        match &self.bytes {
            Bytes::Tensor(t) => Ok(t.data()?),
            Bytes::Interleaved(b) => Ok(Cow::Borrowed(b)),
        }
    }

    /// Asks the memory system for the matrix's first 12 KiB (a little beyond the 8 KiB the
    /// kernels prefetch ahead of what they read), so that a product that starts after a few
    /// microseconds of other work (a norm, the attention) does not start by waiting for memory.
    /// The calling thread reads those rows first: its share of a product is the first.
    pub fn prefetch_front(&self) {
        #[cfg(target_arch = "x86_64")]
        if let Ok(d) = self.data() {
            for at in (0..d.len().min(12 << 10)).step_by(64) {
                // SAFETY: a prefetch reads nothing the program sees; the address is in `d`.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        d.as_ptr().add(at) as *const i8,
                    )
                };
            }
        }
    }

    /// The GGUF block bytes of row `r`.
    pub fn row_data(&self, r: usize) -> Result<Vec<u8>> {
        if r >= self.rows {
            return Err(EngineError::Compute(format!(
                "row {r} of a matrix of {} rows",
                self.rows
            )));
        }
        let data = self.data()?;
        if self.is_interleaved() {
            let mut row = Vec::new();
            interleave::standard_rows(
                self.ty,
                &data,
                self.rows,
                self.row_bytes,
                r..r + 1,
                &mut row,
            );
            return Ok(row);
        }
        Ok(data[r * self.row_bytes..(r + 1) * self.row_bytes].to_vec())
    }

    /// The f32 values of row `r`.
    pub fn dequantize_row(&self, r: usize) -> Result<Vec<f32>> {
        Ok(scalar::dequantize_row(self.ty, &self.row_data(r)?))
    }

    /// `out[t][r] = Σ_c W[r][c] · x[t][c]` for every row `t` of `x` (`x.len()` a multiple of
    /// `cols`, `out.len()` = tokens × `rows`), with the given instruction set. Splits the weight
    /// rows across Hearth's compute pool.
    pub fn matmul(&self, isa: Isa, x: &[f32], out: &mut [f32]) -> Result<()> {
        matmul_many(isa, &[self], x, &mut [out])
    }

    /// `x · Wᵀ` for a tensor whose last dimension is `cols` (any leading dimensions), with the
    /// instruction set `isa`.
    pub fn forward_with(&self, isa: Isa, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        Ok(x.apply_op1_no_bwd(&Apply { m: self, isa })?)
    }
}

/// Matrices [`matmul_many`] runs as one call of the compute pool at most (more run in groups
/// of this many).
const MANY: usize = 4;

/// Calls of the compute pool a hint names at most, and matrices per call.
const HINT_CALLS: usize = 3;
const HINT_MATRICES: usize = 3;

/// Names the matrices the next products of this thread read, in order (`calls[c]`: the
/// matrices of the `c`-th product from now, as [`matmul_many`] hands out their rows), so that
/// the compute pool's idle workers fetch their shares of them while the caller works alone
/// (see [`crate::pool::Pool::hint`]). Only ever a hint: a name left out, or a product run with
/// a different split, costs time and nothing else. Allocates nothing.
///
/// `HEARTH_PREFETCH_HINTS=off` in the environment turns hints off (to measure what they do).
pub fn hint_next(calls: &[&[&QMatrix]]) {
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| {
        std::env::var("HEARTH_PREFETCH_HINTS").is_ok_and(|v| v.eq_ignore_ascii_case("off"))
    });
    let pool = crate::pool::global();
    if off || pool.threads() < 2 {
        return;
    }
    let mut bytes: [[&[u8]; HINT_MATRICES]; HINT_CALLS] = [[&[]; HINT_MATRICES]; HINT_CALLS];
    for (c, mats) in calls.iter().take(HINT_CALLS).enumerate() {
        for (i, m) in mats.iter().take(HINT_MATRICES).enumerate() {
            // Both layouts are borrowed on the CPU; anything else is left out.
            if let Ok(Cow::Borrowed(d)) = m.data() {
                bytes[c][i] = d;
            }
        }
    }
    let lists: [&[&[u8]]; HINT_CALLS] = std::array::from_fn(|c| &bytes[c][..]);
    pool.hint(&lists[..calls.len().min(HINT_CALLS)]);
}

/// [`QMatrix::matmul`] for several matrices that take the same input (a layer's query, key and
/// value projections; its gate and up projections): `outs[i]` gets `mats[i] · x`. Matrices
/// whose activations are quantized alike (same columns, same block size) share one quantization
/// and one call of the compute pool, their rows handed out as one list, which saves a hand-over
/// between threads per matrix; each output row is computed exactly as by `matmul`.
pub fn matmul_many(isa: Isa, mats: &[&QMatrix], x: &[f32], outs: &mut [&mut [f32]]) -> Result<()> {
    if mats.len() != outs.len() {
        return Err(EngineError::Compute(format!(
            "{} matrices for {} outputs",
            mats.len(),
            outs.len()
        )));
    }
    for (m, out) in mats.iter().zip(outs.iter()) {
        if x.len() % m.cols != 0 || out.len() != x.len() / m.cols * m.rows {
            return Err(EngineError::Compute(format!(
                "matrix [{}, {}] cannot take {} inputs into {} outputs",
                m.rows,
                m.cols,
                x.len(),
                out.len()
            )));
        }
    }
    if !isa.is_supported() {
        return Err(EngineError::Compute(format!(
            "this CPU cannot run the {isa:?} kernels"
        )));
    }
    let Some(first) = mats.first() else {
        return Ok(());
    };
    if x.is_empty() {
        return Ok(());
    }
    if mats
        .iter()
        .any(|m| m.cols != first.cols || m.ty.block_values() != first.ty.block_values())
    {
        for (m, out) in mats.iter().zip(outs.iter_mut()) {
            matmul_many(isa, &[m], x, &mut [&mut **out])?;
        }
        return Ok(());
    }
    if mats.len() > MANY {
        for (ms, os) in mats.chunks(MANY).zip(outs.chunks_mut(MANY)) {
            matmul_many(isa, ms, x, os)?;
        }
        return Ok(());
    }
    // Fixed arrays, not lists: a decoding step makes a few of these calls per layer and
    // allocates nothing for them.
    let mut datas: [Cow<'_, [u8]>; MANY] = std::array::from_fn(|_| Cow::Borrowed(&[][..]));
    for (d, m) in datas.iter_mut().zip(mats) {
        *d = m.data()?;
    }
    // Matrix i's rows are items starts[i]..starts[i + 1] of the pool call.
    let mut starts = [0usize; MANY + 1];
    for (i, m) in mats.iter().enumerate() {
        starts[i + 1] = starts[i] + m.rows;
    }
    let outps: [Out; MANY] = std::array::from_fn(|i| {
        Out(outs
            .get_mut(i)
            .map_or(std::ptr::null_mut(), |o| o.as_mut_ptr()))
    });
    ACTIVATIONS.with(|a| {
        let mut xs = a.borrow_mut();
        xs.quantize(x, first.cols, first.ty.block_values());
        let xs = &*xs;
        // Ranges of whole tiles: sixteen rows for AVX-512 prompts, eight otherwise.
        let align = match isa {
            Isa::Avx512Vnni if xs.rows() >= 4 => 16,
            _ => 8,
        };
        let (datas, starts, outps) = (&datas, &starts, &outps);
        let total = starts[mats.len()];
        crate::pool::global().run_aligned(total, align, |items| {
            for (i, m) in mats.iter().enumerate() {
                let (lo, hi) = (items.start.max(starts[i]), items.end.min(starts[i + 1]));
                if lo >= hi {
                    continue;
                }
                let rows = lo - starts[i]..hi - starts[i];
                let (ty, rb, n, data) = (m.ty, m.row_bytes, m.rows, &*datas[i]);
                let out = outps[i].0;
                // The next matrix's rows follow these in the call's items (none after the
                // last: its entry is empty).
                let then: &[u8] = datas.get(i + 1).map(|d| &**d).unwrap_or(&[]);
                if !m.is_interleaved() {
                    // SAFETY: support checked above; `data` holds `n` rows of `rb` bytes
                    // (checked in `QMatrix::new`), `xs` has `cols / 32` blocks per row, `out`
                    // has `tokens × n` elements (checked above), and the pool hands out
                    // disjoint row ranges.
                    unsafe { dot_rows(isa, ty, data, rb, rows, xs, out, n, then) };
                    continue;
                }
                #[cfg(target_arch = "x86_64")]
                if let Some(dot) = grouped_dot(isa) {
                    // SAFETY: as above, for the interleaved layout `data` is in (its whole
                    // groups of eight rows, the rest in the GGUF layout); `grouped_dot` says
                    // the kernels cover this type with these instructions.
                    unsafe { x86::dot_rows_grouped(ty, data, rb, rows, xs, out, n, dot, then) };
                    continue;
                }
                // Any other kernel reads these rows back in the GGUF layout.
                STANDARD.with(|s| {
                    let mut s = s.borrow_mut();
                    interleave::standard_rows(ty, data, n, rb, rows.clone(), &mut s);
                    // SAFETY: as above: `s` holds rows `rows` of the matrix, and the kernel
                    // writes row `r` of token `t` at `t × n + r` from `out + rows.start`.
                    unsafe {
                        dot_rows(
                            isa,
                            ty,
                            &s,
                            rb,
                            0..rows.len(),
                            xs,
                            out.add(rows.start),
                            n,
                            &[],
                        )
                    };
                });
            }
        });
    });
    Ok(())
}

/// The x86 kernels that read a matrix held interleaved with `isa` ([`x86::dot_rows_grouped`],
/// every covered type with AVX2, AVX-VNNI and AVX-512 with VL); `None` where the rows must be
/// read back in the GGUF layout.
#[cfg(target_arch = "x86_64")]
fn grouped_dot(isa: Isa) -> Option<x86::Dot> {
    match isa {
        Isa::Avx512Vnni if x86::x8_available() => Some(x86::Dot::Avx512Vnni),
        Isa::Avx2 => Some(x86::Dot::Avx2),
        Isa::AvxVnni => Some(x86::Dot::AvxVnni),
        _ => None,
    }
}

/// Whether the kernels of `isa` read a matrix of type `ty` fastest held interleaved
/// ([`QMatrix::interleaved`]): every covered type with every x86 instruction set, whose
/// single-token kernels then load a group's scales as a few vectors instead of gathering them
/// row by row (and the k-quants' scales and mins unpacked for eight rows at once).
pub fn prefers_interleaved(isa: Isa, ty: BlockType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        interleave::covers(ty) && grouped_dot(isa).is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, ty);
        false
    }
}

/// Rows `rows` of a matrix in the GGUF layout (`n` rows of `rb` bytes in `data`) times the
/// quantized tokens `xs`, with `isa`: token `t`'s result for row `r` to `out[t × n + r]`. `then`
/// is the matrix the call reads next, to prefetch into (x86 only).
///
/// # Safety
/// `isa` must be supported; `data` must hold `rows.end` rows, `xs` blocks matching them, `out`
/// room for `tokens × n` values.
#[allow(clippy::too_many_arguments)]
unsafe fn dot_rows(
    isa: Isa,
    ty: BlockType,
    data: &[u8],
    rb: usize,
    rows: std::ops::Range<usize>,
    xs: &Q8Rows,
    out: *mut f32,
    n: usize,
    then: &[u8],
) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = then;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::dot_rows(ty, data, rb, rows, xs, out, n, x86::Dot::Avx2, then),
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => x86::dot_rows(ty, data, rb, rows, xs, out, n, x86::Dot::AvxVnni, then),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            x86::dot_rows(ty, data, rb, rows, xs, out, n, x86::Dot::Avx512Vnni, then)
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::dot_rows(ty, data, rb, rows, xs, out, n, false),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDot => neon::dot_rows(ty, data, rb, rows, xs, out, n, true),
        _ => scalar::dot_rows(ty, data, rb, rows, xs, out, n),
    }
}

/// [`matmul_many`] on a tensor whose last dimension is the matrices' `cols` (any leading
/// dimensions): one output tensor per matrix, its last dimension that matrix's `rows`.
pub fn forward_many(isa: Isa, mats: &[&QMatrix], x: &Tensor) -> Result<Vec<Tensor>> {
    let x = x.to_dtype(candle_core::DType::F32)?.contiguous()?;
    let dims = x.dims().to_vec();
    let outs = crate::ops::with_f32(&x, |values| -> Result<Vec<Vec<f32>>> {
        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(mats.len());
        for m in mats {
            if dims.last() != Some(&m.cols) {
                return Err(EngineError::Compute(format!(
                    "input {dims:?} does not end in {}",
                    m.cols
                )));
            }
            outs.push(vec![0f32; values.len() / m.cols * m.rows]);
        }
        let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        matmul_many(isa, mats, values, &mut refs)?;
        Ok(outs)
    })??;
    mats.iter()
        .zip(outs)
        .map(|(m, o)| {
            let mut d = dims.clone();
            if let Some(last) = d.last_mut() {
                *last = m.rows;
            }
            Ok(Tensor::from_vec(o, d, x.device())?)
        })
        .collect()
}

struct Apply<'a> {
    m: &'a QMatrix,
    isa: Isa,
}

impl CustomOp1 for Apply<'_> {
    fn name(&self) -> &'static str {
        "hearth-qmatmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = match storage {
            CpuStorage::F32(v) => v.as_slice(),
            _ => candle_core::bail!("hearth-qmatmul takes f32 inputs"),
        };
        let x = match layout.contiguous_offsets() {
            Some((a, b)) => &x[a..b],
            None => candle_core::bail!("hearth-qmatmul takes contiguous inputs"),
        };
        let mut dims = layout.dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == self.m.cols => *last = self.m.rows,
            _ => candle_core::bail!(
                "hearth-qmatmul: input {:?} does not end in {}",
                layout.dims(),
                self.m.cols
            ),
        }
        let mut out = vec![0f32; x.len() / self.m.cols * self.m.rows];
        self.m
            .matmul(self.isa, x, &mut out)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}
