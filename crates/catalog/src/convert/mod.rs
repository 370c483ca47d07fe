//! On-device quantization: a Hugging Face safetensors model folder (F32, F16 or BF16; one file or
//! shards with `model.safetensors.index.json`; `config.json`; `tokenizer.json` or
//! `tokenizer.model`) becomes one GGUF file at a [`Quant`] level, with the metadata and tokenizer
//! that both Hearth's engine and llama.cpp need.
//!
//! What a caller may rely on:
//! - Memory stays bounded: tensors are read, converted and quantized a slice of rows at a time
//!   (at most [`CHUNK_ELEMENTS`] values, or one whole attention matrix where Llama's Q/K rows must
//!   be permuted) and streamed to disk, whatever the model's size.
//! - The output is written to `OUT.partial` and renamed to `OUT` only when complete; on an error or
//!   a cancel the partial file is removed and `OUT` is untouched.
//! - Progress is reported after each slice; the cancel flag is checked as often.
//! - Tensor types follow llama.cpp's recipes ([`recipe`]); Llama's Q/K weights are permuted the
//!   way llama.cpp's converter does, Gemma 3's norms get their +1, Llama 3 and Phi-3 rope scaling
//!   becomes `rope_freqs` / `rope_factors_*` tensors.

pub mod hf_config;
pub mod recipe;
pub mod safetensors;
mod spm;
pub mod vocab;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::gguf_out::{ggml_type_name, GgufWriter, MetaValue, TensorSpec};
use crate::quant::Quant;
use hf_config::{Arch, ModelParams, RopeScaling};
use safetensors::SafetensorsModel;

/// Largest number of values converted at once (8 MiB as f32).
pub const CHUNK_ELEMENTS: usize = 2 * 1024 * 1024;

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable model: {message}")]
    InvalidModel { path: PathBuf, message: String },
    #[error("the architecture `{0}` cannot be converted (supported: Llama, Qwen2, Qwen3, Gemma 3, Phi-3)")]
    UnsupportedArchitecture(String),
    #[error("tensor `{tensor}` has type {dtype}; only F32, F16 and BF16 weights can be quantized")]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("unsupported tokenizer: {0}")]
    UnsupportedTokenizer(String),
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
    #[error("the model has a tensor this converter does not know: `{0}`")]
    UnexpectedTensor(String),
    #[error("not enough free disk space in {path}: {needed} bytes needed, {available} available")]
    InsufficientDisk {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("quantization cancelled; nothing was written")]
    Cancelled,
    #[error("tensor computation failed for `{tensor}`: {message}")]
    Compute { tensor: String, message: String },
}

/// Progress of one conversion.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertProgress {
    /// The tensor being written.
    pub tensor: String,
    /// Tensors completed so far.
    pub tensors_done: usize,
    pub tensors_total: usize,
    pub bytes_written: u64,
    /// Final file size (known exactly before writing starts).
    pub bytes_total: u64,
}

/// What was produced.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub output: PathBuf,
    pub architecture: String,
    pub quant: Quant,
    pub tensors: usize,
    pub output_bytes: u64,
    /// Tensor count per GGML type name.
    pub types: BTreeMap<String, usize>,
    /// Tensors whose rows did not fit the recipe's type and took a fallback.
    pub fallbacks: Vec<String>,
    pub seconds: f64,
}

/// How one tensor's values are changed on the way.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Transform {
    None,
    /// Llama's rotary layout: rows of each head reordered (llama.cpp's `permute`).
    PermuteHeads(usize),
    /// Gemma's RMSNorm stores `w - 1`.
    AddOne,
}

#[derive(Clone, Debug)]
enum Source {
    Hf(String),
    Values(Vec<f32>),
}

#[derive(Clone, Debug)]
struct Planned {
    spec: TensorSpec,
    source: Source,
    transform: Transform,
    fallback: bool,
}

/// Maps a Hugging Face tensor name to its GGUF name. `Ok(None)` skips the tensor.
fn map_name(hf: &str, p: &ModelParams) -> Result<Option<(String, Transform)>, ConvertError> {
    let mut name = hf.to_string();
    for (from, to) in [
        ("model.language_model.", "model."),
        ("language_model.model.", "model."),
        ("language_model.", ""),
    ] {
        if let Some(rest) = name.strip_prefix(from) {
            name = format!("{to}{rest}");
            break;
        }
    }
    let skip_prefixes = [
        "vision_tower.",
        "multi_modal_projector.",
        "model.vision_tower.",
        "model.multi_modal_projector.",
    ];
    if skip_prefixes.iter().any(|s| name.starts_with(s)) || name.ends_with("rotary_emb.inv_freq") {
        return Ok(None);
    }
    let gemma = p.arch == Arch::Gemma3;
    let norm_fix = |n: &str| {
        if gemma && n.ends_with("norm.weight") {
            Transform::AddOne
        } else {
            Transform::None
        }
    };
    let top = match name.as_str() {
        "model.embed_tokens.weight" => Some("token_embd.weight".to_string()),
        "model.norm.weight" => Some("output_norm.weight".to_string()),
        "lm_head.weight" if p.tie_embeddings => return Ok(None),
        "lm_head.weight" => Some("output.weight".to_string()),
        _ => None,
    };
    if let Some(g) = top {
        let t = norm_fix(&g);
        return Ok(Some((g, t)));
    }
    let rest = name
        .strip_prefix("model.layers.")
        .ok_or_else(|| ConvertError::UnexpectedTensor(hf.to_string()))?;
    let (layer, part) = rest
        .split_once('.')
        .ok_or_else(|| ConvertError::UnexpectedTensor(hf.to_string()))?;
    let layer: usize = layer
        .parse()
        .map_err(|_| ConvertError::UnexpectedTensor(hf.to_string()))?;
    if layer >= p.n_layer {
        return Err(ConvertError::UnexpectedTensor(hf.to_string()));
    }
    let (module, kind) = part
        .rsplit_once('.')
        .ok_or_else(|| ConvertError::UnexpectedTensor(hf.to_string()))?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" if gemma => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.qkv_proj" => "attn_qkv",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" | "mlp.gate_up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return Err(ConvertError::UnexpectedTensor(hf.to_string())),
    };
    let gguf = format!("blk.{layer}.{g}.{kind}");
    let transform = match (p.arch, g, kind) {
        (Arch::Llama, "attn_q", "weight") => Transform::PermuteHeads(p.n_head),
        (Arch::Llama, "attn_k", "weight") => Transform::PermuteHeads(p.n_head_kv),
        _ => norm_fix(&gguf),
    };
    Ok(Some((gguf, transform)))
}

fn sort_key(name: &str) -> (usize, usize, String) {
    match name {
        "token_embd.weight" => (0, 0, String::new()),
        "output_norm.weight" => (3, 0, String::new()),
        "output.weight" => (4, 0, String::new()),
        n => match recipe::layer_of(n) {
            Some(l) => (2, l, n.to_string()),
            None => (1, 0, n.to_string()),
        },
    }
}

fn folder_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".to_string())
}

fn architecture_metadata(p: &ModelParams, n_vocab: usize) -> Vec<(String, MetaValue)> {
    let a = p.arch.name();
    let k = |s: &str| format!("{a}.{s}");
    let u = |v: usize| MetaValue::U32(v as u32);
    let mut m = vec![
        (k("context_length"), u(p.context_length)),
        (k("embedding_length"), u(p.n_embd)),
        (k("block_count"), u(p.n_layer)),
        (k("feed_forward_length"), u(p.n_ff)),
        (k("attention.head_count"), u(p.n_head)),
        (k("attention.head_count_kv"), u(p.n_head_kv)),
        (
            k("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(p.rms_eps),
        ),
        (k("rope.freq_base"), MetaValue::F32(p.rope_theta)),
        (k("rope.dimension_count"), u(p.rope_dim)),
        (k("vocab_size"), u(n_vocab)),
    ];
    if p.explicit_head_dim
        || matches!(p.arch, Arch::Qwen3 | Arch::Gemma3)
        || p.head_dim * p.n_head != p.n_embd
    {
        m.push((k("attention.key_length"), u(p.head_dim)));
        m.push((k("attention.value_length"), u(p.head_dim)));
    }
    if let RopeScaling::Linear { factor } = p.rope_scaling {
        m.push((k("rope.scaling.type"), MetaValue::Str("linear".into())));
        m.push((k("rope.scaling.factor"), MetaValue::F32(factor)));
    }
    match p.arch {
        Arch::Gemma3 => {
            if let Some(w) = p.sliding_window {
                m.push((k("attention.sliding_window"), u(w)));
            }
            if let Some(c) = p.final_logit_softcapping {
                m.push((k("final_logit_softcapping"), MetaValue::F32(c)));
            }
        }
        Arch::Phi3 => {
            m.push((
                k("attention.sliding_window"),
                u(p.sliding_window.unwrap_or(0)),
            ));
            if let RopeScaling::LongRope {
                original_context, ..
            } = &p.rope_scaling
            {
                let scale = p.context_length as f64 / *original_context as f64;
                let attn = if scale > 1.0 {
                    (1.0 + scale.ln() / (*original_context as f64).ln()).sqrt()
                } else {
                    1.0
                };
                m.push((
                    k("rope.scaling.original_context_length"),
                    MetaValue::U32(*original_context),
                ));
                m.push((k("rope.scaling.attn_factor"), MetaValue::F32(attn as f32)));
            }
        }
        _ => {}
    }
    m
}

/// Quantizes the model folder `dir` into the GGUF file `out`.
pub fn quantize_folder(
    dir: &Path,
    out: &Path,
    quant: Quant,
    progress: &mut dyn FnMut(&ConvertProgress),
    cancel: &AtomicBool,
) -> Result<ConvertReport, ConvertError> {
    let started = Instant::now();
    let params = ModelParams::read(&dir.join("config.json"))?;
    let st = SafetensorsModel::open(dir)?;

    // Plan every tensor before writing anything: sizes, and so the file's layout, are known.
    let mut planned: Vec<Planned> = Vec::new();
    for hf in st.names() {
        let Some((name, transform)) = map_name(hf, &params)? else {
            continue;
        };
        let t = st
            .get(hf)
            .ok_or_else(|| ConvertError::MissingTensor(hf.to_string()))?;
        planned.push(Planned {
            spec: TensorSpec {
                name,
                dims: t.shape.clone(),
                dtype: GgmlDType::F32,
            },
            source: Source::Hf(hf.to_string()),
            transform,
            fallback: false,
        });
    }
    let embd = planned
        .iter()
        .find(|p| p.spec.name == "token_embd.weight")
        .ok_or_else(|| ConvertError::MissingTensor("model.embed_tokens.weight".into()))?;
    let n_vocab = embd.spec.dims[0];
    if let Some(f) = params.llama3_rope_factors() {
        planned.push(Planned {
            spec: TensorSpec {
                name: "rope_freqs.weight".into(),
                dims: vec![f.len()],
                dtype: GgmlDType::F32,
            },
            source: Source::Values(f),
            transform: Transform::None,
            fallback: false,
        });
    }
    if let RopeScaling::LongRope { long, short, .. } = &params.rope_scaling {
        if long.len() != params.rope_dim / 2 || short.len() != params.rope_dim / 2 {
            return Err(ConvertError::InvalidModel {
                path: dir.join("config.json"),
                message: format!(
                    "rope long/short factors must have {} values",
                    params.rope_dim / 2
                ),
            });
        }
        for (name, v) in [
            ("rope_factors_long.weight", long),
            ("rope_factors_short.weight", short),
        ] {
            planned.push(Planned {
                spec: TensorSpec {
                    name: name.into(),
                    dims: vec![v.len()],
                    dtype: GgmlDType::F32,
                },
                source: Source::Values(v.clone()),
                transform: Transform::None,
                fallback: false,
            });
        }
    }
    planned.sort_by_key(|p| sort_key(&p.spec.name));
    let tied = !planned.iter().any(|p| p.spec.name == "output.weight");
    for p in planned.iter_mut() {
        // Layers are written in numeric order: a tensor's position among its kind is its layer.
        let position = (recipe::layer_of(&p.spec.name).unwrap_or(0), params.n_layer);
        let c = recipe::choose(quant, &p.spec.name, &p.spec.dims, position, tied);
        p.spec.dtype = c.dtype;
        p.fallback = c.fallback;
    }

    let vocab = vocab::read_vocab(dir, &params, n_vocab)?;
    let mut metadata: Vec<(String, MetaValue)> = vec![
        (
            "general.architecture".into(),
            MetaValue::Str(params.arch.name().into()),
        ),
        ("general.name".into(), MetaValue::Str(folder_name(dir))),
        (
            "general.file_type".into(),
            MetaValue::U32(quant.file_type()),
        ),
        ("general.quantization_version".into(), MetaValue::U32(2)),
    ];
    metadata.extend(architecture_metadata(&params, n_vocab));
    metadata.extend(vocab.metadata);

    let partial = {
        let mut name = out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".partial");
        out.with_file_name(name)
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConvertError::Io { path, source }
    };
    let specs: Vec<TensorSpec> = planned.iter().map(|p| p.spec.clone()).collect();
    let file = File::create(&partial).map_err(io(&partial))?;
    let result = (|| {
        let mut writer =
            GgufWriter::begin(BufWriter::with_capacity(4 << 20, file), &metadata, specs)
                .map_err(io(&partial))?;
        let total = writer.planned_file_size();
        let dir_of_out = partial
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let available = fs4::available_space(dir_of_out).map_err(io(dir_of_out))?;
        if available < total {
            return Err(ConvertError::InsufficientDisk {
                path: dir_of_out.to_path_buf(),
                needed: total,
                available,
            });
        }
        let mut written = 0u64;
        let count = planned.len();
        for (i, p) in planned.iter().enumerate() {
            write_tensor(
                &st,
                p,
                &mut writer,
                &mut |bytes| {
                    written += bytes;
                    progress(&ConvertProgress {
                        tensor: p.spec.name.clone(),
                        tensors_done: i,
                        tensors_total: count,
                        bytes_written: written,
                        bytes_total: total,
                    });
                },
                cancel,
            )?;
        }
        let buffered = writer.finish().map_err(io(&partial))?;
        let file = buffered.into_inner().map_err(|e| ConvertError::Io {
            path: partial.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&partial))?;
        Ok(total)
    })();
    let total = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(io(out))?;
    progress(&ConvertProgress {
        tensor: String::new(),
        tensors_done: planned.len(),
        tensors_total: planned.len(),
        bytes_written: total,
        bytes_total: total,
    });
    let mut types = BTreeMap::new();
    for p in &planned {
        *types
            .entry(ggml_type_name(p.spec.dtype).to_string())
            .or_insert(0) += 1;
    }
    Ok(ConvertReport {
        output: out.to_path_buf(),
        architecture: params.arch.name().to_string(),
        quant,
        tensors: planned.len(),
        output_bytes: total,
        types,
        fallbacks: planned
            .iter()
            .filter(|p| p.fallback)
            .map(|p| p.spec.name.clone())
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn compute_err(tensor: &str) -> impl Fn(candle_core::Error) -> ConvertError + '_ {
    move |e| ConvertError::Compute {
        tensor: tensor.to_string(),
        message: e.to_string(),
    }
}

/// Encodes rows of `t` (f32, `[rows, cols]`) as `dtype`, in parallel over row ranges; the parts
/// come back in row order.
fn encode(t: &Tensor, dtype: GgmlDType, name: &str) -> Result<Vec<Vec<u8>>, ConvertError> {
    let rows = t.dim(0).map_err(compute_err(name))?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(rows.max(1));
    let per = rows.div_ceil(threads.max(1)).max(1);
    let parts: Vec<Result<Vec<u8>, ConvertError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..rows)
            .step_by(per)
            .map(|start| {
                let len = per.min(rows - start);
                s.spawn(move || -> Result<Vec<u8>, ConvertError> {
                    // A view shares its parent's storage, and `QTensor::quantize` reads the
                    // storage from its start: give each part a buffer of its own.
                    let whole = len == rows && t.is_contiguous() && t.layout().start_offset() == 0;
                    let part = if whole {
                        t.clone()
                    } else {
                        t.narrow(0, start, len)
                            .and_then(|p| p.force_contiguous())
                            .map_err(compute_err(name))?
                    };
                    let q = QTensor::quantize(&part, dtype).map_err(compute_err(name))?;
                    Ok(q.data().map_err(compute_err(name))?.into_owned())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ConvertError::Compute {
                        tensor: name.to_string(),
                        message: "a worker thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    parts.into_iter().collect()
}

fn write_tensor<W: Write>(
    st: &SafetensorsModel,
    p: &Planned,
    writer: &mut GgufWriter<W>,
    on_written: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<(), ConvertError> {
    let name = p.spec.name.as_str();
    let io_err = |source| ConvertError::Io {
        path: PathBuf::from(name),
        source,
    };
    if cancel.load(Ordering::Relaxed) {
        return Err(ConvertError::Cancelled);
    }
    let hf = match &p.source {
        Source::Values(v) => {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            writer.write_data(&bytes).map_err(io_err)?;
            on_written(bytes.len() as u64);
            return Ok(());
        }
        Source::Hf(hf) => hf.as_str(),
    };
    let t = st
        .get(hf)
        .ok_or_else(|| ConvertError::MissingTensor(hf.to_string()))?;
    let (rows, cols) = t.rows_cols();
    let chunk_rows = match p.transform {
        Transform::PermuteHeads(_) => rows,
        _ => (CHUNK_ELEMENTS / cols.max(1)).clamp(1, rows.max(1)),
    };
    let dev = Device::Cpu;
    let mut first = 0;
    while first < rows {
        if cancel.load(Ordering::Relaxed) {
            return Err(ConvertError::Cancelled);
        }
        let n = chunk_rows.min(rows - first);
        let raw = st.read_rows(hf, first, n)?;
        let x = Tensor::from_raw_buffer(&raw, t.dtype.candle(), &[n, cols], &dev)
            .and_then(|x| x.to_dtype(candle_core::DType::F32))
            .map_err(compute_err(name))?;
        drop(raw);
        let x = match p.transform {
            Transform::None => x,
            Transform::AddOne => x.affine(1.0, 1.0).map_err(compute_err(name))?,
            Transform::PermuteHeads(heads) => {
                if heads == 0 || n % (heads * 2) != 0 {
                    return Err(ConvertError::InvalidModel {
                        path: PathBuf::from(hf),
                        message: format!("{n} rows cannot be split over {heads} heads"),
                    });
                }
                x.reshape((heads, 2, n / heads / 2, cols))
                    .and_then(|x| x.transpose(1, 2))
                    .and_then(|x| x.contiguous())
                    .and_then(|x| x.reshape((n, cols)))
                    .map_err(compute_err(name))?
            }
        };
        let parts = encode(&x, p.spec.dtype, name)?;
        drop(x);
        for bytes in parts {
            writer.write_data(&bytes).map_err(io_err)?;
            on_written(bytes.len() as u64);
        }
        first += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(arch: &str) -> ModelParams {
        ModelParams::from_json(&serde_json::json!({
            "architectures": [arch], "hidden_size": 64, "num_hidden_layers": 2,
            "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "tie_word_embeddings": true
        }))
        .unwrap()
    }

    #[test]
    fn names_map_like_llama_cpp() {
        let p = params("LlamaForCausalLM");
        let m = |n: &str| map_name(n, &p).unwrap();
        assert_eq!(
            m("model.embed_tokens.weight"),
            Some(("token_embd.weight".into(), Transform::None))
        );
        assert_eq!(
            m("model.layers.1.self_attn.q_proj.weight"),
            Some(("blk.1.attn_q.weight".into(), Transform::PermuteHeads(4)))
        );
        assert_eq!(
            m("model.layers.1.self_attn.k_proj.weight"),
            Some(("blk.1.attn_k.weight".into(), Transform::PermuteHeads(2)))
        );
        assert_eq!(
            m("model.layers.0.post_attention_layernorm.weight")
                .unwrap()
                .0,
            "blk.0.ffn_norm.weight"
        );
        assert_eq!(
            m("model.layers.0.mlp.down_proj.weight").unwrap().0,
            "blk.0.ffn_down.weight"
        );
        assert_eq!(m("lm_head.weight"), None, "tied");
        assert!(m("model.rotary_emb.inv_freq").is_none());
        assert!(matches!(
            map_name("model.layers.5.mlp.up_proj.weight", &p),
            Err(ConvertError::UnexpectedTensor(_))
        ));
        assert!(matches!(
            map_name("model.mystery.weight", &p),
            Err(ConvertError::UnexpectedTensor(_))
        ));

        let g = params("Gemma3ForConditionalGeneration");
        let gm = |n: &str| map_name(n, &g).unwrap();
        assert_eq!(
            gm("language_model.model.layers.0.post_attention_layernorm.weight"),
            Some(("blk.0.post_attention_norm.weight".into(), Transform::AddOne))
        );
        assert_eq!(
            gm("model.language_model.layers.1.self_attn.q_norm.weight"),
            Some(("blk.1.attn_q_norm.weight".into(), Transform::AddOne))
        );
        assert_eq!(
            gm("language_model.model.layers.0.self_attn.q_proj.weight"),
            Some(("blk.0.attn_q.weight".into(), Transform::None))
        );
        assert_eq!(
            gm("vision_tower.vision_model.embeddings.patch_embedding.weight"),
            None
        );

        let q = params("Qwen2ForCausalLM");
        assert_eq!(
            map_name("model.layers.0.self_attn.q_proj.bias", &q).unwrap(),
            Some(("blk.0.attn_q.bias".into(), Transform::None))
        );
    }
}
