//! Quantization inputs other than one F16 file: sharded safetensors with an index, BF16 matrices
//! and F32 vectors; cancel; and the errors a bad folder gives.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device};
use hearth_catalog::convert::safetensors::{write_safetensors, StDtype};
use hearth_catalog::convert::{quantize_folder, ConvertError};
use hearth_catalog::Quant;
use hearth_engine::{GenerationParams, LoadedModel, Message, Prompt, Role, SamplingParams};
use support::hf_export::{export, Layout};

fn tensor(path: &Path, name: &str) -> candle_core::Tensor {
    let mut f = std::fs::File::open(path).unwrap();
    let c = Content::read(&mut f).unwrap();
    c.tensor(&mut f, name, &Device::Cpu)
        .unwrap()
        .dequantize(&Device::Cpu)
        .unwrap()
}

fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn sharded_bf16_folder_quantizes_and_runs() {
    let source = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("sharded");
    let n = export(&source, &folder, Layout::ShardedMixed);
    assert!(folder.join("model.safetensors.index.json").is_file());
    let out = work.path().join("q8.gguf");
    let report = quantize_folder(
        &folder,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.tensors, n);

    // F32 vectors pass through exactly; BF16 matrices within BF16 and Q8_0 rounding.
    assert_eq!(
        max_diff(
            &tensor(&source, "blk.7.attn_norm.weight"),
            &tensor(&out, "blk.7.attn_norm.weight")
        ),
        0.0
    );
    for name in [
        "blk.7.attn_q.weight",
        "blk.7.attn_k.weight",
        "blk.7.ffn_down.weight",
    ] {
        let a = tensor(&source, name);
        let b = tensor(&out, name);
        let scale = a
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let d = max_diff(&a, &b);
        assert!(
            d <= scale * 0.02,
            "{name}: max difference {d} for values up to {scale}"
        );
        assert_eq!(a.dtype(), DType::F32);
    }

    let mut m = LoadedModel::load(&out, 2).unwrap();
    let s = m
        .generate(
            &Prompt::Chat(vec![
                Message {
                    role: Role::System,
                    content: "Answer in English.".into(),
                },
                Message {
                    role: Role::User,
                    content: "What is the capital of France?".into(),
                },
            ]),
            &GenerationParams {
                max_tokens: 16,
                sampling: SamplingParams::greedy(),
                ..Default::default()
            },
            &AtomicBool::new(false),
            &mut |_| true,
        )
        .unwrap();
    assert!(s.text.contains("Paris"), "{:?}", s.text);
}

#[test]
fn cancel_leaves_nothing_behind_and_bad_folders_are_clear_errors() {
    let source = support::test_model("smollm2-135m-instruct-q4_1.gguf");
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("f16");
    export(&source, &folder, Layout::SingleF16);
    let out = work.path().join("out.gguf");
    let cancel = AtomicBool::new(false);
    let mut seen = 0;
    let e = quantize_folder(
        &folder,
        &out,
        Quant::Q4KM,
        &mut |p| {
            seen += 1;
            if p.tensors_done >= 3 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(e, ConvertError::Cancelled), "{e}");
    assert!(seen > 0);
    assert!(!out.exists());
    assert!(
        !work.path().join("out.gguf.partial").exists(),
        "the partial output is removed"
    );

    // No config.json.
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = quantize_folder(
        &empty,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        matches!(e, ConvertError::Io { .. }) && e.to_string().contains("config.json"),
        "{e}"
    );

    // An architecture the engine does not run.
    let mamba = work.path().join("mamba");
    std::fs::create_dir_all(&mamba).unwrap();
    std::fs::write(
        mamba.join("config.json"),
        br#"{"architectures": ["MambaForCausalLM"], "hidden_size": 64}"#,
    )
    .unwrap();
    let e = quantize_folder(
        &mamba,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        matches!(e, ConvertError::UnsupportedArchitecture(ref a) if a == "MambaForCausalLM"),
        "{e}"
    );

    // Integer weights cannot be quantized; a truncated shard is refused before anything is written.
    let odd = work.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(folder.join("config.json"), odd.join("config.json")).unwrap();
    let header =
        br#"{"model.embed_tokens.weight":{"dtype":"I8","shape":[2,2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    std::fs::write(odd.join("model.safetensors"), &bytes).unwrap();
    let e = quantize_folder(
        &odd,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(matches!(e, ConvertError::UnsupportedDtype { .. }), "{e}");
    write_safetensors(
        &odd.join("model.safetensors"),
        &[(
            "model.embed_tokens.weight".into(),
            StDtype::F16,
            vec![4, 4],
            vec![0u8; 32],
        )],
    )
    .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(odd.join("model.safetensors"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 8).unwrap();
    let e = quantize_folder(
        &odd,
        &out,
        Quant::Q8_0,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(matches!(e, ConvertError::InvalidModel { .. }), "{e}");
    assert!(!out.exists());
}
