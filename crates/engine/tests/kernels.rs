//! Hearth's quantized matrix kernels (crates/engine/src/kernels) against a dequantize-then-f32
//! reference, on real weight rows from the test models (scripts/fetch-test-models), for every
//! covered type and every instruction set the CPU supports; and SmolLM2's greedy output with the
//! kernels on, against candle's kernels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use hearth_engine::gguf::ModelFile;
use hearth_engine::kernels::{BlockType, Isa, QMatrix};
use hearth_engine::model::Transformer;
use hearth_engine::LoadedModel;

fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/hearth/test-models")
        });
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "test model {} is missing: run scripts/fetch-test-models",
        p.display()
    );
    p
}

fn smollm() -> PathBuf {
    model("smollm2-135m-instruct-q4_1.gguf")
}
fn qwen() -> PathBuf {
    model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}
fn gemma() -> PathBuf {
    model("gemma-3-270m-q4_k_m.gguf")
}

fn tensor(path: &Path, name: &str, shape: &[usize]) -> Arc<QTensor> {
    let f = ModelFile::open(path).unwrap();
    Arc::new(f.tensor(name, shape).unwrap())
}

/// Activations shaped like a transformer's: mostly small, a few large outliers, some zero
/// blocks' worth of exact zeros.
fn activations(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0;
            match i % 97 {
                0 => u * 20.0,
                _ if (i / 32) % 11 == 5 => 0.0,
                _ => u,
            }
        })
        .collect()
}

/// Largest error the 8-bit activations may cause for one row: each value is off by at most
/// half its quantization block's step (blocks of `block` values), plus f32 rounding.
fn bound(w: &[f32], x: &[f32], block: usize) -> f32 {
    let mut b = 0f64;
    let mut mag = 0f64;
    for (wb, xb) in w.chunks(block).zip(x.chunks(block)) {
        let step = xb.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
        let wsum: f64 = wb.iter().map(|v| v.abs() as f64).sum();
        b += step / 2.0 * wsum;
        mag += wb
            .iter()
            .zip(xb)
            .map(|(a, c)| (a * c).abs() as f64)
            .sum::<f64>();
    }
    (b * (1.0 + 1e-5) + mag * 2e-6 + 1e-6) as f32
}

/// Checks one matrix: for every supported instruction set, one token and three tokens at once,
/// every `step`-th row (and the last) against the reference, and every instruction set against
/// the scalar path.
fn check(m: &QMatrix, step: usize) {
    let (rows, cols) = (m.rows(), m.cols());
    // More than one group of tokens (the AVX2 path takes four at a time) and a remainder.
    let tokens = 6;
    let x = activations(cols * tokens, (rows * 31 + cols) as u64);
    let mut sampled: Vec<usize> = (0..rows).step_by(step.max(1)).collect();
    if sampled.last() != Some(&(rows - 1)) {
        sampled.push(rows - 1);
    }
    let w: Vec<(usize, Vec<f32>)> = sampled
        .iter()
        .map(|&r| (r, m.dequantize_row(r).unwrap()))
        .collect();
    let mut scalar_out = Vec::new();
    let mut avx2_out = Vec::new();
    for isa in Isa::supported() {
        let mut many = vec![0f32; rows * tokens];
        m.matmul(isa, &x, &mut many).unwrap();
        for t in 0..tokens {
            let mut one = vec![0f32; rows];
            m.matmul(isa, &x[t * cols..(t + 1) * cols], &mut one)
                .unwrap();
            assert_eq!(
                &many[t * rows..(t + 1) * rows],
                &one[..],
                "{isa:?} {:?}: token {t} batched vs alone",
                m.block_type()
            );
        }
        for (r, wr) in &w {
            for t in 0..tokens {
                let xt = &x[t * cols..(t + 1) * cols];
                let reference: f64 = wr.iter().zip(xt).map(|(a, b)| *a as f64 * *b as f64).sum();
                let got = many[t * rows + r];
                let err = (got as f64 - reference).abs() as f32;
                let lim = bound(wr, xt, m.block_type().block_values());
                assert!(
                    err <= lim,
                    "{isa:?} {:?} [{rows}x{cols}] row {r} token {t}: {got} vs {reference} \
                     (error {err} > bound {lim})",
                    m.block_type()
                );
            }
        }
        if isa == Isa::Avx2 {
            avx2_out = many.clone();
        }
        if isa == Isa::AvxVnni {
            // Single tokens take other instructions there (checked against the batched
            // products above), with the same integers.
            assert_eq!(
                many,
                avx2_out,
                "{:?}: AVX-VNNI and AVX2 give different bits",
                m.block_type()
            );
        }
        if isa == Isa::Avx512Vnni {
            // Prompts take other instructions there, with the same arithmetic per row.
            assert_eq!(
                many,
                avx2_out,
                "{:?}: AVX-512 and AVX2 give different bits",
                m.block_type()
            );
        }
        if isa == Isa::Scalar {
            scalar_out = many;
        } else if matches!(isa, Isa::Neon | Isa::NeonDot) {
            // The Arm kernels run the portable path's floating-point steps in its order for
            // every type.
            assert_eq!(
                many,
                scalar_out,
                "{isa:?} {:?}: different bits from the portable path",
                m.block_type()
            );
        } else if m.block_type().block_values() == 256 {
            // The k-quants run the portable path's floating-point steps in its order on every
            // instruction set: the same bits.
            assert_eq!(
                many,
                scalar_out,
                "{isa:?} {:?}: different bits from the portable path",
                m.block_type()
            );
        } else {
            for (i, (a, s)) in many.iter().zip(&scalar_out).enumerate() {
                let (r, t) = (i % rows, i / rows);
                let wr = m.dequantize_row(r).unwrap();
                let mag: f32 = wr
                    .iter()
                    .zip(&x[t * cols..(t + 1) * cols])
                    .map(|(a, b)| (a * b).abs())
                    .sum();
                assert!(
                    (a - s).abs() <= mag * 1e-5 + 1e-6,
                    "{isa:?} {:?} row {r} token {t}: {a} vs scalar {s}",
                    m.block_type()
                );
                if i > 4096 {
                    break;
                }
            }
        }
    }
}

/// A matrix of type `dtype` quantized from real weights: rows `rows` and the first `cols`
/// columns of a dequantized tensor of the test models.
fn requantized(src: &Arc<QTensor>, rows: usize, cols: usize, dtype: GgmlDType) -> QMatrix {
    let m = QMatrix::new(requantized_tensor(src, rows, cols, dtype)).expect("covered type");
    assert_eq!((m.rows(), m.cols()), (rows, cols));
    m
}

/// [`requantized`]'s tensor.
fn requantized_tensor(
    src: &Arc<QTensor>,
    rows: usize,
    cols: usize,
    dtype: GgmlDType,
) -> Arc<QTensor> {
    let full = src.dequantize(&Device::Cpu).unwrap();
    let part: Vec<f32> = full
        .narrow(0, 0, rows)
        .unwrap()
        .narrow(1, 0, cols)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // A fresh tensor: candle's quantize reads the whole storage, whatever the view.
    let part = Tensor::from_vec(part, (rows, cols), &Device::Cpu).unwrap();
    Arc::new(QTensor::quantize(&part, dtype).unwrap())
}

/// [`hearth_engine::kernels::matmul_many`] of `mats` on the tokens `x`: each matrix's outputs
/// (NaN where nothing was written).
fn many_outputs(isa: Isa, mats: &[&QMatrix], x: &[f32]) -> Vec<Vec<f32>> {
    let tokens = x.len() / mats[0].cols();
    let mut outs: Vec<Vec<f32>> = mats
        .iter()
        .map(|m| vec![f32::NAN; tokens * m.rows()])
        .collect();
    let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
    hearth_engine::kernels::matmul_many(isa, mats, x, &mut o).unwrap();
    outs
}

/// A matrix held interleaved (the layout of the x86 single-token kernels) gives every
/// instruction set the same bits as the same matrix read in place, for one token and for a
/// prompt, in a call of its own and beside other matrices (a first matrix of 117 rows puts the
/// next one's rows off the pool's alignment), with a last partial group of rows; its rows, its
/// values and its candle tensor are the GGUF ones.
#[test]
fn interleaved_matrices_give_the_bits_of_matrices_read_in_place() {
    let s = tensor(&smollm(), "blk.3.ffn_up.weight", &[1536, 576]);
    let d = tensor(&qwen(), "blk.0.ffn_down.weight", &[896, 4864]);
    let tensors = [
        tensor(&qwen(), "blk.0.attn_q.weight", &[896, 896]),
        requantized_tensor(&s, 203, 576, GgmlDType::Q5_0),
        tensor(&smollm(), "blk.0.ffn_gate.weight", &[1536, 576]),
        requantized_tensor(&s, 117, 576, GgmlDType::Q4_1),
        requantized_tensor(&s, 301, 576, GgmlDType::Q4_0),
        requantized_tensor(&s, 69, 576, GgmlDType::Q8_0),
        tensor(&qwen(), "blk.0.ffn_down.weight", &[896, 4864]),
        requantized_tensor(&d, 107, 4864, GgmlDType::Q4K),
        requantized_tensor(&d, 45, 4864, GgmlDType::Q5K),
    ];
    let plain: Vec<QMatrix> = tensors
        .iter()
        .map(|t| QMatrix::new(t.clone()).unwrap())
        .collect();
    let inter: Vec<QMatrix> = tensors
        .iter()
        .map(|t| QMatrix::interleaved(t.clone()).unwrap())
        .collect();
    for (p, m) in plain.iter().zip(&inter) {
        let ty = m.block_type();
        assert!(m.is_interleaved(), "{ty:?}");
        for r in [0, 5, 8, m.rows() - 1] {
            assert_eq!(
                m.row_data(r).unwrap(),
                p.row_data(r).unwrap(),
                "{ty:?} row {r}"
            );
        }
        let theirs = |q: &QMatrix| -> Vec<f32> {
            q.to_tensor()
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(theirs(m), theirs(p), "{ty:?}: candle's values");
    }
    check(&inter[0], 5);
    check(&inter[1], 1);
    check(&inter[5], 1);
    check(&inter[7], 1);
    check(&inter[8], 1);
    check(&inter[6], 3);
    let calls: [&[usize]; 7] = [
        &[0],
        &[3, 1, 4],
        &[2, 5],
        &[1, 2],
        &[6],
        &[7, 8],
        &[8, 6, 7],
    ];
    for tokens in [1, 2, 6] {
        for isa in Isa::supported() {
            for call in calls {
                let cols = plain[call[0]].cols();
                let x = activations(tokens * cols, 11 + tokens as u64);
                let run = |ms: &[QMatrix]| {
                    let refs: Vec<&QMatrix> = call.iter().map(|&i| &ms[i]).collect();
                    many_outputs(isa, &refs, &x)
                };
                assert_eq!(
                    run(&inter),
                    run(&plain),
                    "{isa:?}, {tokens} token(s), {call:?}"
                );
            }
        }
    }
}

/// A matrix interleaved straight from the mapped file (as the model loads one, with no copy in
/// between) is the one interleaved from its tensor: the same bytes row by row and the same
/// products on every instruction set; what cannot be interleaved that way is refused, and a
/// wrong shape or a missing tensor is an error, not a matrix.
#[test]
fn a_matrix_interleaved_from_the_mapped_file_is_the_one_from_its_tensor() {
    let file = ModelFile::open(&smollm()).unwrap();
    for (name, rows, cols) in [
        ("blk.0.ffn_gate.weight", 1536, 576),
        ("blk.2.attn_k.weight", 192, 576),
    ] {
        let direct = file
            .with_mapped(name, &[rows, cols], |dt, bytes| {
                QMatrix::interleaved_from(BlockType::from_ggml(dt)?, rows, cols, bytes)
            })
            .unwrap()
            .expect("a mapped Q4_1 matrix is interleaved");
        let from_tensor = QMatrix::interleaved(tensor(&smollm(), name, &[rows, cols])).unwrap();
        assert!(direct.is_interleaved() && from_tensor.is_interleaved());
        assert_eq!(
            (direct.block_type(), direct.rows(), direct.cols()),
            (BlockType::Q4_1, rows, cols)
        );
        for r in 0..rows {
            assert_eq!(
                direct.row_data(r).unwrap(),
                from_tensor.row_data(r).unwrap(),
                "{name} row {r}"
            );
        }
        for isa in Isa::supported() {
            for tokens in [1, 5] {
                let x = activations(tokens * cols, 3 + tokens as u64);
                assert_eq!(
                    many_outputs(isa, &[&direct], &x),
                    many_outputs(isa, &[&from_tensor], &x),
                    "{name}, {isa:?}, {tokens} token(s)"
                );
            }
        }
    }
    let bytes = file
        .with_mapped("blk.0.ffn_gate.weight", &[1536, 576], |_, b| {
            Some(b.to_vec())
        })
        .unwrap()
        .unwrap();
    let row = 576 / 32 * 20;
    assert_eq!(bytes.len(), 1536 * row);
    // Not whole rows, fewer than eight rows, a type with no interleaved layout.
    assert!(QMatrix::interleaved_from(BlockType::Q4_1, 1536, 576, &bytes[1..]).is_none());
    assert!(QMatrix::interleaved_from(BlockType::Q4_1, 1536, 577, &bytes).is_none());
    assert!(QMatrix::interleaved_from(BlockType::Q4_1, 7, 576, &bytes[..7 * row]).is_none());
    // A last partial group (13 rows: one group of 8, then 5 left as they are).
    let part = QMatrix::interleaved_from(BlockType::Q4_1, 13, 576, &bytes[..13 * row]).unwrap();
    assert!(part.is_interleaved());
    for r in 0..13 {
        assert_eq!(
            part.row_data(r).unwrap(),
            bytes[r * row..(r + 1) * row],
            "row {r}"
        );
    }
    let f32_norm = file
        .with_mapped("blk.0.attn_norm.weight", &[576], |dt, _| {
            BlockType::from_ggml(dt)
        })
        .unwrap();
    assert!(f32_norm.is_none(), "an f32 vector has no block type");
    assert!(file
        .with_mapped("blk.0.ffn_gate.weight", &[576, 1536], |_, _| Some(()))
        .is_err());
    assert!(file
        .with_mapped("blk.99.ffn_gate.weight", &[1536, 576], |_, _| Some(()))
        .is_err());
}

#[test]
fn isa_detection_includes_scalar_and_the_best() {
    let s = Isa::supported();
    assert_eq!(s[0], Isa::Scalar);
    assert!(s.contains(&Isa::best()));
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        Isa::Avx2.is_supported(),
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        Isa::AvxVnni.is_supported(),
        Isa::Avx2.is_supported() && is_x86_feature_detected!("avxvnni")
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        Isa::Avx512Vnni.is_supported(),
        Isa::Avx2.is_supported()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    );
    #[cfg(target_arch = "aarch64")]
    {
        assert!(Isa::Neon.is_supported());
        assert_eq!(
            Isa::NeonDot.is_supported(),
            std::arch::is_aarch64_feature_detected!("dotprod")
        );
        assert_eq!(
            Isa::best(),
            if Isa::NeonDot.is_supported() {
                Isa::NeonDot
            } else {
                Isa::Neon
            }
        );
    }
    #[cfg(not(target_arch = "aarch64"))]
    assert!(!Isa::Neon.is_supported() && !Isa::NeonDot.is_supported());
}

#[test]
fn q4_1_rows_of_smollm2_match_the_reference() {
    let p = smollm();
    for (name, shape) in [
        ("blk.0.ffn_gate.weight", [1536, 576]),
        ("blk.7.ffn_down.weight", [576, 1536]),
        ("blk.29.attn_k.weight", [192, 576]),
    ] {
        let m = QMatrix::new(tensor(&p, name, &shape)).expect("Q4_1 is covered");
        assert_eq!(m.block_type(), BlockType::Q4_1, "{name}");
        check(&m, 1);
    }
}

#[test]
fn q8_0_rows_of_smollm2_embeddings_match_the_reference() {
    let m = QMatrix::new(tensor(&smollm(), "token_embd.weight", &[49152, 576])).unwrap();
    assert_eq!(m.block_type(), BlockType::Q8_0);
    check(&m, 53);
}

#[test]
fn q5_0_rows_of_qwen_match_the_reference() {
    let p = qwen();
    for (name, shape) in [
        ("blk.0.attn_q.weight", [896, 896]),
        ("blk.5.ffn_up.weight", [4864, 896]),
        ("blk.23.attn_k.weight", [128, 896]),
    ] {
        let m = QMatrix::new(tensor(&p, name, &shape)).expect("Q5_0 is covered");
        assert_eq!(m.block_type(), BlockType::Q5_0, "{name}");
        check(&m, 3);
    }
}

#[test]
fn q8_0_rows_of_qwen_output_match_the_reference() {
    let m = QMatrix::new(tensor(&qwen(), "output.weight", &[151936, 896])).unwrap();
    assert_eq!(m.block_type(), BlockType::Q8_0);
    check(&m, 211);
}

#[test]
fn q4_0_from_real_weights_matches_the_reference() {
    // No test model stores Q4_0: quantize real SmolLM2 and Qwen weights to it.
    let s = tensor(&smollm(), "blk.3.ffn_up.weight", &[1536, 576]);
    check(&requantized(&s, 1536, 576, GgmlDType::Q4_0), 1);
    let q = tensor(&qwen(), "blk.2.attn_output.weight", &[896, 896]);
    check(&requantized(&q, 896, 896, GgmlDType::Q4_0), 1);
}

#[test]
fn odd_shapes_for_every_type() {
    // Row counts that don't divide among threads, a single row, and rows of an odd number of
    // blocks (3 and 27; 1 and 3 for the k-quants' blocks of 256), from real Qwen weights.
    let src = tensor(&qwen(), "blk.1.attn_q.weight", &[896, 896]);
    for dtype in [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q8_0,
    ] {
        for (rows, cols) in [(1, 96), (7, 864), (37, 96), (193, 32), (301, 864)] {
            check(&requantized(&src, rows, cols, dtype), 1);
        }
    }
    for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        for (rows, cols) in [(1, 256), (7, 768), (37, 256), (301, 768)] {
            check(&requantized(&src, rows, cols, dtype), 1);
        }
    }
}

/// Several matrices in one call (a layer's q, k, v; gate and up) give each output exactly the
/// bits of its own call, whether they share a quantization (mixed Q4_K and Q6_K; mixed blocks of
/// 32) or not (blocks of 32 next to a k-quant), more of them than one call takes, for one token
/// and for a prompt, on every instruction set.
#[test]
fn several_matrices_in_one_call_match_their_own_calls() {
    let src = tensor(&qwen(), "blk.1.attn_q.weight", &[896, 896]);
    let sets: Vec<Vec<QMatrix>> = vec![
        vec![
            requantized(&src, 64, 768, GgmlDType::Q4K),
            requantized(&src, 37, 768, GgmlDType::Q6K),
            requantized(&src, 16, 768, GgmlDType::Q4K),
        ],
        vec![
            requantized(&src, 96, 864, GgmlDType::Q5_0),
            requantized(&src, 8, 864, GgmlDType::Q8_0),
            requantized(&src, 301, 864, GgmlDType::Q4_0),
        ],
        vec![
            requantized(&src, 40, 768, GgmlDType::Q8_0),
            requantized(&src, 24, 768, GgmlDType::Q5K),
        ],
        // More matrices than one call takes: run in groups.
        vec![
            requantized(&src, 24, 864, GgmlDType::Q4_0),
            requantized(&src, 17, 864, GgmlDType::Q8_0),
            requantized(&src, 40, 864, GgmlDType::Q4_1),
            requantized(&src, 8, 864, GgmlDType::Q5_0),
            requantized(&src, 33, 864, GgmlDType::Q4_0),
            requantized(&src, 16, 864, GgmlDType::Q8_0),
        ],
    ];
    for mats in &sets {
        let cols = mats[0].cols();
        let refs: Vec<&QMatrix> = mats.iter().collect();
        for tokens in [1, 5] {
            let x = activations(tokens * cols, 7 + tokens as u64);
            for isa in Isa::supported() {
                let outs = many_outputs(isa, &refs, &x);
                let xt = Tensor::from_vec(x.clone(), (1, tokens, cols), &Device::Cpu).unwrap();
                let ts = hearth_engine::kernels::forward_many(isa, &refs, &xt).unwrap();
                for (i, m) in mats.iter().enumerate() {
                    let mut own = vec![0f32; tokens * m.rows()];
                    m.matmul(isa, &x, &mut own).unwrap();
                    let what = format!(
                        "{isa:?}, {tokens} token(s), matrix {i} ({:?})",
                        m.block_type()
                    );
                    assert_eq!(
                        outs[i].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        own.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{what}"
                    );
                    assert_eq!(ts[i].dims(), &[1, tokens, m.rows()], "{what}");
                    let t: Vec<f32> = ts[i].flatten_all().unwrap().to_vec1().unwrap();
                    assert_eq!(
                        t.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        own.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{what}, as tensors"
                    );
                }
            }
        }
    }
    // Outputs that do not fit their matrices are errors, not writes out of bounds.
    let a = &sets[0][0];
    let x = activations(a.cols(), 1);
    let mut short = vec![0f32; a.rows() - 1];
    assert!(hearth_engine::kernels::matmul_many(Isa::Scalar, &[a], &x, &mut [&mut short]).is_err());
    assert!(
        hearth_engine::kernels::matmul_many(Isa::Scalar, &[a, a], &x, &mut [&mut short]).is_err()
    );
}

/// Qwen2.5's Q4_K_M file stores its ffn_down matrices as Q4_K in some layers and Q6_K in others.
#[test]
fn q4_k_and_q6_k_rows_of_qwen_match_the_reference() {
    let p = qwen();
    let f = ModelFile::open(&p).unwrap();
    let mut seen = Vec::new();
    for il in [0, 1, 2, 3, 22, 23] {
        let t = Arc::new(
            f.tensor(&format!("blk.{il}.ffn_down.weight"), &[896, 4864])
                .unwrap(),
        );
        let m = QMatrix::new(t).expect("k-quants are covered");
        seen.push(m.block_type());
        check(&m, 7);
    }
    assert!(seen.contains(&BlockType::Q4_K) && seen.contains(&BlockType::Q6_K));
}

/// Our reading of the k-quant layouts agrees with candle's dequantization, value by value.
#[test]
fn k_quant_rows_dequantize_as_candle_does() {
    let src = tensor(&qwen(), "blk.4.ffn_down.weight", &[896, 4864]);
    for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        let m = requantized(&src, 16, 1024, dtype);
        let theirs: Vec<f32> = m
            .tensor()
            .expect("read in place")
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for r in 0..16 {
            let ours = m.dequantize_row(r).unwrap();
            for (c, (a, b)) in ours
                .iter()
                .zip(&theirs[r * 1024..(r + 1) * 1024])
                .enumerate()
            {
                assert!(
                    (a - b).abs() <= b.abs() * 1e-6 + 1e-9,
                    "{dtype:?} row {r} col {c}: {a} vs candle {b}"
                );
            }
        }
    }
}

#[test]
fn uncovered_types_fall_back() {
    let src = tensor(&qwen(), "blk.1.attn_q.weight", &[896, 896]);
    let part = src
        .dequantize(&Device::Cpu)
        .unwrap()
        .narrow(0, 0, 8)
        .unwrap()
        .narrow(1, 0, 256)
        .unwrap()
        .contiguous()
        .unwrap();
    for dtype in [GgmlDType::Q3K, GgmlDType::Q2K, GgmlDType::F32] {
        let q = QTensor::quantize(&part, dtype).unwrap();
        assert!(QMatrix::new(Arc::new(q)).is_none(), "{dtype:?}");
    }
}

#[test]
fn shape_mismatches_are_errors() {
    let m = QMatrix::new(tensor(&smollm(), "blk.0.attn_k.weight", &[192, 576])).unwrap();
    let mut out = vec![0f32; 192];
    assert!(m.matmul(Isa::Scalar, &[0.0; 575], &mut out).is_err());
    assert!(m.matmul(Isa::Scalar, &[0.0; 576], &mut out[..191]).is_err());
    assert!(m.row_data(192).is_err());
    let x = Tensor::zeros((1, 1, 575), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(m.forward_with(Isa::Scalar, &x).is_err());
}

/// Logits after the prompt and after each of `tokens` (teacher forcing).
fn logits_along(t: &mut Transformer, prompt: &[u32], tokens: &[u32]) -> Vec<Vec<f32>> {
    t.clear_cache();
    let mut out = vec![t.forward(prompt).unwrap().to_vec1::<f32>().unwrap()];
    for &tok in tokens {
        out.push(t.forward(&[tok]).unwrap().to_vec1::<f32>().unwrap());
    }
    out
}

fn gap(logits: &[f32]) -> f32 {
    let mut sorted = logits.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted[0] - sorted[1]
}

fn largest_change(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// SmolLM2's greedy continuations with candle's kernels and with Hearth's, each measured against
/// an exact reference: the same model with every weight dequantized to f32 and f32 activations.
/// Hearth's kernels must be at least as close to it as candle's (both round activations to 8
/// bits; candle also rounds the block scales to f16), and where Hearth's greedy tokens differ
/// from candle's, candle's two best candidates must be a near tie.
#[test]
fn smollm2_greedy_output_is_unchanged_by_the_kernels() {
    let path = smollm();
    let lm = LoadedModel::load(&path, 0).unwrap();
    let tok = lm.tokenizer();
    let prompts: Vec<Vec<u32>> = [
        "The history of the printing press begins in",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    ]
    .iter()
    .map(|text| {
        let mut p = vec![tok.specials.bos.unwrap_or(0)];
        p.extend(tok.encode(text, false, false).unwrap());
        p
    })
    .collect();
    let greedy = |t: &mut Transformer, prompt: &[u32]| -> Vec<u32> {
        t.clear_cache();
        let mut logits = t.forward(prompt).unwrap().to_vec1::<f32>().unwrap();
        let mut out = Vec::new();
        for _ in 0..32 {
            out.push(hearth_engine::sampling::argmax(&logits));
            logits = t
                .forward(&out[out.len() - 1..])
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
        }
        out
    };
    // The exact reference, loaded on a thread of its own: candle reads CANDLE_DEQUANTIZE_ALL
    // once per thread. No other test of this file builds candle matrices.
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let exact = {
        let path = path.clone();
        let prompts = prompts.clone();
        std::thread::spawn(move || {
            let file = ModelFile::open(&path).unwrap();
            let mut t = Transformer::load(&file).unwrap();
            t.set_kernels(None).unwrap();
            prompts
                .iter()
                .map(|p| {
                    let g = greedy(&mut t, p);
                    let l = logits_along(&mut t, p, &g[..31]);
                    (g, l)
                })
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap()
    };
    std::env::remove_var("CANDLE_DEQUANTIZE_ALL");

    let file = ModelFile::open(&path).unwrap();
    let mut t = Transformer::load(&file).unwrap();
    let mut settings = vec![None];
    settings.extend(Isa::supported().into_iter().map(Some));
    // Per setting: mean over prompts and steps of the largest logit change from the reference.
    let mut mean_change = Vec::new();
    let mut identical_to_candle = 0;
    let mut runs = 0;
    for &k in &settings {
        t.set_kernels(k).unwrap();
        let mut total = 0f32;
        let mut n = 0;
        for (p, (exact_tokens, exact_logits)) in prompts.iter().zip(&exact) {
            let along = logits_along(&mut t, p, &exact_tokens[..31]);
            for (e, o) in exact_logits.iter().zip(&along) {
                total += largest_change(e, o);
                n += 1;
            }
        }
        mean_change.push(total / n as f32);
        eprintln!(
            "kernels {k:?}: mean largest logit change from the f32 reference {}",
            total / n as f32
        );
    }
    for (p, _) in prompts.iter().zip(&exact) {
        t.set_kernels(None).unwrap();
        let base = greedy(&mut t, p);
        let base_logits = logits_along(&mut t, p, &base[..31]);
        for isa in Isa::supported() {
            t.set_kernels(Some(isa)).unwrap();
            let own = greedy(&mut t, p);
            runs += 1;
            match base.iter().zip(&own).position(|(a, b)| a != b) {
                None => identical_to_candle += 1,
                Some(i) => {
                    // Up to step i both ran the same tokens, so candle's logits at step i are the
                    // ones Hearth's kernels saw the other side of.
                    let g = gap(&base_logits[i]);
                    eprintln!("{isa:?}: greedy parts from candle's at token {i}, candle's gap {g}");
                    assert!(
                        g < 0.25,
                        "{isa:?}: token {i} differs but candle's gap is {g}"
                    );
                }
            }
        }
    }
    eprintln!("{identical_to_candle}/{runs} greedy runs identical to candle's");
    for (k, m) in settings.iter().zip(&mean_change).skip(1) {
        assert!(
            *m <= mean_change[0] * 1.1,
            "{k:?}: {m} from the reference, candle {}",
            mean_change[0]
        );
    }
}

/// The prefix cache is exact only if a token's logits do not depend on how many tokens ran with
/// it: a 12-token prompt at once, 11 then 1, and one token at a time give the same bits for the
/// last token. On SmolLM2 (Q4_1 and Q8_0 weights) with Hearth's kernels (every instruction set)
/// and with candle's; on Qwen2.5 (Q5_0, Q8_0, Q4_K, Q6_K) and Gemma 3 (sliding-window layers,
/// Q5_0, Q8_0, Q4_K, Q6_K) with Hearth's best instruction set, which covers all their matrices.
#[test]
fn a_token_gives_the_same_logits_inside_a_prompt_or_alone() {
    let tokens: Vec<u32> = (0..12).map(|i| 100 + i * 37).collect();
    let gemma = model("gemma-3-270m-q4_k_m.gguf");
    for path in [smollm(), qwen(), gemma] {
        let f = ModelFile::open(&path).unwrap();
        let mut t = Transformer::load(&f).unwrap();
        let settings: Vec<Option<Isa>> = if path == smollm() {
            let mut all: Vec<_> = Isa::supported().into_iter().map(Some).collect();
            all.push(None);
            all
        } else {
            vec![Some(Isa::best())]
        };
        for k in settings {
            let what = format!("{}, kernels {k:?}", path.display());
            t.set_kernels(k).unwrap();
            t.clear_cache();
            let whole = t.forward(&tokens).unwrap().to_vec1::<f32>().unwrap();
            t.clear_cache();
            t.forward(&tokens[..11]).unwrap();
            let last_alone = t.forward(&tokens[11..]).unwrap().to_vec1::<f32>().unwrap();
            t.clear_cache();
            let mut one_by_one = Vec::new();
            for tok in &tokens {
                one_by_one = t.forward(&[*tok]).unwrap().to_vec1::<f32>().unwrap();
            }
            assert_eq!(whole, last_alone, "{what}: 12 at once vs 11 + 1");
            assert_eq!(whole, one_by_one, "{what}: 12 at once vs one by one");
            // Two tokens after a truncation reuse the cache the same way.
            t.truncate(6);
            t.forward(&tokens[6..11]).unwrap();
            let again = t.forward(&tokens[11..]).unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(whole, again, "{what}: after truncating the cache");
        }
    }
}

/// A file that ties its output matrix to its embedding (SmolLM2's and Gemma 3's test files, Q8_0
/// tables) holds the table once: where the selected kernels keep that matrix interleaved, the embedding
/// reads its rows back from it, and gets exactly the values of candle's lookup in the file's
/// table, for every kernel setting; an id past the vocabulary is an error.
#[test]
fn a_tied_embedding_read_from_the_interleaved_output_gives_the_table_values() {
    for path in [smollm(), gemma()] {
        let file = ModelFile::open(&path).unwrap();
        assert!(!file.has_tensor("output.weight"), "{}", path.display());
        let vocab = file.config().unwrap().vocab_size;
        let table = file.tensor("token_embd.weight", &[vocab, file.config().unwrap().n_embd]);
        let table = table.unwrap();
        let held = hearth_engine::kernels::selected().is_some_and(|isa| {
            BlockType::from_ggml(table.dtype())
                .is_some_and(|ty| hearth_engine::kernels::prefers_interleaved(isa, ty))
        });
        let mut t = Transformer::load(&file).unwrap();
        assert_eq!(t.embeds_from_output(), held, "{}", path.display());
        if cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2") {
            assert!(
                held,
                "{}: the x86 kernels keep this table interleaved",
                path.display()
            );
        }
        let ids: Vec<u32> = vec![0, 1, 2, 17, 9_001, (vocab - 1) as u32, 17];
        let idt = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let bits = |t: Tensor| -> Vec<u32> {
            let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            values.iter().map(|v| v.to_bits()).collect()
        };
        let want = bits(table.embedding(&idt).unwrap());
        let mut settings = vec![None];
        settings.extend(Isa::supported().into_iter().map(Some));
        for k in settings {
            t.set_kernels(k).unwrap();
            let got = bits(t.embed(&ids).unwrap());
            assert_eq!(got, want, "{}, kernels {k:?}", path.display());
        }
        assert!(t.embed(&[vocab as u32]).is_err(), "{}", path.display());
        assert!(t.forward(&[1, vocab as u32]).is_err(), "{}", path.display());
    }
}
