//! Gemma 3 through the quantizer: the Gemma 3 270M test GGUF (made by llama.cpp) becomes a Hugging
//! Face folder with a SentencePiece `tokenizer.model`, is quantized to Q8_0 by Hearth, and comes
//! back with the same hyper-parameters, the same vocabulary (tokens, scores, types), the same
//! special tokens, Gemma's norms restored (+1), and the same continuation of a prompt.

mod support;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::Device;
use hearth_catalog::convert::quantize_folder;
use hearth_catalog::Quant;
use hearth_engine::{GenerationParams, LoadedModel, Prompt, SamplingParams};

fn continuation(path: &Path) -> String {
    let mut m = LoadedModel::load(path, 2).unwrap();
    m.generate(
        &Prompt::Raw("The capital of France is".into()),
        &GenerationParams {
            max_tokens: 6,
            sampling: SamplingParams::greedy(),
            ..Default::default()
        },
        &AtomicBool::new(false),
        &mut |_| true,
    )
    .unwrap()
    .text
}

#[test]
fn gemma3_round_trip_keeps_metadata_vocabulary_and_answers() {
    let source = support::test_model("gemma-3-270m-q4_k_m.gguf");
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("gemma-3-270m");
    let n = support::hf_export::export_gemma3(&source, &folder);
    let out = work.path().join("gemma-q8_0.gguf");
    let report = quantize_folder(
        &folder,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.tensors, n);
    assert_eq!(report.architecture, "gemma3");

    let mut fa = std::fs::File::open(&source).unwrap();
    let a = Content::read(&mut fa).unwrap();
    let mut fb = std::fs::File::open(&out).unwrap();
    let b = Content::read(&mut fb).unwrap();
    for key in [
        "general.architecture",
        "gemma3.context_length",
        "gemma3.embedding_length",
        "gemma3.block_count",
        "gemma3.feed_forward_length",
        "gemma3.attention.head_count",
        "gemma3.attention.head_count_kv",
        "gemma3.attention.key_length",
        "gemma3.attention.value_length",
        "gemma3.attention.layer_norm_rms_epsilon",
        "gemma3.rope.freq_base",
        "gemma3.attention.sliding_window",
        "tokenizer.ggml.model",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_eos_token",
        "tokenizer.ggml.add_space_prefix",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
    ] {
        let (x, y) = (a.metadata.get(key), b.metadata.get(key));
        assert!(y.is_some(), "{key} is missing");
        assert_eq!(format!("{x:?}"), format!("{y:?}"), "{key} differs");
    }
    assert!(matches!(
        b.metadata.get("general.file_type"),
        Some(Value::U32(7))
    ));
    // Norms: exported as HF stores them (w - 1), written back with Gemma's +1, exactly.
    let dev = Device::Cpu;
    for name in [
        "blk.0.attn_norm.weight",
        "blk.5.post_ffw_norm.weight",
        "blk.3.attn_q_norm.weight",
        "output_norm.weight",
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
        let worst = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "{name} differs by {worst}");
    }

    let original = continuation(&source);
    let ours = continuation(&out);
    eprintln!("original Q4_K_M: {original:?}\nHearth Q8_0: {ours:?}");
    // The base model continues the same way from llama.cpp's Q4_K_M and from Hearth's Q8_0.
    assert!(!ours.trim().is_empty());
    assert_eq!(ours, original);
}
