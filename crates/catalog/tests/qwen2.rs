//! Qwen2 through the quantizer: the Qwen2.5-Coder 0.5B test GGUF (made by llama.cpp) becomes a
//! Hugging Face folder (F16 weights, F32 biases and norms, byte-level BPE tokenizer.json with
//! Qwen's pre-tokenizer, tokenizer_config.json with its chat template), is quantized to Q8_0 by
//! Hearth, and comes back with the same hyper-parameters, vocabulary, merges, special tokens and
//! template, the attention biases intact, and the same greedy code completion.

mod support;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use hearth_catalog::convert::quantize_folder;
use hearth_catalog::Quant;
use hearth_engine::{GenerationParams, LoadedModel, Prompt, SamplingParams};
use support::hf_export::{export, Layout};

fn complete(path: &Path) -> Vec<u32> {
    let mut m = LoadedModel::load(path, 2).unwrap();
    m.generate(
        &Prompt::Raw("def fibonacci(n):\n".into()),
        &GenerationParams {
            max_tokens: 8,
            sampling: SamplingParams::greedy(),
            ..Default::default()
        },
        &AtomicBool::new(false),
        &mut |_| true,
    )
    .unwrap()
    .tokens
}

#[test]
fn qwen2_round_trip_keeps_metadata_vocabulary_biases_and_completion() {
    let source = support::test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("Qwen2.5-Coder-0.5B-Instruct");
    let n = export(&source, &folder, Layout::SingleF16);
    let out = work.path().join("qwen-q8_0.gguf");
    let report = quantize_folder(
        &folder,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((report.tensors, report.architecture.as_str()), (n, "qwen2"));

    let mut fa = std::fs::File::open(&source).unwrap();
    let a = Content::read(&mut fa).unwrap();
    let mut fb = std::fs::File::open(&out).unwrap();
    let b = Content::read(&mut fb).unwrap();
    for key in [
        "qwen2.context_length",
        "qwen2.embedding_length",
        "qwen2.block_count",
        "qwen2.feed_forward_length",
        "qwen2.attention.head_count",
        "qwen2.attention.head_count_kv",
        "qwen2.rope.freq_base",
        "qwen2.attention.layer_norm_rms_epsilon",
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.chat_template",
    ] {
        let (x, y) = (a.metadata.get(key), b.metadata.get(key));
        assert!(y.is_some(), "{key} is missing");
        assert_eq!(format!("{x:?}"), format!("{y:?}"), "{key} differs");
    }
    let dev = Device::Cpu;
    for name in [
        "blk.0.attn_q.bias",
        "blk.11.attn_k.bias",
        "blk.23.attn_v.bias",
    ] {
        let x = a
            .tensor(&mut fa, name, &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y = b
            .tensor(&mut fb, name, &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(x, y, "{name}");
    }

    let original = complete(&source);
    let ours = complete(&out);
    assert_eq!(ours, original, "greedy completion differs");
}
