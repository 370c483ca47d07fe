//! Turns a GGUF test model back into a Hugging Face model folder, as the quantization tests'
//! starting point: dequantized F16 safetensors (Llama's Q/K permutation undone), `config.json`,
//! `tokenizer.json` (byte-level BPE with the pre-tokenizer GGUF's `pre` names) and
//! `tokenizer_config.json` (special tokens, BOS flag, chat template).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device};
use hearth_catalog::convert::safetensors::{write_safetensors, StDtype};

/// Qwen2's pre-tokenizer split, as in its tokenizer.json.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn s(c: &Content, k: &str) -> String {
    c.metadata[k].to_string().unwrap().clone()
}

fn u(c: &Content, k: &str) -> u64 {
    match &c.metadata[k] {
        Value::U32(v) => *v as u64,
        Value::U64(v) => *v,
        Value::I32(v) => *v as u64,
        other => panic!("{k}: {other:?}"),
    }
}

fn f(c: &Content, k: &str) -> f64 {
    c.metadata[k].to_f32().unwrap() as f64
}

fn hf_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let (module, kind) = part.rsplit_once('.').unwrap();
    let m = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        other => panic!("unexpected tensor {other}"),
    };
    format!("model.layers.{layer}.{m}.{kind}")
}

/// One tensor: Hugging Face name, f32 values, shape.
pub type Dequantized = (String, Vec<f32>, Vec<usize>);

/// Tensors of the folder, in name order.
pub fn dequantized(gguf: &Path) -> (Content, Vec<Dequantized>) {
    let mut file = std::fs::File::open(gguf).unwrap();
    let c = Content::read(&mut file).unwrap();
    let arch = s(&c, "general.architecture");
    assert!(
        arch == "llama" || arch == "qwen2",
        "the exporter handles Llama and Qwen2 files"
    );
    let n_head = u(&c, &format!("{arch}.attention.head_count")) as usize;
    let n_kv = u(&c, &format!("{arch}.attention.head_count_kv")) as usize;
    let mut names: Vec<String> = c.tensor_infos.keys().cloned().collect();
    names.sort();
    let dev = Device::Cpu;
    let mut out = Vec::new();
    for name in names {
        let q = c.tensor(&mut file, &name, &dev).unwrap();
        let mut t = q.dequantize(&dev).unwrap();
        let dims = t.dims().to_vec();
        // Undo llama.cpp's rotary permutation (Llama only): the folder holds Hugging Face's layout.
        let heads = if arch != "llama" {
            None
        } else if name.ends_with("attn_q.weight") {
            Some(n_head)
        } else if name.ends_with("attn_k.weight") {
            Some(n_kv)
        } else {
            None
        };
        if let Some(h) = heads {
            let (rows, cols) = (dims[0], dims[1]);
            t = t
                .reshape((h, rows / h / 2, 2, cols))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape((rows, cols))
                .unwrap();
        }
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        out.push((hf_name(&name), v, dims));
    }
    (c, out)
}

fn to_f16_bytes(v: &[f32], shape: &[usize]) -> Vec<u8> {
    let t = candle_core::Tensor::from_slice(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let q = candle_core::quantized::QTensor::quantize(&t, candle_core::quantized::GgmlDType::F16)
        .unwrap();
    q.data().unwrap().into_owned()
}

fn to_bf16_bytes(v: &[f32], shape: &[usize]) -> Vec<u8> {
    let t = candle_core::Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
    let q = candle_core::quantized::QTensor::quantize(&t, candle_core::quantized::GgmlDType::BF16)
        .unwrap();
    q.data().unwrap().into_owned()
}

/// How the weights are laid out in the folder.
pub enum Layout {
    /// One `model.safetensors`, every tensor F16.
    SingleF16,
    /// Two shards with an index: matrices BF16, vectors F32.
    ShardedMixed,
}

/// Writes the folder. Returns the number of tensors.
pub fn export(gguf: &Path, dir: &Path, layout: Layout) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let (c, tensors) = dequantized(gguf);
    let count = tensors.len();
    let tied = !tensors.iter().any(|(n, _, _)| n == "lm_head.weight");
    match layout {
        Layout::SingleF16 => {
            let items: Vec<_> = tensors
                .into_iter()
                .map(|(n, v, shape)| {
                    if shape.len() == 1 {
                        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        (n, StDtype::F32, shape, b)
                    } else {
                        let b = to_f16_bytes(&v, &shape);
                        (n, StDtype::F16, shape, b)
                    }
                })
                .collect();
            write_safetensors(&dir.join("model.safetensors"), &items).unwrap();
        }
        Layout::ShardedMixed => {
            let mut shards: [Vec<_>; 2] = [Vec::new(), Vec::new()];
            let mut map = serde_json::Map::new();
            for (i, (n, v, shape)) in tensors.into_iter().enumerate() {
                let item = if shape.len() == 1 {
                    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (n.clone(), StDtype::F32, shape, b)
                } else {
                    let b = to_bf16_bytes(&v, &shape);
                    (n.clone(), StDtype::BF16, shape, b)
                };
                let shard = if i % 2 == 0 { 0 } else { 1 };
                map.insert(
                    n,
                    serde_json::json!(format!("model-0000{}-of-00002.safetensors", shard + 1)),
                );
                shards[shard].push(item);
            }
            for (i, items) in shards.iter().enumerate() {
                write_safetensors(
                    &dir.join(format!("model-0000{}-of-00002.safetensors", i + 1)),
                    items,
                )
                .unwrap();
            }
            let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
            std::fs::write(
                dir.join("model.safetensors.index.json"),
                serde_json::to_vec_pretty(&index).unwrap(),
            )
            .unwrap();
        }
    }

    let tokens: Vec<String> = c.metadata["tokenizer.ggml.tokens"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|t| t.to_string().unwrap().clone())
        .collect();
    let arch = s(&c, "general.architecture");
    let a = |k: &str| format!("{arch}.{k}");
    let config = serde_json::json!({
        "architectures": [if arch == "llama" { "LlamaForCausalLM" } else { "Qwen2ForCausalLM" }],
        "model_type": arch,
        "hidden_size": u(&c, &a("embedding_length")),
        "num_hidden_layers": u(&c, &a("block_count")),
        "intermediate_size": u(&c, &a("feed_forward_length")),
        "num_attention_heads": u(&c, &a("attention.head_count")),
        "num_key_value_heads": u(&c, &a("attention.head_count_kv")),
        "max_position_embeddings": u(&c, &a("context_length")),
        "rms_norm_eps": f(&c, &a("attention.layer_norm_rms_epsilon")),
        "rope_theta": f(&c, &a("rope.freq_base")),
        "tie_word_embeddings": tied,
        "vocab_size": tokens.len(),
        "bos_token_id": u(&c, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": u(&c, "tokenizer.ggml.eos_token_id"),
        "torch_dtype": "float16"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();

    assert_eq!(s(&c, "tokenizer.ggml.model"), "gpt2");
    let pre_tokenizer = match s(&c, "tokenizer.ggml.pre").as_str() {
        "smollm" => serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}),
        "qwen2" => serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}),
        other => panic!("the exporter has no pre-tokenizer for `{other}`"),
    };
    let types: Vec<i32> = c.metadata["tokenizer.ggml.token_type"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|t| t.to_i32().unwrap())
        .collect();
    let merges: Vec<String> = c.metadata["tokenizer.ggml.merges"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|m| m.to_string().unwrap().clone())
        .collect();
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match types[i] {
            // Unused slots: the converter names them [PADn] itself.
            5 => {}
            3 | 4 => added.push(
                serde_json::json!({"id": i, "content": t, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": types[i] == 3}),
            ),
            _ => {
                vocab.insert(t.clone(), serde_json::json!(i));
            }
        }
    }
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    });
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_vec(&tokenizer).unwrap(),
    )
    .unwrap();
    let tc = serde_json::json!({
        "add_bos_token": c.metadata.get("tokenizer.ggml.add_bos_token").map(|b| b.to_bool().unwrap()).unwrap_or(false),
        // Qwen's tokenizer_config has no BOS token; its config.json names one.
        "bos_token": if arch == "qwen2" { serde_json::Value::Null } else { tokens[u(&c, "tokenizer.ggml.bos_token_id") as usize].clone().into() },
        "pad_token": c.metadata.get("tokenizer.ggml.padding_token_id").map(|_| tokens[u(&c, "tokenizer.ggml.padding_token_id") as usize].clone()),
        "eos_token": tokens[u(&c, "tokenizer.ggml.eos_token_id") as usize],
        "chat_template": s(&c, "tokenizer.chat_template"),
        "model_max_length": u(&c, &a("context_length")),
        "tokenizer_class": "GPT2Tokenizer"
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_vec_pretty(&tc).unwrap(),
    )
    .unwrap();
    count
}

fn gemma_hf_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let (module, kind) = part.rsplit_once('.').unwrap();
    let m = match module {
        "attn_norm" => "input_layernorm",
        "post_attention_norm" => "post_attention_layernorm",
        "ffn_norm" => "pre_feedforward_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        other => panic!("unexpected tensor {other}"),
    };
    format!("model.layers.{layer}.{m}.{kind}")
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// SentencePiece `ModelProto` with the given pieces and `add_dummy_prefix`.
fn sentencepiece_model(
    tokens: &[String],
    scores: &[f32],
    types: &[i32],
    add_dummy_prefix: bool,
) -> Vec<u8> {
    let mut m = Vec::new();
    for ((t, s), k) in tokens.iter().zip(scores).zip(types) {
        let mut p = vec![0x0a];
        varint(t.len() as u64, &mut p);
        p.extend_from_slice(t.as_bytes());
        p.push(0x15);
        p.extend_from_slice(&s.to_le_bytes());
        p.push(0x18);
        varint(*k as u64, &mut p);
        m.push(0x0a);
        varint(p.len() as u64, &mut m);
        m.extend(p);
    }
    m.extend([0x1a, 0x02, 0x18, add_dummy_prefix as u8]);
    m
}

/// A Gemma 3 GGUF as a Hugging Face folder: F16 matrices, F32 norms stored as HF does (without
/// Gemma's +1), `tokenizer.model` (SentencePiece) and `tokenizer_config.json`.
pub fn export_gemma3(gguf: &Path, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut file = std::fs::File::open(gguf).unwrap();
    let c = Content::read(&mut file).unwrap();
    assert_eq!(s(&c, "general.architecture"), "gemma3");
    let dev = Device::Cpu;
    let mut names: Vec<String> = c.tensor_infos.keys().cloned().collect();
    names.sort();
    let mut items = Vec::new();
    for name in &names {
        let t = c
            .tensor(&mut file, name, &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap();
        let dims = t.dims().to_vec();
        if dims.len() == 1 {
            let v: Vec<f32> = t
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(|x| {
                    if name.ends_with("norm.weight") {
                        x - 1.0
                    } else {
                        x
                    }
                })
                .collect();
            items.push((
                gemma_hf_name(name),
                StDtype::F32,
                dims,
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            ));
        } else {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            items.push((
                gemma_hf_name(name),
                StDtype::F16,
                dims.clone(),
                to_f16_bytes(&v, &dims),
            ));
        }
    }
    write_safetensors(&dir.join("model.safetensors"), &items).unwrap();
    let config = serde_json::json!({
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": u(&c, "gemma3.embedding_length"),
        "num_hidden_layers": u(&c, "gemma3.block_count"),
        "intermediate_size": u(&c, "gemma3.feed_forward_length"),
        "num_attention_heads": u(&c, "gemma3.attention.head_count"),
        "num_key_value_heads": u(&c, "gemma3.attention.head_count_kv"),
        "head_dim": u(&c, "gemma3.attention.key_length"),
        "max_position_embeddings": u(&c, "gemma3.context_length"),
        "rms_norm_eps": f(&c, "gemma3.attention.layer_norm_rms_epsilon"),
        "rope_theta": f(&c, "gemma3.rope.freq_base"),
        "rope_local_base_freq": 10000.0,
        "sliding_window": u(&c, "gemma3.attention.sliding_window"),
        "vocab_size": c.metadata["tokenizer.ggml.tokens"].to_vec().unwrap().len(),
        "bos_token_id": u(&c, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": u(&c, "tokenizer.ggml.eos_token_id"),
        "torch_dtype": "bfloat16"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    let tokens: Vec<String> = c.metadata["tokenizer.ggml.tokens"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|t| t.to_string().unwrap().clone())
        .collect();
    let scores: Vec<f32> = c.metadata["tokenizer.ggml.scores"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|t| t.to_f32().unwrap())
        .collect();
    let types: Vec<i32> = c.metadata["tokenizer.ggml.token_type"]
        .to_vec()
        .unwrap()
        .iter()
        .map(|t| t.to_i32().unwrap())
        .collect();
    assert_eq!(s(&c, "tokenizer.ggml.model"), "llama");
    std::fs::write(
        dir.join("tokenizer.model"),
        sentencepiece_model(&tokens, &scores, &types, false),
    )
    .unwrap();
    let tc = serde_json::json!({
        "add_bos_token": c.metadata["tokenizer.ggml.add_bos_token"].to_bool().unwrap(),
        "add_eos_token": false,
        "bos_token": tokens[u(&c, "tokenizer.ggml.bos_token_id") as usize],
        "eos_token": tokens[u(&c, "tokenizer.ggml.eos_token_id") as usize],
        "unk_token": tokens[u(&c, "tokenizer.ggml.unknown_token_id") as usize],
        "pad_token": tokens[u(&c, "tokenizer.ggml.padding_token_id") as usize],
        "tokenizer_class": "GemmaTokenizer"
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_vec_pretty(&tc).unwrap(),
    )
    .unwrap();
    names.len()
}
