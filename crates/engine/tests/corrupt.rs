//! Damaged and unsupported model files give typed errors, never panics.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use hearth_engine::gguf::ModelFile;
use hearth_engine::{EngineError, LoadedModel};

/// A fresh folder for one test's files, removed when it is dropped.
fn dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hearth-corrupt-")
        .tempdir()
        .unwrap()
}

fn smollm() -> PathBuf {
    test_model("smollm2-135m-instruct-q4_1.gguf")
}

fn qwen() -> PathBuf {
    test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}

fn test_model(file: &str) -> PathBuf {
    let base = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/hearth/test-models")
        });
    let p = base.join(file);
    assert!(
        p.is_file(),
        "test model {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn load_err(path: &Path) -> EngineError {
    match LoadedModel::load(path, 1) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e,
    }
}

fn f32_tensor(shape: &[usize]) -> QTensor {
    let t = Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

fn write_gguf(path: &Path, metadata: &[(&str, Value)], tensors: &[(&str, QTensor)]) {
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    let mut buf = Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &md, &ts).unwrap();
    std::fs::write(path, buf.into_inner()).unwrap();
}

fn llama_metadata(arch: &str) -> Vec<(&'static str, Value)> {
    let a = |k: &str| -> &'static str { Box::leak(format!("{arch}.{k}").into_boxed_str()) };
    vec![
        ("general.architecture", Value::String(arch.into())),
        (a("block_count"), Value::U32(1)),
        (a("embedding_length"), Value::U32(8)),
        (a("attention.head_count"), Value::U32(2)),
        (a("attention.head_count_kv"), Value::U32(2)),
        (a("feed_forward_length"), Value::U32(16)),
        (a("context_length"), Value::U32(64)),
    ]
}

#[test]
fn truncated_files_are_reported_as_damaged() {
    let src = std::fs::read(smollm()).unwrap();
    for (name, len) in [
        ("head.gguf", 64 * 1024),
        ("half.gguf", src.len() / 2),
        ("tail-missing.gguf", src.len() - 1),
    ] {
        let d = dir();
        let p = d.path().join(name);
        std::fs::write(&p, &src[..len]).unwrap();
        match load_err(&p) {
            EngineError::CorruptModel { reason, .. } => assert!(!reason.is_empty()),
            other => panic!("{name}: expected CorruptModel, got {other:?}"),
        }
    }
}

/// Every tensor (Q4_1, Q4_K, Q5_0, Q6_K, Q8_0, F32 among them) comes out the same whether it
/// is copied from the memory map of the file or read with file reads.
#[test]
fn tensors_read_through_the_map_and_with_reads_are_the_same() {
    for p in [smollm(), qwen()] {
        let mapped = ModelFile::open(&p).unwrap();
        assert!(mapped.is_mapped(), "{} is not mapped", p.display());
        let read = ModelFile::open(&p).unwrap().without_map();
        assert!(!read.is_mapped());
        let mut types = std::collections::BTreeSet::new();
        for (name, info) in &mapped.content.tensor_infos {
            let a = mapped.tensor(name, info.shape.dims()).unwrap();
            let b = read.tensor(name, info.shape.dims()).unwrap();
            assert_eq!(a.dtype(), b.dtype(), "{name}");
            assert_eq!(a.shape(), b.shape(), "{name}");
            assert!(a.data().unwrap() == b.data().unwrap(), "{name} differs");
            types.insert(format!("{:?}", a.dtype()));
        }
        assert!(types.len() >= 2, "{types:?}");
    }
}

/// A file cut short is damaged on the read path too (the map's bounds are checked above).
#[test]
fn truncated_files_are_damaged_without_the_map_too() {
    let src = std::fs::read(smollm()).unwrap();
    let d = dir();
    let p = d.path().join("half-read.gguf");
    std::fs::write(&p, &src[..src.len() / 2]).unwrap();
    for file in [
        ModelFile::open(&p).unwrap(),
        ModelFile::open(&p).unwrap().without_map(),
    ] {
        let mapped = file.is_mapped();
        let failed = file
            .content
            .tensor_infos
            .iter()
            .filter_map(|(name, info)| file.tensor(name, info.shape.dims()).err())
            .collect::<Vec<_>>();
        assert!(!failed.is_empty(), "mapped: {mapped}");
        for e in failed {
            assert!(
                matches!(e, EngineError::CorruptModel { .. }),
                "mapped: {mapped}: {e:?}"
            );
        }
    }
}

#[test]
fn wrong_magic_empty_and_missing_files() {
    let mut src = std::fs::read(smollm()).unwrap();
    src.truncate(1024 * 1024);
    src[..4].copy_from_slice(b"GGUX");
    let d = dir();
    let p = d.path().join("bad-magic.gguf");
    std::fs::write(&p, &src).unwrap();
    assert!(matches!(load_err(&p), EngineError::NotGguf { .. }));
    let d = dir();
    let p = d.path().join("empty.gguf");
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(load_err(&p), EngineError::NotGguf { .. }));
    let d = dir();
    let p = d.path().join("does-not-exist.gguf");
    assert!(matches!(load_err(&p), EngineError::Io { .. }));
}

#[test]
fn a_tensor_of_the_wrong_size_is_named() {
    let d = dir();
    let p = d.path().join("wrong-shape.gguf");
    write_gguf(
        &p,
        &llama_metadata("llama"),
        &[
            ("token_embd.weight", f32_tensor(&[16, 8])),
            ("output_norm.weight", f32_tensor(&[8])),
            ("blk.0.attn_norm.weight", f32_tensor(&[8])),
            ("blk.0.attn_q.weight", f32_tensor(&[10, 8])),
        ],
    );
    match load_err(&p) {
        EngineError::CorruptModel { reason, .. } => {
            assert!(
                reason.contains("blk.0.attn_q.weight") && reason.contains("[10, 8]"),
                "{reason}"
            )
        }
        other => panic!("expected CorruptModel, got {other:?}"),
    }
}

#[test]
fn unsupported_architecture_is_named() {
    let d = dir();
    let p = d.path().join("mamba.gguf");
    write_gguf(
        &p,
        &llama_metadata("mamba"),
        &[("token_embd.weight", f32_tensor(&[16, 8]))],
    );
    match load_err(&p) {
        EngineError::UnsupportedArchitecture(a) => assert_eq!(a, "mamba"),
        other => panic!("expected UnsupportedArchitecture, got {other:?}"),
    }
    assert!(load_err(&p).to_string().contains("mamba"));
}

#[test]
fn unsupported_tensor_type_is_named() {
    // A valid file whose first tensor's type id is rewritten to IQ4_XS (23).
    let d = dir();
    let p = d.path().join("iq4.gguf");
    write_gguf(
        &p,
        &llama_metadata("llama"),
        &[("token_embd.weight", f32_tensor(&[16, 8]))],
    );
    let mut bytes = std::fs::read(&p).unwrap();
    let name = b"token_embd.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    // After the name: n_dims (u32), dims (u64 each), then the type (u32).
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    bytes[ty..ty + 4].copy_from_slice(&23u32.to_le_bytes());
    std::fs::write(&p, bytes).unwrap();
    match load_err(&p) {
        EngineError::UnsupportedTensorType { dtype, .. } => assert_eq!(dtype, "IQ4_XS"),
        other => panic!("expected UnsupportedTensorType, got {other:?}"),
    }
}
