//! One decoder-only transformer that covers the supported architectures (llama, qwen2, qwen3,
//! gemma3, phi3), built on candle tensors and candle's quantized matrix products.
//!
//! The model runs against one key/value cache at a time (a [`KvSet`]: one cache per layer).
//! [`Transformer::forward`] appends the given tokens at the cache's end and returns the logits of
//! the last one; [`Transformer::truncate`] drops cached positions from the end, which is what lets
//! a follow-up request reuse the longest prefix it shares with the previous one;
//! [`Transformer::swap_cache`] exchanges the cache in use with another one, so that several
//! conversations (or a chat and a background job) each keep their own prefix.

use std::sync::{Arc, OnceLock};

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use half::slice::HalfFloatSliceExt;

use crate::attention::{attend, attend_one, Window};
use crate::error::{EngineError, Result};
use crate::gguf::{Arch, Config, ModelFile};
use crate::kernels::{BlockType, Isa, QMatrix};

/// A weight matrix: candle's product, and Hearth's own kernels where they cover the type (both
/// read the same bytes, but for a matrix Hearth keeps interleaved; see [`crate::kernels`]).
struct Matrix {
    /// candle's product, for what Hearth's kernels do not run. Made at load, or when first
    /// needed for a matrix whose bytes Hearth keeps interleaved (a copy only then).
    candle: OnceLock<QMatMul>,
    own: Option<QMatrix>,
}

impl Matrix {
    /// `q`'s matrix. Where the selected kernels read its type fastest held interleaved
    /// ([`crate::kernels::prefers_interleaved`]: x86 single-token kernels) and `q` is not shared
    /// (a tied output is also the embedding), it is kept interleaved ([`QMatrix::interleaved`])
    /// and its tensor freed.
    fn new(q: Arc<QTensor>) -> Result<Self> {
        if held_interleaved(q.dtype()).is_some()
            && Arc::strong_count(&q) == 1
            && Arc::weak_count(&q) == 0
        {
            if let Some(own) = QMatrix::interleaved(q.clone()).filter(QMatrix::is_interleaved) {
                return Ok(Self {
                    candle: OnceLock::new(),
                    own: Some(own),
                });
            }
        }
        Ok(Self {
            own: QMatrix::new(q.clone()),
            candle: OnceLock::from(QMatMul::from_arc(q)?),
        })
    }

    fn candle(&self) -> Result<&QMatMul> {
        if let Some(m) = self.candle.get() {
            return Ok(m);
        }
        let own = self
            .own
            .as_ref()
            .ok_or_else(|| EngineError::Compute("a matrix has no weights".into()))?;
        let m = QMatMul::from_arc(own.to_tensor()?)?;
        Ok(self.candle.get_or_init(|| m))
    }

    /// `x · Wᵀ`; `kernels`: the instruction set of Hearth's kernels, `None` for candle's. Prompts
    /// and single tokens take the same path.
    fn forward(&self, x: &Tensor, kernels: Option<Isa>) -> Result<Tensor> {
        match (&self.own, kernels) {
            (Some(m), Some(isa)) => m.forward_with(isa, x),
            _ => Ok(self.candle()?.forward(x)?),
        }
    }
}

struct Linear {
    w: Matrix,
    b: Option<Tensor>,
}

impl Matrix {
    /// `x · Wᵀ` for several matrices that take the same input, in one call of Hearth's kernels
    /// when they cover all of them ([`crate::kernels::forward_many`]), else one by one.
    fn forward_many<const N: usize>(
        mats: [&Matrix; N],
        x: &Tensor,
        kernels: Option<Isa>,
    ) -> Result<[Tensor; N]> {
        let own: Option<Vec<&QMatrix>> = mats.iter().map(|m| m.own.as_ref()).collect();
        let ys = match (own, kernels) {
            (Some(own), Some(isa)) => crate::kernels::forward_many(isa, &own, x)?,
            _ => mats
                .iter()
                .map(|m| m.forward(x, kernels))
                .collect::<Result<Vec<_>>>()?,
        };
        ys.try_into()
            .map_err(|_| EngineError::Compute("a product lost an output".into()))
    }
}

impl Linear {
    fn forward(&self, x: &Tensor, kernels: Option<Isa>) -> Result<Tensor> {
        let y = self.w.forward(x, kernels)?;
        self.add_bias(y)
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

enum Qkv {
    Separate { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

enum Ffn {
    Gated {
        gate: Matrix,
        up: Matrix,
        down: Matrix,
    },
    /// Gate and up projections stored as one matrix, gate first (phi3).
    FusedGateUp { gate_up: Matrix, down: Matrix },
}

#[derive(Clone, Copy)]
enum Activation {
    Silu,
    GeluTanh,
}

/// Keys and values of one layer, `[1, n_kv_head, capacity, head_dim]` in f16, valid up to `len`.
struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    max_len: usize,
}

impl KvCache {
    fn new(max_len: usize) -> Self {
        Self {
            k: None,
            v: None,
            len: 0,
            max_len,
        }
    }

    fn capacity(&self) -> usize {
        self.k.as_ref().and_then(|k| k.dim(2).ok()).unwrap_or(0)
    }

    /// Room for `needed` positions of `heads` rows of `hd` in `dtype`: a larger cache (doubling)
    /// with the positions held so far copied over, when the current one is too small.
    fn reserve(
        &mut self,
        needed: usize,
        heads: usize,
        hd: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(&Tensor, &Tensor)> {
        if needed > self.capacity() {
            let cap = needed
                .next_power_of_two()
                .max(256)
                .min(self.max_len.max(needed));
            let nk = Tensor::zeros((1, heads, cap, hd), dtype, device)?;
            let nv = Tensor::zeros((1, heads, cap, hd), dtype, device)?;
            if self.len > 0 {
                if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
                    nk.slice_set(&ok.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    nv.slice_set(&ov.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
            }
            self.k = Some(nk);
            self.v = Some(nv);
        }
        match (&self.k, &self.v) {
            (Some(kb), Some(vb)) => Ok((kb, vb)),
            _ => Err(EngineError::Compute("key/value cache missing".into())),
        }
    }

    /// Appends `k`, `v` (`[1, n_kv, t, hd]`, contiguous) and returns views of the whole cache.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, heads, t, hd) = k.dims4()?;
        let at = self.len;
        let (kb, vb) = self.reserve(at + t, heads, hd, k.dtype(), k.device())?;
        kb.slice_set(k, 2, at)?;
        vb.slice_set(v, 2, at)?;
        let (kb, vb) = (kb.clone(), vb.clone());
        self.len = at + t;
        Ok((kb.narrow(2, 0, self.len)?, vb.narrow(2, 0, self.len)?))
    }

    /// [`KvCache::append`] for one position of an f16 cache, from the f32 rows `k` and `v`
    /// (`heads` rows of `hd` each), written straight into the cache: each value rounded to f16
    /// as candle's `to_dtype` rounds it, without a tensor per row. Returns the whole cache (of
    /// which the first `len` positions are valid, the new one last) and `len`.
    fn append_one(
        &mut self,
        k: &[f32],
        v: &[f32],
        heads: usize,
        hd: usize,
        device: &Device,
    ) -> Result<(&Tensor, &Tensor, usize)> {
        let at = self.len;
        let (kb, vb) = self.reserve(at + 1, heads, hd, DType::F16, device)?;
        kb.inplace_op1(&WriteRow {
            rows: k,
            at,
            heads,
            hd,
        })?;
        vb.inplace_op1(&WriteRow {
            rows: v,
            at,
            heads,
            hd,
        })?;
        self.len = at + 1;
        match (&self.k, &self.v) {
            (Some(kb), Some(vb)) => Ok((kb, vb, at + 1)),
            _ => Err(EngineError::Compute("key/value cache missing".into())),
        }
    }
}

/// Writes one position of an f16 key or value cache `[1, heads, capacity, hd]` in place.
struct WriteRow<'a> {
    rows: &'a [f32],
    at: usize,
    heads: usize,
    hd: usize,
}

impl candle_core::InplaceOp1 for WriteRow<'_> {
    fn name(&self) -> &'static str {
        "kv-cache-write"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let candle_core::CpuStorage::F16(data) = storage else {
            candle_core::bail!("the key/value cache is not f16");
        };
        let (heads, hd) = (self.heads, self.hd);
        let (dims, start) = match layout.contiguous_offsets() {
            Some((start, _)) => (layout.dims(), start),
            None => candle_core::bail!("the key/value cache is not contiguous"),
        };
        let cap = match dims {
            [1, h, cap, d] if *h == heads && *d == hd && self.at < *cap => *cap,
            _ => candle_core::bail!(
                "a key/value row of {heads} x {hd} at {} does not fit a cache of {dims:?}",
                self.at
            ),
        };
        if self.rows.len() != heads * hd || start + heads * cap * hd > data.len() {
            candle_core::bail!(
                "a key/value row of {} values for {heads} x {hd}",
                self.rows.len()
            );
        }
        for (h, row) in self.rows.chunks_exact(hd).enumerate() {
            let at = start + (h * cap + self.at) * hd;
            // Eight at a time where the CPU converts (F16C), with the rounding of
            // `f16::from_f32`: the same bits.
            data[at..at + hd].convert_from_f32_slice(row);
        }
        Ok(())
    }
}

struct Layer {
    attn_norm: Tensor,
    qkv: Qkv,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    attn_out: Linear,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    ffn: Ffn,
    post_ffn_norm: Option<Tensor>,
    sliding: bool,
}

/// The matrices a layer's single-token step multiplies by, in the order it does (the query,
/// key and value matrices are one where the file fuses them).
struct Products<'a> {
    qkv: [&'a QMatrix; 3],
    qkv_count: usize,
    out: &'a QMatrix,
    gate_up: [&'a QMatrix; 2],
    down: &'a QMatrix,
}

impl Layer {
    /// The layer's [`Products`], where Hearth's kernels cover all of them.
    fn products(&self) -> Option<Products<'_>> {
        let (qkv, qkv_count) = match &self.qkv {
            Qkv::Separate { q, k, v } => match (&q.w.own, &k.w.own, &v.w.own) {
                (Some(q), Some(k), Some(v)) => ([q, k, v], 3),
                _ => return None,
            },
            Qkv::Fused(w) => {
                let m = w.w.own.as_ref()?;
                ([m, m, m], 1)
            }
        };
        let Ffn::Gated { gate, up, down } = &self.ffn else {
            return None;
        };
        Some(Products {
            qkv,
            qkv_count,
            out: self.attn_out.w.own.as_ref()?,
            gate_up: [gate.own.as_ref()?, up.own.as_ref()?],
            down: down.own.as_ref()?,
        })
    }
}

impl Products<'_> {
    fn qkv(&self) -> &[&QMatrix] {
        &self.qkv[..self.qkv_count]
    }
}

/// The key/value caches of every layer: what a model has read so far in one sequence.
/// Memory is taken as the sequence grows (doubling), so an unused set costs nothing.
pub struct KvSet {
    layers: Vec<KvCache>,
}

impl KvSet {
    /// An empty set, to be filled through [`Transformer::swap_cache`] and then a forward pass.
    pub fn new() -> Self {
        Self { layers: Vec::new() }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.layers.first().map(|l| l.len).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for KvSet {
    fn default() -> Self {
        Self::new()
    }
}

/// Buffers a single-token step reuses from layer to layer.
#[derive(Default)]
struct StepBuffers {
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    a: Vec<f32>,
    /// The attention's output.
    y: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    gu: Vec<f32>,
}

/// `v` with exactly `n` elements (contents left to the caller to overwrite).
fn sized(v: &mut Vec<f32>, n: usize) {
    v.resize(n, 0.0);
}

/// Lanes of [`sum_of_squares`].
const NORM_LANES: usize = 16;

/// `Σ v²` over `x` in a fixed order whatever the CPU: lane `j` of [`NORM_LANES`] adds the squares
/// of elements `j, j + 16, j + 32, ...` in turn, then the lanes are added pairwise (8 apart, 4, 2,
/// 1). Sixteen independent sums, which the compiler keeps in vector registers: a row of 576
/// summed in order waits on 576 additions one after another (about 0.8 µs, twice a layer).
fn sum_of_squares(x: &[f32]) -> f32 {
    let mut lanes = [0f32; NORM_LANES];
    let mut chunks = x.chunks_exact(NORM_LANES);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * v;
        }
    }
    for (l, v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += v * v;
    }
    let mut width = NORM_LANES / 2;
    while width > 0 {
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The divisor of the RMS norm of one row: `sqrt(Σ v² / n + eps)` (the sum as
/// [`sum_of_squares`] takes it); each element then becomes `x / m · alpha`, as in candle's
/// `rms_norm`. The prompt path ([`rms_norm`]) and a decoding step use this same function, so a
/// token's values do not depend on which of them ran it.
fn rms_divisor(x: &[f32], eps: f32) -> f32 {
    (sum_of_squares(x) / x.len() as f32 + eps).sqrt()
}

/// The RMS norm of each row (the last dimension) of an f32 tensor with the weights `alpha`,
/// as [`rms_norm_with`] computes one row.
fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f32) -> Result<Tensor> {
    let n = x.dim(D::Minus1)?;
    check_norm(alpha, n)?;
    let x = x.contiguous()?;
    let mut out = vec![0f32; x.elem_count()];
    crate::ops::with_f32(&x, |v| {
        crate::ops::with_f32(alpha, |a| {
            for (row, o) in v.chunks_exact(n.max(1)).zip(out.chunks_exact_mut(n.max(1))) {
                norm_row(row, a, eps, o);
            }
        })
    })??;
    Ok(Tensor::from_vec(out, x.dims(), x.device())?)
}

fn check_norm(alpha: &Tensor, n: usize) -> Result<()> {
    if alpha.elem_count() != n {
        return Err(EngineError::Compute(format!(
            "RMS norm of {n} values with {} weights",
            alpha.elem_count()
        )));
    }
    Ok(())
}

/// The RMS norm of `x` with the weights `alpha` (an f32 vector of `x`'s length) into
/// `out` (as long as `x`).
fn rms_norm_with(alpha: &Tensor, x: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    check_norm(alpha, x.len())?;
    crate::ops::with_f32(alpha, |a| norm_row(x, a, eps, out))
}

/// One row's RMS norm with the weights `a`: `x / m · a` with `m` from [`rms_divisor`].
fn norm_row(x: &[f32], a: &[f32], eps: f32, out: &mut [f32]) {
    let m = rms_divisor(x, eps);
    for ((o, v), a) in out.iter_mut().zip(x).zip(a) {
        *o = *v / m * *a;
    }
}

/// [`rms_norm_with`] in place.
fn rms_norm_in_place(alpha: &Tensor, x: &mut [f32], eps: f32) -> Result<()> {
    check_norm(alpha, x.len())?;
    let m = rms_divisor(x, eps);
    crate::ops::with_f32(alpha, |a| {
        for (v, a) in x.iter_mut().zip(a) {
            *v = *v / m * *a;
        }
    })
}

/// `y + b` element by element, where there is a bias.
fn add_bias(b: &Option<Tensor>, y: &mut [f32]) -> Result<()> {
    if let Some(b) = b {
        if b.elem_count() != y.len() {
            return Err(EngineError::Compute(format!(
                "a bias of {} for {} outputs",
                b.elem_count(),
                y.len()
            )));
        }
        crate::ops::with_f32(b, |b| {
            for (y, b) in y.iter_mut().zip(b) {
                *y = *y + *b;
            }
        })?;
    }
    Ok(())
}

/// candle's rotary embedding of one head's first `rope_dim` values for one position (`cos`,
/// `sin`: that position's `rope_dim / 2` values), pairs `(2i, 2i + 1)` when `interleaved`
/// (`rope_i`), else `(i, i + rope_dim / 2)` (`rope`), with candle's expressions.
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], interleaved: bool) {
    let turn = |a: &mut f32, b: &mut f32, c: f32, s: f32| {
        let (s1, s2) = (*a, *b);
        *a = s1 * c - s2 * s;
        *b = s1 * s + s2 * c;
    };
    let half = x.len() / 2;
    let angles = cos[..half].iter().zip(&sin[..half]);
    if interleaved {
        for (pair, (c, s)) in x.chunks_exact_mut(2).zip(angles) {
            if let [a, b] = pair {
                turn(a, b, *c, *s);
            }
        }
    } else {
        // Two runs the compiler turns into vector steps: the same operations per element.
        let (first, second) = x[..2 * half].split_at_mut(half);
        for ((a, b), (c, s)) in first.iter_mut().zip(second.iter_mut()).zip(angles) {
            turn(a, b, *c, *s);
        }
    }
}

/// Rotary embedding angles for a run of positions.
struct RopeTables {
    cos: Tensor,
    sin: Tensor,
}

/// Where a token's embedding row is read from.
enum Embedding {
    /// The file's embedding table (also the output matrix's tensor where the file ties the two
    /// and the kernels read that matrix in the GGUF layout).
    Table(Arc<QTensor>),
    /// The output matrix's rows: the file ties the two, and the kernels keep the matrix
    /// interleaved, so the table is held once, in that layout.
    OutputRows,
}

pub struct Transformer {
    cfg: Config,
    embed: Embedding,
    embed_scale: Option<f64>,
    layers: Vec<Layer>,
    /// The key/value cache in use (one per layer once a forward pass has run).
    cache: KvSet,
    out_norm: Tensor,
    output: Matrix,
    /// Instruction set of Hearth's own kernels; `None`: candle's kernels only.
    kernels: Option<Isa>,
    rope_factors: Option<Vec<f32>>,
    interleaved_rope: bool,
    activation: Activation,
    attn_scale: f64,
    device: Device,
}

fn vector(file: &ModelFile, name: &str, len: usize) -> Result<Tensor> {
    let q = file.tensor(name, &[len])?;
    Ok(q.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?)
}

fn optional_vector(file: &ModelFile, name: &str, len: usize) -> Result<Option<Tensor>> {
    if file.has_tensor(name) {
        Ok(Some(vector(file, name, len)?))
    } else {
        Ok(None)
    }
}

/// The block type of a matrix of type `dtype` where the selected kernels read it fastest held
/// interleaved ([`crate::kernels::prefers_interleaved`]).
fn held_interleaved(dtype: GgmlDType) -> Option<BlockType> {
    let ty = BlockType::from_ggml(dtype)?;
    crate::kernels::prefers_interleaved(crate::kernels::selected()?, ty).then_some(ty)
}

fn matrix(file: &ModelFile, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
    if let Some(m) = interleaved_matrix(file, name, rows, cols)? {
        return Ok(m);
    }
    let q = file.tensor(name, &[rows, cols])?;
    Matrix::new(Arc::new(q))
}

/// Matrix `name` copied once from the mapped file straight into the interleaved layout (not
/// into a tensor first and then again), where the kernels read its type that way; `None`
/// otherwise, or where the file is not mapped.
fn interleaved_matrix(
    file: &ModelFile,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Option<Matrix>> {
    let direct = file.with_mapped(name, &[rows, cols], |dtype, bytes| {
        QMatrix::interleaved_from(held_interleaved(dtype)?, rows, cols, bytes)
    })?;
    Ok(direct.map(|own| Matrix {
        candle: OnceLock::new(),
        own: Some(own),
    }))
}

fn linear(file: &ModelFile, prefix: &str, rows: usize, cols: usize) -> Result<Linear> {
    let w = matrix(file, &format!("{prefix}.weight"), rows, cols)?;
    let b = optional_vector(file, &format!("{prefix}.bias"), rows)?;
    Ok(Linear { w, b })
}

impl Transformer {
    pub fn load(file: &ModelFile) -> Result<Self> {
        let cfg = file.config()?;
        let (e, hd) = (cfg.n_embd, cfg.head_dim);
        let (nh, nkv, ff) = (cfg.n_head, cfg.n_head_kv, cfg.n_ff);
        let embed_shape = [cfg.vocab_size, e];
        let (embed, output) = if file.has_tensor("output.weight") {
            let table = Arc::new(file.tensor("token_embd.weight", &embed_shape)?);
            let output = matrix(file, "output.weight", cfg.vocab_size, e)?;
            (Embedding::Table(table), output)
        } else {
            // Tied: where the kernels read the output matrix interleaved, it is copied from the
            // mapped file into that layout once and the embedding reads its rows back from it
            // (the single-token kernels then read it as they read every other matrix, not in
            // the GGUF layout, and the table is not held twice).
            match interleaved_matrix(file, "token_embd.weight", cfg.vocab_size, e)? {
                Some(output) => (Embedding::OutputRows, output),
                None => {
                    let table = Arc::new(file.tensor("token_embd.weight", &embed_shape)?);
                    let output = Matrix::new(table.clone())?;
                    (Embedding::Table(table), output)
                }
            }
        };
        let out_norm = vector(file, "output_norm.weight", e)?;
        let rope_factors = ["rope_freqs.weight", "rope_factors_short.weight"]
            .into_iter()
            .find(|n| file.has_tensor(n))
            .map(|n| -> Result<Vec<f32>> {
                Ok(vector(file, n, cfg.rope_dim / 2)?.to_vec1::<f32>()?)
            })
            .transpose()?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let p = format!("blk.{il}");
            let qkv = if file.has_tensor(&format!("{p}.attn_qkv.weight")) {
                Qkv::Fused(linear(
                    file,
                    &format!("{p}.attn_qkv"),
                    (nh + 2 * nkv) * hd,
                    e,
                )?)
            } else {
                Qkv::Separate {
                    q: linear(file, &format!("{p}.attn_q"), nh * hd, e)?,
                    k: linear(file, &format!("{p}.attn_k"), nkv * hd, e)?,
                    v: linear(file, &format!("{p}.attn_v"), nkv * hd, e)?,
                }
            };
            let ffn = if file.has_tensor(&format!("{p}.ffn_gate.weight")) {
                Ffn::Gated {
                    gate: matrix(file, &format!("{p}.ffn_gate.weight"), ff, e)?,
                    up: matrix(file, &format!("{p}.ffn_up.weight"), ff, e)?,
                    down: matrix(file, &format!("{p}.ffn_down.weight"), e, ff)?,
                }
            } else {
                Ffn::FusedGateUp {
                    gate_up: matrix(file, &format!("{p}.ffn_up.weight"), 2 * ff, e)?,
                    down: matrix(file, &format!("{p}.ffn_down.weight"), e, ff)?,
                }
            };
            layers.push(Layer {
                attn_norm: vector(file, &format!("{p}.attn_norm.weight"), e)?,
                qkv,
                q_norm: optional_vector(file, &format!("{p}.attn_q_norm.weight"), hd)?,
                k_norm: optional_vector(file, &format!("{p}.attn_k_norm.weight"), hd)?,
                attn_out: linear(file, &format!("{p}.attn_output"), e, nh * hd)?,
                post_attn_norm: optional_vector(
                    file,
                    &format!("{p}.post_attention_norm.weight"),
                    e,
                )?,
                ffn_norm: vector(file, &format!("{p}.ffn_norm.weight"), e)?,
                ffn,
                post_ffn_norm: optional_vector(file, &format!("{p}.post_ffw_norm.weight"), e)?,
                sliding: cfg.is_sliding(il),
            });
        }
        let (embed_scale, activation, attn_scale) = match cfg.arch {
            Arch::Gemma3 => (
                Some((e as f64).sqrt()),
                Activation::GeluTanh,
                1.0 / (hd as f64).sqrt(),
            ),
            _ => (None, Activation::Silu, 1.0 / (hd as f64).sqrt()),
        };
        Ok(Self {
            interleaved_rope: cfg.arch == Arch::Llama,
            cfg,
            embed,
            embed_scale,
            layers,
            cache: KvSet::new(),
            out_norm,
            output,
            kernels: crate::kernels::selected(),
            rope_factors,
            activation,
            attn_scale,
            device: Device::Cpu,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The kernels the matrix products use: Hearth's own with the given instruction set where
    /// they cover the weight type, candle's elsewhere; `None`: candle's everywhere. The default
    /// comes from [`crate::kernels::selected`].
    pub fn set_kernels(&mut self, kernels: Option<Isa>) -> Result<()> {
        if let Some(isa) = kernels {
            if !isa.is_supported() {
                return Err(EngineError::InvalidSetting(format!(
                    "this CPU cannot run the {isa:?} kernels"
                )));
            }
        }
        self.kernels = kernels;
        Ok(())
    }

    pub fn kernels(&self) -> Option<Isa> {
        self.kernels
    }

    /// Bytes of cached keys and values the attention reads for a token that sees `positions`
    /// positions (itself and those before it): each layer's f16 key and value rows for the
    /// positions it sees (a sliding-window layer no more than its window).
    pub fn cache_bytes_read(&self, positions: usize) -> u64 {
        let row =
            (2 * self.cfg.n_head_kv * self.cfg.head_dim * std::mem::size_of::<half::f16>()) as u64;
        self.layers
            .iter()
            .map(|l| {
                let seen = match (l.sliding, self.cfg.sliding_window) {
                    (true, Some(w)) => positions.min(w),
                    _ => positions,
                };
                seen as u64 * row
            })
            .sum()
    }

    /// Number of positions held in the key/value cache.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Forgets cached positions at and after `len`.
    pub fn truncate(&mut self, len: usize) {
        for l in &mut self.cache.layers {
            l.len = l.len.min(len);
        }
    }

    /// Drops the cache's memory entirely.
    pub fn clear_cache(&mut self) {
        self.cache = KvSet::new();
    }

    /// Puts `other` in use and leaves the cache that was in use in `other`. O(1): nothing is
    /// copied. A set made for another model's shape is never mixed in: it starts empty.
    pub fn swap_cache(&mut self, other: &mut KvSet) {
        std::mem::swap(&mut self.cache, other);
        if !self.cache.layers.is_empty() && self.cache.layers.len() != self.layers.len() {
            self.cache = KvSet::new();
        }
    }

    fn rope_tables(&self, start: usize, t: usize, base: f32, scale: f32) -> Result<RopeTables> {
        let half = self.cfg.rope_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1.0 / base.powf(2.0 * i as f32 / self.cfg.rope_dim as f32);
                match &self.rope_factors {
                    Some(factors) => f / factors[i],
                    None => f,
                }
            })
            .collect();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in start..start + t {
            let p = p as f32 / scale;
            for f in &inv_freq {
                let (s, c) = (p * f).sin_cos();
                cos.push(c);
                sin.push(s);
            }
        }
        Ok(RopeTables {
            cos: Tensor::from_vec(cos, (t, half), &self.device)?,
            sin: Tensor::from_vec(sin, (t, half), &self.device)?,
        })
    }

    fn apply_rope(&self, x: &Tensor, r: &RopeTables) -> Result<Tensor> {
        let hd = self.cfg.head_dim;
        let rd = self.cfg.rope_dim;
        let rotate = |x: &Tensor| -> Result<Tensor> {
            let x = x.contiguous()?;
            Ok(if self.interleaved_rope {
                candle_nn::rotary_emb::rope_i(&x, &r.cos, &r.sin)?
            } else {
                candle_nn::rotary_emb::rope(&x, &r.cos, &r.sin)?
            })
        };
        if rd == hd {
            rotate(x)
        } else {
            let rot = rotate(&x.narrow(D::Minus1, 0, rd)?)?;
            let pass = x.narrow(D::Minus1, rd, hd - rd)?;
            Ok(Tensor::cat(&[rot, pass], D::Minus1)?)
        }
    }

    /// Runs `tokens` at the end of the cache and returns the logits of the last one (`[vocab]`).
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        match self.forward_interruptible(tokens, &|| false)? {
            Some(l) => Ok(l),
            None => Err(EngineError::Compute("a model step stopped midway".into())),
        }
    }

    /// [`Transformer::forward`] that asks `stop` before each layer: when it says true, the
    /// step is abandoned, the cache is left as it was before the call, and `None` comes back.
    /// Lets a long step give way within one layer's time instead of running to its end.
    pub fn forward_interruptible(
        &mut self,
        tokens: &[u32],
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Tensor>> {
        Ok(match self.forward_outputs(tokens, 1, stop)? {
            Some(l) => Some(l.flatten_all()?),
            None => None,
        })
    }

    /// The embedding rows of `tokens` (`[1, tokens, n_embd]`, f32), before any scaling: the
    /// values of candle's lookup in the file's table, whichever copy they are read from. An id
    /// past the vocabulary is an error.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let t = tokens.len();
        if t == 0 {
            return Ok(Tensor::zeros(
                (1, 0, self.cfg.n_embd),
                DType::F32,
                &self.device,
            )?);
        }
        Ok(match &self.embed {
            Embedding::Table(table) => {
                let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
                table.embedding(&ids)?.to_dtype(DType::F32)?
            }
            Embedding::OutputRows => {
                let rows =
                    self.output.own.as_ref().ok_or_else(|| {
                        EngineError::Compute("the embedding has no weights".into())
                    })?;
                // The rows in the GGUF layout, dequantized by candle as the table's lookup
                // does: the same values.
                let mut data = Vec::new();
                for &id in tokens {
                    data.extend(rows.row_data(id as usize)?);
                }
                let dims = vec![t, self.cfg.n_embd];
                let ty = rows.block_type().ggml();
                qtensor_from_ggml(ty, &data, dims, &self.device)?
                    .dequantize(&self.device)?
                    .unsqueeze(0)?
            }
        })
    }

    /// Whether the embedding reads its rows back from the output matrix (a file that ties the
    /// two, whose output matrix the kernels keep interleaved) rather than from a table of its
    /// own.
    pub fn embeds_from_output(&self) -> bool {
        matches!(self.embed, Embedding::OutputRows)
    }

    /// Runs `tokens` at the end of the cache and returns the logits of the last `outputs` of
    /// them (`[outputs, vocab]`), each exactly what running that token alone after the ones
    /// before it would give (the kernels and attention do not depend on how tokens are batched).
    /// `stop` as in [`Transformer::forward_interruptible`].
    pub fn forward_outputs(
        &mut self,
        tokens: &[u32],
        outputs: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Tensor>> {
        let t = tokens.len();
        if t == 0 || outputs == 0 || outputs > t {
            return Err(EngineError::Compute(format!(
                "cannot return {outputs} outputs for {t} tokens"
            )));
        }
        let start = self.cache_len();
        if start + t > self.cfg.context_len {
            return Err(EngineError::ContextOverflow {
                needed: start + t,
                available: self.cfg.context_len,
            });
        }
        let mut x = self.embed(tokens)?;
        if let Some(s) = self.embed_scale {
            x = (x * s)?;
        }
        let rope_global =
            self.rope_tables(start, t, self.cfg.rope_base, self.cfg.rope_linear_scale)?;
        let rope_local = if self.layers.iter().any(|l| l.sliding) {
            Some(self.rope_tables(start, t, self.cfg.rope_base_local, 1.0)?)
        } else {
            None
        };
        let mut cache = std::mem::take(&mut self.cache.layers);
        if cache.len() != self.layers.len() {
            cache = (0..self.layers.len())
                .map(|_| KvCache::new(self.cfg.context_len))
                .collect();
        }
        let one_token = match self.kernels {
            Some(isa) if t == 1 && self.takes_one_token() => Some(isa),
            _ => None,
        };
        let output = self.output.own.as_ref().map(|o| [o]);
        let result = (|| -> Result<Option<Tensor>> {
            // One token (decoding): the layers run on plain buffers, the same steps with the
            // same bits, without a tensor per step.
            let mut one = match one_token {
                Some(isa) => Some((
                    isa,
                    x.flatten_all()?.to_vec1::<f32>()?,
                    StepBuffers::default(),
                )),
                None => None,
            };
            for (i, (layer, kv)) in self.layers.iter().zip(cache.iter_mut()).enumerate() {
                if stop() {
                    return Ok(None);
                }
                let rope = if layer.sliding {
                    rope_local.as_ref().unwrap_or(&rope_global)
                } else {
                    &rope_global
                };
                match &mut one {
                    Some((isa, values, bufs)) => {
                        // The two products after this layer's: the next layer's first two,
                        // or the output matrix after the last layer.
                        let next = self.layers.get(i + 1).and_then(Layer::products);
                        let ahead: [&[&QMatrix]; 2] = match (&next, &output) {
                            (Some(p), _) => [p.qkv(), std::slice::from_ref(&p.out)],
                            (None, Some(o)) => [&o[..], &[]],
                            (None, None) => [&[], &[]],
                        };
                        self.layer_one_token(*isa, layer, ahead, kv, values, rope, bufs)?
                    }
                    None => x = self.layer_forward(layer, kv, &x, rope)?,
                }
            }
            Ok(Some(match one {
                Some((_, values, _)) => {
                    let dim = values.len();
                    Tensor::from_vec(values, (1, 1, dim), &self.device)?
                }
                None => x.clone(),
            }))
        })();
        self.cache.layers = cache;
        let x = match result {
            Ok(Some(x)) => x,
            Ok(None) => {
                self.truncate(start);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let last = x.narrow(1, t - outputs, outputs)?;
        let last = rms_norm(&last.contiguous()?, &self.out_norm, self.cfg.rms_eps as f32)?;
        let logits = self.output.forward(&last, self.kernels)?;
        if one_token.is_some() {
            // The next token's first products, fetched while this one is sampled.
            if let Some(p) = self.layers.first().and_then(Layer::products) {
                crate::kernels::hint_next(&[p.qkv(), &[p.out]]);
            }
        }
        Ok(Some(logits.squeeze(0)?))
    }

    /// Whether [`Transformer::layer_one_token`] covers this model: Hearth's kernels cover
    /// every matrix of the layers, and the feed-forward is SiLU-gated with separate gate and up
    /// matrices (the steps it reproduces bit for bit).
    fn takes_one_token(&self) -> bool {
        matches!(self.activation, Activation::Silu)
            && self.layers.iter().all(|l| l.products().is_some())
    }

    /// [`Transformer::layer_forward`] for a single token, on `x` (the token's `n_embd` values)
    /// in place: each step is the one the tensor path takes ([`rms_norm`]'s norm, candle's
    /// rotary embedding formulas, the same kernels, the same attention), element by element in
    /// the same order, so the result is the same bits; only the tensors per step are gone.
    ///
    /// Between its products the step tells the compute pool which matrices come next
    /// (`ahead`: the two products after this layer's), so that idle workers fetch them
    /// meanwhile.
    #[allow(clippy::too_many_arguments)]
    fn layer_one_token(
        &self,
        isa: Isa,
        layer: &Layer,
        ahead: [&[&QMatrix]; 2],
        kv: &mut KvCache,
        x: &mut [f32],
        rope: &RopeTables,
        b: &mut StepBuffers,
    ) -> Result<()> {
        let eps = self.cfg.rms_eps as f32;
        let (nh, nkv, hd) = (self.cfg.n_head, self.cfg.n_head_kv, self.cfg.head_dim);
        let uncovered = || EngineError::Compute("a matrix has no kernel here".into());
        // Each product's first rows are asked for before the steps that precede it (see
        // `QMatrix::prefetch_front`).
        let first = match &layer.qkv {
            Qkv::Separate { q, .. } => &q.w.own,
            Qkv::Fused(w) => &w.w.own,
        };
        if let Some(m) = first {
            m.prefetch_front();
        }
        sized(&mut b.h, x.len());
        rms_norm_with(&layer.attn_norm, x, eps, &mut b.h)?;
        sized(&mut b.q, nh * hd);
        sized(&mut b.k, nkv * hd);
        sized(&mut b.v, nkv * hd);
        match &layer.qkv {
            Qkv::Separate { q, k, v } => {
                let (Some(mq), Some(mk), Some(mv)) = (&q.w.own, &k.w.own, &v.w.own) else {
                    return Err(uncovered());
                };
                crate::kernels::matmul_many(
                    isa,
                    &[mq, mk, mv],
                    &b.h,
                    &mut [&mut b.q, &mut b.k, &mut b.v],
                )?;
                add_bias(&q.b, &mut b.q)?;
                add_bias(&k.b, &mut b.k)?;
                add_bias(&v.b, &mut b.v)?;
            }
            Qkv::Fused(w) => {
                let m = w.w.own.as_ref().ok_or_else(uncovered)?;
                sized(&mut b.a, (nh + 2 * nkv) * hd);
                m.matmul(isa, &b.h, &mut b.a)?;
                add_bias(&w.b, &mut b.a)?;
                b.q.copy_from_slice(&b.a[..nh * hd]);
                b.k.copy_from_slice(&b.a[nh * hd..(nh + nkv) * hd]);
                b.v.copy_from_slice(&b.a[(nh + nkv) * hd..]);
            }
        }
        let products = layer.products();
        if let Some(p) = &products {
            crate::kernels::hint_next(&[&[p.out], &p.gate_up]);
        }
        if let Some(n) = &layer.q_norm {
            for row in b.q.chunks_exact_mut(hd) {
                rms_norm_in_place(n, row, eps)?;
            }
        }
        if let Some(n) = &layer.k_norm {
            for row in b.k.chunks_exact_mut(hd) {
                rms_norm_in_place(n, row, eps)?;
            }
        }
        crate::ops::with_f32(&rope.cos, |cos| {
            crate::ops::with_f32(&rope.sin, |sin| {
                let rd = self.cfg.rope_dim.min(hd);
                for row in b.q.chunks_exact_mut(hd).chain(b.k.chunks_exact_mut(hd)) {
                    rotate(&mut row[..rd], cos, sin, self.interleaved_rope);
                }
            })
        })??;
        let (k_all, v_all, len) = kv.append_one(&b.k, &b.v, nkv, hd, &self.device)?;
        let window = Window {
            size: if layer.sliding {
                self.cfg.sliding_window
            } else {
                None
            },
        };
        let out = layer.attn_out.w.own.as_ref().ok_or_else(uncovered)?;
        out.prefetch_front();
        sized(&mut b.y, nh * hd);
        attend_one(
            &b.q,
            k_all,
            v_all,
            len,
            self.attn_scale as f32,
            window,
            &mut b.y,
        )?;
        sized(&mut b.a, x.len());
        out.matmul(isa, &b.y, &mut b.a)?;
        if let Some(p) = &products {
            crate::kernels::hint_next(&[&p.gate_up, &[p.down]]);
        }
        if let Ffn::Gated {
            gate: Matrix { own: Some(g), .. },
            ..
        } = &layer.ffn
        {
            g.prefetch_front();
        }
        add_bias(&layer.attn_out.b, &mut b.a)?;
        if let Some(n) = &layer.post_attn_norm {
            rms_norm_in_place(n, &mut b.a, eps)?;
        }
        for (x, a) in x.iter_mut().zip(&b.a) {
            *x = *x + *a;
        }
        rms_norm_with(&layer.ffn_norm, x, eps, &mut b.h)?;
        let Ffn::Gated { gate, up, down } = &layer.ffn else {
            return Err(uncovered());
        };
        let (Some(mg), Some(mu), Some(md)) = (&gate.own, &up.own, &down.own) else {
            return Err(uncovered());
        };
        let ff = mg.rows();
        sized(&mut b.g, ff);
        sized(&mut b.u, ff);
        crate::kernels::matmul_many(isa, &[mg, mu], &b.h, &mut [&mut b.g, &mut b.u])?;
        crate::kernels::hint_next(&[&[md], ahead[0]]);
        md.prefetch_front();
        sized(&mut b.gu, ff);
        crate::ops::silu_mul_into(&b.g, &b.u, &mut b.gu);
        md.matmul(isa, &b.gu, &mut b.a)?;
        crate::kernels::hint_next(&ahead);
        if let Some(n) = &layer.post_ffn_norm {
            rms_norm_in_place(n, &mut b.a, eps)?;
        }
        for (x, f) in x.iter_mut().zip(&b.a) {
            *x = *x + *f;
        }
        Ok(())
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        kv: &mut KvCache,
        x: &Tensor,
        rope: &RopeTables,
    ) -> Result<Tensor> {
        let eps = self.cfg.rms_eps as f32;
        let h = rms_norm(x, &layer.attn_norm, eps)?;
        let mut a = self.attention(layer, kv, &h, rope)?;
        if let Some(n) = &layer.post_attn_norm {
            a = rms_norm(&a, n, eps)?;
        }
        let x = (x + a)?;
        let h = rms_norm(&x, &layer.ffn_norm, eps)?;
        let mut f = self.ffn(&layer.ffn, &h)?;
        if let Some(n) = &layer.post_ffn_norm {
            f = rms_norm(&f, n, eps)?;
        }
        Ok((x + f)?)
    }

    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.activation {
            Activation::Silu => candle_nn::ops::silu(x)?,
            Activation::GeluTanh => x.gelu()?,
        })
    }

    fn ffn(&self, ffn: &Ffn, h: &Tensor) -> Result<Tensor> {
        Ok(match ffn {
            Ffn::Gated { gate, up, down } => {
                let [g, u] = Matrix::forward_many([gate, up], h, self.kernels)?;
                let gu = match (self.activation, self.kernels) {
                    (Activation::Silu, Some(_)) => crate::ops::silu_mul(&g, &u)?,
                    _ => (self.activate(&g)? * u)?,
                };
                down.forward(&gu, self.kernels)?
            }
            Ffn::FusedGateUp { gate_up, down } => {
                let gu = gate_up.forward(h, self.kernels)?;
                let ff = self.cfg.n_ff;
                let g = self.activate(&gu.narrow(D::Minus1, 0, ff)?)?;
                let u = gu.narrow(D::Minus1, ff, ff)?;
                down.forward(&(g * u)?, self.kernels)?
            }
        })
    }

    fn attention(
        &self,
        layer: &Layer,
        kv: &mut KvCache,
        h: &Tensor,
        rope: &RopeTables,
    ) -> Result<Tensor> {
        let (b, t, _) = h.dims3()?;
        let (nh, nkv, hd) = (self.cfg.n_head, self.cfg.n_head_kv, self.cfg.head_dim);
        let (q, k, v) = match &layer.qkv {
            Qkv::Separate { q, k, v } => {
                let [yq, yk, yv] = Matrix::forward_many([&q.w, &k.w, &v.w], h, self.kernels)?;
                (q.add_bias(yq)?, k.add_bias(yk)?, v.add_bias(yv)?)
            }
            Qkv::Fused(w) => {
                let qkv = w.forward(h, self.kernels)?;
                (
                    qkv.narrow(D::Minus1, 0, nh * hd)?,
                    qkv.narrow(D::Minus1, nh * hd, nkv * hd)?,
                    qkv.narrow(D::Minus1, (nh + nkv) * hd, nkv * hd)?,
                )
            }
        };
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let mut q = heads(q, nh)?;
        let mut k = heads(k, nkv)?;
        let v = heads(v, nkv)?;
        let eps = self.cfg.rms_eps as f32;
        if let Some(n) = &layer.q_norm {
            q = rms_norm(&q, n, eps)?;
        }
        if let Some(n) = &layer.k_norm {
            k = rms_norm(&k, n, eps)?;
        }
        let q = self.apply_rope(&q, rope)?;
        let k = self.apply_rope(&k, rope)?.contiguous()?;
        // The cache holds f16 (half the memory and half the bytes read per token at long
        // context); every position, new or cached, is read back from it the same way.
        let (k_all, v_all) = kv.append(&k.to_dtype(DType::F16)?, &v.to_dtype(DType::F16)?)?;
        let window = Window {
            size: if layer.sliding {
                self.cfg.sliding_window
            } else {
                None
            },
        };
        let y = attend(&q, &k_all, &v_all, self.attn_scale as f32, window)?;
        layer.attn_out.forward(&y, self.kernels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.1)
            .collect()
    }

    /// The sum's order is fixed: sixteen lanes, each in turn, then pairwise (checked against
    /// the same order written out one addition at a time), and it is the sum (against f64).
    #[test]
    fn squares_are_summed_in_sixteen_lanes_then_pairwise() {
        for n in [0, 1, 15, 16, 17, 64, 576, 583, 2048] {
            let x = values(n);
            let mut lanes = [0f32; 16];
            for (i, v) in x.iter().enumerate() {
                lanes[i % 16] += v * v;
            }
            let mut l8 = [0f32; 8];
            for j in 0..8 {
                l8[j] = lanes[j] + lanes[j + 8];
            }
            let l4: Vec<f32> = (0..4).map(|j| l8[j] + l8[j + 4]).collect();
            let l2 = [l4[0] + l4[2], l4[1] + l4[3]];
            let want = l2[0] + l2[1];
            assert_eq!(sum_of_squares(&x).to_bits(), want.to_bits(), "{n} values");
            let exact: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
            assert!((sum_of_squares(&x) as f64 - exact).abs() <= 1e-5 * exact.max(1.0));
        }
    }

    /// A prompt's rows get the bits a decoding step's norm gives each row alone.
    #[test]
    fn a_tensor_of_rows_is_normed_as_each_row_alone() {
        let dev = Device::Cpu;
        let (rows, n) = (5, 583);
        let x = values(rows * n);
        let alpha: Vec<f32> = (0..n).map(|i| 0.5 + (i % 13) as f32 / 10.0).collect();
        let at = Tensor::from_vec(alpha.clone(), n, &dev).unwrap();
        let xt = Tensor::from_vec(x.clone(), (1, rows, n), &dev).unwrap();
        let got: Vec<f32> = rms_norm(&xt, &at, 1e-5)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (r, row) in x.chunks_exact(n).enumerate() {
            let mut one = vec![0f32; n];
            rms_norm_with(&at, row, 1e-5, &mut one).unwrap();
            let mut again = row.to_vec();
            rms_norm_in_place(&at, &mut again, 1e-5).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got[r * n..(r + 1) * n]), bits(&one), "row {r}");
            assert_eq!(bits(&again), bits(&one), "row {r} in place");
            // And it is an RMS norm: within rounding of candle's.
            let theirs: Vec<f32> = candle_nn::ops::rms_norm(
                &Tensor::from_vec(row.to_vec(), (1, n), &dev).unwrap(),
                &at,
                1e-5,
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
            for (a, b) in one.iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        assert!(rms_norm(&xt, &Tensor::zeros(n + 1, DType::F32, &dev).unwrap(), 1e-5).is_err());
    }
}
